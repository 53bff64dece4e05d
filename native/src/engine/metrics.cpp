#include "engine/metrics.h"

#include <algorithm>
#include <limits>

namespace al {

namespace {
// A cache layer's K/V addresses for positions [0, tokens): a plain cache's own storage as it
// is, any other cache rebuilt into `k`/`v` scratch first.
struct LayerView {
  const void* k;
  const void* v;
  int capacity;
};

LayerView layer_view(const KvCache& c, int layer, int tokens, Buffer& k, Buffer& v, Buffer& scratch) {
  if (!c.is_view()) return {c.own_k(layer), c.own_v(layer), c.own_capacity()};
  const size_t bytes = static_cast<size_t>(c.num_kv_heads()) * std::max(tokens, 1) * c.head_dim() * dt_size(c.dtype());
  k.ensure(c.device(), bytes, "a rebuilt layer");
  v.ensure(c.device(), bytes, "a rebuilt layer");
  materialize_layer(c, layer, tokens, k.get(), v.get(), tokens, scratch);
  return {k.get(), v.get(), tokens};
}
}  // namespace

ErrorSums compare_caches(const KvCache& rebuilt, const KvCache& exact, int tokens, int token_bin) {
  Device& dev = exact.device();
  const int L = exact.num_layers(), H = exact.num_kv_heads(), T = tokens;
  const int bin = std::max(1, token_bin);
  const int bins = (T + bin - 1) / bin;
  ErrorSums s;
  s.num_layers = L;
  s.num_kv_heads = H;
  s.tokens = T;
  s.token_bin = bin;
  const size_t by_head = static_cast<size_t>(L) * H, by_bin = static_cast<size_t>(L) * bins;
  for (auto* x : {&s.k_diff_head, &s.k_norm_head, &s.v_diff_head, &s.v_norm_head}) x->assign(by_head, 0.0);
  for (auto* x : {&s.k_diff_bin, &s.k_norm_bin, &s.v_diff_bin, &s.v_norm_bin}) x->assign(by_bin, 0.0);
  if (T == 0) return s;

  auto lock = dev.lock();
  // Every layer's sums into one device buffer: [L][H][4] then [L][bins][4]; one download.
  const size_t head_vals = by_head * 4, bin_vals = by_bin * 4;
  Buffer sums(dev, (head_vals + bin_vals) * sizeof(double), "error sums");
  Buffer rk, rv, ek, ev, scratch;
  for (int l = 0; l < L; ++l) {
    const LayerView r = layer_view(rebuilt, l, T, rk, rv, scratch);
    const LayerView e = layer_view(exact, l, T, ek, ev, scratch);
    dev.error_sums(exact.dtype(), sums.as<double>() + static_cast<size_t>(l) * H * 4,
                   sums.as<double>() + head_vals + static_cast<size_t>(l) * bins * 4, r.k, r.v, r.capacity, e.k, e.v,
                   e.capacity, H, exact.head_dim(), T, bin);
  }
  std::vector<double> h(head_vals + bin_vals);
  dev.download(h.data(), sums.get(), h.size() * sizeof(double));
  for (size_t i = 0; i < by_head; ++i) {
    s.k_diff_head[i] = h[i * 4 + 0], s.k_norm_head[i] = h[i * 4 + 1];
    s.v_diff_head[i] = h[i * 4 + 2], s.v_norm_head[i] = h[i * 4 + 3];
  }
  for (size_t i = 0; i < by_bin; ++i) {
    const double* b = h.data() + head_vals + i * 4;
    s.k_diff_bin[i] = b[0], s.k_norm_bin[i] = b[1], s.v_diff_bin[i] = b[2], s.v_norm_bin[i] = b[3];
  }
  return s;
}

std::vector<double> outside_span(const KvCache& base, const KvCache& exact, const Adapter& adapter, int tokens) {
  Device& dev = exact.device();
  const int L = exact.num_layers();
  std::vector<double> out(L, std::numeric_limits<double>::quiet_NaN());
  auto lock = dev.lock();
  Buffer sums(dev, static_cast<size_t>(L) * 2 * sizeof(double), "outsideSpan sums");
  dev.memset0(sums.get(), sums.bytes());
  std::vector<bool> adapted(L, false);
  for (int l = 0; l < L; ++l) {
    const LoraModule* m = adapter.find(l, LoraTarget::V);
    if (!m) continue;
    adapted[l] = true;
    std::shared_ptr<const VPinv> pinv = adapter.v_pinv(l);
    dev.outside_span_sums(exact.dtype(), sums.as<double>() + 2 * l, exact.own_v(l), exact.own_capacity(),
                          base.own_v(l), base.own_capacity(), pinv->dev_f64.as<double>(),
                          adapter.v[l]->basis, m->rank, exact.num_kv_heads(), exact.head_dim(), tokens);
  }
  std::vector<double> h(static_cast<size_t>(L) * 2, 0.0);
  dev.download(h.data(), sums.get(), h.size() * sizeof(double));
  for (int l = 0; l < L; ++l) {
    if (adapted[l]) out[l] = h[2 * l] / h[2 * l + 1];
  }
  return out;
}

}  // namespace al
