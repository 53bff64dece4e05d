// The lora op: every row's adapter on a group of Linears that share their input (q/k/v, or
// gate/up). CPU reference: lora in device_cpu.cpp.
//
// Decode batches (a few rows, each its own adapter) run as batched gather matrix-vector
// products (Punica's BGMV): one "shrink" kernel computes u = A·x for every row and every
// Linear of the group at once (reading x once), and writes s·u to the row's LoRA-V capture
// when it has one; one "expand" kernel adds s·B·u to every output. Longer batches (prefill
// chunks: one adapter over many rows) run per run of rows that share an adapter: the shrink
// uᵀ = A·xᵀ through the skinny kernel (gemm.cu), with A's ≤ 16 rank rows as its "rows" and
// the chunk's rows of x as its "weights", so x streams once at the copy rate (ranks up to 32;
// above, one cuBLAS product is faster than streaming x once per 16 ranks); then the expand
// y += s·u·Bᵀ as one cuBLAS GEMM, and the capture copied out by a small kernel. cuBLAS's own
// choice for the shrink's shape (8 to 64 outputs, a deep 4096 or 11008 input) spent 40 to 70
// µs a product on a 1098-row chunk (H200, the op profile: 5 to 18 ms of LoRA a prefill).
// Where the skinny kernel does not apply (fp32, inputs not a multiple of 32), both halves are
// cuBLAS GEMMs.
#include <algorithm>
#include <vector>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

constexpr int kBgmvMaxRows = 64;
constexpr int kShrinkWarps = 8;
constexpr int kMaxTargets = 3;
constexpr int kSkinnyShrinkMaxRank = 32;  // prefill shrinks through the skinny kernel up to this rank

struct Group {
  const LoraRow* rows[kMaxTargets];  // device tables [n]
  void* y[kMaxTargets];
  int out[kMaxTargets];
  int ld[kMaxTargets];  // y's row stride (a stacked projection's width, or out)
};

// u[target][t, r] = A_t[r, :] · x_t. Block (8 ranks, row, target), a warp per rank: lanes
// stride the dot with 16-byte loads when rows allow it, scalar loads otherwise.
template <typename T>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    shrink_k(float* u, const T* x, Group g, int n, int in, int max_rank) {
  constexpr int VEC = 16 / sizeof(T);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = blockIdx.x * kShrinkWarps + warp, t = blockIdx.y, target = blockIdx.z;
  const LoraRow lr = g.rows[target][t];
  if (!lr.a || r >= lr.rank) return;  // uniform over the warp
  const T* a = static_cast<const T*>(lr.a) + static_cast<int64_t>(r) * in;
  const T* xr = x + static_cast<int64_t>(t) * in;
  float s = 0.0f;
  if (in % VEC == 0) {
#pragma unroll 4
    for (int i = lane * VEC; i < in; i += 32 * VEC) {
      const uint4 ra = *reinterpret_cast<const uint4*>(a + i), rx = *reinterpret_cast<const uint4*>(xr + i);
      const T* va = reinterpret_cast<const T*>(&ra);
      const T* vx = reinterpret_cast<const T*>(&rx);
#pragma unroll
      for (int e = 0; e < VEC; ++e) s += to_f(va[e]) * to_f(vx[e]);
    }
  } else {
    for (int i = lane; i < in; i += 32) s += to_f(a[i]) * to_f(xr[i]);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) {
    u[(static_cast<int64_t>(target) * n + t) * max_rank + r] = s;
    if (lr.capture) lr.capture[r] = lr.scale * s;
  }
}

// y_t += scale · Σ_r B[o, r] u[r] (PEFT scales after B): block (256 outputs, row, target),
// the row's u staged in shared memory, B's row read with 16-byte loads when aligned.
template <typename T>
__global__ void expand_k(const float* u, Group g, int n, int max_rank) {
  constexpr int VEC = 16 / sizeof(T);
  extern __shared__ float us[];  // [max_rank]
  const int t = blockIdx.y, target = blockIdx.z;
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  const LoraRow lr = g.rows[target][t];
  if (!lr.a) return;  // uniform over the block
  const int out = g.out[target];
  if (static_cast<int>(blockIdx.x * blockDim.x) >= out) return;  // uniform: this target is narrower
  for (int r = threadIdx.x; r < lr.rank; r += blockDim.x) us[r] = u[(static_cast<int64_t>(target) * n + t) * max_rank + r];
  __syncthreads();
  if (o >= out) return;
  const T* b = static_cast<const T*>(lr.b) + static_cast<int64_t>(o) * lr.rank;
  float s = 0.0f;
  if (lr.rank % VEC == 0) {
#pragma unroll 4
    for (int r = 0; r < lr.rank; r += VEC) {
      const uint4 rb = *reinterpret_cast<const uint4*>(b + r);
      const T* vb = reinterpret_cast<const T*>(&rb);
#pragma unroll
      for (int e = 0; e < VEC; ++e) s += to_f(vb[e]) * us[r + e];
    }
  } else {
    for (int r = 0; r < lr.rank; ++r) s += to_f(b[r]) * us[r];
  }
  T* yo = static_cast<T*>(g.y[target]) + static_cast<int64_t>(t) * g.ld[target] + o;
  *yo = from_f<T>(__fadd_rn(to_f(*yo), __fmul_rn(lr.scale, s)));
}

