// What every CUDA file of the device shares: the element types and their conversions,
// dtype dispatch, block reductions, and the launchers each kernel file exports to
// device_cuda.cu (one section per file, named as the device op it implements; each op's CPU
// reference is the same name in device_cpu.cpp).
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "engine/device.h"

// cuSOLVER's handle types, as its header declares them (only eigen.cu includes it).
struct cusolverDnContext;
struct syevjInfo;

namespace al::cuda {

// ---- elements -------------------------------------------------------------------------------

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

#define AL_DISPATCH(dt, ...)   \
  switch (dt) {                \
    case DT::F32: {            \
      using T = float;         \
      __VA_ARGS__;             \
    } break;                   \
    case DT::BF16: {           \
      using T = __nv_bfloat16; \
      __VA_ARGS__;             \
    } break;                   \
    case DT::F16: {            \
      using T = __half;        \
      __VA_ARGS__;             \
    } break;                   \
  }

inline unsigned blocks_for(int64_t n, int threads) { return static_cast<unsigned>((n + threads - 1) / threads); }
constexpr int kThreads = 256;

// Block-wide reductions over blockDim.x threads (a multiple of 32, at most 1024), in a fixed
// order (reproducible). smem: 32 values of V.
template <typename V, typename Op>
__device__ V block_reduce(V v, Op op, V* smem) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, warps = blockDim.x / 32;
  __syncthreads();  // smem may still be read by a previous call
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = smem[0];
  for (int w = 1; w < warps; ++w) v = op(v, smem[w]);
  return v;
}

struct Add {
  template <typename V>
  __device__ V operator()(V a, V b) const { return a + b; }
};
struct Max {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Calls f(std::integral_constant<int, HD>) for the head dims the attention kernels are
// instantiated for; false (f not called) for any other.
template <typename F>
bool with_head_dim(int head_dim, F&& f) {
  switch (head_dim) {
    case 32: f(std::integral_constant<int, 32>{}); return true;
    case 64: f(std::integral_constant<int, 64>{}); return true;
    case 80: f(std::integral_constant<int, 80>{}); return true;
    case 96: f(std::integral_constant<int, 96>{}); return true;
    case 128: f(std::integral_constant<int, 128>{}); return true;
    case 256: f(std::integral_constant<int, 256>{}); return true;
    default: return false;
  }
}

// Throws naming `what` when the last launch failed (checks are cheap: no sync).
void check(const char* what);

// ---- dense.cu: load_values, add_bias, rmsnorm, add_rmsnorm, rope, qkv_rope_store, swiglu,
//      swiglu_stacked, embedding, store_kv ----------------------------------------------------
void launch_convert(DT dt, void* dst, const void* src, int src_kind, int64_t n, cudaStream_t s);
void launch_add_bias(DT dt, void* y, const void* bias, int n, int out, cudaStream_t s);
void launch_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps, cudaStream_t s);
void launch_rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int heads, int kv_heads, int hd,
                 cudaStream_t s);
void launch_qkv_rope_store(DT dt, void* q, const void* qkv, const int* pos, const float* inv_freq, const KvWrite* rows,
                           int layer, int n, int heads, int kv_heads, int hd, cudaStream_t s);
void launch_swiglu(DT dt, void* gate, const void* up, int64_t count, cudaStream_t s);
void launch_swiglu_stacked(DT dt, void* out, const void* gate_up, int n, int inter, cudaStream_t s);
void launch_embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim, cudaStream_t s);
void launch_store_kv(DT dt, const KvWrite* rows, int layer, const void* k, const void* v, int n, int kv_heads, int hd,
                     cudaStream_t s);

// ---- gemm.cu: gemm (cuBLAS, or the skinny kernel for a few rows), gemm_out_f32, gemm_f32 ------
void gemm(cublasHandle_t h, DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha,
          float beta, cudaStream_t s);
void gemm_out_f32(cublasHandle_t h, DT dt, float* y, const void* x, const void* w, int n, int in, int out);
void gemm_f32(cublasHandle_t h, float* y, const float* a, const float* b, int m, int n, int k, bool ta, bool tb,
              float alpha, float beta);
void gemm_f32_batched(cublasHandle_t h, int count, float* y, int64_t sy, const float* a, int64_t sa, const float* b,
                      int64_t sb, int m, int n, int k, bool ta, bool tb, float alpha, float beta);
// cuBLAS alone (the benchmark compares it with the skinny path).
void cublas_gemm(cublasHandle_t h, DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha,
                 float beta);
// y[n, out] = alpha · x · Wᵀ + beta · y with x given as xᵀ [in, n] (the LoRA expand of a
// shrink that the skinny kernel wrote transposed: lora.cu).
void cublas_gemm_xt(cublasHandle_t h, DT dt, void* y, const void* xt, const void* w, int n, int in, int out, float alpha,
                    float beta);
