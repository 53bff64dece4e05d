#include "engine/lowrank.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/linalg.h"

namespace al {

namespace {

constexpr int kGramMax = 256;
constexpr int kOversample = 8;
constexpr int kPowerIterations = 4;

struct SplitMix {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
  double normal() {  // Box–Muller
    const double u = uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

Buffer upload_f32(Device& dev, const std::vector<double>& v, const char* what) {
  std::vector<float> f(v.begin(), v.end());
  Buffer b(dev, std::max<size_t>(f.size(), 1) * 4, what);
  dev.upload(b.get(), f.data(), f.size() * 4);
  return b;
}

std::vector<double> download_f64(Device& dev, const float* p, size_t n) {
  std::vector<float> f(n);
  dev.download(f.data(), p, n * 4);
  return std::vector<double>(f.begin(), f.end());
}

// G = XᵀX of the device matrix X [rows, c], eigen-decomposed on the host: eigenvectors
// (columns of g) and eigenvalues w, descending.
void gram_eigen(Device& dev, const float* x, int rows, int c, std::vector<double>& g, std::vector<double>& w) {
  Buffer gd(dev, static_cast<size_t>(c) * c * 4, "Gram matrix");
  dev.gemm_f32(gd.as<float>(), x, x, c, c, rows, true, false, 1.0f, 0.0f);
  g = download_f64(dev, gd.as<float>(), static_cast<size_t>(c) * c);
  sym_eigen(c, g, w);
}

// X [rows, c] ← an orthonormal basis of its column span: X·W·Λ^(-1/2) from G = XᵀX = WΛWᵀ,
// columns with nothing left (λ ≤ 1e-12·λ_max) set to zero. Callers apply it twice: the second
// pass repairs what fp32 rounding left of the first.
void orthonormalize(Device& dev, Buffer& x, int rows, int c) {
  std::vector<double> g, w;
  gram_eigen(dev, x.as<float>(), rows, c, g, w);
  const double top = w.empty() ? 0.0 : std::max(w[0], 0.0);
  std::vector<double> m(static_cast<size_t>(c) * c, 0.0);  // column j = W_j / sqrt(λ_j)
  for (int j = 0; j < c; ++j) {
    if (!(w[j] > 1e-12 * top) || w[j] <= 0.0) continue;
    const double inv = 1.0 / std::sqrt(w[j]);
    for (int i = 0; i < c; ++i) m[static_cast<size_t>(i) * c + j] = g[static_cast<size_t>(i) * c + j] * inv;
  }
  Buffer md = upload_f32(dev, m, "orthonormalization");
  Buffer out(dev, static_cast<size_t>(rows) * c * 4, "orthonormal basis");
  dev.gemm_f32(out.as<float>(), x.as<float>(), md.as<float>(), rows, c, c, false, false, 1.0f, 0.0f);
  x = std::move(out);
}

void orthonormalize2(Device& dev, Buffer& x, int rows, int c) {
  orthonormalize(dev, x, rows, c);
  orthonormalize(dev, x, rows, c);
}

LowRankFactors new_factors(Device& dev, int m, int n, int k) {
  LowRankFactors f;
  f.k = k;
  f.coef = Buffer(dev, std::max<size_t>(static_cast<size_t>(m) * k, 1) * 4, "lowrank store");
  f.basis = Buffer(dev, std::max<size_t>(static_cast<size_t>(n) * k, 1) * 4, "lowrank store");
  return f;
}

// Top-k factors from the eigen-decomposition of the smaller Gram matrix.
LowRankFactors svd_gram(Device& dev, const float* a, int m, int n, int k) {
  LowRankFactors f = new_factors(dev, m, n, k);
  std::vector<double> g, w;
  if (n <= m) {
    // G = AᵀA [n, n]; its eigenvectors are V, and A·V = U·Σ.
    gram_eigen(dev, a, m, n, g, w);
    std::vector<double> vk(static_cast<size_t>(n) * k);
    for (int o = 0; o < n; ++o)
      for (int j = 0; j < k; ++j) vk[static_cast<size_t>(o) * k + j] = g[static_cast<size_t>(o) * n + j];
    Buffer v = upload_f32(dev, vk, "lowrank basis");
    dev.copy(f.basis.get(), v.get(), vk.size() * 4);
    dev.gemm_f32(f.coef.as<float>(), a, f.basis.as<float>(), m, k, n, false, false, 1.0f, 0.0f);
    return f;
  }
  // G = AAᵀ [m, m]; its eigenvectors are U, and Aᵀ·U = V·Σ. Using the actual norm of AᵀU_j
  // (not sqrt(λ_j)) makes coef·basisᵀ exactly U_k U_kᵀ A.
  Buffer gd(dev, static_cast<size_t>(m) * m * 4, "Gram matrix");
  dev.gemm_f32(gd.as<float>(), a, a, m, m, n, false, true, 1.0f, 0.0f);
  g = download_f64(dev, gd.as<float>(), static_cast<size_t>(m) * m);
  sym_eigen(m, g, w);
  std::vector<double> uk(static_cast<size_t>(m) * k);
  for (int t = 0; t < m; ++t)
    for (int j = 0; j < k; ++j) uk[static_cast<size_t>(t) * k + j] = g[static_cast<size_t>(t) * m + j];
  Buffer u = upload_f32(dev, uk, "lowrank factors");
  Buffer vs(dev, static_cast<size_t>(n) * k * 4, "lowrank factors");  // AᵀU_k = V_k Σ_k
  dev.gemm_f32(vs.as<float>(), a, u.as<float>(), n, k, m, true, false, 1.0f, 0.0f);
  // Column norms on the host (n·k values: a factor, not a cache), then basis = V, coef = UΣ.
  std::vector<double> v = download_f64(dev, vs.as<float>(), static_cast<size_t>(n) * k);
  std::vector<double> norm(k, 0.0);
  for (int o = 0; o < n; ++o)
    for (int j = 0; j < k; ++j) norm[j] += v[static_cast<size_t>(o) * k + j] * v[static_cast<size_t>(o) * k + j];
  for (double& x : norm) x = std::sqrt(x);
  for (int o = 0; o < n; ++o)
    for (int j = 0; j < k; ++j) v[static_cast<size_t>(o) * k + j] = norm[j] > 0 ? v[static_cast<size_t>(o) * k + j] / norm[j] : 0.0;
  for (int t = 0; t < m; ++t)
    for (int j = 0; j < k; ++j) uk[static_cast<size_t>(t) * k + j] = norm[j] > 0 ? uk[static_cast<size_t>(t) * k + j] * norm[j] : 0.0;
  Buffer bv = upload_f32(dev, v, "lowrank basis"), cu = upload_f32(dev, uk, "lowrank factors");
  dev.copy(f.basis.get(), bv.get(), v.size() * 4);
  dev.copy(f.coef.get(), cu.get(), uk.size() * 4);
  return f;
}

LowRankFactors svd_randomized(Device& dev, const float* a, int m, int n, int k, uint64_t seed) {
  const int l = std::min(k + kOversample, std::min(m, n));
  std::vector<double> omega(static_cast<size_t>(n) * l);  // Ω [n, l]
  SplitMix rng{seed};
  for (double& x : omega) x = rng.normal();
  Buffer om = upload_f32(dev, omega, "random test matrix");
  Buffer y(dev, static_cast<size_t>(m) * l * 4, "range sketch");
  Buffer z(dev, static_cast<size_t>(n) * l * 4, "co-range sketch");
  dev.gemm_f32(y.as<float>(), a, om.as<float>(), m, l, n, false, false, 1.0f, 0.0f);  // Y = AΩ
  orthonormalize2(dev, y, m, l);
  for (int it = 0; it < kPowerIterations; ++it) {
    dev.gemm_f32(z.as<float>(), a, y.as<float>(), n, l, m, true, false, 1.0f, 0.0f);  // Z = AᵀY
    orthonormalize2(dev, z, n, l);
    dev.gemm_f32(y.as<float>(), a, z.as<float>(), m, l, n, false, false, 1.0f, 0.0f);  // Y = AZ
    orthonormalize2(dev, y, m, l);
  }
  // B = YᵀA [l, n] = W Σ Vᵀ from the eigen-decomposition of B Bᵀ [l, l].
  Buffer b(dev, static_cast<size_t>(l) * n * 4, "projected matrix");
  dev.gemm_f32(b.as<float>(), y.as<float>(), a, l, n, m, true, false, 1.0f, 0.0f);
  Buffer hd(dev, static_cast<size_t>(l) * l * 4, "Gram matrix");
  dev.gemm_f32(hd.as<float>(), b.as<float>(), b.as<float>(), l, l, n, false, true, 1.0f, 0.0f);
  std::vector<double> g = download_f64(dev, hd.as<float>(), static_cast<size_t>(l) * l), w;
  sym_eigen(l, g, w);
  const double top = w.empty() ? 0.0 : std::max(w[0], 0.0);
  std::vector<double> inv_sigma(static_cast<size_t>(l) * k, 0.0), sigma(static_cast<size_t>(l) * k, 0.0);
  for (int j = 0; j < k; ++j) {
    if (!(w[j] > 1e-12 * top) || w[j] <= 0.0) continue;  // nothing left: a zero column
    const double s = std::sqrt(w[j]);
    for (int i = 0; i < l; ++i) {
      inv_sigma[static_cast<size_t>(i) * k + j] = g[static_cast<size_t>(i) * l + j] / s;
      sigma[static_cast<size_t>(i) * k + j] = g[static_cast<size_t>(i) * l + j] * s;
    }
  }
  Buffer wi = upload_f32(dev, inv_sigma, "lowrank factors"), ws = upload_f32(dev, sigma, "lowrank factors");
  LowRankFactors f = new_factors(dev, m, n, k);
  dev.gemm_f32(f.basis.as<float>(), b.as<float>(), wi.as<float>(), n, k, l, true, false, 1.0f, 0.0f);  // V = BᵀWΣ⁻¹
  dev.gemm_f32(f.coef.as<float>(), y.as<float>(), ws.as<float>(), m, k, l, false, false, 1.0f, 0.0f);  // UΣ = YWΣ
  return f;
}

}  // namespace

LowRankFactors truncated_svd(Device& dev, const float* a, int m, int n, int k, uint64_t seed) {
  k = std::max(0, std::min(k, std::min(m, n)));
  if (k == 0) return new_factors(dev, m, n, 0);
  const int small = std::min(m, n);
  if (small <= kGramMax || k + kOversample >= small) return svd_gram(dev, a, m, n, k);
  return svd_randomized(dev, a, m, n, k, seed);
}

}  // namespace al
