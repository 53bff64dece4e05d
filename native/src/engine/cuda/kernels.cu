// The CUDA ops of ops.h: the runtime (one stream, one cuBLAS handle), cuBLAS GEMMs and the
// engine's own kernels. CPU references: backend_cpu.cpp (forward ops), kv_store.cpp
// (strategies), metrics.cpp (error sums), sampling.cpp (argmax).
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/cuda/ops.h"

namespace al::cuda {

// ---- runtime ------------------------------------------------------------------------------

namespace {

cudaStream_t g_stream = nullptr;
cublasHandle_t g_blas = nullptr;
std::atomic<size_t> g_peak{0};

std::string err_str(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

void throw_cuda(cudaError_t e, const std::string& what) {
  if (e == cudaErrorMemoryAllocation) {
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw std::runtime_error("out of device memory during " + what + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                             std::to_string(total_b >> 20) + " MiB)");
  }
  throw std::runtime_error("CUDA error during " + what + ": " + err_str(e));
}

inline void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw_cuda(e, what);
}

inline void ckb(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cuBLAS error during ") + what + ": " + cublasGetStatusString(s));
  }
}

void note_peak() {
  size_t used = used_bytes();
  size_t p = g_peak.load();
  while (used > p && !g_peak.compare_exchange_weak(p, used)) {
  }
}

}  // namespace

size_t dt_size(DT dt) { return dt == DT::F32 ? 4 : 2; }

std::recursive_mutex& gpu_mutex() {
  static std::recursive_mutex m;
  return m;
}

void start() {
  std::lock_guard<std::recursive_mutex> lock(gpu_mutex());
  if (g_stream) return;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver) {
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    throw std::runtime_error("CUDA driver too old: the driver supports CUDA " + std::to_string(drv / 1000) + "." +
                             std::to_string(drv % 1000 / 10) + " but this build needs " + std::to_string(rt / 1000) +
                             "." + std::to_string(rt % 1000 / 10));
  }
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) throw std::runtime_error("no CUDA device: none visible");
  if (e != cudaSuccess) throw std::runtime_error("no CUDA driver: " + err_str(e));
  e = cudaSetDevice(0);
  if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&g_stream, cudaStreamNonBlocking);
  if (e == cudaErrorMemoryAllocation) throw std::runtime_error("out of device memory while creating the CUDA context");
  if (e != cudaSuccess) throw std::runtime_error("no CUDA device: cannot start it (" + err_str(e) + ")");
  cublasStatus_t s = cublasCreate(&g_blas);
  if (s != CUBLAS_STATUS_SUCCESS) {
    g_stream = nullptr;
    throw std::runtime_error(std::string("cuBLAS unavailable: ") + cublasGetStatusString(s));
  }
  ckb(cublasSetStream(g_blas, g_stream), "cublasSetStream");
  // fp32 stays fp32 (parity runs) through gemm()'s CUBLAS_COMPUTE_32F_PEDANTIC compute type,
  // which never uses TF32. The handle-wide CUBLAS_PEDANTIC_MATH mode must NOT be set: it also
  // keeps bf16/fp16 products off cuBLAS's fast kernels (measured: the 7B prefill at under a
  // third of the GEMM rate). Reductions stay fp32 (no reduced-precision split-K).
  ckb(cublasSetMathMode(g_blas, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH |
                                                         CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
      "cublasSetMathMode");
  // A workspace of our own (for the life of the handle, i.e. the process): cuBLAS then never
  // allocates inside a captured decode graph.
  constexpr size_t kBlasWorkspace = size_t(32) << 20;
  void* ws = nullptr;
  ck(cudaMalloc(&ws, kBlasWorkspace), "cuBLAS workspace");
  ckb(cublasSetWorkspace(g_blas, ws, kBlasWorkspace), "cublasSetWorkspace");
}

void* current_stream() { return g_stream; }

// ---- profile (ADAPTERLENS_CUDA_PROFILE=1) ------------------------------------------------------
// Events on the stream between named marks; the time from one mark to the next belongs to
// the first. Off (one branch per mark) unless the variable is set when the first mark is
// made. A pass that throws (cancel) leaves its marks to the next report.

namespace {
struct ProfileMark {
  const char* what;
  cudaEvent_t event;
};
std::vector<ProfileMark> g_marks;
std::vector<cudaEvent_t> g_free_events;
int g_profile = -1;  // -1: not read yet
}  // namespace

bool profiling() {
  if (g_profile < 0) {
    const char* v = std::getenv("ADAPTERLENS_CUDA_PROFILE");
    g_profile = v && *v && std::string(v) != "0" ? 1 : 0;
  }
  return g_profile == 1;
}

void prof_mark(const char* what) {
  if (!profiling()) return;
  cudaEvent_t e;
  if (g_free_events.empty()) {
    ck(cudaEventCreate(&e), "profile event");
  } else {
    e = g_free_events.back();
    g_free_events.pop_back();
  }
  ck(cudaEventRecord(e, g_stream), "profile event");
  g_marks.push_back({what, e});
}

void prof_report(const std::string& label) {
  if (!profiling() || g_marks.empty()) return;
  prof_mark(nullptr);  // the end
  ck(cudaEventSynchronize(g_marks.back().event), "profile");
  std::vector<std::pair<std::string, float>> totals;  // first-seen order
  float all = 0.0f;
  for (size_t i = 0; i + 1 < g_marks.size(); ++i) {
    float ms = 0.0f;
    cudaEventElapsedTime(&ms, g_marks[i].event, g_marks[i + 1].event);
    all += ms;
    auto it = std::find_if(totals.begin(), totals.end(), [&](const auto& t) { return t.first == g_marks[i].what; });
    if (it == totals.end()) totals.emplace_back(g_marks[i].what, ms);
    else it->second += ms;
  }
  std::string line = "[cuda profile] " + label + ":";
  char buf[96];
  for (const auto& [what, ms] : totals) {
    std::snprintf(buf, sizeof buf, " %s %.3f ms ·", what.c_str(), ms);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, " total %.3f ms", all);
  std::fprintf(stderr, "%s%s\n", line.c_str(), buf);
  for (const auto& m : g_marks) g_free_events.push_back(m.event);
  g_marks.clear();
}

