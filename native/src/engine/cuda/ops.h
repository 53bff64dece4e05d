// The CUDA ops: every op of the forward pass, the batched LoRA, the strategies' kernels and
// the metric reductions, as host functions over device pointers. Each has a CPU reference
// (backend_cpu.cpp, kv_store.cpp, metrics.cpp) and tests/cuda/backend_ops.cu compares them.
// No CUDA types appear here so plain C++ can call them.
//
// Conventions: row-major; "T" buffers hold the compute dtype `dt` (fp32, bf16 or fp16);
// every op computes in fp32 (double where its CPU reference does) and rounds once to T on
// store. All ops are queued on the engine's one stream; callers hold gpu_mutex().
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>

#include "engine/config.h"

namespace al::cuda {

using DT = ComputeType;

size_t dt_size(DT dt);

// ---- runtime ----------------------------------------------------------------------------
// Starts CUDA, cuBLAS and the stream (once); throws std::runtime_error with the reason.
void start();
// The engine's one stream (a cudaStream_t), for ops in other files to launch on.
void* current_stream();
// Profiling (ADAPTERLENS_CUDA_PROFILE=1): prof_mark(what) records an event on the stream;
// the time to the next mark is charged to `what`. prof_report syncs, prints one line to
// stderr (per-`what` totals, in first-seen order) and clears. Both do nothing when off.
bool profiling();
void prof_mark(const char* what);
void prof_report(const std::string& label);
std::recursive_mutex& gpu_mutex();  // serializes every use of the stream, handle and scratch
// Throws std::runtime_error naming `what` when the last launch or the stream failed.
void check(const char* what);
void sync(const char* what);
// cudaMalloc with an error that says how much was asked and how much is free.
void* dmalloc(size_t bytes, const char* what);
void dfree(void* p);
void h2d(void* dst, const void* src, size_t bytes);
void d2h(void* dst, const void* src, size_t bytes);
void d2d(void* dst, const void* src, size_t bytes);
// rows × row_bytes between pitched buffers (bytes).
void d2h_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows);
void h2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows);
void d2d_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t row_bytes, size_t rows);
void memset0(void* p, size_t bytes);
size_t used_bytes();
size_t peak_bytes();
void reset_peak();

// Host conversions between fp32 and T (round to nearest even, as torch's .to()).
void host_to_dt(DT dt, void* dst, const float* src, size_t n);
void host_from_dt(DT dt, float* dst, const void* src, size_t n);

// ---- ops ----------------------------------------------------------------------------------
// Stored tensor bytes (0 F32, 1 F16, 2 BF16, as engine/weights.h's DType) to T, n values.
void convert(DT dt, void* dst, const void* src, int src_kind, int64_t n);
// y[n, out] = alpha · x[n, in] · W[out, in]ᵀ + beta · y, fp32 accumulation (fp32: no TF32).
void gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta);
// The same with fp32 x, W and y whatever the compute dtype (strategies' small products).
void gemm_f32(float* y, const float* x, const float* w, int n, int in, int out, float alpha, float beta);
// y[n, out] += bias[out].
void add_bias(DT dt, void* y, const void* bias, int n, int out);
void rmsnorm(DT dt, void* y, const void* x, const void* w, int n, int dim, float eps);
// x = x + delta (rounded to T, stored), then y = rmsnorm(x): add then rmsnorm, fused.
void add_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps);
// pos: device [n]; inv_freq: device fp32 [head_dim / 2].
void rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int num_heads, int num_kv_heads,
          int head_dim);

// Where one token row's K/V go in its sequence's cache: layer-0 pointers and the layer stride.
struct KvRowDev {
  void* k;               // [num_layers][num_kv_heads, capacity, head_dim] of T
  void* v;
  int64_t layer_stride;  // elements between layers
  int capacity;
  int pos;
};
// rows: device [n].
void store_kv(DT dt, const KvRowDev* rows, int layer, const void* k, const void* v, int n, int num_kv_heads,
              int head_dim);
// Decode attention: any rows, each over its own cache [0, pos], max_len ≥ every pos + 1.
// Split over key chunks with an online softmax (flash-decoding), the chunks' partials in
// `scratch` (device, attention_rows_scratch bytes); exact softmax, another summation order.
size_t attention_rows_scratch(int n, int num_heads, int head_dim, int max_len);
void attention_rows(DT dt, void* out, const void* q, const KvRowDev* rows, int layer, int n, int num_heads,
                    int num_kv_heads, int head_dim, int max_len, float* scratch);
// Prefill attention, flash-style: n rows of one sequence at positions pos0.. pos0+n-1 over
// its cache (k, v: that layer's [num_kv_heads, capacity, head_dim]); query tiles share each
// key/value tile through shared memory; online softmax, no score matrix in memory.
// Returns false (doing nothing) for a head_dim it has no instance for.
bool attention_prefill(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                       int num_heads, int num_kv_heads, int head_dim);
// Prefill attention on tensor cores (bf16/fp16 only; fp32 stays on attention_prefill so parity
// runs keep fp32 products). Same arguments and result as attention_prefill; returns false
// (doing nothing) for fp32 or a head_dim without an instance, so the caller falls back.
bool attention_prefill_tc(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                          int num_heads, int num_kv_heads, int head_dim);
// src [n, a+b+c] → d0 [n, a], d1 [n, b], d2 [n, c] (c may be 0, d2 then unused): the
// fused q/k/v and gate/up projections' outputs, split per projection.
void split_columns(DT dt, void* d0, void* d1, void* d2, const void* src, int n, int a, int b, int c);
// gate[i] = silu(gate[i]) · up[i].
void swiglu(DT dt, void* gate, const void* up, int64_t count);
// tokens: device [n].
void embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim);

// Batched LoRA for many adapters in one batch (Punica's BGMV): row i runs through its own
// adapter's A_i [rank_i, in] and B_i [out, rank_i]; a row with a null A has no LoRA here.
struct LoraRowDev {
  const void* a;
  const void* b;
  int rank;
  float scale;
};
// u[n, max_rank] (fp32) = A_i · x_i.
void lora_shrink(DT dt, float* u, const void* x, const LoraRowDev* rows, int n, int in, int max_rank);
// y_i += scale_i · B_i · u_i.
void lora_expand(DT dt, void* y, const float* u, const LoraRowDev* rows, int n, int out, int max_rank);

// out[i] = lowest index of the maximum of logits row i (torch.argmax's tie rule).
void argmax_rows(DT dt, int32_t* out, const void* logits, int n, int vocab);

// ---- strategies and metrics (one layer of [heads, capacity, head_dim] caches) ---------------
// rows[T, heads·head_dim] (fp32) = exact − base over positions [0, T).
void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads,
                int head_dim, int T);
// out = base + rows over positions [0, T) (out may alias base only when capacities match).
void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads,
              int head_dim, int T);
// Copies positions [0, T).
void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int head_dim, int T);
// Per (head, token) symmetric quantization of exact − base (bits 8 or 4; see kv_store.h).
void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base,
                    int base_cap, int heads, int head_dim, int T, int bits);
// out = base + dequantized delta.
void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q,
                   const float* scale, int heads, int head_dim, int T, int bits);
// sums[(head·T + t)·4 + j] for j = Σ(r−e)² of K, Σe² of K, the same for V, in double.
void error_rows(DT dt, double* sums, const void* rk, const void* rv, int r_cap, const void* ek, const void* ev,
                int e_cap, int heads, int head_dim, int T);

}  // namespace al::cuda
