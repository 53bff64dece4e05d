// The rules the tensor-core attention_parts kernel relies on (engine/attention_tiles.h), on
// random layer plans: every query of every span in exactly one tile; a tile's queries all apply
// one correction; 1..kAttnTileQueries queries a tile; tiles in class order, stable within a
// class; and, where a store's parts are consecutive (as the planner orders them), the fewest
// tiles. Exit status 0 when every plan passes. Run by tests/native/attention-plan.test.ts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "engine/attention_tiles.h"

using namespace al;

namespace {

int failures = 0;
void fail(const std::string& what, int plan) {
  if (failures++ < 10) std::printf("plan %d: %s\n", plan, what.c_str());
}

// Distinct fake addresses for the stores' data: only their identity matters to the tiles.
const uint8_t* fake_u8(int i) { return reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(0x1000 + 0x100 * i)); }
const float* fake_f32(int i) { return reinterpret_cast<const float*>(static_cast<uintptr_t>(0x100000 + 0x100 * i)); }

}  // namespace

int main() {
  std::mt19937 rng(20261201);
  int plans = 0;
  for (int plan = 0; plan < 2000; ++plan) {
    const int group = std::vector<int>{1, 2, 4, 8}[rng() % 4];
    const int stores = 1 + static_cast<int>(rng() % 6);
    // Store kinds: 0 quantized (qk, qv), 1 low-rank ΔV only (seed-minikv, lragent), 2 low-rank
    // ΔK and ΔV (lowrank); one correction entry per part, as the planner makes them.
    std::vector<int> kind(stores);
    for (int& k : kind) k = static_cast<int>(rng() % 3);
    auto correction_of = [&](int st) {
      AttnCorrection c;
      if (kind[st] == 0) {
        c.qk = fake_u8(2 * st);
        c.qv = fake_u8(2 * st + 1);
        c.bits = 8;
      } else {
        c.cv = fake_f32(2 * st);
        c.rv = 8;
        if (kind[st] == 2) {
          c.ck = fake_f32(2 * st + 1);
          c.rk = 8;
        }
      }
      return c;
    };
    const bool consecutive = plan % 2 == 0;  // the planner's order, or parts interleaved
    const int spans = 1 + static_cast<int>(rng() % 4);
    std::vector<AttnPart> parts;
    std::vector<AttnCorrection> corrs;
    std::vector<int> span_parts{0}, part_store;
    for (int s = 0; s < spans; ++s) {
      const int n = 1 + static_cast<int>(rng() % 40);
      std::vector<int> st(n);
      for (int& x : st) x = static_cast<int>(rng() % (stores + 1)) - 1;  // −1: no correction
      if (consecutive) std::sort(st.begin(), st.end());
      for (int i = 0; i < n; ++i) {
        int corr = -1;
        if (st[i] >= 0) {
          corr = static_cast<int>(corrs.size());
          corrs.push_back(correction_of(st[i]));
        }
        parts.push_back(AttnPart{static_cast<int>(parts.size()), s, 100, corr, 0});
        part_store.push_back(st[i]);
      }
      span_parts.push_back(static_cast<int>(parts.size()));
    }
    const std::vector<AttnTile> tiles = attn_tiles(parts, span_parts, corrs, group);
    ++plans;

    std::vector<int> covered(parts.size() * group, 0);
    int last_class = -1, expected = 0;
    std::vector<std::pair<int, int>> order_in_class[3];
    for (const AttnTile& t : tiles) {
      if (t.span < 0 || t.span >= spans || t.nrows < 1 || t.nrows > kAttnTileQueries) {
        fail("a tile out of bounds", plan);
        continue;
      }
      const int p0 = span_parts[t.span], queries = (span_parts[t.span + 1] - p0) * group;
      if (t.q0 < 0 || t.q0 + t.nrows > queries) {
        fail("a tile past its span's queries", plan);
        continue;
      }
      const int store = part_store[p0 + t.q0 / group];
      for (int i = 0; i < t.nrows; ++i) {
        const int p = p0 + (t.q0 + i) / group;
        covered[static_cast<size_t>(p) * group + (t.q0 + i) % group]++;
        if (part_store[p] != store) fail("a tile mixes two corrections", plan);
      }
      const int cls = attn_tile_class(store >= 0 ? &corrs[parts[p0 + t.q0 / group].corr] : nullptr);
      if (cls < last_class) fail("tiles out of class order", plan);
      last_class = cls;
      order_in_class[cls].push_back({t.span, t.q0});
    }
    for (size_t i = 0; i < covered.size(); ++i) {
      if (covered[i] != 1) fail("query " + std::to_string(i) + " in " + std::to_string(covered[i]) + " tiles", plan);
    }
    for (const auto& o : order_in_class) {
      for (size_t i = 1; i < o.size(); ++i)
        if (o[i] < o[i - 1]) fail("tiles of one class out of span order", plan);
    }
    if (consecutive) {
      for (int s = 0; s < spans; ++s) {
        for (int a = span_parts[s]; a < span_parts[s + 1];) {
          int b = a;
          while (b < span_parts[s + 1] && part_store[b] == part_store[a]) ++b;
          expected += ((b - a) * group + kAttnTileQueries - 1) / kAttnTileQueries;
          a = b;
        }
      }
      if (static_cast<int>(tiles.size()) != expected) {
        fail(std::to_string(tiles.size()) + " tiles where " + std::to_string(expected) + " suffice", plan);
      }
    }
  }
  std::printf("attention tiles: %d random plans, %d failures\n", plans, failures);
  return failures == 0 ? 0 : 1;
}