void check(const char* what) { ck(cudaGetLastError(), what); }

void sync(const char* what) {
  ck(cudaGetLastError(), what);
  ck(cudaStreamSynchronize(g_stream), what);
}

void* dmalloc(size_t bytes, const char* what) {
  void* p = nullptr;
  if (bytes == 0) return nullptr;
  cudaError_t e = cudaMalloc(&p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    if (e == cudaErrorMemoryAllocation) {
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw std::runtime_error(std::string("out of device memory allocating ") + std::to_string(bytes >> 20) +
                               " MiB for " + what + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                               std::to_string(total_b >> 20) + " MiB)");
    }
    throw_cuda(e, std::string("allocating ") + what);
  }
  note_peak();
  return p;
}

void dfree(void* p) {
  if (p) cudaFree(p);
}

void h2d(void* dst, const void* src, size_t bytes) {
  if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, g_stream), "copy to device");
  // Pageable source: the copy returns once staged, but the caller may reuse `src` at once.
  ck(cudaStreamSynchronize(g_stream), "copy to device");
}
void d2h(void* dst, const void* src, size_t bytes) {
  if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, g_stream), "copy to host");
  ck(cudaStreamSynchronize(g_stream), "copy to host");
}
void d2d(void* dst, const void* src, size_t bytes) {
  if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, g_stream), "device copy");
}
void d2h_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows) {
  if (rows && row_bytes)
    ck(cudaMemcpy2DAsync(dst, dpitch, src, spitch, row_bytes, rows, cudaMemcpyDeviceToHost, g_stream), "copy to host");
  ck(cudaStreamSynchronize(g_stream), "copy to host");
}
void h2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows) {
  if (rows && row_bytes)
    ck(cudaMemcpy2DAsync(dst, dpitch, src, spitch, row_bytes, rows, cudaMemcpyHostToDevice, g_stream),
       "copy to device");
  ck(cudaStreamSynchronize(g_stream), "copy to device");
}
void d2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows) {
  if (rows && row_bytes)
    ck(cudaMemcpy2DAsync(dst, dpitch, src, spitch, row_bytes, rows, cudaMemcpyDeviceToDevice, g_stream),
       "device copy");
}
void memset0(void* p, size_t bytes) {
  if (bytes) ck(cudaMemsetAsync(p, 0, bytes, g_stream), "clearing device memory");
}

size_t used_bytes() {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  return total_b - free_b;
}
size_t peak_bytes() {
  note_peak();
  return g_peak.load();
}
void reset_peak() { g_peak.store(used_bytes()); }

void host_to_dt(DT dt, void* dst, const float* src, size_t n) {
  if (dt == DT::F32) {
    std::copy_n(src, n, static_cast<float*>(dst));
  } else if (dt == DT::BF16) {
    auto* d = static_cast<__nv_bfloat16*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = __float2bfloat16_rn(src[i]);
  } else {
    auto* d = static_cast<__half*>(dst);
    for (size_t i = 0; i < n; ++i) d[i] = __float2half_rn(src[i]);
  }
}

void host_from_dt(DT dt, float* dst, const void* src, size_t n) {
  if (dt == DT::F32) {
    std::copy_n(static_cast<const float*>(src), n, dst);
  } else if (dt == DT::BF16) {
    auto* s = static_cast<const __nv_bfloat16*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = __bfloat162float(s[i]);
  } else {
    auto* s = static_cast<const __half*>(src);
    for (size_t i = 0; i < n; ++i) dst[i] = __half2float(s[i]);
  }
}

// ---- element helpers ------------------------------------------------------------------------

namespace {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T from_f(float v);
template <>
__device__ __forceinline__ float from_f<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <>
__device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

// v rounded to T and back: the value a T tensor would hold (identity for fp32).
template <typename T>
__device__ __forceinline__ float round_t(float v) { return to_f(from_f<T>(v)); }

#define AL_DISPATCH(dt, ...)                 \
  switch (dt) {                              \
    case DT::F32: {                          \
      using T = float;                       \
      __VA_ARGS__;                           \
    } break;                                 \
    case DT::BF16: {                         \
      using T = __nv_bfloat16;               \
      __VA_ARGS__;                           \
    } break;                                 \
    case DT::F16: {                          \
      using T = __half;                      \
      __VA_ARGS__;                           \
    } break;                                 \
  }

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }

// Block-wide reductions over blockDim.x threads (a multiple of 32, at most 1024).
template <typename V, typename Op>
__device__ V block_reduce(V v, Op op, V* smem /* [32] */) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = smem[0];
  for (int w = 1; w < warps; ++w) v = op(v, smem[w]);  // fixed order: reproducible
  return v;
}

struct Add {
  template <typename V>
  __device__ V operator()(V a, V b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

// ---- kernels --------------------------------------------------------------------------------

template <typename T>
__global__ void convert_k(T* dst, const void* src, int kind, int64_t n) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  float v;
  if (kind == 0) {
    v = static_cast<const float*>(src)[i];
  } else if (kind == 1) {
    v = __half2float(static_cast<const __half*>(src)[i]);
  } else {
    v = __bfloat162float(static_cast<const __nv_bfloat16*>(src)[i]);
  }
  dst[i] = from_f<T>(v);
}

template <typename T>
__global__ void add_bias_k(T* y, const T* bias, int n, int out) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * out) return;
  y[i] = from_f<T>(to_f(y[i]) + to_f(bias[i % out]));
}

