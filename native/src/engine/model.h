// The Llama-family decoder (Llama, Mistral, Qwen2): weights, scratch state and forward().
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/job.h"
#include "engine/kv_cache.h"
#include "engine/lora.h"
#include "engine/tensor.h"
#include "engine/weights.h"

namespace al {

namespace gpu {
struct DeviceModel;
}

struct LayerWeights {
  Tensor input_norm;    // [H]                 input_layernorm.weight
  Tensor wq, bq;        // [q_dim, H], [q_dim]  (biases only with attention_bias)
  Tensor wk, bk;        // [kv_dim, H], [kv_dim]
  Tensor wv, bv;        // [kv_dim, H], [kv_dim]
  Tensor wo;            // [H, q_dim]
  Tensor post_norm;     // [H]                 post_attention_layernorm.weight
  Tensor w_gate, w_up;  // [I, H]
  Tensor w_down;        // [H, I]
};

struct Weights {
  Tensor embed;                     // [vocab, H]  model.embed_tokens.weight
  std::vector<LayerWeights> layers; // [num_layers]
  Tensor final_norm;                // [H]         model.norm.weight
  Tensor lm_head;                   // [vocab, H]  empty when tie_word_embeddings

  const Tensor& output() const { return lm_head.empty() ? embed : lm_head; }
};

struct Model {
  uint64_t id = 0;  // unique per load; adapters remember which model they belong to
  Config config;
  Weights weights;
  std::vector<float> inv_freq;  // [head_dim / 2] RoPE inverse frequencies, scaling applied
  const Backend* backend = nullptr;
  size_t bytes = 0;             // weight bytes held
  // CUDA build: the weights live on the GPU (in config.dtype) and `weights` stays empty.
  std::shared_ptr<gpu::DeviceModel> gpu;
};

// A zero-filled KV cache for `m`: on the GPU when the model is, else on the host.
std::shared_ptr<KvCache> new_cache(const Model& m, int capacity);

// Throws std::invalid_argument naming the first inconsistent field.
void validate_config(const Config& c);

// HF's inv_freq in fp32, with default / linear / llama3 scaling.
std::vector<float> rope_inv_freq(const Config& c);

// Maps the checkpoint's tensors, checks every name and shape the config implies and
// converts them to fp32. Tensors the model does not use are ignored. Progress is in bytes.
std::shared_ptr<Model> load_model(const Config& c, const std::vector<TensorRef>& tensors, const JobHooks& hooks);

// One token of a forward pass: the sequence (cache) it belongs to, its position there and
// the adapter it runs through (null: base model).
struct Row {
  KvCache* cache;
  int pos;
  const Adapter* adapter;
  // Also write u = s·A_v·x of every layer whose v_proj the adapter adapts into the
  // cache's LoRA-V capture at `pos` (prefill with captureLoraV).
  bool capture_lora_v = false;
};

// Scratch activations for up to max_rows token rows.
struct RunState {
  RunState(const Config& c, int max_rows, int max_rank);

  int max_rows;
  std::vector<float> x;     // [rows, H]      residual stream
  std::vector<float> xn;    // [rows, H]      normed input of the current sub-layer
  std::vector<float> xb;    // [rows, H]      sub-layer output before the residual add
  std::vector<float> q;     // [rows, q_dim]
  std::vector<float> k;     // [rows, kv_dim]
  std::vector<float> v;     // [rows, kv_dim]
  std::vector<float> att;   // [rows, q_dim]  attention output
  std::vector<float> gate;  // [rows, I]
  std::vector<float> up;    // [rows, I]
  std::vector<float> lora;  // [rows, max_rank] LoRA down-projection A·x
  std::vector<int> pos;     // [rows]
  std::vector<KvRow> kv;    // [rows]
};

// Runs n token rows through the model and writes their K/V into their caches at their
// positions. Rows of one sequence must be consecutive positions in order, and each row's
// cache must already hold every position before it (in the cache or earlier in this
// batch). Cache lengths are left to the caller, so a failed or cancelled pass changes
// nothing a reader can see. A prefill chunk is n rows of one sequence; a decode step is
// one row per sequence. When logits is non-null it receives [n - logits_from, vocab]
// for rows logits_from..n-1. Checks hooks between layers.
void forward(const Model& m, RunState& s, const int32_t* tokens, const Row* rows, int n, float* logits,
             int logits_from, const JobHooks& hooks);

// forward() on whichever device holds the model. For a GPU model, `state` is unused (the
// device keeps its own scratch) and, when greedy is non-null, the argmax of every logits
// row is taken on the device (logits may then be null). For a CPU model greedy is computed
// from logits on the host.
void forward_any(const Model& m, RunState* state, const int32_t* tokens, const Row* rows, int n, float* logits,
                 int logits_from, int32_t* greedy, const JobHooks& hooks);

}  // namespace al
