// The metrics' reductions on the device: error_sums (per kv head and per token bin) and
// outside_span_sums (seed-minikv's diagnostic), in double; only the sums come back. CPU
// references: error_sums and outside_span_sums in device_cpu.cpp.
#include <algorithm>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

// The four sums of one (head, token) row: Σ(r−e)², Σe² of K then V.
template <typename T>
__global__ void error_rows_k(double* rows, const T* rk, const T* rv, int r_cap, const T* ek, const T* ev, int e_cap,
                             int heads, int hd, int T_) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= static_cast<int64_t>(heads) * T_) return;
  const int h = static_cast<int>(row / T_), t = static_cast<int>(row % T_);
  const int64_t ro = (static_cast<int64_t>(h) * r_cap + t) * hd, eo = (static_cast<int64_t>(h) * e_cap + t) * hd;
  double kd = 0, kn = 0, vd = 0, vn = 0;
  for (int i = 0; i < hd; ++i) {
    const double ekv = to_f(ek[eo + i]), evv = to_f(ev[eo + i]);
    const double dk = static_cast<double>(to_f(rk[ro + i])) - ekv, dv = static_cast<double>(to_f(rv[ro + i])) - evv;
    kd += dk * dk;
    kn += ekv * ekv;
    vd += dv * dv;
    vn += evv * evv;
  }
  double* s = rows + row * 4;
  s[0] = kd, s[1] = kn, s[2] = vd, s[3] = vn;
}

// Block per head: Σ over tokens of its rows (a fixed reduction tree).
__global__ void error_by_head_k(double* by_head, const double* rows, int T_) {
  __shared__ double red[32];
  const int h = blockIdx.x;
  for (int j = 0; j < 4; ++j) {
    double s = 0.0;
    for (int t = threadIdx.x; t < T_; t += blockDim.x) s += rows[(static_cast<int64_t>(h) * T_ + t) * 4 + j];
    s = block_reduce(s, Add(), red);
    if (threadIdx.x == 0) by_head[h * 4 + j] = s;
  }
}

// Thread per bin: Σ over its tokens of (Σ over heads), the CPU reference's order.
__global__ void error_by_bin_k(double* by_bin, const double* rows, int heads, int T_, int bin) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  const int bins = (T_ + bin - 1) / bin;
  if (b >= bins) return;
  double acc[4] = {0, 0, 0, 0};
  for (int t = b * bin; t < min(T_, (b + 1) * bin); ++t) {
    double tok[4] = {0, 0, 0, 0};
    for (int h = 0; h < heads; ++h)
      for (int j = 0; j < 4; ++j) tok[j] += rows[(static_cast<int64_t>(h) * T_ + t) * 4 + j];
    for (int j = 0; j < 4; ++j) acc[j] += tok[j];
  }
  for (int j = 0; j < 4; ++j) by_bin[b * 4 + j] = acc[j];
}

// Block per token: ΔV_t (fp32 subtraction, then double), c = P ΔV_t, the residual ΔV_t − B c;
// per token (Σres², ΣΔV²) into `per_token`.
template <typename T>
__global__ void outside_span_k(double* per_token, const T* ev, int e_cap, const T* bv, int b_cap, const double* P,
                               const float* B, int r, int heads, int hd) {
  extern __shared__ double sm[];  // [D] ΔV_t, then [r] c
  __shared__ double red[32];
  const int D = heads * hd;
  double* dv = sm;
  double* c = sm + D;
  const int t = blockIdx.x;
  for (int o = threadIdx.x; o < D; o += blockDim.x) {
    const int h = o / hd, i = o % hd;
    dv[o] = static_cast<double>(__fsub_rn(to_f(ev[(static_cast<int64_t>(h) * e_cap + t) * hd + i]),
                                          to_f(bv[(static_cast<int64_t>(h) * b_cap + t) * hd + i])));
  }
  __syncthreads();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int j = warp; j < r; j += warps) {
    double s = 0.0;
    for (int o = lane; o < D; o += 32) s += P[static_cast<int64_t>(j) * D + o] * dv[o];
    for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
    if (lane == 0) c[j] = s;
  }
  __syncthreads();
  double outside = 0.0, total = 0.0;
  for (int o = threadIdx.x; o < D; o += blockDim.x) {
    double proj = 0.0;
    for (int j = 0; j < r; ++j) proj += static_cast<double>(B[static_cast<int64_t>(o) * r + j]) * c[j];
    const double res = dv[o] - proj;
    outside += res * res;
    total += dv[o] * dv[o];
  }
  outside = block_reduce(outside, Add(), red);
  total = block_reduce(total, Add(), red);
  if (threadIdx.x == 0) {
    per_token[t * 2] = outside;
    per_token[t * 2 + 1] = total;
  }
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

size_t error_sums_scratch(int heads, int T_) { return static_cast<size_t>(heads) * std::max(T_, 1) * 4; }

void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap, const void* ek,
                const void* ev, int e_cap, int heads, int hd, int T_, int bin, double* scratch, cudaStream_t s) {
  if (T_ == 0) return;
  const int64_t rows = static_cast<int64_t>(heads) * T_;
  AL_DISPATCH(dt, error_rows_k<T><<<blocks_for(rows, 128), 128, 0, s>>>(scratch, static_cast<const T*>(rk), static_cast<const T*>(rv), r_cap, static_cast<const T*>(ek), static_cast<const T*>(ev), e_cap, heads, hd, T_));
  check("error sums (rows)");
  error_by_head_k<<<heads, 256, 0, s>>>(by_head, scratch, T_);
  check("error sums (heads)");
  const int bins = (T_ + bin - 1) / bin;
  error_by_bin_k<<<blocks_for(bins, 128), 128, 0, s>>>(by_bin, scratch, heads, T_, bin);
  check("error sums (bins)");
}

size_t outside_span_scratch(int T_) { return static_cast<size_t>(std::max(T_, 1)) * 2; }

void outside_span_sums(DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v, int base_cap,
                       const double* pinv, const float* b, int r, int heads, int hd, int T_, double* scratch,
                       cudaStream_t s) {
  if (T_ == 0) return;
  const size_t smem = (static_cast<size_t>(heads) * hd + r) * sizeof(double);
  AL_DISPATCH(dt, {
    if (smem > 48 * 1024) {
      cudaFuncSetAttribute(outside_span_k<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    }
    outside_span_k<T><<<T_, 256, smem, s>>>(scratch, static_cast<const T*>(exact_v), exact_cap, static_cast<const T*>(base_v), base_cap, pinv, b, r, heads, hd);
  });
  check("outsideSpan");
  sum_pairs_k<<<1, 1024, 0, s>>>(out2, scratch, T_);
  check("outsideSpan (sum)");
}

}  // namespace al::cuda
