// The metrics' reductions on the device: error_sums (per kv head and per token bin) and
// outside_span_sums (seed-minikv's diagnostic, through cuBLAS DGEMMs), in double; only the
// sums come back. CPU
// references: error_sums and outside_span_sums in device_cpu.cpp.
#include <algorithm>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

void ckb_blas(cublasStatus_t st, const char* what) {
  if (st != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLAS error during ") + what + ": " + cublasGetStatusString(st));
}

// The four sums of one (head, token) row: Σ(r−e)², Σe² of K then V. A warp per row (lanes
// over its head dims, so every load is one coalesced stretch of the row), its lanes' sums
// joined by a fixed shuffle tree.
constexpr int kRowWarps = 8;
template <typename T>
__global__ void __launch_bounds__(kRowWarps * 32)
    error_rows_k(double* rows, const T* rk, const T* rv, int r_cap, const T* ek, const T* ev, int e_cap, int heads,
                 int hd, int T_) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kRowWarps) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(heads) * T_) return;  // uniform over the warp
  const int h = static_cast<int>(row / T_), t = static_cast<int>(row % T_);
  const int64_t ro = (static_cast<int64_t>(h) * r_cap + t) * hd, eo = (static_cast<int64_t>(h) * e_cap + t) * hd;
  double acc[4] = {0, 0, 0, 0};
  for (int i = lane; i < hd; i += 32) {
    const double ekv = to_f(ek[eo + i]), evv = to_f(ev[eo + i]);
    const double dk = static_cast<double>(to_f(rk[ro + i])) - ekv, dv = static_cast<double>(to_f(rv[ro + i])) - evv;
    acc[0] += dk * dk;
    acc[1] += ekv * ekv;
    acc[2] += dv * dv;
    acc[3] += evv * evv;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j)
    for (int o = 16; o > 0; o >>= 1) acc[j] += __shfl_xor_sync(0xffffffffu, acc[j], o);
  if (lane < 4) rows[row * 4 + lane] = acc[lane];
}

// Block per head: Σ over tokens of its rows, the four sums in one pass over them (a fixed
// reduction tree each).
__global__ void error_by_head_k(double* by_head, const double* rows, int T_) {
  __shared__ double red[32];
  const int h = blockIdx.x;
  double acc[4] = {0, 0, 0, 0};
  for (int t = threadIdx.x; t < T_; t += blockDim.x) {
    const double* r = rows + (static_cast<int64_t>(h) * T_ + t) * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[j] += r[j];
  }
  for (int j = 0; j < 4; ++j) {
    const double s = block_reduce(acc[j], Add(), red);
    if (threadIdx.x == 0) by_head[h * 4 + j] = s;
  }
}

// Thread per (token, sum): Σ over heads of its rows, in head order (the CPU reference's
// per-token sum). A pass of its own so that the bins below need no long serial loop: one thread
// per bin summing bin × heads rows ran on a few SMs and took most of a compare's time (a
// 1098-token document has bins of 5 tokens: 640 dependent loads a thread; a 123k one 61k).
__global__ void error_by_token_k(double* by_token, const double* rows, int heads, int T_) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(T_) * 4) return;
  const int t = static_cast<int>(i / 4), j = static_cast<int>(i % 4);
  double s = 0.0;
  for (int h = 0; h < heads; ++h) s += rows[(static_cast<int64_t>(h) * T_ + t) * 4 + j];
  by_token[i] = s;
}

// Thread per (bin, sum): Σ over its tokens' sums, in token order (the CPU reference's order).
__global__ void error_by_bin_k(double* by_bin, const double* by_token, int T_, int bin) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int bins = (T_ + bin - 1) / bin;
  if (i >= static_cast<int64_t>(bins) * 4) return;
  const int b = static_cast<int>(i / 4), j = static_cast<int>(i % 4);
  double acc = 0.0;
  for (int t = b * bin; t < min(T_, (b + 1) * bin); ++t) acc += by_token[static_cast<int64_t>(t) * 4 + j];
  by_bin[i] = acc;
}

// outside_span_sums in token blocks of kSpanTokens, through two cuBLAS DGEMMs (the projection
// of every token's ΔV onto span(B) at once, not one read of Bᐩ per token):
//   X[t, o] = ΔV (fp32 subtraction, then double), total_t = Σ_o X²  (span_delta_k)
//   C = X · Pᵀ            [n, r]   (P = Bᐩ, [r, D] in double)
//   X ← X − C · Bᵀ         the residual, in place (B [D, r] fp32, widened once)
//   outside_t = Σ_o X²     (span_residual_k)
constexpr int kSpanTokens = 4096;

// Block per token of the block: X's row and its Σ X² (a fixed reduction tree).
template <typename T>
__global__ void span_delta_k(double* X, double* per_token, const T* ev, int e_cap, const T* bv, int b_cap, int heads,
                             int hd, int t0) {
  __shared__ double red[32];
  const int D = heads * hd, t = t0 + blockIdx.x;
  double* x = X + static_cast<int64_t>(blockIdx.x) * D;
  double total = 0.0;
  for (int o = threadIdx.x; o < D; o += blockDim.x) {
    const int h = o / hd, i = o % hd;
    const double d = static_cast<double>(__fsub_rn(to_f(ev[(static_cast<int64_t>(h) * e_cap + t) * hd + i]),
                                                   to_f(bv[(static_cast<int64_t>(h) * b_cap + t) * hd + i])));
    x[o] = d;
    total += d * d;
  }
  total = block_reduce(total, Add(), red);
  if (threadIdx.x == 0) per_token[t * 2 + 1] = total;
}

