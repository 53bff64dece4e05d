#include "engine/metrics.h"

#include <cmath>
#include <limits>

namespace al {

ErrorSums compare_caches(const KvCache& rebuilt, const KvCache& exact, int tokens) {
  ErrorSums s;
  const int L = exact.num_layers(), H = exact.num_kv_heads(), hd = exact.head_dim(), T = tokens;
  s.num_layers = L;
  s.num_kv_heads = H;
  s.tokens = T;
  const size_t by_head = static_cast<size_t>(L) * H, by_token = static_cast<size_t>(L) * T;
  for (auto* v : {&s.k_diff_head, &s.k_norm_head, &s.v_diff_head, &s.v_norm_head}) v->assign(by_head, 0.0);
  for (auto* v : {&s.k_diff_token, &s.k_norm_token, &s.v_diff_token, &s.v_norm_token}) v->assign(by_token, 0.0);

  // One (layer, head, token) row: its four sums.
  auto row = [&](int l, int h, int t, double out[4]) {
    const size_t r_off = (static_cast<size_t>(h) * rebuilt.capacity() + t) * hd;
    const size_t e_off = (static_cast<size_t>(h) * exact.capacity() + t) * hd;
    const float* rk = rebuilt.k(l) + r_off;
    const float* ek = exact.k(l) + e_off;
    const float* rv = rebuilt.v(l) + r_off;
    const float* ev = exact.v(l) + e_off;
    double kd = 0, kn = 0, vd = 0, vn = 0;
    for (int i = 0; i < hd; ++i) {
      const double dk = static_cast<double>(rk[i]) - ek[i], dv = static_cast<double>(rv[i]) - ev[i];
      kd += dk * dk;
      kn += static_cast<double>(ek[i]) * ek[i];
      vd += dv * dv;
      vn += static_cast<double>(ev[i]) * ev[i];
    }
    out[0] = kd, out[1] = kn, out[2] = vd, out[3] = vn;
  };

  // Two passes, each writing only its own cells: per (layer, head) over tokens, then per
  // (layer, token) over heads. Cheap next to everything that produced the caches.
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(by_head); ++i) {
    const int l = static_cast<int>(i / H), h = static_cast<int>(i % H);
    double acc[4] = {0, 0, 0, 0}, r[4];
    for (int t = 0; t < T; ++t) {
      row(l, h, t, r);
      for (int j = 0; j < 4; ++j) acc[j] += r[j];
    }
    s.k_diff_head[i] = acc[0], s.k_norm_head[i] = acc[1], s.v_diff_head[i] = acc[2], s.v_norm_head[i] = acc[3];
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(by_token); ++i) {
    const int l = static_cast<int>(i / T), t = static_cast<int>(i % T);
    double acc[4] = {0, 0, 0, 0}, r[4];
    for (int h = 0; h < H; ++h) {
      row(l, h, t, r);
      for (int j = 0; j < 4; ++j) acc[j] += r[j];
    }
    s.k_diff_token[i] = acc[0], s.k_norm_token[i] = acc[1], s.v_diff_token[i] = acc[2], s.v_norm_token[i] = acc[3];
  }
  return s;
}

std::vector<double> outside_span(const KvCache& base, const KvCache& exact, const Adapter& adapter, int tokens) {
  const int L = exact.num_layers(), H = exact.num_kv_heads(), hd = exact.head_dim(), D = H * hd;
  std::vector<double> out(L, std::numeric_limits<double>::quiet_NaN());
  for (int l = 0; l < L; ++l) {
    const LoraModule* m = adapter.find(l, LoraTarget::V);
    if (!m) continue;
    const int r = m->rank;
    const std::shared_ptr<const VPinv> pinv = adapter.v_pinv(l);
    const double* P = pinv->p.data();  // [r, D]
    const float* B = m->b.ptr();       // [D, r]
    double outside = 0.0, total = 0.0;
#pragma omp parallel reduction(+ : outside, total)
    {
      std::vector<double> dv(D), c(r);
#pragma omp for schedule(static)
      for (int t = 0; t < tokens; ++t) {
        // ΔV's column t, subtracted in fp32 as the cache holds it.
        for (int h = 0; h < H; ++h) {
          const float* e = exact.v(l) + (static_cast<size_t>(h) * exact.capacity() + t) * hd;
          const float* b = base.v(l) + (static_cast<size_t>(h) * base.capacity() + t) * hd;
          for (int i = 0; i < hd; ++i) dv[static_cast<size_t>(h) * hd + i] = static_cast<double>(e[i] - b[i]);
        }
        // Residual of the projection onto span(B): dv − B·(Bᐩ·dv).
        for (int j = 0; j < r; ++j) {
          double s = 0.0;
          for (int o = 0; o < D; ++o) s += P[static_cast<size_t>(j) * D + o] * dv[o];
          c[j] = s;
        }
        for (int o = 0; o < D; ++o) {
          double proj = 0.0;
          for (int j = 0; j < r; ++j) proj += static_cast<double>(B[static_cast<size_t>(o) * r + j]) * c[j];
          const double res = dv[o] - proj;
          outside += res * res;
          total += dv[o] * dv[o];
        }
      }
    }
    out[l] = outside / total;
  }
  return out;
}

}  // namespace al