// One block per row. mean(x²) accumulated in double as the CPU reference does, then
// y = w · T(x · r) (HF: weight * hidden.to(input_dtype)). With `delta`, first the residual
// add x = T(x + delta), stored back to x (the add op fused in: one pass and one launch
// fewer per block of the decoder; each thread re-reads only what it wrote).
template <typename T>
__global__ void rmsnorm_k(T* y, T* x, const T* delta, const T* w, int dim, float eps) {
  __shared__ double red[32];
  T* xr = x + static_cast<int64_t>(blockIdx.x) * dim;
  T* yr = y + static_cast<int64_t>(blockIdx.x) * dim;
  double ss = 0.0;
  if (delta) {
    const T* dr = delta + static_cast<int64_t>(blockIdx.x) * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      const T v = from_f<T>(__fadd_rn(to_f(xr[i]), to_f(dr[i])));
      xr[i] = v;
      const double f = to_f(v);
      ss += f * f;
    }
  } else {
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
      const double v = to_f(xr[i]);
      ss += v * v;
    }
  }
  ss = block_reduce(ss, Add(), red);
  const float variance = static_cast<float>(ss / dim);
  const float r = 1.0f / sqrtf(variance + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    yr[i] = from_f<T>(__fmul_rn(to_f(w[i]), round_t<T>(__fmul_rn(to_f(xr[i]), r))));
  }
}

// One thread per (row, head, i < half) of q and of k. HF: cos/sin in fp32 cast to the
// dtype, q·cos + rotate_half(q)·sin with each product rounded to it.
template <typename T>
__global__ void rope_k(T* q, T* k, const int* pos, const float* inv_freq, int n, int num_heads, int num_kv_heads,
                       int head_dim) {
  const int half = head_dim / 2;
  const int64_t per_row = static_cast<int64_t>(num_heads + num_kv_heads) * half;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= per_row * n) return;
  const int t = static_cast<int>(i / per_row);
  const int rem = static_cast<int>(i % per_row);
  const int head = rem / half, j = rem % half;
  T* x = head < num_heads ? q + (static_cast<int64_t>(t) * num_heads + head) * head_dim
                          : k + (static_cast<int64_t>(t) * num_kv_heads + (head - num_heads)) * head_dim;
  const float angle = __fmul_rn(static_cast<float>(pos[t]), inv_freq[j]);
  const float c = round_t<T>(cosf(angle)), s = round_t<T>(sinf(angle));
  const float a = to_f(x[j]), b = to_f(x[j + half]);
  x[j] = from_f<T>(__fsub_rn(round_t<T>(__fmul_rn(a, c)), round_t<T>(__fmul_rn(b, s))));
  x[j + half] = from_f<T>(__fadd_rn(round_t<T>(__fmul_rn(b, c)), round_t<T>(__fmul_rn(a, s))));
}

template <typename T>
__global__ void store_kv_k(const KvRowDev* rows, int layer, const T* k, const T* v, int n, int kv_dim, int head_dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * kv_dim) return;
  const int t = static_cast<int>(i / kv_dim), e = static_cast<int>(i % kv_dim);
  const KvRowDev r = rows[t];
  const int h = e / head_dim, d = e % head_dim;
  const int64_t dst = r.layer_stride * layer + (static_cast<int64_t>(h) * r.capacity + r.pos) * head_dim + d;
  static_cast<T*>(r.k)[dst] = k[i];
  static_cast<T*>(r.v)[dst] = v[i];
}

// Decode attention, split over keys (flash-decoding). The decode batch is a few rows, each
// over its own ~1k-token cache: one block per (row, head) would leave most of the GPU idle
// and read K/V with little memory-level parallelism. Here a block is (key chunk, head, row)
// with kDecodeWarps warps; each warp takes kDecodeUnroll consecutive keys at a time (their
// K and V rows loaded before any math, lanes across head_dim, vector loads), and keeps an
// online softmax (running max m, sum l, accumulator). The warps merge in shared memory and
// the block writes its partial (m, l, acc[HD]); attention_merge_k merges the chunks.
constexpr int kDecodeChunk = 256;  // keys per block
constexpr int kDecodeWarps = 4;
constexpr int kDecodeUnroll = 4;

