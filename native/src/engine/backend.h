// The named ops of the forward pass. model.cpp calls only these, so a CUDA backend can
// replace the CPU one op by op (each CUDA op checked against its CPU reference).
// All buffers are fp32, row-major; n is the number of token rows in the batch.
#pragma once

#include <cstdint>

namespace al {

// Where one token row sits in its own sequence's KV cache, for one layer.
struct KvRow {
  float* k;       // [num_kv_heads, capacity, head_dim]
  float* v;       // [num_kv_heads, capacity, head_dim]
  int capacity;
  int pos;        // the row's position: its K/V go here, and it attends to [0, pos]
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const char* name() const = 0;
  virtual int threads() const = 0;

  // y[n, out] = x[n, in] · W[out, in]ᵀ (+ bias[out] when bias is non-null).
  // Each output is the same function of its own row of x whatever n is, so results
  // do not depend on batching or chunking.
  virtual void matmul(float* y, const float* x, const float* w, const float* bias, int n, int in, int out) const = 0;
  // y[n, out] += scale · (x[n, in] · W[out, in]ᵀ), the LoRA up-projection.
  virtual void matmul_add(float* y, const float* x, const float* w, float scale, int n, int in, int out) const = 0;
  // y[n, dim] = x / sqrt(mean(x²) + eps) * weight, as HF's LlamaRMSNorm in fp32.
  virtual void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps) const = 0;
  // Rotate-half RoPE in place: q[n, num_heads*head_dim], k[n, num_kv_heads*head_dim] at
  // positions pos[n]; inv_freq[head_dim/2].
  virtual void rope(float* q, float* k, const int* pos, const float* inv_freq, int n, int num_heads, int num_kv_heads,
                    int head_dim) const = 0;
  // Writes k[n, num_kv_heads*head_dim], v[...] into each row's cache at its position.
  virtual void store_kv(const KvRow* rows, const float* k, const float* v, int n, int num_kv_heads,
                        int head_dim) const = 0;
  // Causal GQA attention: out[n, num_heads*head_dim] from q[n, num_heads*head_dim] over
  // each row's cached positions [0, pos]; query head h reads kv head h / (num_heads/num_kv_heads).
  virtual void attention(float* out, const float* q, const KvRow* rows, int n, int num_heads, int num_kv_heads,
                         int head_dim) const = 0;
  // gate[i] = silu(gate[i]) * up[i].
  virtual void swiglu(float* gate, const float* up, int64_t count) const = 0;
  // x[i] += y[i] (residual).
  virtual void add(float* x, const float* y, int64_t count) const = 0;
  // x[n, dim] = table[tokens[i], :].
  virtual void embedding(float* x, const float* table, const int32_t* tokens, int n, int dim) const = 0;
};

const Backend& cpu_backend();

}  // namespace al