// The skinny path alone (tests compare it with cuBLAS); false when it does not apply.
// config picks the tiling: 0 the engine's default, 1..3 the alternatives the benchmark times.
bool skinny_gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta,
                 cudaStream_t s, int config = 0);
constexpr int kSkinnyConfigs = 4;
// False under ADAPTERLENS_CUDA_SKINNY=0: cuBLAS for every product (the decode GEMMs and the
// prefill LoRA shrink), for comparing the two.
bool skinny_enabled();

// ---- eigen.cu: gram_factors (cuSOLVER's batched Jacobi eigen-decompositions, in double) ------
// The cuSOLVER handle and solver settings, made at first use (on the device's stream) and kept
// for the process's life, as the device's cuBLAS handle is (never destroyed: at exit the CUDA
// runtime may be gone before the device).
struct EigenSolver {
  ::cusolverDnContext* handle = nullptr;
  ::syevjInfo* params = nullptr;
  void start(cudaStream_t s);
};
constexpr int kBatchedEigenMax = 32;  // cuSOLVER's batched syevj takes matrices up to 32×32
// Bytes of device scratch gram_factors needs for `count` [n, n] matrices.
size_t gram_factors_scratch(EigenSolver& es, cudaStream_t s, int count, int n);
void gram_factors(EigenSolver& es, int count, int n, int k, const float* g, float* inv_scaled, float* scaled,
                  void* scratch, size_t scratch_bytes, cudaStream_t s);

// ---- lora.cu: lora (BGMV for decode batches, per-adapter GEMM segments for long ones) ----------
void lora(cublasHandle_t h, DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
          float* scratch, cudaStream_t s);
// The BGMV path's two halves (decode batches: lora_bgmv(n)): u = A·x into the scratch (and the
// captures), then y += s·B·u. lora() runs both; the device may run the shrink on a branch.
bool lora_bgmv(int n);
void lora_shrink(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
                 float* scratch, cudaStream_t s);
void lora_expand(DT dt, int n, const LoraOutput* targets, int count, int max_rank, const float* scratch, cudaStream_t s);

// Streams for launches that do not depend on each other: the side streams wait for `main`
// (fork), `main` waits for them when the work is done (join). Inside a graph capture the side
// launches become parallel branches of the graph, so the GPU runs them at once (a decode
// step's LoRA shrink beside the base product: device_cuda.cu, lora_begin).
struct Branches {
  cudaStream_t main = nullptr;
  cudaStream_t side[2] = {nullptr, nullptr};  // null: everything on main
  cudaEvent_t forked = nullptr;
  cudaEvent_t joined[2] = {nullptr, nullptr};
};

// ---- attention.cu: attention_prefill (fp32 flash kernel), attention_parts -----------------------
bool attention_prefill_flash(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0,
                             int n, int heads, int kv_heads, int hd, cudaStream_t s);
void attention_parts(DT dt, void* out, const void* q, const AttnPlan& plan, int n_rows, int heads, int kv_heads,
                     int hd, const Branches& b);
// attention_tc.cu: the tensor-core prefill (bf16/fp16, head dims 64 and 128); false when it
// does not apply.
bool attention_prefill_tc(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                          int num_heads, int num_kv_heads, int head_dim, cudaStream_t s);

// ---- logits.cu: argmax_rows, sample_rows, score_rows --------------------------------------------
void argmax_rows(int32_t* out, const float* logits, int n, int vocab, cudaStream_t s);
void sample_rows(int32_t* tokens, float* probs, const float* logits, const SampleRow* rows, int n, int vocab,
                 cudaStream_t s);
void score_rows(ScoreOut* out, const float* logits, const ScoreRow* rows, int n, int vocab, cudaStream_t s);

// ---- strategies.cu: delta_rows, add_rows, copy_positions, quantize_delta, add_quantized, (de)quantize_columns
void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads, int hd,
                int T, cudaStream_t s);
void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads, int hd, int T,
              cudaStream_t s);
void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int hd, int T,
                    cudaStream_t s);
void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base, int base_cap,
                    int heads, int hd, int T, int bits, cudaStream_t s);
void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q, const float* scale,
                   int heads, int hd, int T, int bits, cudaStream_t s);
void quantize_columns(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs, const float* step,
                      int row_bytes, cudaStream_t s);
void dequantize_columns(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                        const float* step, int row_bytes, cudaStream_t s);

// ---- metrics.cu: error_sums, outside_span_sums (scratch: device doubles, grown by the caller) ---
size_t error_sums_scratch(int heads, int T);  // doubles
void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap, const void* ek,
                const void* ev, int e_cap, int heads, int hd, int T, int bin, double* scratch, cudaStream_t s);
size_t outside_span_scratch(int T, int D, int r);  // doubles
void outside_span_sums(cublasHandle_t h, DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v, int base_cap,
                       const double* pinv, const float* b, int r, int heads, int hd, int T, double* scratch,
                       cudaStream_t s);

}  // namespace al::cuda
