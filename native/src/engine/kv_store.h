// KV strategies (DESIGN.md, "KV strategies"): how one adapter's exact cache is encoded
// against the shared base cache (same document tokens) into a compact store, and how a
// full cache is rebuilt from base + store. The base cache is never part of a store.
//
// Matrices: per layer, K or V of T tokens viewed as [T, D] with D = num_kv_heads·head_dim
// and column h·head_dim + d, so a column lines up with the output feature of k_proj /
// v_proj (what B_v's rows index). ΔK = K_exact − K_base and ΔV likewise, in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/backend.h"
#include "engine/kv_cache.h"
#include "engine/lora.h"
#include "engine/tensor.h"

namespace al {

namespace gpu {
struct DeviceStore;
}

enum class StrategyKind { Base, SeedMiniKv, LrAgent, DeltaInt8, DeltaInt4, LowRank, Hybrid };

struct StrategySpec {
  StrategyKind kind = StrategyKind::Base;
  int rank = 0;                  // lowrank: k (clamped to min(T, D) when encoding)
  std::vector<int> exact_layers; // hybrid: layers kept exactly (distinct, in range)
};

// A low-rank delta coef · basisᵀ added to one [T, D] tensor.
struct LowRankTerm {
  int k = 0;
  std::vector<float> coef;              // [T, k]
  std::shared_ptr<const Tensor> basis;  // [D, k]: the adapter's B_v (shared, not counted) or own factors
};

// A delta quantized symmetrically with one fp32 scale per (token, kv head):
// scale = max|Δ| / qmax (127 or 7), q = clamp(nearbyint(Δ / scale), ±qmax).
struct QuantizedDelta {
  int bits = 8;                // 8 or 4 (two values per byte, low nibble first)
  int row_bytes = 0;           // bytes per (kv head, token) row: head_dim or ceil(head_dim / 2)
  std::vector<uint8_t> q;      // [num_kv_heads, T, row_bytes]
  std::vector<float> scale;    // [num_kv_heads, T]
};

struct LayerStore {
  bool exact = false;              // hybrid's exact layers: k and v hold the exact tensors
  std::vector<float> k, v;         // [num_kv_heads, T, head_dim] when exact
  std::optional<LowRankTerm> dk, dv;
  std::optional<QuantizedDelta> qk, qv;
};

struct KvStore {
  StrategyKind kind = StrategyKind::Base;
  int num_layers = 0, num_kv_heads = 0, head_dim = 0;
  int tokens = 0;  // T
  size_t bytes = 0;  // what the store itself holds (not the adapter's B_v it refers to)
  std::shared_ptr<const Adapter> adapter;  // keeps B_v alive whatever the disposal order
  std::vector<LayerStore> layers;          // [num_layers]
  // CUDA build: a store encoded on the GPU keeps its payload there (then `layers` is empty).
  std::shared_ptr<gpu::DeviceStore> gpu;
};

// Encodes `exact` against `base` (both holding exactly `tokens` positions in every layer)
// for `adapter`. Throws std::runtime_error with a readable message when the strategy's
// inputs are missing (lragent without a LoRA-V capture from this adapter).
std::shared_ptr<KvStore> encode_store(const Backend& be, const StrategySpec& spec, const KvCache& base,
                                      const KvCache& exact, std::shared_ptr<const Adapter> adapter, int tokens);

// Writes base + store into `out` (positions [0, T) of every layer) and sets its length
// to T. `base` must hold at least T positions; `out` must have capacity >= T.
void decode_store(const Backend& be, const KvStore& store, const KvCache& base, KvCache& out);

}  // namespace al
