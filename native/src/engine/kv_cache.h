// A KV cache for one sequence: per layer K (after RoPE) and V, each
// [num_kv_heads, capacity, head_dim] fp32, plus how many positions each layer holds.
// Optionally it also keeps, per layer, the adapter's own low-rank V input u = s·A_v·x of
// every position (what the `lragent` strategy stores), captured during prefill.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace al {

namespace gpu {
struct DeviceKv;
}

// The adapter's own low-rank V input of each cached position, u = s·A_v·x with x the
// v_proj input (the layer's normed hidden state in the adapter's forward).
struct LoraVCapture {
  uint64_t adapter_id = 0;             // which adapter's forward produced it
  std::vector<int> ranks;              // [num_layers] r_v per layer; 0 where v_proj is not adapted
  std::vector<std::vector<float>> u;   // [num_layers][capacity, rank]
  int length = 0;                      // positions [0, length) hold u (<= the cache's length)

  size_t bytes() const;
};

class KvCache {
 public:
  // Allocates (and zero-fills, so `bytes` is memory really committed) the whole capacity.
  KvCache(int num_layers, int num_kv_heads, int head_dim, int capacity);
  // A cache whose K/V live on the GPU (CUDA build): host k()/v() are then unavailable and
  // read_layer / write_layer / fork copy to and from the device.
  KvCache(int num_layers, int num_kv_heads, int head_dim, int capacity, std::shared_ptr<gpu::DeviceKv> dev);

  bool on_device() const { return dev_ != nullptr; }
  gpu::DeviceKv* dev() const { return dev_.get(); }

  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int capacity() const { return capacity_; }
  size_t bytes() const {
    return (dev_ ? dev_bytes_ : (k_.size() + v_.size()) * sizeof(float)) + (lora_v_ ? lora_v_->bytes() : 0);
  }

  // Positions every layer holds. Layers differ only while a caller is part-way through
  // writeLayer over all layers.
  int length() const;
  int layer_length(int layer) const { return lengths_.at(layer); }
  // The common length of all layers; throws when they differ (the model needs all).
  int uniform_length() const;
  void set_length(int length);

  // Host K/V of one layer, [num_kv_heads, capacity, head_dim]. Host caches only.
  float* k(int layer) { return host_check(), k_.data() + layer_stride() * layer; }
  float* v(int layer) { return host_check(), v_.data() + layer_stride() * layer; }
  const float* k(int layer) const { return host_check(), k_.data() + layer_stride() * layer; }
  const float* v(int layer) const { return host_check(), v_.data() + layer_stride() * layer; }

  // Copies of one layer, [num_kv_heads, layer_length, head_dim] each.
  void read_layer(int layer, float* k_out, float* v_out) const;
  // Replaces positions [0, tokens) of one layer from [num_kv_heads, tokens, head_dim]
  // arrays; that layer then holds `tokens` positions. A LoRA-V capture is left as is.
  void write_layer(int layer, const float* k_in, const float* v_in, int tokens);
  // A deep copy (LoRA-V capture included) with its own capacity (>= every layer's length).
  std::unique_ptr<KvCache> fork(int capacity) const;
  // Forgets positions >= length in every layer (and in the LoRA-V capture).
  void truncate(int length);

  // LoRA-V capture. begin_lora_v_capture replaces any capture with an empty one for
  // `adapter_id` (allocated for the whole capacity); prefill then writes u at each
  // row's position and commits the length with set_lora_v_length.
  const LoraVCapture* lora_v() const { return lora_v_.get(); }
  void begin_lora_v_capture(uint64_t adapter_id, const std::vector<int>& ranks);
  float* lora_v(int layer) { return lora_v_->u[layer].data(); }  // [capacity, rank]
  void set_lora_v_length(int length) { lora_v_->length = length; }

  // A running job holds the cache: a writer (prefill, decode) exclusively, readers
  // (encodeStore, compareCaches, ...) shared. The addon refuses conflicting uses.
  bool try_acquire();         // exclusive
  bool try_acquire_shared();  // shared
  void release();             // either kind
  bool busy() const { return state_.load() != 0; }
  bool written() const { return state_.load() < 0; }  // held by a writer

 private:
  size_t layer_stride() const { return static_cast<size_t>(num_kv_heads_) * capacity_ * head_dim_; }
  void check_layer(int layer) const;
  void host_check() const {
    if (dev_) throw std::logic_error("host K/V pointer of a device KV cache (engine bug: copy it to the host first)");
  }

  int num_layers_, num_kv_heads_, head_dim_, capacity_;
  std::vector<int> lengths_;  // [num_layers]
  std::vector<float> k_, v_;  // [num_layers, num_kv_heads, capacity, head_dim]
  std::unique_ptr<LoraVCapture> lora_v_;  // null: nothing captured
  std::shared_ptr<gpu::DeviceKv> dev_;    // non-null: K/V on the GPU (k_, v_ empty)
  size_t dev_bytes_ = 0;
  std::atomic<int> state_{0};  // 0 idle, -1 one writer, n > 0 readers
};

}  // namespace al
