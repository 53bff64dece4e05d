// Model hyper-parameters. The TS side resolves config.json (both rope_theta and
// rope_parameters forms) into this; nothing here is hard-coded per model family.
#pragma once

namespace al {

enum class RopeScalingType { Default, Linear, Llama3 };

// The dtype the engine computes in: weights, activations and KV caches (RMSNorm, softmax and
// every GEMM accumulate in fp32 whatever it is). The CPU engine computes in F32 only; the
// CUDA engine in any of the three.
enum class ComputeType { F32, BF16, F16 };

inline const char* compute_type_name(ComputeType t) {
  return t == ComputeType::F32 ? "fp32" : t == ComputeType::BF16 ? "bf16" : "fp16";
}

struct RopeScaling {
  RopeScalingType type = RopeScalingType::Default;
  // Kept in double: HF computes the llama3 wavelength bounds in Python floats.
  double factor = 1.0;
  double low_freq_factor = 1.0;                     // llama3 only
  double high_freq_factor = 4.0;                    // llama3 only
  double original_max_position_embeddings = 8192;   // llama3 only
};

struct Config {
  int vocab_size = 0;
  int hidden_size = 0;         // H
  int intermediate_size = 0;   // I (MLP width)
  int num_layers = 0;
  int num_heads = 0;           // query heads
  int num_kv_heads = 0;        // key/value heads (GQA: divides num_heads)
  int head_dim = 0;            // may differ from hidden_size / num_heads
  float rms_norm_eps = 1e-6f;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  int max_position_embeddings = 0;
  bool tie_word_embeddings = false;  // lm_head reuses embed_tokens
  bool attention_bias = false;       // q/k/v projections carry biases (Qwen2)
  ComputeType dtype = ComputeType::F32;  // not a checkpoint property: chosen per load (--dtype)

  int q_dim() const { return num_heads * head_dim; }
  int kv_dim() const { return num_kv_heads * head_dim; }
};

}  // namespace al
