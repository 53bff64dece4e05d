// The forward pass's element-wise and row ops: load_values (convert), add_bias, rmsnorm /
// add_rmsnorm, rope, qkv_rope_store, swiglu, swiglu_stacked, embedding, store_kv. CPU
// references: the ops of the same names in device_cpu.cpp. Rounding follows HF in bf16/fp16
// (each product rounded to the dtype where torch rounds it).
#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

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
// add x = T(x + delta), stored back to x (the add fused into the next norm: one pass and one
// launch fewer per block of the decoder; each thread re-reads only what it wrote).
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
  T* xp = head < num_heads ? q + (static_cast<int64_t>(t) * num_heads + head) * head_dim
                           : k + (static_cast<int64_t>(t) * num_kv_heads + (head - num_heads)) * head_dim;
  const float angle = __fmul_rn(static_cast<float>(pos[t]), inv_freq[j]);
  const float c = round_t<T>(cosf(angle)), sn = round_t<T>(sinf(angle));
  const float a = to_f(xp[j]), b = to_f(xp[j + half]);
  xp[j] = from_f<T>(__fsub_rn(round_t<T>(__fmul_rn(a, c)), round_t<T>(__fmul_rn(b, sn))));
  xp[j + half] = from_f<T>(__fadd_rn(round_t<T>(__fmul_rn(b, c)), round_t<T>(__fmul_rn(a, sn))));
}

// One thread per (row, head, i < half) over the heads of a stacked q/k/v row (q heads, then k
// heads, then v heads): q and k rotated as rope_k rotates them (the same rounding), q into q,
// k and v into the row's cache slot at `layer` as store_kv_k writes them.
template <typename T>
__global__ void qkv_rope_store_k(T* q, const T* qkv, const int* pos, const float* inv_freq, const KvWrite* rows, int layer,
                                 int n, int heads, int kv_heads, int hd) {
  const int half = hd / 2;
  const int per_row = (heads + 2 * kv_heads) * half;
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(per_row) * n) return;
  const int t = static_cast<int>(i / per_row);
  const int rem = static_cast<int>(i % per_row);
  const int head = rem / half, j = rem % half;
  const T* src = qkv + static_cast<int64_t>(t) * (heads + 2 * kv_heads) * hd + static_cast<int64_t>(head) * hd;
  const float a = to_f(src[j]), b = to_f(src[j + half]);
  T* dst;
  if (head < heads) {
    dst = q + (static_cast<int64_t>(t) * heads + head) * hd;
  } else {
    const KvWrite r = rows[t];
    const int h = head < heads + kv_heads ? head - heads : head - heads - kv_heads;
    T* base = static_cast<T*>(head < heads + kv_heads ? r.k : r.v);
    dst = base + r.layer_stride * layer + (static_cast<int64_t>(h) * r.capacity + r.slot) * hd;
    if (head >= heads + kv_heads) {  // v: as it is
      dst[j] = src[j];
      dst[j + half] = src[j + half];
      return;
    }
  }
  const float angle = __fmul_rn(static_cast<float>(pos[t]), inv_freq[j]);
  const float c = round_t<T>(cosf(angle)), sn = round_t<T>(sinf(angle));
  dst[j] = from_f<T>(__fsub_rn(round_t<T>(__fmul_rn(a, c)), round_t<T>(__fmul_rn(b, sn))));
  dst[j + half] = from_f<T>(__fadd_rn(round_t<T>(__fmul_rn(b, c)), round_t<T>(__fmul_rn(a, sn))));
}

template <typename T>
__global__ void swiglu_k(T* gate, const T* up, int64_t count) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= count) return;
  const float g = to_f(gate[i]);
  // HF: act_fn(gate) rounded to the dtype, then times up.
  gate[i] = from_f<T>(__fmul_rn(round_t<T>(g / (1.0f + expf(-g))), to_f(up[i])));
}

// swiglu_k on a stacked gate/up row: out[t, i] = silu(gate_up[t, i]) · gate_up[t, inter + i].
template <typename T>
__global__ void swiglu_stacked_k(T* out, const T* gate_up, int n, int inter) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * inter) return;
  const int64_t t = i / inter, e = i % inter;
  const T* row = gate_up + t * 2 * inter;
  const float g = to_f(row[e]);
  out[i] = from_f<T>(__fmul_rn(round_t<T>(g / (1.0f + expf(-g))), to_f(row[inter + e])));
}

