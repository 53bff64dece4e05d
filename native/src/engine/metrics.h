// Error sums of a rebuilt cache (or a view: base + store, rebuilt one layer at a time) against
// the exact one, and seed-minikv's outsideSpan diagnostic (DESIGN.md, "Metrics"), reduced on
// the cache's device; only the sums come back. Everything accumulates in double.
#pragma once

#include <vector>

#include "engine/kv_cache.h"
#include "engine/lora.h"

namespace al {

// Σ(rebuilt − exact)² and Σexact² for K and V, per (layer, kv head) and per (layer, token
// bin) of `token_bin` consecutive positions, over positions [0, tokens).
struct ErrorSums {
  int num_layers = 0, num_kv_heads = 0, tokens = 0, token_bin = 1;
  std::vector<double> k_diff_head, k_norm_head, v_diff_head, v_norm_head;  // [num_layers, num_kv_heads]
  std::vector<double> k_diff_bin, k_norm_bin, v_diff_bin, v_norm_bin;      // [num_layers, ceil(tokens / token_bin)]
};

ErrorSums compare_caches(const KvCache& rebuilt, const KvCache& exact, int tokens, int token_bin);

// Per layer ‖(I − B Bᐩ) ΔV‖² / ‖ΔV‖² with ΔV = V_exact − V_base over positions [0, tokens)
// and B = the adapter's B_v; NaN where v_proj is not adapted (and 0/0 = NaN where ΔV = 0,
// as torch computes it).
std::vector<double> outside_span(const KvCache& base, const KvCache& exact, const Adapter& adapter, int tokens);

}  // namespace al
