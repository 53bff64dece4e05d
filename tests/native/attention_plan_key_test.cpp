// The decode plan's graph key (AttnPlanner::shape_key) on the CPU device: the same at every step
// of one generation (a captured decode graph is replayed, not captured again) and for stores
// re-encoded of the same kinds; different where a device would shape its launches differently
// (a store of another kind or rank in place of one, with the same counts of rows and parts).
// Exit status 0 when every check holds. Run by tests/native/attention-plan.test.ts.
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/attention_plan.h"
#include "engine/kv_cache.h"
#include "engine/kv_store.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "v_lora_adapter.h"

using namespace al;

namespace {

int failures = 0;
void check(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

}  // namespace

int main() {
  Device& dev = cpu_device();
  const int L = 2, heads = 4, kv = 2, hd = 16, T = 37, own = 8, rank = 4;
  Config c;
  c.num_layers = L;
  c.num_heads = heads;
  c.num_kv_heads = kv;
  c.head_dim = hd;
  c.hidden_size = 64;
  c.dtype = DT::F32;
  Model m;
  m.config = c;
  m.dev = &dev;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto gen = [&](size_t n, float s) {
    std::vector<float> v(n);
    for (float& x : v) x = s * nd(rng);
    return v;
  };
  auto base = std::make_shared<KvCache>(dev, DT::F32, L, kv, hd, T);
  auto exact = std::make_shared<KvCache>(dev, DT::F32, L, kv, hd, T);
  const size_t layer = size_t(kv) * T * hd;
  for (int l = 0; l < L; ++l) {
    std::vector<float> bk = gen(layer, 1.0f), bv = gen(layer, 1.0f), ek = bk, ev = bv;
    const std::vector<float> d = gen(2 * layer, 0.1f);
    for (size_t i = 0; i < layer; ++i) ek[i] += d[i], ev[i] += d[layer + i];
    base->write_layer(l, bk.data(), bv.data(), T);
    exact->write_layer(l, ek.data(), ev.data(), T);
  }
  base->set_length(T);
  exact->set_length(T);
  // An adapter with a v_proj LoRA of rank 4 on both layers (what seed-minikv needs).
  const std::shared_ptr<const Adapter> adapter = v_lora_adapter(dev, DT::F32, L, gen(size_t(kv) * hd * rank, 0.3f), rank, 1);
  auto store = [&](StrategyKind k, int r = 0) {
    StrategySpec s;
    s.kind = k;
    s.rank = r;
    return encode_store(s, *base, *exact, adapter, T);
  };
  // Rows as a decode step has them: exact's own cache, base, and two stores' views.
  auto key_of = [&](const std::vector<std::shared_ptr<const KvStore>>& stores, int step) {
    std::vector<std::shared_ptr<KvCache>> views;
    views.push_back(KvCache::view(exact, nullptr, T, T + own));
    views.push_back(KvCache::view(base, nullptr, T, T + own));
    for (const auto& s : stores) views.push_back(KvCache::view(base, s, T, T + own));
    std::vector<Row> rows;
    for (auto& v : views) {
      v->set_length(T + step);
      rows.push_back(Row{v.get(), T + step, nullptr, false});
    }
    AttnPlanner planner;
    planner.build(m, rows.data(), static_cast<int>(rows.size()), true, size_t(1) << 24);
    TableUpload up;
    planner.add_to(up);
    std::vector<uint64_t> key;
    planner.shape_key(key);
    return key;
  };
  const auto seed = store(StrategyKind::SeedMiniKv), int8 = store(StrategyKind::DeltaInt8);
  const auto k0 = key_of({seed, int8}, 0);
  check(k0 == key_of({seed, int8}, 1), "a decode step later, the same key");
  check(k0 == key_of({seed, int8}, 5), "five steps later, the same key");
  check(k0 == key_of({store(StrategyKind::SeedMiniKv), store(StrategyKind::DeltaInt8)}, 0),
        "stores of the same kinds encoded again, the same key (the tables carry their data)");
  // lowrank:4 in place of seed-minikv (rank 4 too): the same counts of rows, parts and
  // corrections and the same partial stride, but ΔK factors the kernel must stage.
  check(k0 != key_of({store(StrategyKind::LowRank, rank), int8}, 0), "lowrank:4 in place of seed-minikv: another key");
  check(k0 != key_of({seed, seed}, 0), "a second seed-minikv row in place of int8: another key");
  std::printf("attention plan keys: %d failures\n", failures);
  return failures == 0 ? 0 : 1;
}