template <typename T>
__global__ void embedding_k(T* x, const T* table, const int32_t* tokens, int n, int dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * dim) return;
  const int t = static_cast<int>(i / dim), d = static_cast<int>(i % dim);
  x[i] = table[static_cast<int64_t>(tokens[t]) * dim + d];
}

template <typename T>
__global__ void store_kv_k(const KvWrite* rows, int layer, const T* k, const T* v, int n, int kv_dim, int head_dim) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(n) * kv_dim) return;
  const int t = static_cast<int>(i / kv_dim), e = static_cast<int>(i % kv_dim);
  const KvWrite r = rows[t];
  const int h = e / head_dim, d = e % head_dim;
  const int64_t dst = r.layer_stride * layer + (static_cast<int64_t>(h) * r.capacity + r.slot) * head_dim + d;
  static_cast<T*>(r.k)[dst] = k[i];
  static_cast<T*>(r.v)[dst] = v[i];
}

// A decode batch has a few rows: more threads per row shorten each block's serial work.
int norm_threads(int n) { return n < 128 ? 1024 : 256; }

}  // namespace

void launch_convert(DT dt, void* dst, const void* src, int src_kind, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  AL_DISPATCH(dt, convert_k<T><<<blocks_for(n, kThreads), kThreads, 0, s>>>(static_cast<T*>(dst), src, src_kind, n));
  check("convert");
}

void launch_add_bias(DT dt, void* y, const void* bias, int n, int out, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(n) * out;
  if (c == 0) return;
  AL_DISPATCH(dt, add_bias_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(y), static_cast<const T*>(bias), n, out));
  check("add_bias");
}

void launch_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps,
                    cudaStream_t s) {
  if (n == 0) return;
  AL_DISPATCH(dt, rmsnorm_k<T><<<n, norm_threads(n), 0, s>>>(static_cast<T*>(y), static_cast<T*>(x), static_cast<const T*>(delta), static_cast<const T*>(w), dim, eps));
  check("rmsnorm");
}

void launch_rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int heads, int kv_heads, int hd,
                 cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(n) * (heads + kv_heads) * (hd / 2);
  if (c == 0) return;
  AL_DISPATCH(dt, rope_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(q), static_cast<T*>(k), pos, inv_freq, n, heads, kv_heads, hd));
  check("rope");
}

void launch_qkv_rope_store(DT dt, void* q, const void* qkv, const int* pos, const float* inv_freq, const KvWrite* rows,
                           int layer, int n, int heads, int kv_heads, int hd, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(n) * (heads + 2 * kv_heads) * (hd / 2);
  if (c == 0) return;
  AL_DISPATCH(dt, qkv_rope_store_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(q), static_cast<const T*>(qkv), pos, inv_freq, rows, layer, n, heads, kv_heads, hd));
  check("qkv_rope_store");
}

void launch_swiglu(DT dt, void* gate, const void* up, int64_t count, cudaStream_t s) {
  if (count == 0) return;
  AL_DISPATCH(dt, swiglu_k<T><<<blocks_for(count, kThreads), kThreads, 0, s>>>(static_cast<T*>(gate), static_cast<const T*>(up), count));
  check("swiglu");
}

void launch_swiglu_stacked(DT dt, void* out, const void* gate_up, int n, int inter, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(n) * inter;
  if (c == 0) return;
  AL_DISPATCH(dt, swiglu_stacked_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), static_cast<const T*>(gate_up), n, inter));
  check("swiglu_stacked");
}

void launch_embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(n) * dim;
  if (c == 0) return;
  AL_DISPATCH(dt, embedding_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(x), static_cast<const T*>(table), tokens, n, dim));
  check("embedding");
}

void launch_store_kv(DT dt, const KvWrite* rows, int layer, const void* k, const void* v, int n, int kv_heads, int hd,
                     cudaStream_t s) {
  const int kv_dim = kv_heads * hd;
  const int64_t c = static_cast<int64_t>(n) * kv_dim;
  if (c == 0) return;
  AL_DISPATCH(dt, store_kv_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(rows, layer, static_cast<const T*>(k), static_cast<const T*>(v), n, kv_dim, hd));
  check("store_kv");
}

}  // namespace al::cuda
