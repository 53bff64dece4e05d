// A KV cache for one sequence, on a device: per layer K (after RoPE) and V, each
// [num_kv_heads, slots, head_dim] of the compute dtype, plus how many positions each layer
// holds.
//
// A cache is either plain (its own storage holds positions [0, capacity)) or a view: its
// first `prefix_length` positions are read from a plain prefix cache (a document's base or
// exact cache) through an optional strategy store's correction, never copied, and its own
// storage holds only positions [prefix_length, capacity) (the prompt and generated tokens).
// Views are how every (adapter, strategy) sequence of a comparison generates from one shared
// base cache plus its compact store (DESIGN.md's data flow).
//
// Optionally a plain cache also keeps, per layer, the adapter's own low-rank V input
// u = s·A_v·x of every position (what the `lragent` strategy stores), captured during prefill.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include "engine/device.h"

namespace al {

struct KvStore;

// The adapter's own low-rank V input of each cached position, u = s·A_v·x with x the v_proj
// input (the layer's normed hidden state in the adapter's forward), fp32 on the device.
struct LoraVCapture {
  uint64_t adapter_id = 0;  // which adapter's forward produced it
  std::vector<int> ranks;   // [num_layers] r_v per layer; 0 where v_proj is not adapted
  std::vector<Buffer> u;    // [num_layers] fp32 [capacity, rank]
  int length = 0;           // positions [0, length) hold u (<= the cache's length)

  size_t bytes() const;
};

class KvCache {
 public:
  // A plain cache with room for `capacity` positions, zero-filled (so `bytes` is memory
  // really committed).
  KvCache(Device& dev, DT dt, int num_layers, int num_kv_heads, int head_dim, int capacity);
  // A view of positions [0, prefix_length) of `prefix` (plain, holding them in every layer)
  // corrected by `store` (null: as they are), with own room up to `capacity` positions.
  static std::shared_ptr<KvCache> view(std::shared_ptr<KvCache> prefix, std::shared_ptr<const KvStore> store,
                                       int prefix_length, int capacity);
  ~KvCache();
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  Device& device() const { return *dev_; }
  DT dtype() const { return dt_; }
  int num_layers() const { return num_layers_; }
  int num_kv_heads() const { return num_kv_heads_; }
  int head_dim() const { return head_dim_; }
  int capacity() const { return own_begin_ + own_capacity_; }
  size_t bytes() const;  // own storage and capture; a view's prefix is not counted

  // ---- views ----
  bool is_view() const { return prefix_ != nullptr; }
  const KvCache* prefix() const { return prefix_.get(); }
  const std::shared_ptr<KvCache>& prefix_ptr() const { return prefix_; }
  const KvStore* store() const { return store_.get(); }
  const std::shared_ptr<const KvStore>& store_ptr() const { return store_; }
  int prefix_length() const { return own_begin_; }
  // Views reading this cache's positions: it cannot be truncated or rewritten below the
  // longest of them meanwhile.
  int pinned_length() const { return pinned_.load(); }

  // ---- own storage: positions [own_begin, own_begin + own_capacity) ----
  int own_begin() const { return own_begin_; }
  int own_capacity() const { return own_capacity_; }
  int64_t layer_stride() const { return static_cast<int64_t>(num_kv_heads_) * own_capacity_ * head_dim_; }  // elements
  void* own_k(int layer) const { return k_.at(static_cast<size_t>(layer_stride()) * layer, dt_size(dt_)); }
  void* own_v(int layer) const { return v_.at(static_cast<size_t>(layer_stride()) * layer, dt_size(dt_)); }

  // Positions every layer holds. Layers differ only while a caller is part-way through
  // writeLayer over all layers.
  int length() const;
  int layer_length(int layer) const { return lengths_.at(layer); }
  // The common length of all layers; throws when they differ (the model needs all).
  int uniform_length() const;
  void set_length(int length);

  // Host fp32 copies of one layer's positions [0, layer_length), [num_kv_heads, len, head_dim]
  // each (a view's prefix rebuilt from its store). A download: what a user asked to see.
  void read_layer(int layer, float* k_out, float* v_out) const;
  // Replaces positions [0, tokens) of one layer (plain caches) from host [num_kv_heads,
  // tokens, head_dim] arrays; that layer then holds `tokens` positions.
  void write_layer(int layer, const float* k_in, const float* v_in, int tokens);
  // A deep copy of the own storage (a view keeps sharing its prefix) with its own capacity
  // (>= every layer's length).
  std::shared_ptr<KvCache> fork(int capacity) const;
  // Forgets positions >= length (a view: length >= its prefix length).
  void truncate(int length);

  // ---- LoRA-V capture (plain caches) ----
  const LoraVCapture* lora_v() const { return lora_v_.get(); }
  // Replaces any capture with an empty one for `adapter_id` (allocated for the capacity).
  void begin_lora_v_capture(uint64_t adapter_id, const std::vector<int>& ranks);
  // Where u of (layer, pos) goes: fp32 [rank] on the device.
  float* lora_v_row(int layer, int pos) const;
  void set_lora_v_length(int length) { lora_v_->length = length; }

  // ---- leases: a running job holds the cache ----
  // A writer (prefill, decode) exclusively, readers (encodeStore, compareCaches, ...) shared.
  bool try_acquire();         // exclusive
  bool try_acquire_shared();  // shared
  void release();             // either kind
  bool busy() const { return state_.load() != 0; }
  bool written() const { return state_.load() < 0; }  // held by a writer

 private:
  void check_layer(int layer) const;

  Device* dev_;
  DT dt_;
  int num_layers_, num_kv_heads_, head_dim_;
  int own_begin_ = 0, own_capacity_ = 0;
  std::vector<int> lengths_;  // [num_layers], positions held (prefix included)
  Buffer k_, v_;              // [num_layers][num_kv_heads, own_capacity, head_dim]
  std::unique_ptr<LoraVCapture> lora_v_;
  std::shared_ptr<KvCache> prefix_;
  std::shared_ptr<const KvStore> store_;
  std::atomic<int> pinned_{0};  // the longest prefix length any live view reads (0: none)
  std::atomic<int> views_{0};
  std::atomic<int> state_{0};   // 0 idle, -1 one writer, n > 0 readers
};

// Rebuilds positions [0, tokens) of `layer` of any cache (a view's prefix through its store)
// into dk/dv [num_kv_heads, dst_capacity, head_dim] of the cache's dtype on its device.
// `scratch` is grown as needed.
void materialize_layer(const KvCache& c, int layer, int tokens, void* dk, void* dv, int dst_capacity, Buffer& scratch);

}  // namespace al
