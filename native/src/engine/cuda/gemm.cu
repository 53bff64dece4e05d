// The device's products: gemm (cuBLAS; a tensor-core "skinny" kernel for decode batches of
// a few rows in bf16/fp16), gemm_out_f32 (the lm head's fp32 logits) and gemm_f32 (the
// strategies' fp32 products, no TF32). CPU reference: gemm, gemm_out_f32 and gemm_f32 in
// device_cpu.cpp.
//
// Why a skinny kernel: a decode step multiplies ~12 rows by every weight matrix, a pure
// stream of the weights, and cuBLAS's choice for the square o_proj reads it at under half the
// copy rate (kSkinnyConfig below says where each wins). Here each warp owns 8·NT output rows and
// a slice of the input dimension; every
// thread loads 16 bytes of its weight row and 16 bytes of each of two activation rows
// straight into mma.sync m16n8k16 fragments (the k order inside a 32-wide chunk is permuted
// identically for both operands, so no shared memory or shuffles are needed); the 8 warps of a
// block split the input dimension and sum their tiles in shared memory in a fixed order.
#include <cstdlib>
#include <string>
#include <type_traits>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

void ckb(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cuBLAS error during ") + what + ": " + cublasGetStatusString(s));
  }
}

cudaDataType_t cuda_type(DT dt) { return dt == DT::F32 ? CUDA_R_32F : dt == DT::BF16 ? CUDA_R_16BF : CUDA_R_16F; }

constexpr int kSkinnyMaxRows = 16;  // one m16 tile

template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                         uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
  }
}

__device__ __forceinline__ uint4 load16(const void* p, bool on) {
  return on ? *reinterpret_cast<const uint4*>(p) : make_uint4(0, 0, 0, 0);
}

// y[n, out] = alpha · x[n, in] · W[out, in]ᵀ + beta · y for n ≤ 16, in % 32 == 0.
// Block: NT·8 output rows; WARPS warps over the input's 32-wide chunks (chunk c to warp
// c % WARPS), U chunks in flight per warp (all their loads before any math). The activation
// fragments of a chunk serve the NT weight tiles, so x is read once per NT·8 outputs.
// Thread (gid = lane / 4, tig = lane % 4) holds, per tile, the C fragment of rows gid, gid + 8
// and outputs 2·tig, 2·tig + 1.
template <typename T, int NT, int WARPS, int U>
__global__ void __launch_bounds__(WARPS * 32)
    skinny_k(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ w, int n, int in, int out, float alpha,
             float beta) {
  __shared__ float red[WARPS][NT][32][4];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane >> 2, tig = lane & 3;
  const int o0 = blockIdx.x * NT * 8;
  const bool x0_on = gid < n, x1_on = gid + 8 < n;
  const T* x0 = x + static_cast<int64_t>(x0_on ? gid : 0) * in + tig * 8;
  const T* x1 = x + static_cast<int64_t>(x1_on ? gid + 8 : 0) * in + tig * 8;
  const T* wr[NT];
  bool w_on[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    w_on[t] = o0 + t * 8 + gid < out;
    wr[t] = w + static_cast<int64_t>(w_on[t] ? o0 + t * 8 + gid : 0) * in + tig * 8;
  }
  float c[NT][4];
#pragma unroll
  for (int t = 0; t < NT; ++t) c[t][0] = c[t][1] = c[t][2] = c[t][3] = 0.0f;
  const int chunks = in / 32;
  int ch = warp;
  for (; ch + (U - 1) * WARPS < chunks; ch += U * WARPS) {
    uint4 xa[U], xb[U], wv[U][NT];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int k = (ch + u * WARPS) * 32;
      xa[u] = load16(x0 + k, x0_on);
      xb[u] = load16(x1 + k, x1_on);
#pragma unroll
      for (int t = 0; t < NT; ++t) wv[u][t] = load16(wr[t] + k, w_on[t]);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        mma16816<T>(c[t], xa[u].x, xb[u].x, xa[u].y, xb[u].y, wv[u][t].x, wv[u][t].y);
        mma16816<T>(c[t], xa[u].z, xb[u].z, xa[u].w, xb[u].w, wv[u][t].z, wv[u][t].w);
      }
    }
  }
  for (; ch < chunks; ch += WARPS) {
    const int k = ch * 32;
    const uint4 xa = load16(x0 + k, x0_on), xb = load16(x1 + k, x1_on);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      const uint4 wv = load16(wr[t] + k, w_on[t]);
      mma16816<T>(c[t], xa.x, xb.x, xa.y, xb.y, wv.x, wv.y);
      mma16816<T>(c[t], xa.z, xb.z, xa.w, xb.w, wv.z, wv.w);
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int i = 0; i < 4; ++i) red[warp][t][lane][i] = c[t][i];
  __syncthreads();
  // Warp t of the block sums tile t over the warps (fixed order) and writes it.
  for (int t = warp; t < NT; t += WARPS) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float sum = 0.0f;
