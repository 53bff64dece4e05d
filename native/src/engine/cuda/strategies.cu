// The strategies' kernels on one layer of [heads, capacity, head_dim] caches, positions
// [0, T): delta_rows, add_rows, copy_positions, quantize_delta, add_quantized; and the pca
// strategy's column quantizer, quantize_columns / dequantize_columns. CPU references:
// the ops of the same names in device_cpu.cpp.
#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

template <typename T>
__global__ void delta_rows_k(float* rows, const T* exact, int exact_cap, const T* base, int base_cap, int heads, int hd,
                             int T_) {
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

// A warp per (head, token) row: each lane takes pairs of dims (2p, 2p + 1), p = lane, lane + 32,
// ..., so every load and store is one coalesced stretch of the row and an int4 byte is written
// whole by one lane. The values are those of the CPU reference (the same fp32 arithmetic per
// element; the row's largest |Δ| does not depend on the order it is found in).
constexpr int kQuantWarps = 8;
template <typename T>
__global__ void __launch_bounds__(kQuantWarps * 32)
    quantize_k(uint8_t* q, float* scale_out, const T* exact, int exact_cap, const T* base, int base_cap, int heads,
               int hd, int T_, int bits) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(kQuantWarps) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= static_cast<int64_t>(heads) * T_) return;  // uniform over the warp
  const int h = static_cast<int>(row / T_), t = static_cast<int>(row % T_);
  const T* e = exact + (static_cast<int64_t>(h) * exact_cap + t) * hd;
  const T* b = base + (static_cast<int64_t>(h) * base_cap + t) * hd;
  const int qmax = bits == 8 ? 127 : 7;
  const int row_bytes = bits == 8 ? hd : (hd + 1) / 2;
  auto delta = [&](int i) { return __fsub_rn(to_f(e[i]), to_f(b[i])); };
  float amax = 0.0f;
  for (int i = lane; i < hd; i += 32) amax = fmaxf(amax, fabsf(delta(i)));
  for (int o = 16; o > 0; o >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
  const float scale = amax / static_cast<float>(qmax);
  if (lane == 0) scale_out[row] = scale;
  auto code = [&](int i) {
    const float r = scale > 0.0f ? rintf(delta(i) / scale) : 0.0f;
    return static_cast<int>(fminf(fmaxf(r, static_cast<float>(-qmax)), static_cast<float>(qmax)));
  };
  uint8_t* o = q + row * row_bytes;
  for (int i = 2 * lane; i < hd; i += 64) {
    const int lo = code(i);
    const bool pair = i + 1 < hd;
    const int hi = pair ? code(i + 1) : 0;
    if (bits == 8) {
      o[i] = static_cast<uint8_t>(static_cast<int8_t>(lo));
      if (pair) o[i + 1] = static_cast<uint8_t>(static_cast<int8_t>(hi));
    } else {
      o[i / 2] = static_cast<uint8_t>((lo & 0xF) | (pair ? (hi & 0xF) << 4 : 0));
    }
  }
}

template <typename T>
__global__ void add_quantized_k(T* out, int out_cap, const T* base, int base_cap, const uint8_t* q, const float* scale,
                                int heads, int hd, int T_, int bits) {
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

// One thread per row: the row's codes are OR-ed into its own bytes (a code may straddle two),
// so no two threads write one byte. As the CPU reference, with the same IEEE division.
__global__ void quantize_columns_k(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs,
                                   const float* step, int row_bytes) {
  const int64_t t = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (t >= rows) return;
  uint8_t* o = q + t * row_bytes;
  for (int i = 0; i < row_bytes; ++i) o[i] = 0;
  for (int j = 0; j < k; ++j) {
    const int b = bits[j], half = 1 << (b - 1);
    const float f = floorf(__fdiv_rn(x[t * k + j], step[j]));
    const int c = static_cast<int>(fminf(fmaxf(__fadd_rn(f, static_cast<float>(half)), 0.0f), static_cast<float>(2 * half - 1)));
    const int at = offs[j] >> 3, sh = offs[j] & 7;
    const unsigned v = static_cast<unsigned>(c) << sh;
    o[at] = static_cast<uint8_t>(o[at] | (v & 0xFF));
    if (sh + b > 8) o[at + 1] = static_cast<uint8_t>(o[at + 1] | (v >> 8));
  }
}

// One thread per value.
__global__ void dequantize_columns_k(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                                     const float* step, int row_bytes) {
  const int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i >= static_cast<int64_t>(rows) * k) return;
  const int64_t t = i / k;
  const int j = static_cast<int>(i % k);
  const uint8_t* in = q + t * row_bytes;
  const int b = bits[j], half = 1 << (b - 1);
  const int at = offs[j] >> 3, sh = offs[j] & 7;
  unsigned v = in[at];
  if (sh + b > 8) v |= static_cast<unsigned>(in[at + 1]) << 8;
  const int c = static_cast<int>((v >> sh) & ((1u << b) - 1));
  x[i] = __fmul_rn(__fadd_rn(static_cast<float>(c - half), 0.5f), step[j]);
}

}  // namespace

void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads, int hd,
                int T_, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(T_) * heads * hd;
  if (c == 0) return;
  AL_DISPATCH(dt, delta_rows_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(rows, static_cast<const T*>(exact), exact_cap, static_cast<const T*>(base), base_cap, heads, hd, T_));
  check("delta_rows");
}

void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads, int hd, int T_,
              cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(T_) * heads * hd;
  if (c == 0) return;
  AL_DISPATCH(dt, add_rows_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), out_cap, static_cast<const T*>(base), base_cap, rows, heads, hd, T_));
  check("add_rows");
}

void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int hd, int T_,
                    cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(T_) * heads * hd;
  if (c == 0 || dst == src) return;
  AL_DISPATCH(dt, copy_positions_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(dst), dst_cap, static_cast<const T*>(src), src_cap, heads, hd, T_));
  check("copy_positions");
}

void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base, int base_cap,
                    int heads, int hd, int T_, int bits, cudaStream_t s) {
  const int64_t rows = static_cast<int64_t>(heads) * T_;
  if (rows == 0) return;
  AL_DISPATCH(dt, quantize_k<T><<<blocks_for(rows, kQuantWarps), kQuantWarps * 32, 0, s>>>(q, scale, static_cast<const T*>(exact), exact_cap, static_cast<const T*>(base), base_cap, heads, hd, T_, bits));
  check("quantize_delta");
}

void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q, const float* scale,
                   int heads, int hd, int T_, int bits, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(heads) * T_ * hd;
  if (c == 0) return;
  AL_DISPATCH(dt, add_quantized_k<T><<<blocks_for(c, kThreads), kThreads, 0, s>>>(static_cast<T*>(out), out_cap, static_cast<const T*>(base), base_cap, q, scale, heads, hd, T_, bits));
  check("add_quantized");
}

void quantize_columns(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs, const float* step,
                      int row_bytes, cudaStream_t s) {
  if (rows == 0 || k == 0) return;
  quantize_columns_k<<<blocks_for(rows, 128), 128, 0, s>>>(q, x, rows, k, bits, offs, step, row_bytes);
  check("quantize_columns");
}

void dequantize_columns(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                        const float* step, int row_bytes, cudaStream_t s) {
  const int64_t c = static_cast<int64_t>(rows) * k;
  if (c == 0) return;
  dequantize_columns_k<<<blocks_for(c, kThreads), kThreads, 0, s>>>(x, q, rows, k, bits, offs, step, row_bytes);
  check("dequantize_columns");
}

}  // namespace al::cuda