// EPL consecutive values at p (aligned to their total size), as fp32; zeros when !on.
template <typename T, int EPL>
__device__ __forceinline__ void load_row_part(float (&out)[EPL], const T* p, bool on) {
  if (!on) {
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = 0.0f;
    return;
  }
  if constexpr (sizeof(T) * EPL == 16 || sizeof(T) * EPL == 8) {
    using V = std::conditional_t<sizeof(T) * EPL == 16, uint4, uint2>;
    const V raw = *reinterpret_cast<const V*>(p);
    const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = to_f(v[e]);
  } else {
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = to_f(p[e]);
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kDecodeWarps * 32)
    attention_split_k(float* part, const T* q, const KvRowDev* rows, int layer, int num_heads, int num_kv_heads,
                      int splits, float scale) {
  constexpr int EPL = HD >= 32 ? HD / 32 : 1;  // head dims per lane
  __shared__ float sm[kDecodeWarps], sl[kDecodeWarps];
  __shared__ float sacc[kDecodeWarps][HD];
  const int split = blockIdx.x, h = blockIdx.y, t = blockIdx.z;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const KvRowDev r = rows[t];
  const int j0 = split * kDecodeChunk, j1 = min(r.pos + 1, j0 + kDecodeChunk);
  const int64_t head_off =
      r.layer_stride * layer + static_cast<int64_t>(h / (num_heads / num_kv_heads)) * r.capacity * HD;
  const T* kh = static_cast<const T*>(r.k) + head_off;
  const T* vh = static_cast<const T*>(r.v) + head_off;
  const bool lane_on = lane * EPL < HD;
  const int d0 = lane * EPL;

  float qv[EPL], acc[EPL];
  load_row_part<T, EPL>(qv, q + (static_cast<int64_t>(t) * num_heads + h) * HD + d0, lane_on);
#pragma unroll
  for (int e = 0; e < EPL; ++e) acc[e] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int jb = j0 + warp * kDecodeUnroll; jb < j1; jb += kDecodeWarps * kDecodeUnroll) {
    float kr[kDecodeUnroll][EPL], vr[kDecodeUnroll][EPL];
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      const bool in = lane_on && jb + u < j1;
      load_row_part<T, EPL>(kr[u], kh + static_cast<int64_t>(jb + u) * HD + d0, in);
      load_row_part<T, EPL>(vr[u], vh + static_cast<int64_t>(jb + u) * HD + d0, in);
    }
#pragma unroll
    for (int u = 0; u < kDecodeUnroll; ++u) {
      if (jb + u >= j1) break;  // uniform over the warp
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < EPL; ++e) s += qv[e] * kr[u][e];
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
      s *= scale;
      const float mn = fmaxf(m, s);
      const float corr = expf(m - mn);  // 0 on the warp's first key (m = -inf)
      const float p = expf(s - mn);
      l = l * corr + p;
#pragma unroll
      for (int e = 0; e < EPL; ++e) acc[e] = acc[e] * corr + p * vr[u][e];
      m = mn;
    }
  }

  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
  if (lane_on) {
#pragma unroll
    for (int e = 0; e < EPL; ++e) sacc[warp][d0 + e] = acc[e];
  }
  __syncthreads();
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < kDecodeWarps; ++w) mx = sl[w] > 0.0f ? fmaxf(mx, sm[w]) : mx;
  float* out = part + ((static_cast<int64_t>(t) * num_heads + h) * splits + split) * (HD + 2);
  for (int d = threadIdx.x; d < HD; d += blockDim.x) {
    float a = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) a += sl[w] > 0.0f ? sacc[w][d] * expf(sm[w] - mx) : 0.0f;
    out[2 + d] = a;
  }
  if (threadIdx.x == 0) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < kDecodeWarps; ++w) sum += sl[w] > 0.0f ? sl[w] * expf(sm[w] - mx) : 0.0f;
    out[0] = mx;
    out[1] = sum;  // 0 for a chunk past the row's length
  }
}

// Merges the chunks' partials of each (row, head): block (head, row), threads over head_dim.
template <typename T>
__global__ void attention_merge_k(T* out, const float* part, int num_heads, int head_dim, int splits) {
  const int h = blockIdx.x, t = blockIdx.y;
  const int64_t stride = head_dim + 2;
  const float* p = part + (static_cast<int64_t>(t) * num_heads + h) * splits * stride;
  float mx = -INFINITY;
  for (int s = 0; s < splits; ++s) mx = p[s * stride + 1] > 0.0f ? fmaxf(mx, p[s * stride]) : mx;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float sum = 0.0f, a = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float l = p[s * stride + 1];
      if (l <= 0.0f) continue;
      const float w = expf(p[s * stride] - mx);
      sum += l * w;
      a += p[s * stride + 2 + d] * w;
    }
    out[(static_cast<int64_t>(t) * num_heads + h) * head_dim + d] = from_f<T>(a / sum);
  }
}

// Decode attention, the generic fallback for head dims without a split-kernel instance: one
// block per (row, head); scores to scratch, block max, exp and sum, then P·V with threads
// over (dim, key slice), as the CPU reference orders it.
template <typename T>
__global__ void attention_rows_generic_k(T* out, const T* q, const KvRowDev* rows, int layer, int num_heads,
                                 int num_kv_heads, int head_dim, int max_len, float* scratch, float scale) {
  __shared__ float qs[256];
  __shared__ float red[32];
  __shared__ float part[1024];
  const int t = blockIdx.x / num_heads, h = blockIdx.x % num_heads;
  const KvRowDev r = rows[t];
  const int len = r.pos + 1;
  const int group = num_heads / num_kv_heads;
  const int64_t head_off = r.layer_stride * layer + static_cast<int64_t>(h / group) * r.capacity * head_dim;
  const T* kh = static_cast<const T*>(r.k) + head_off;
  const T* vh = static_cast<const T*>(r.v) + head_off;
  const T* qh = q + (static_cast<int64_t>(t) * num_heads + h) * head_dim;
  float* p = scratch + static_cast<int64_t>(blockIdx.x) * max_len;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) qs[d] = to_f(qh[d]);
  __syncthreads();

  float mx = -INFINITY;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const T* kj = kh + static_cast<int64_t>(j) * head_dim;
    float s = 0.0f;
    for (int d = 0; d < head_dim; ++d) s += qs[d] * to_f(kj[d]);
    s *= scale;
    p[j] = s;
    mx = fmaxf(mx, s);
  }
  mx = block_reduce(mx, Max(), red);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const float e = expf(p[j] - mx);
    p[j] = e;
    sum += e;
  }
  sum = block_reduce(sum, Add(), red);  // also orders the p[] writes before the reads below
  // Threads over (d, slice): slices of keys summed separately, then in slice order.
  const int slices = max(1, static_cast<int>(blockDim.x) / head_dim);
  const int d = threadIdx.x % head_dim, slice = threadIdx.x / head_dim;
  float acc = 0.0f;
  if (slice < slices) {
    for (int j = slice; j < len; j += slices) acc += (p[j] / sum) * to_f(vh[static_cast<int64_t>(j) * head_dim + d]);
    part[slice * head_dim + d] = acc;
  }
  __syncthreads();
  if (threadIdx.x < head_dim) {
    float o = 0.0f;
    for (int s2 = 0; s2 < slices; ++s2) o += part[s2 * head_dim + threadIdx.x];
    out[(static_cast<int64_t>(t) * num_heads + h) * head_dim + threadIdx.x] = from_f<T>(o);
  }
}