#pragma unroll
      for (int v = 0; v < WARPS; ++v) sum += red[v][t][lane][i];
      // c0, c1: row gid, outputs 2·tig, 2·tig + 1; c2, c3: row gid + 8.
      const int row = gid + (i >= 2 ? 8 : 0);
      const int o = o0 + t * 8 + tig * 2 + (i & 1);
      if (row >= n || o >= out) continue;
      T* yo = y + static_cast<int64_t>(row) * out + o;
      const float prev = beta == 0.0f ? 0.0f : beta * to_f(*yo);
      *yo = from_f<T>(alpha * sum + prev);
    }
  }
}

template <typename T, int NT, int WARPS, int U>
void launch_skinny(void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta, cudaStream_t s) {
  const dim3 grid((out + NT * 8 - 1) / (NT * 8));
  skinny_k<T, NT, WARPS, U><<<grid, WARPS * 32, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(x),
                                                        static_cast<const T*>(w), n, in, out, alpha, beta);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// Which skinny tiling the engine uses, and where: measured on an H200 (backend_ops --bench,
// 12 rows, bf16; weights read per second), cuBLAS wins on the wide and deep products
// (q/k/v 3.5, gate/up 4.0, down 3.2 TB/s against the skinny kernel's best 3.2, 3.6, 2.7), the
// skinny kernel on the square 4096 × 4096 o_proj (3.5 against cuBLAS's 2.0).
constexpr int kSkinnyConfig = 1;
constexpr int kSkinnyMaxDim = 4096;

}  // namespace

bool skinny_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_SKINNY");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

bool skinny_gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta,
                 cudaStream_t s, int config) {
  if (dt == DT::F32 || n < 1 || n > kSkinnyMaxRows || in % 32 != 0 || !aligned16(x) || !aligned16(w)) return false;
  auto go = [&](auto tag) {
    using T = decltype(tag);
    switch (config) {
      case 1: launch_skinny<T, 1, 8, 2>(y, x, w, n, in, out, alpha, beta, s); break;
      case 2: launch_skinny<T, 2, 4, 4>(y, x, w, n, in, out, alpha, beta, s); break;
      case 3: launch_skinny<T, 4, 4, 2>(y, x, w, n, in, out, alpha, beta, s); break;
      default: launch_skinny<T, 2, 8, 2>(y, x, w, n, in, out, alpha, beta, s); break;
    }
  };
  if (dt == DT::BF16) go(__nv_bfloat16{});
  else go(__half{});
  check("gemm (skinny)");
  return true;
}

void gemm(cublasHandle_t h, DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha,
          float beta, cudaStream_t s) {
  if (n == 0 || out == 0) return;
  if (skinny_enabled() && in <= kSkinnyMaxDim && out <= kSkinnyMaxDim &&
      skinny_gemm(dt, y, x, w, n, in, out, alpha, beta, s, kSkinnyConfig)) {
    return;
  }
  cublas_gemm(h, dt, y, x, w, n, in, out, alpha, beta);
}