__global__ void span_residual_k(double* per_token, const double* X, int D, int t0) {
  __shared__ double red[32];
  const double* x = X + static_cast<int64_t>(blockIdx.x) * D;
  double outside = 0.0;
  for (int o = threadIdx.x; o < D; o += blockDim.x) outside += x[o] * x[o];
  outside = block_reduce(outside, Add(), red);
  if (threadIdx.x == 0) per_token[(t0 + blockIdx.x) * 2] = outside;
}

__global__ void widen_k(double* out, const float* in, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) out[i] = in[i];
}

__global__ void sum_pairs_k(double* out2, const double* per_token, int T_) {
  __shared__ double red[32];
  for (int j = 0; j < 2; ++j) {
    double s = 0.0;
    for (int t = threadIdx.x; t < T_; t += blockDim.x) s += per_token[t * 2 + j];
    s = block_reduce(s, Add(), red);
    if (threadIdx.x == 0) out2[j] = s;
  }
}

}  // namespace

// Doubles: [heads, T, 4] rows, then [T, 4] per-token sums.
size_t error_sums_scratch(int heads, int T_) { return (static_cast<size_t>(heads) + 1) * std::max(T_, 1) * 4; }

void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap, const void* ek,
                const void* ev, int e_cap, int heads, int hd, int T_, int bin, double* scratch, cudaStream_t s) {
  if (T_ == 0) return;
  const int64_t rows = static_cast<int64_t>(heads) * T_;
  AL_DISPATCH(dt, error_rows_k<T><<<blocks_for(rows, kRowWarps), kRowWarps * 32, 0, s>>>(scratch, static_cast<const T*>(rk), static_cast<const T*>(rv), r_cap, static_cast<const T*>(ek), static_cast<const T*>(ev), e_cap, heads, hd, T_));
  check("error sums (rows)");
  error_by_head_k<<<heads, 256, 0, s>>>(by_head, scratch, T_);
  check("error sums (heads)");
  double* by_token = scratch + rows * 4;
  error_by_token_k<<<blocks_for(static_cast<int64_t>(T_) * 4, kThreads), kThreads, 0, s>>>(by_token, scratch, heads, T_);
  check("error sums (tokens)");
  const int bins = (T_ + bin - 1) / bin;
  error_by_bin_k<<<blocks_for(static_cast<int64_t>(bins) * 4, kThreads), kThreads, 0, s>>>(by_bin, by_token, T_, bin);
  check("error sums (bins)");
}

size_t outside_span_scratch(int T_, int D, int r) {
  const size_t tb = static_cast<size_t>(std::min(std::max(T_, 1), kSpanTokens));
  return static_cast<size_t>(std::max(T_, 1)) * 2 + static_cast<size_t>(D) * r + tb * r + tb * D;
}

void outside_span_sums(cublasHandle_t h, DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v,
                       int base_cap, const double* pinv, const float* b, int r, int heads, int hd, int T_,
                       double* scratch, cudaStream_t s) {
  if (T_ == 0) return;
  const int D = heads * hd;
  const int tb = std::min(T_, kSpanTokens);
  double* per_token = scratch;                            // [T, 2]
  double* Bd = per_token + static_cast<size_t>(T_) * 2;   // [D, r]
  double* C = Bd + static_cast<size_t>(D) * r;            // [tb, r]
  double* X = C + static_cast<size_t>(tb) * r;            // [tb, D]
  widen_k<<<blocks_for(static_cast<int64_t>(D) * r, kThreads), kThreads, 0, s>>>(Bd, b, static_cast<int64_t>(D) * r);
  check("outsideSpan (B)");
  const double one = 1.0, zero = 0.0, minus_one = -1.0;
  for (int t0 = 0; t0 < T_; t0 += tb) {
    const int n = std::min(tb, T_ - t0);
    AL_DISPATCH(dt, span_delta_k<T><<<n, 256, 0, s>>>(X, per_token, static_cast<const T*>(exact_v), exact_cap, static_cast<const T*>(base_v), base_cap, heads, hd, t0));
    check("outsideSpan (delta)");
    // Row-major X [n, D] is column-major [D, n]; P [r, D] is column-major [D, r]; C [n, r] is
    // column-major [r, n]: Cᵀ = Pᵀ·Xᵀ. Then Xᵀ −= B·Cᵀ with B [D, r] row-major = column-major [r, D] used transposed.
    ckb_blas(cublasDgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, r, n, D, &one, pinv, D, X, D, &zero, C, r), "cublasDgemm (outsideSpan, C)");
    ckb_blas(cublasDgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, D, n, r, &minus_one, Bd, r, C, r, &one, X, D), "cublasDgemm (outsideSpan, residual)");
    span_residual_k<<<n, 256, 0, s>>>(per_token, X, D, t0);
    check("outsideSpan (residual)");
  }
  sum_pairs_k<<<1, 1024, 0, s>>>(out2, per_token, T_);
  check("outsideSpan (sum)");
}

}  // namespace al::cuda
