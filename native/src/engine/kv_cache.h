// A KV cache for one sequence: per layer K (after RoPE) and V, each
// [num_kv_heads, capacity, head_dim] fp32, plus how many positions each layer holds.
#pragma once

#include <atomic>
#include <memory>
#include <vector>

namespace al {

class KvCache {
 public:
  // Allocates (and zero-fills, so `bytes` is memory really committed) the whole capacity.
  KvCache(int num_layers, int num_kv_heads, int head_dim, int capacity);

  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int capacity() const { return capacity_; }
  size_t bytes() const { return (k_.size() + v_.size()) * sizeof(float); }

  // Positions every layer holds. Layers differ only while a caller is part-way through
  // writeLayer over all layers.
  int length() const;
  int layer_length(int layer) const { return lengths_.at(layer); }
  // The common length of all layers; throws when they differ (the model needs all).
  int uniform_length() const;
  void set_length(int length);

  float* k(int layer) { return k_.data() + layer_stride() * layer; }  // [num_kv_heads, capacity, head_dim]
  float* v(int layer) { return v_.data() + layer_stride() * layer; }

  // Copies of one layer, [num_kv_heads, layer_length, head_dim] each.
  void read_layer(int layer, float* k_out, float* v_out) const;
  // Replaces positions [0, tokens) of one layer from [num_kv_heads, tokens, head_dim]
  // arrays; that layer then holds `tokens` positions.
  void write_layer(int layer, const float* k_in, const float* v_in, int tokens);
  // A deep copy with its own capacity (>= every layer's length).
  std::unique_ptr<KvCache> fork(int capacity) const;
  // Forgets positions >= length in every layer.
  void truncate(int length);

  // A running job holds the cache exclusively; the addon refuses other uses meanwhile.
  bool try_acquire() { return !busy_.exchange(true); }
  void release() { busy_.store(false); }
  bool busy() const { return busy_.load(); }

 private:
  size_t layer_stride() const { return static_cast<size_t>(num_kv_heads_) * capacity_ * head_dim_; }
  void check_layer(int layer) const;

  int num_layers_, num_kv_heads_, head_dim_, capacity_;
  std::vector<int> lengths_;  // [num_layers]
  std::vector<float> k_, v_;  // [num_layers, num_kv_heads, capacity, head_dim]
  std::atomic<bool> busy_{false};
};

}  // namespace al
