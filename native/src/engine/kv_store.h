// KV strategies (DESIGN.md, "KV strategies"): how one adapter's exact cache is encoded
// against the shared base cache (same document tokens) into a compact store on the device,
// and how attention reads base + store without rebuilding a cache (the store's
// AttnCorrection per layer). The base cache is never part of a store.
//
// Matrices: per layer, K or V of T tokens viewed as [T, D] with D = num_kv_heads·head_dim
// and column h·head_dim + d, so a column lines up with the output feature of k_proj /
// v_proj (what B_v's rows index). ΔK = K_exact − K_base and ΔV likewise, in fp32.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/lora.h"

namespace al {

enum class StrategyKind { Base, SeedMiniKv, LrAgent, DeltaInt8, DeltaInt4, LowRank, Hybrid };

struct StrategySpec {
  StrategyKind kind = StrategyKind::Base;
  int rank = 0;                   // lowrank: k (clamped to min(T, D) when encoding)
  std::vector<int> exact_layers;  // hybrid: layers kept exactly (distinct, in range)
};

// A low-rank delta coef · basisᵀ added to one [T, D] tensor, fp32 on the device.
struct LowRankTerm {
  int k = 0;
  Buffer coef;                  // [T, k]
  Buffer own_basis;             // [D, k] when the store owns its basis (lowrank)
  const float* basis = nullptr; // own_basis, or the adapter's B_v (seed-minikv, lragent; not counted)
};

// A delta quantized symmetrically with one fp32 scale per (kv head, token):
// scale = max|Δ| / qmax (127 or 7), q = clamp(round-half-even(Δ / scale), ±qmax).
struct QuantizedDelta {
  int bits = 8;       // 8 or 4 (two values per byte, low nibble first)
  int row_bytes = 0;  // bytes per (kv head, token) row: head_dim or ceil(head_dim / 2)
  Buffer q;           // [num_kv_heads, T, row_bytes]
  Buffer scale;       // fp32 [num_kv_heads, T]
};

struct LayerStore {
  bool exact = false;  // hybrid's exact layers: k and v hold the exact tensors
  Buffer k, v;         // T [num_kv_heads, T, head_dim] when exact
  std::optional<LowRankTerm> dk, dv;
  std::optional<QuantizedDelta> qk, qv;
};

struct KvStore {
  Device* dev = nullptr;
  DT dt = DT::F32;
  StrategyKind kind = StrategyKind::Base;
  int num_layers = 0, num_kv_heads = 0, head_dim = 0;
  int tokens = 0;    // T
  size_t bytes = 0;  // what the store itself holds (not the adapter's B_v it refers to)
  std::shared_ptr<const Adapter> adapter;  // keeps B_v alive whatever the disposal order
  std::vector<LayerStore> layers;          // [num_layers]
};

// Encodes `exact` against `base` (both plain, holding exactly `tokens` positions in every
// layer) for `adapter`. Throws std::runtime_error with a readable message when the
// strategy's inputs are missing (lragent without a LoRA-V capture from this adapter).
std::shared_ptr<KvStore> encode_store(const StrategySpec& spec, const KvCache& base, const KvCache& exact,
                                      std::shared_ptr<const Adapter> adapter, int tokens);

// Positions [0, tokens) of `layer` rebuilt (base + store) into dk/dv [num_kv_heads,
// dst_capacity, head_dim]. `scratch` is grown as needed.
void decode_store_layer(const KvStore& store, const KvCache& base, int layer, int tokens, void* dk, void* dv,
                        int dst_capacity, Buffer& scratch);

// Writes base + store into `out` (positions [0, T) of every layer) and sets its length to T:
// the materialized rebuild, kept as the reference the shared-cache decode is tested against.
void decode_store(const KvStore& store, const KvCache& base, KvCache& out);

// What attention adds to the base span at `layer` (an empty correction where the layer
// stores nothing); not for hybrid's exact layers (they are spans of their own).
AttnCorrection store_correction(const KvStore& store, int layer);
bool correction_empty(const AttnCorrection& c);

}  // namespace al