// Prefill attention, flash-style. Block (query tile of BQ rows, head), 4 threads per query,
// each holding HD/4 interleaved dims of q and of the output accumulator. Key/value tiles of
// BK = 4096/HD rows pass through shared memory (fp32); each query keeps a running max m and
// sum l (online softmax), so no score matrix exists anywhere.
constexpr int kBQ = 32;
template <typename T, int HD>
__global__ void __launch_bounds__(kBQ * 4) attention_prefill_k(T* out, const T* q, const T* kc, const T* vc,
                                                                 int capacity, int pos0, int n, int num_heads,
                                                                 int num_kv_heads, float scale) {
  constexpr int BK = 4096 / HD;
  constexpr int DPT = HD / 4;  // dims per thread
  __shared__ float ks[BK * HD];
  __shared__ float vs[BK * HD];
  const int h = blockIdx.y;
  const int g = h / (num_heads / num_kv_heads);
  const int qi = threadIdx.x / 4, part = threadIdx.x % 4;
  const int row = blockIdx.x * kBQ + qi;
  const bool active = row < n;
  const int qpos = pos0 + (active ? row : n - 1);
  const T* kh = kc + static_cast<int64_t>(g) * capacity * HD;
  const T* vh = vc + static_cast<int64_t>(g) * capacity * HD;

  float qr[DPT], o[DPT];
  const T* qrow = q + (static_cast<int64_t>(active ? row : 0) * num_heads + h) * HD;
#pragma unroll
  for (int i = 0; i < DPT; ++i) {
    qr[i] = to_f(qrow[i * 4 + part]);
    o[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int last_row = min(n, static_cast<int>(blockIdx.x + 1) * kBQ) - 1;
  const int kmax = pos0 + last_row;  // the last key any query of this tile sees

  for (int k0 = 0; k0 <= kmax; k0 += BK) {
    __syncthreads();
    for (int e = threadIdx.x; e < BK * HD; e += blockDim.x) {
      const int key = k0 + e / HD;
      const bool in = key <= kmax;
      ks[e] = in ? to_f(kh[static_cast<int64_t>(k0) * HD + e]) : 0.0f;
      vs[e] = in ? to_f(vh[static_cast<int64_t>(k0) * HD + e]) : 0.0f;
    }
    __syncthreads();
    const int jn = min(BK, kmax - k0 + 1);
    for (int j = 0; j < jn; ++j) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < DPT; ++i) s += qr[i] * ks[j * HD + i * 4 + part];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      s *= scale;
      if (k0 + j <= qpos) {
        if (s > m) {
          const float corr = expf(m - s);  // 0 on the first key (m = -inf)
          l = l * corr + 1.0f;
#pragma unroll
          for (int i = 0; i < DPT; ++i) o[i] = o[i] * corr + vs[j * HD + i * 4 + part];
          m = s;
        } else {
          const float pj = expf(s - m);
          l += pj;
#pragma unroll
          for (int i = 0; i < DPT; ++i) o[i] += pj * vs[j * HD + i * 4 + part];
        }
      }
    }
  }
  if (active) {
    T* orow = out + (static_cast<int64_t>(row) * num_heads + h) * HD;
#pragma unroll
    for (int i = 0; i < DPT; ++i) orow[i * 4 + part] = from_f<T>(o[i] / l);
  }
}

// Columns [0, a), [a, a+b), [a+b, a+b+c) of each row of src [n, a+b+c] into three
// row-major outputs (c may be 0): a fused projection's output split per projection.
template <typename T>
__global__ void split_columns_k(T* d0, T* d1, T* d2, const T* src, int n, int a, int b, int c) {
  const int total = a + b + c;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * total) return;
  const int64_t row = i / total;
  const int col = static_cast<int>(i % total);
  if (col < a) {
    d0[row * a + col] = src[i];
  } else if (col < a + b) {
    d1[row * b + col - a] = src[i];
  } else {
    d2[row * c + col - a - b] = src[i];
  }
}

template <typename T>
__global__ void swiglu_k(T* gate, const T* up, int64_t count) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  const float g = to_f(gate[i]);
  // HF: act_fn(gate) rounded to the dtype, then times up.
  gate[i] = from_f<T>(__fmul_rn(round_t<T>(g / (1.0f + expf(-g))), to_f(up[i])));
}

template <typename T>
__global__ void embedding_k(T* x, const T* table, const int32_t* tokens, int n, int dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * dim) return;
  const int t = static_cast<int>(i / dim), d = static_cast<int>(i % dim);
  x[i] = table[static_cast<int64_t>(tokens[t]) * dim + d];
}

// BGMV shrink: u[t, r] = A_t[r, :] · x_t. Block (8 ranks, row), a warp per rank: lanes
// stride the dot with 16-byte loads when rows are 16-byte aligned (in a multiple of the
// vector), scalar loads otherwise; then a warp reduction. One block-reduce per dot (the
// first version) left the decode batch's LoRA slower than its GEMMs.
constexpr int kShrinkWarps = 8;
template <typename T>
__global__ void __launch_bounds__(kShrinkWarps * 32)
    lora_shrink_k(float* u, const T* x, const LoraRowDev* rows, int in, int max_rank) {
  constexpr int VEC = 16 / sizeof(T);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int r = blockIdx.x * kShrinkWarps + warp, t = blockIdx.y;
  const LoraRowDev lr = rows[t];
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
  if (lane == 0) u[static_cast<int64_t>(t) * max_rank + r] = s;
}

// BGMV expand: thread per (row, output); y += scale · Σ_r B[o, r] u[r] (PEFT scales after B).
// u's row is staged in shared memory; B's row (rank values) read with 16-byte loads when
// aligned.
template <typename T>
__global__ void lora_expand_k(T* y, const float* u, const LoraRowDev* rows, int out, int max_rank) {
  constexpr int VEC = 16 / sizeof(T);
  extern __shared__ float us[];  // [max_rank]
  const int t = blockIdx.y;
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  const LoraRowDev lr = rows[t];
  if (!lr.a) return;  // uniform over the block
  for (int r = threadIdx.x; r < lr.rank; r += blockDim.x) us[r] = u[static_cast<int64_t>(t) * max_rank + r];
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
  T* yo = y + static_cast<int64_t>(t) * out + o;
  *yo = from_f<T>(__fadd_rn(to_f(*yo), __fmul_rn(lr.scale, s)));
}

