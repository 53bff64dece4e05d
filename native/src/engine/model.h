// The Llama-family decoder (Llama, Mistral, Qwen2): weights on a device, and forward(), the
// one flat pass both devices run (every step a named op of device.h).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "engine/config.h"
#include "engine/device.h"
#include "engine/job.h"
#include "engine/kv_cache.h"
#include "engine/lora.h"
#include "engine/weights.h"

namespace al {

// One decoder layer's weights, T on the model's device.
struct LayerWeights {
  Buffer input_norm;  // [H]                                input_layernorm.weight
  // q_proj, k_proj, v_proj stacked on the output dimension: [q_dim + 2·kv_dim, H]; a decode
  // batch may run them as one product (Device::prefers_stacked), a prefill as three.
  Buffer qkv;
  Buffer qkv_bias;    // [q_dim + 2·kv_dim] (attention_bias only)
  Buffer wo;          // [H, q_dim]
  Buffer post_norm;   // [H]                                post_attention_layernorm.weight
  Buffer gate_up;     // gate_proj, up_proj stacked: [2·I, H]
  Buffer down;        // [H, I]
};

struct Weights {
  Buffer embed;                      // [vocab, H]  model.embed_tokens.weight
  std::vector<LayerWeights> layers;  // [num_layers]
  Buffer final_norm;                 // [H]         model.norm.weight
  Buffer lm_head;                    // [vocab, H]  empty when tie_word_embeddings
  Buffer inv_freq;                   // fp32 [head_dim / 2] RoPE inverse frequencies, scaling applied

  const Buffer& output() const { return lm_head ? lm_head : embed; }
};

// Activations and per-row tables of one forward pass, kept on the model between passes
// (device allocation is slow, and a captured decode graph needs the same addresses every
// step). Used under the device lock.
struct RunState {
  Buffer x, xn, xb;       // T [rows, H]     residual stream, normed input, sub-layer output
  Buffer q, k, v, att;    // T [rows, q_dim] / [rows, kv_dim]
  Buffer qkv, gate_up;    // T stacked products before the split
  Buffer gate, up;        // T [rows, I]
  Buffer lora;            // fp32 [3, rows, max_rank]
  Buffer partials;        // fp32 attention partial states
  Buffer logits;          // fp32 [rows_out, vocab]
  Buffer tables;          // every per-row table of a pass, uploaded as one blob
  Buffer outs;            // sampled tokens, probabilities, scores, argmaxes
  Buffer rebuilt;         // T one layer's K and V per pca store the pass reads (AttnPlanner::bind)
  Buffer rebuild_f32;     // fp32 the rebuild's scratch
};

struct Model {
  uint64_t id = 0;  // unique per load; adapters remember which model they belong to
  Config config;
  Device* dev = nullptr;
  Weights weights;
  std::vector<float> inv_freq;  // host copy of weights.inv_freq
  size_t bytes = 0;             // weight bytes held on the device
  mutable RunState scratch;     // under dev->lock()
};

// Throws std::invalid_argument naming the first inconsistent field.
void validate_config(const Config& c);

// HF's inv_freq in fp32, with default / linear / llama3 scaling.
std::vector<float> rope_inv_freq(const Config& c);

// Maps the checkpoint's tensors, checks every name and shape the config implies and loads
// them onto `dev` in config.dtype. Tensors the model does not use are ignored. Progress in bytes.
std::shared_ptr<Model> load_model(Device& dev, const Config& c, const std::vector<TensorRef>& tensors,
                                  const JobHooks& hooks);

// A zero-filled plain KV cache for `m` on its device.
std::shared_ptr<KvCache> new_cache(const Model& m, int capacity);

// One token of a forward pass: the sequence (cache) it belongs to, its position there and
// the adapter it runs through (null: base model).
struct Row {
  KvCache* cache;
  int pos;
  const Adapter* adapter;
  // Also write u = s·A_v·x of every layer whose v_proj the adapter adapts into the cache's
  // LoRA-V capture at `pos` (prefill with captureLoraV).
  bool capture_lora_v = false;
};

// What a pass produces from the logits of rows [logits_from, n), all optional. Logits stay
// on the device unless `logits` asks for them; greedy tokens, samples and scores are
// computed there and only they come back.
struct ForwardOutputs {
  int logits_from = 0;
  float* logits = nullptr;           // host [n - logits_from, vocab]
  int32_t* greedy = nullptr;         // host [n - logits_from]: argmax
  const SampleRow* sample = nullptr; // [n - logits_from]: sample instead (tokens → `tokens`, probabilities → `probs`)
  int32_t* tokens = nullptr;
  float* probs = nullptr;            // softmax(logits)[token] at temperature 1
  const ScoreRow* score = nullptr;   // [n - logits_from]: rows' references are indices into that range
  ScoreOut* scores = nullptr;
};

// Runs n token rows through the model and writes their K/V into their caches at their
// positions. Rows of one sequence must be consecutive positions in order, and each row's
// cache must already hold every position before it (in the cache or earlier in this
// batch). Cache lengths are left to the caller, so a failed or cancelled pass changes
// nothing a reader can see. Checks hooks between layers.
void forward(const Model& m, const int32_t* tokens, const Row* rows, int n, const ForwardOutputs& out,
             const JobHooks& hooks);

}  // namespace al