namespace {
// Row-major y[n, out] = alpha · x[n, in] · W[out, in]ᵀ + beta · y is column-major
// yᵀ[out, n] = W[out, in] · xᵀ: W is a column-major [in, out] matrix used transposed; x is a
// column-major [in, n] matrix (opx N, ldx in) or, given transposed as row-major xᵀ [in, n], a
// column-major [n, in] one used transposed (opx T, ldx n).
void cublas_rows(cublasHandle_t h, DT dt, void* y, const void* x, cublasOperation_t opx, int ldx, const void* w, int n,
                 int in, int out, float alpha, float beta, const char* what) {
  if (n == 0 || out == 0) return;
  const cudaDataType_t t = cuda_type(dt);
  const cublasComputeType_t ct = dt == DT::F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  ckb(cublasGemmEx(h, CUBLAS_OP_T, opx, out, n, in, &alpha, w, t, in, x, t, ldx, &beta, y, t, out, ct, CUBLAS_GEMM_DEFAULT), what);
}
}  // namespace

void cublas_gemm(cublasHandle_t h, DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha,
                 float beta) {
  cublas_rows(h, dt, y, x, CUBLAS_OP_N, in, w, n, in, out, alpha, beta, "cublasGemmEx");
}

void cublas_gemm_xt(cublasHandle_t h, DT dt, void* y, const void* xt, const void* w, int n, int in, int out, float alpha,
                    float beta) {
  cublas_rows(h, dt, y, xt, CUBLAS_OP_T, n, w, n, in, out, alpha, beta, "cublasGemmEx (x transposed)");
}

void gemm_out_f32(cublasHandle_t h, DT dt, float* y, const void* x, const void* w, int n, int in, int out) {
  if (n == 0 || out == 0) return;
  const float alpha = 1.0f, beta = 0.0f;
  const cudaDataType_t t = cuda_type(dt);
  const cublasComputeType_t ct = dt == DT::F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  ckb(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in, x, t, in, &beta, y, CUDA_R_32F, out, ct,
                   CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx (fp32 logits)");
}

void gemm_f32(cublasHandle_t h, float* y, const float* a, const float* b, int m, int n, int k, bool ta, bool tb,
              float alpha, float beta) {
  if (m == 0 || n == 0) return;
  // Row-major Y[m, n] = op(A)·op(B) is column-major Yᵀ[n, m] = op(B)ᵀ·op(A)ᵀ. A row-major
  // matrix is its own transpose in column-major terms: op(A)ᵀ is A as stored (lda k) when !ta,
  // and A as stored transposed (lda m) when ta; likewise B (ldb n when !tb, k when tb).
  const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldb = tb ? k : n, lda = ta ? m : k;
  ckb(cublasGemmEx(h, opb, opa, n, m, k, &alpha, b, CUDA_R_32F, ldb, a, CUDA_R_32F, lda, &beta, y, CUDA_R_32F, n,
                   CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx (fp32)");
}

void gemm_f32_batched(cublasHandle_t h, int count, float* y, int64_t sy, const float* a, int64_t sa, const float* b,
                      int64_t sb, int m, int n, int k, bool ta, bool tb, float alpha, float beta) {
  if (count == 0 || m == 0 || n == 0) return;
  // As gemm_f32, per problem (the same operands, leading dimensions and compute type).
  const cublasOperation_t opb = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opa = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ldb = tb ? k : n, lda = ta ? m : k;
  ckb(cublasGemmStridedBatchedEx(h, opb, opa, n, m, k, &alpha, b, CUDA_R_32F, ldb, sb, a, CUDA_R_32F, lda, sa, &beta, y,
                                 CUDA_R_32F, n, sy, count, CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
      "cublasGemmStridedBatchedEx (fp32)");
}

}  // namespace al::cuda