template <typename T>
__global__ void argmax_k(int32_t* out, const T* logits, int vocab) {
  __shared__ float sv[1024];
  __shared__ int si[1024];
  const T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float best = -INFINITY;
  int bi = vocab;  // "none yet": loses every tie
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = to_f(row[i]);
    if (bi == vocab || v > best) {  // ascending i: a tie keeps the lower index
      best = v;
      bi = i;
    }
  }
  sv[threadIdx.x] = best;
  si[threadIdx.x] = bi;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) {
      const float v2 = sv[threadIdx.x + s];
      const int i2 = si[threadIdx.x + s];
      if (i2 != vocab && (si[threadIdx.x] == vocab || v2 > sv[threadIdx.x] ||
                          (v2 == sv[threadIdx.x] && i2 < si[threadIdx.x]))) {
        sv[threadIdx.x] = v2;
        si[threadIdx.x] = i2;
      }
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = si[0] == vocab ? 0 : si[0];
}

// ---- strategy kernels: element (t, h, d) of positions [0, T) ------------------------------

template <typename T>
__global__ void delta_rows_k(float* rows, const T* exact, int exact_cap, const T* base, int base_cap, int heads,
                             int hd, int T_) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int D = heads * hd;
  if (i >= static_cast<int64_t>(T_) * D) return;
  const int t = static_cast<int>(i / D), c = static_cast<int>(i % D), h = c / hd, d = c % hd;
  rows[i] = __fsub_rn(to_f(exact[(static_cast<int64_t>(h) * exact_cap + t) * hd + d]),
                      to_f(base[(static_cast<int64_t>(h) * base_cap + t) * hd + d]));
}

template <typename T>
__global__ void add_rows_k(T* out, int out_cap, const T* base, int base_cap, const float* rows, int heads, int hd,
                           int T_) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int D = heads * hd;
  if (i >= static_cast<int64_t>(T_) * D) return;
  const int t = static_cast<int>(i / D), c = static_cast<int>(i % D), h = c / hd, d = c % hd;
  out[(static_cast<int64_t>(h) * out_cap + t) * hd + d] =
      from_f<T>(__fadd_rn(to_f(base[(static_cast<int64_t>(h) * base_cap + t) * hd + d]), rows[i]));
}

template <typename T>
__global__ void copy_positions_k(T* dst, int dst_cap, const T* src, int src_cap, int heads, int hd, int T_) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(heads) * T_ * hd) return;
  const int h = static_cast<int>(i / (static_cast<int64_t>(T_) * hd));
  const int64_t rest = i % (static_cast<int64_t>(T_) * hd);
  dst[static_cast<int64_t>(h) * dst_cap * hd + rest] = src[static_cast<int64_t>(h) * src_cap * hd + rest];
}

// One thread per (head, token) row, as the CPU reference loops.
template <typename T>
__global__ void quantize_k(uint8_t* q, float* scale_out, const T* exact, int exact_cap, const T* base, int base_cap,
                           int heads, int hd, int T_, int bits) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (row >= static_cast<int64_t>(heads) * T_) return;
  const int h = static_cast<int>(row / T_), t = static_cast<int>(row % T_);
  const T* e = exact + (static_cast<int64_t>(h) * exact_cap + t) * hd;
  const T* b = base + (static_cast<int64_t>(h) * base_cap + t) * hd;
  const int qmax = bits == 8 ? 127 : 7;
  const int row_bytes = bits == 8 ? hd : (hd + 1) / 2;
  float amax = 0.0f;
  for (int i = 0; i < hd; ++i) amax = fmaxf(amax, fabsf(__fsub_rn(to_f(e[i]), to_f(b[i]))));
  const float scale = amax / static_cast<float>(qmax);
  scale_out[row] = scale;
  uint8_t* o = q + row * row_bytes;
  int prev = 0;
  for (int i = 0; i < hd; ++i) {
    const float r = scale > 0.0f ? rintf(__fsub_rn(to_f(e[i]), to_f(b[i])) / scale) : 0.0f;
    const int v = static_cast<int>(fminf(fmaxf(r, static_cast<float>(-qmax)), static_cast<float>(qmax)));
    if (bits == 8) {
      o[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
    } else if (i % 2 == 0) {
      prev = v & 0xF;
      if (i + 1 == hd) o[i / 2] = static_cast<uint8_t>(prev);
    } else {
      o[i / 2] = static_cast<uint8_t>(prev | ((v & 0xF) << 4));
    }
  }
}

template <typename T>
__global__ void add_quantized_k(T* out, int out_cap, const T* base, int base_cap, const uint8_t* q,
                                const float* scale, int heads, int hd, int T_, int bits) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(heads) * T_ * hd) return;
  const int64_t row = i / hd;
  const int d = static_cast<int>(i % hd);
  const int h = static_cast<int>(row / T_), t = static_cast<int>(row % T_);
  const int row_bytes = bits == 8 ? hd : (hd + 1) / 2;
  const uint8_t* in = q + row * row_bytes;
  int v;
  if (bits == 8) {
    v = static_cast<int8_t>(in[d]);
  } else {
    const int nib = (in[d / 2] >> ((d & 1) * 4)) & 0xF;
    v = (nib ^ 8) - 8;
  }
  const int64_t oi = (static_cast<int64_t>(h) * out_cap + t) * hd + d;
  const int64_t bi = (static_cast<int64_t>(h) * base_cap + t) * hd + d;
  out[oi] = from_f<T>(__fadd_rn(to_f(base[bi]), __fmul_rn(static_cast<float>(v), scale[row])));
}