// capture rows [i0, i0 + len) of a GEMM segment: capture[r] = scale · u[row, r] (T → fp32),
// u kept as tmp [len, rank], or transposed as tmp [rank, len].
template <typename T>
__global__ void capture_k(const LoraRow* rows, int i0, int len, const T* tmp, int rank, bool transposed) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(len) * rank) return;
  const int row = static_cast<int>(i / rank), r = static_cast<int>(i % rank);
  const LoraRow lr = rows[i0 + row];
  if (lr.capture) lr.capture[r] = lr.scale * to_f(tmp[transposed ? static_cast<int64_t>(r) * len + row : i]);
}

}  // namespace

namespace {

Group group_of(const LoraOutput* targets, int count, int* widest) {
  if (count > kMaxTargets) throw std::logic_error("lora: at most 3 Linears share an input");
  Group g{};
  *widest = 0;
  for (int i = 0; i < count; ++i) {
    g.rows[i] = targets[i].rows.dev;
    g.y[i] = targets[i].y;
    g.out[i] = targets[i].out;
    g.ld[i] = targets[i].stride();
    *widest = std::max(*widest, targets[i].out);
  }
  return g;
}

}  // namespace

bool lora_bgmv(int n) { return n <= kBgmvMaxRows; }

void lora_shrink(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
                 float* scratch, cudaStream_t s) {
  if (n == 0 || count == 0 || max_rank == 0) return;
  int widest = 0;
  const Group g = group_of(targets, count, &widest);
  const dim3 sg((max_rank + kShrinkWarps - 1) / kShrinkWarps, n, count);
  AL_DISPATCH(dt, shrink_k<T><<<sg, kShrinkWarps * 32, 0, s>>>(scratch, static_cast<const T*>(x), g, n, in, max_rank));
  check("lora (shrink)");
}

void lora_expand(DT dt, int n, const LoraOutput* targets, int count, int max_rank, const float* scratch, cudaStream_t s) {
  if (n == 0 || count == 0 || max_rank == 0) return;
  int widest = 0;
  const Group g = group_of(targets, count, &widest);
  const dim3 eg((widest + 255) / 256, n, count);
  AL_DISPATCH(dt, expand_k<T><<<eg, 256, static_cast<size_t>(max_rank) * sizeof(float), s>>>(scratch, g, n, max_rank));
  check("lora (expand)");
}

void lora(cublasHandle_t h, DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
          float* scratch, cudaStream_t s) {
  if (n == 0 || count == 0 || max_rank == 0) return;
  if (count > kMaxTargets) throw std::logic_error("lora: at most 3 Linears share an input");
  if (lora_bgmv(n)) {
    lora_shrink(dt, x, n, in, targets, count, max_rank, scratch, s);
    lora_expand(dt, n, targets, count, max_rank, scratch, s);
    return;
  }
  // Runs of rows through the same adapter (tmp in T, in the scratch: T [len, rank] fits, as
  // fp32 [n, max_rank] is at least as large).
  const size_t ds = dt_size(dt);
  for (int ti = 0; ti < count; ++ti) {
    const LoraOutput& tg = targets[ti];
    // Stacked outputs come only with decode batches (the forward pass stacks n ≤ 64 rows), which
    // take the BGMV path above.
    if (tg.stride() != tg.out) throw std::logic_error("lora: a stacked output in a GEMM segment");
    void* tmp = scratch;
    for (int i = 0; i < n;) {
      const LoraRow& r = tg.rows[i];
      int j = i + 1;
      while (j < n && tg.rows[j].a == r.a && tg.rows[j].b == r.b && tg.rows[j].scale == r.scale) ++j;
      if (r.a) {
        const int len = j - i;
        const void* xi = static_cast<const char*>(x) + static_cast<size_t>(i) * in * ds;
        void* yi = static_cast<char*>(tg.y) + static_cast<size_t>(i) * tg.out * ds;
        // uᵀ [rank, len] = A · xiᵀ, 16 rank rows per skinny launch, for ranks up to 32 (false at
        // once where it does not apply: then u [len, rank] through cuBLAS). Each launch streams
        // x again: at rank 64 cuBLAS's one product is faster (H200, 1098 rows: 17.7 µs against
        // 32.4 µs for four launches; at rank 8 or 16, 8 µs against 17 µs: backend_ops --bench).
        bool transposed = r.rank <= kSkinnyShrinkMaxRank && skinny_enabled();
        for (int r0 = 0; r0 < r.rank && transposed; r0 += 16) {
          transposed = skinny_gemm(dt, static_cast<char*>(tmp) + static_cast<size_t>(r0) * len * ds,
                                   static_cast<const char*>(r.a) + static_cast<size_t>(r0) * in * ds, xi,
                                   std::min(16, r.rank - r0), in, len, 1.0f, 0.0f, s, 0);
        }
        if (!transposed) gemm(h, dt, tmp, xi, r.a, len, in, r.rank, 1.0f, 0.0f, s);
        bool any_capture = false;
        for (int q = i; q < j; ++q) any_capture = any_capture || tg.rows[q].capture;
        if (any_capture) {
          const int64_t c = static_cast<int64_t>(len) * r.rank;
          AL_DISPATCH(dt, capture_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(tg.rows.dev, i, len, static_cast<const T*>(tmp), r.rank, transposed));
          check("lora (capture)");
        }
        if (transposed) cublas_gemm_xt(h, dt, yi, tmp, r.b, len, r.rank, tg.out, r.scale, 1.0f);
        else gemm(h, dt, yi, tmp, r.b, len, r.rank, tg.out, r.scale, 1.0f, s);
      }
      i = j;
    }
  }
}

}  // namespace al::cuda
