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

enum class StrategyKind { Base, SeedMiniKv, LrAgent, DeltaInt8, DeltaInt4, LowRank, Hybrid, Pca };

struct StrategySpec {
  StrategyKind kind = StrategyKind::Base;
  int rank = 0;                   // lowrank: k (clamped to min(T, D) when encoding)
  std::vector<int> exact_layers;  // hybrid: layers kept exactly (distinct, in range)
  // pca: the budget in bits per cached value (every K and V value of the coded parts, all
  // that the store holds counted), the per-part weights (part 2·layer + 0 for K, 1 for V:
  // measured KL per unit of squared error; empty: all 1), parts kept exactly (the fit's
  // probes; outside the budget) and the model's RoPE inverse frequencies (ΔK is coded before
  // RoPE), fp32 [head_dim / 2].
  double bits_per_value = 0.0;
  std::vector<double> weights;
  std::vector<int> exact_parts;
  std::vector<float> inv_freq;
};

// One part of the pca strategy (a layer's ΔK taken before RoPE, or its ΔV), [T, D], in a
// principal basis of its own: Δ ≈ C · Bᵀ with B [D, k] the top eigenvectors of ΔᵀΔ (8-bit
// codes per column) and C = Δ·B [T, k], column j quantized to bits[j] (device.h,
// quantize_columns). Which components are kept and with how many bits is one greedy
// allocation over every part of the store (kv_store.cpp, allocate_bits).
struct PcaPart {
  int k = 0;          // components kept
  int row_bytes = 0;  // packed bytes per token of C
  Buffer coef;        // [T, row_bytes]
  Buffer basis;       // [D, k] codes
  // Per column, on the device: C's bits u8[kp], B's bits u8[kp] (all 8), C's and B's bit
  // offsets i32[k] each, C's and B's steps f32[k] each; kp = k rounded up to 4.
  Buffer meta;
  std::vector<int> bits_host;  // C's bits per column, for reports
  int kp() const { return (k + 3) / 4 * 4; }
  const uint8_t* coef_bits() const { return meta.as<uint8_t>(); }
  const uint8_t* basis_bits() const { return meta.as<uint8_t>() + kp(); }
  const int* coef_offs() const { return reinterpret_cast<const int*>(meta.as<uint8_t>() + 2 * kp()); }
  const int* basis_offs() const { return coef_offs() + k; }
  const float* coef_step() const { return reinterpret_cast<const float*>(basis_offs() + k); }
  const float* basis_step() const { return coef_step() + k; }
  size_t bytes() const { return coef.bytes() + basis.bytes() + meta.bytes(); }
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
  // pca: each of K and V either coded (pk / pv, or nothing: the base's), or kept exactly in
  // k / v (exact_k / exact_v, the fit's probes).
  std::optional<PcaPart> pk, pv;
  bool exact_k = false, exact_v = false;
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
  // pca: positions 0..T−1 (int32) and the RoPE inverse frequencies (fp32 [head_dim / 2]) the
  // rebuild re-applies RoPE with; the most components of a part (the rebuild's scratch).
  Buffer positions, inv_freq;
  int max_k = 0;
};

// lowrank's encode holds up to this many bytes of fp32 Δ rows at once (at least one layer's
// ΔK or ΔV, at most all 2L of them), so that its SVDs run as one batch: the memory estimate
// counts the same (main/cache/memory-estimate.ts, LOWRANK_BATCH_BYTES).
constexpr size_t kLowRankBatchBytes = size_t(512) << 20;

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

// Whether attention reads the store through a correction (store_correction) or from a
// rebuilt layer: a pca store is coded in a basis of its own with K before RoPE, which no
// correction can apply per key cheaply, so a pass rebuilds each layer it attends over into
// scratch (decode_store_layer) just before that layer's attention (AttnPlanner, expansions).
bool store_rebuilds_layers(const KvStore& store);
// Bytes of the `scratch` decode_store_layer grows to for `tokens` positions of this store.
size_t decode_scratch_bytes(const KvStore& store, int tokens);

// What attention adds to the base span at `layer` (an empty correction where the layer
// stores nothing); not for hybrid's exact layers (they are spans of their own) nor for stores
// that rebuild layers.
AttnCorrection store_correction(const KvStore& store, int layer);
bool correction_empty(const AttnCorrection& c);

}  // namespace al