template <typename T>
__global__ void error_rows_k(double* sums, const T* rk, const T* rv, int r_cap, const T* ek, const T* ev, int e_cap,
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
  double* s = sums + row * 4;
  s[0] = kd, s[1] = kn, s[2] = vd, s[3] = vn;
}

cudaDataType_t cuda_type(DT dt) {
  return dt == DT::F32 ? CUDA_R_32F : dt == DT::BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

constexpr int kThreads = 256;

}  // namespace

// ---- launchers --------------------------------------------------------------------------------

void convert(DT dt, void* dst, const void* src, int src_kind, int64_t n) {
  if (n == 0) return;
  AL_DISPATCH(dt, convert_k<T><<<blocks_for(n, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(dst), src, src_kind, n));
  check("convert");
}

void gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta) {
  if (n == 0 || out == 0) return;
  // Row-major y[n, out] = x[n, in]·Wᵀ is column-major yᵀ[out, n] = W[out, in]·xᵀ: W is a
  // column-major [in, out] matrix used transposed, x a column-major [in, n] one.
  const cudaDataType_t t = cuda_type(dt);
  const cublasComputeType_t ct = dt == DT::F32 ? CUBLAS_COMPUTE_32F_PEDANTIC : CUBLAS_COMPUTE_32F;
  ckb(cublasGemmEx(g_blas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w, t, in, x, t, in, &beta, y, t, out, ct,
                   CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx");
}

void gemm_f32(float* y, const float* x, const float* w, int n, int in, int out, float alpha, float beta) {
  gemm(DT::F32, y, x, w, n, in, out, alpha, beta);
}

void add_bias(DT dt, void* y, const void* bias, int n, int out) {
  const int64_t c = static_cast<int64_t>(n) * out;
  if (c == 0) return;
  AL_DISPATCH(dt, add_bias_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(y), static_cast<const T*>(bias), n, out));
  check("add_bias");
}

namespace {
// A decode batch has a few rows: more threads per row shorten each block's serial work.
int norm_threads(int n) { return n < 128 ? 1024 : 256; }
}  // namespace

void rmsnorm(DT dt, void* y, const void* x, const void* w, int n, int dim, float eps) {
  if (n == 0) return;
  AL_DISPATCH(dt, rmsnorm_k<T><<<n, norm_threads(n), 0, g_stream>>>(static_cast<T*>(y), static_cast<T*>(const_cast<void*>(x)), nullptr, static_cast<const T*>(w), dim, eps));
  check("rmsnorm");
}

void add_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps) {
  if (n == 0) return;
  AL_DISPATCH(dt, rmsnorm_k<T><<<n, norm_threads(n), 0, g_stream>>>(static_cast<T*>(y), static_cast<T*>(x), static_cast<const T*>(delta), static_cast<const T*>(w), dim, eps));
  check("add + rmsnorm");
}

void rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int num_heads, int num_kv_heads,
          int head_dim) {
  const int64_t c = static_cast<int64_t>(n) * (num_heads + num_kv_heads) * (head_dim / 2);
  if (c == 0) return;
  AL_DISPATCH(dt, rope_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(q), static_cast<T*>(k), pos, inv_freq, n, num_heads, num_kv_heads, head_dim));
  check("rope");
}

void store_kv(DT dt, const KvRowDev* rows, int layer, const void* k, const void* v, int n, int num_kv_heads,
              int head_dim) {
  const int kv_dim = num_kv_heads * head_dim;
  const int64_t c = static_cast<int64_t>(n) * kv_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, store_kv_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(rows, layer, static_cast<const T*>(k), static_cast<const T*>(v), n, kv_dim, head_dim));
  check("store_kv");
}

namespace {
// Calls f(std::integral_constant<int, HD>) for the head dims the attention kernels are
// instantiated for; false (f not called) for any other.
template <typename F>
bool with_head_dim(int head_dim, F&& f) {
  switch (head_dim) {
    case 8: f(std::integral_constant<int, 8>{}); return true;
    case 16: f(std::integral_constant<int, 16>{}); return true;
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    case 256: f(std::integral_constant<int, 256>{}); return true;
    default: return false;
  }
}

int decode_splits(int max_len) { return (max_len + kDecodeChunk - 1) / kDecodeChunk; }

template <typename T, int HD>
void launch_decode(void* out, const void* q, const KvRowDev* rows, int layer, int n, int num_heads,
                   int num_kv_heads, int splits, float* part, float scale) {
  attention_split_k<T, HD><<<dim3(splits, num_heads, n), kDecodeWarps * 32, 0, g_stream>>>(
      part, static_cast<const T*>(q), rows, layer, num_heads, num_kv_heads, splits, scale);
  attention_merge_k<T><<<dim3(num_heads, n), HD < 32 ? 32 : HD, 0, g_stream>>>(static_cast<T*>(out), part, num_heads,
                                                                              HD, splits);
}
}  // namespace

size_t attention_rows_scratch(int n, int num_heads, int head_dim, int max_len) {
  const size_t split = static_cast<size_t>(n) * num_heads * decode_splits(max_len) * (head_dim + 2);
  const size_t generic = static_cast<size_t>(n) * num_heads * max_len;
  return std::max(split, generic) * sizeof(float);
}

void attention_rows(DT dt, void* out, const void* q, const KvRowDev* rows, int layer, int n, int num_heads,
                    int num_kv_heads, int head_dim, int max_len, float* scratch) {
  if (n == 0) return;
  const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
  const int splits = decode_splits(max_len);
  bool split = false;
  AL_DISPATCH(dt, split = with_head_dim(head_dim, [&](auto hd) {
    launch_decode<T, decltype(hd)::value>(out, q, rows, layer, n, num_heads, num_kv_heads, splits, scratch, scale);
  }));
  if (!split) {
    if (head_dim > 256) throw std::runtime_error("the CUDA attention supports head_dim up to 256");
    AL_DISPATCH(dt, attention_rows_generic_k<T><<<n * num_heads, 256, 0, g_stream>>>(static_cast<T*>(out), static_cast<const T*>(q), rows, layer, num_heads, num_kv_heads, head_dim, max_len, scratch, scale));
  }
  check("attention (decode)");
}

template <typename T, int HD>
static void launch_prefill(void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                           int num_heads, int num_kv_heads, float scale) {
  dim3 grid((n + kBQ - 1) / kBQ, num_heads);
  attention_prefill_k<T, HD><<<grid, kBQ * 4, 0, g_stream>>>(static_cast<T*>(out), static_cast<const T*>(q),
                                                               static_cast<const T*>(k), static_cast<const T*>(v),
                                                               capacity, pos0, n, num_heads, num_kv_heads, scale);
}

bool attention_prefill(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                       int num_heads, int num_kv_heads, int head_dim) {
  const float scale = 1.0f / sqrtf(static_cast<float>(head_dim));
  bool ok = false;
  AL_DISPATCH(dt, ok = with_head_dim(head_dim, [&](auto hd) {
    launch_prefill<T, decltype(hd)::value>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, scale);
  }));
  if (ok) check("attention (prefill)");
  return ok;
}

void split_columns(DT dt, void* d0, void* d1, void* d2, const void* src, int n, int a, int b, int c) {
  const int64_t count = static_cast<int64_t>(n) * (a + b + c);
  if (count == 0) return;
  AL_DISPATCH(dt, split_columns_k<T><<<blocks_for(count, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(d0), static_cast<T*>(d1), static_cast<T*>(d2), static_cast<const T*>(src), n, a, b, c));
  check("split_columns");
}

void swiglu(DT dt, void* gate, const void* up, int64_t count) {
  if (count == 0) return;
  AL_DISPATCH(dt, swiglu_k<T><<<blocks_for(count, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(gate), static_cast<const T*>(up), count));
  check("swiglu");
}

void embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim) {
  const int64_t c = static_cast<int64_t>(n) * dim;
  if (c == 0) return;
  AL_DISPATCH(dt, embedding_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(x), static_cast<const T*>(table), tokens, n, dim));
  check("embedding");
}

void lora_shrink(DT dt, float* u, const void* x, const LoraRowDev* rows, int n, int in, int max_rank) {
  if (n == 0 || max_rank == 0) return;
  dim3 grid((max_rank + kShrinkWarps - 1) / kShrinkWarps, n);
  AL_DISPATCH(dt, lora_shrink_k<T><<<grid, kShrinkWarps * 32, 0, g_stream>>>(u, static_cast<const T*>(x), rows, in, max_rank));
  check("lora_shrink");
}

void lora_expand(DT dt, void* y, const float* u, const LoraRowDev* rows, int n, int out, int max_rank) {
  if (n == 0 || max_rank == 0) return;
  dim3 grid((out + 255) / 256, n);
  const size_t smem = static_cast<size_t>(max_rank) * sizeof(float);
  AL_DISPATCH(dt, lora_expand_k<T><<<grid, 256, smem, g_stream>>>(static_cast<T*>(y), u, rows, out, max_rank));
  check("lora_expand");
}

void argmax_rows(DT dt, int32_t* out, const void* logits, int n, int vocab) {
  if (n == 0) return;
  AL_DISPATCH(dt, argmax_k<T><<<n, 1024, 0, g_stream>>>(out, static_cast<const T*>(logits), vocab));
  check("argmax");
}

void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads,
                int head_dim, int T_) {
  const int64_t c = static_cast<int64_t>(T_) * heads * head_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, delta_rows_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(rows, static_cast<const T*>(exact), exact_cap, static_cast<const T*>(base), base_cap, heads, head_dim, T_));
  check("delta_rows");
}

void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads,
              int head_dim, int T_) {
  const int64_t c = static_cast<int64_t>(T_) * heads * head_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, add_rows_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(out), out_cap, static_cast<const T*>(base), base_cap, rows, heads, head_dim, T_));
  check("add_rows");
}

void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int head_dim, int T_) {
  const int64_t c = static_cast<int64_t>(T_) * heads * head_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, copy_positions_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(dst), dst_cap, static_cast<const T*>(src), src_cap, heads, head_dim, T_));
  check("copy_positions");
}

void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base,
                    int base_cap, int heads, int head_dim, int T_, int bits) {
  const int64_t rows = static_cast<int64_t>(heads) * T_;
  if (rows == 0) return;
  AL_DISPATCH(dt, quantize_k<T><<<blocks_for(rows, 128), 128, 0, g_stream>>>(q, scale, static_cast<const T*>(exact), exact_cap, static_cast<const T*>(base), base_cap, heads, head_dim, T_, bits));
  check("quantize_delta");
}

void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q,
                   const float* scale, int heads, int head_dim, int T_, int bits) {
  const int64_t c = static_cast<int64_t>(heads) * T_ * head_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, add_quantized_k<T><<<blocks_for(c, kThreads), kThreads, 0, g_stream>>>(static_cast<T*>(out), out_cap, static_cast<const T*>(base), base_cap, q, scale, heads, head_dim, T_, bits));
  check("add_quantized");
}

void error_rows(DT dt, double* sums, const void* rk, const void* rv, int r_cap, const void* ek, const void* ev,
                int e_cap, int heads, int head_dim, int T_) {
  const int64_t rows = static_cast<int64_t>(heads) * T_;
  if (rows == 0) return;
  AL_DISPATCH(dt, error_rows_k<T><<<blocks_for(rows, 128), 128, 0, g_stream>>>(sums, static_cast<const T*>(rk), static_cast<const T*>(rv), r_cap, static_cast<const T*>(ek), static_cast<const T*>(ev), e_cap, heads, head_dim, T_));
  check("error_rows");
}

}  // namespace al::cuda
