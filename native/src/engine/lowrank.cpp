#include "engine/lowrank.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "engine/linalg.h"

namespace al {

namespace {

constexpr int kGramMax = 256;
constexpr int kOversample = 8;
constexpr int kPowerIterations = 4;

// The test matrices' entries: SplitMix64 outputs through Box–Muller. SplitMix's k-th output is
// a function of seed + k·γ alone, so entry e (outputs 2e+1 and 2e+2) is computed on its own and
// a batch's entries fill in parallel (the same values a sequential generator gives).
uint64_t splitmix_at(uint64_t seed, uint64_t k) {
  uint64_t z = seed + k * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double normal_at(uint64_t seed, uint64_t e) {
  auto uniform = [&](uint64_t k) { return (static_cast<double>(splitmix_at(seed, k) >> 11) + 0.5) * 0x1.0p-53; };  // (0, 1)
  const double u = uniform(2 * e + 1), v = uniform(2 * e + 2);
  return std::sqrt(-2.0 * std::log(u)) * std::cos(6.283185307179586 * v);
}

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

// Every X_i [rows, c] of the batch x (count problems, contiguous) ← an orthonormal basis of its
// column span: X·W·Λ^(-1/2) from G = XᵀX = WΛWᵀ, columns with nothing left (λ ≤ 1e-12·λ_max)
// set to zero. The problems advance in lockstep, all on the device: one batched product for
// the Gram matrices, their eigen-factors (gram_factors), one batched product; on a GPU nothing
// waits for the host (a download, host eigen-decompositions and an upload per pass cost the
// Llama-2-7B shape's lowrank:8 encode 19 device waits a batch: H200, 50 ms an adapter).
// Callers apply it twice: the second pass repairs what fp32 rounding left of the first.
void orthonormalize(Device& dev, Buffer& x, int count, int rows, int c) {
  const size_t cc = static_cast<size_t>(c) * c, xs = static_cast<size_t>(rows) * c;
  Buffer grams(dev, count * cc * 4, "Gram matrices");
  dev.gemm_f32_batched(count, grams.as<float>(), cc, x.as<float>(), xs, x.as<float>(), xs, c, c, rows, true, false, 1.0f, 0.0f);
  Buffer md(dev, count * cc * 4, "orthonormalization");  // per problem: column j = W_j / sqrt(λ_j)
  dev.gram_factors(count, c, c, grams.as<float>(), md.as<float>(), nullptr);
  Buffer out(dev, count * xs * 4, "orthonormal bases");
  dev.gemm_f32_batched(count, out.as<float>(), xs, x.as<float>(), xs, md.as<float>(), cc, rows, c, c, false, false, 1.0f, 0.0f);
  x = std::move(out);
}

void orthonormalize2(Device& dev, Buffer& x, int count, int rows, int c) {
  orthonormalize(dev, x, count, rows, c);
  orthonormalize(dev, x, count, rows, c);
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

// The count problems A_i = a + i·stride (each fp32 [m, n]) advance in lockstep: every step is one
// batched product for all of them, and each orthonormalization and the final eigen-decomposition
// wait for the device once for the whole batch. Per problem the arithmetic is that of one alone.
std::vector<LowRankFactors> svd_randomized(Device& dev, const float* a, int64_t stride, int count, int m, int n, int k,
                                           const std::vector<uint64_t>& seeds) {
  const int l = std::min(k + kOversample, std::min(m, n));
  const size_t ll = static_cast<size_t>(l) * l, ml = static_cast<size_t>(m) * l, nl = static_cast<size_t>(n) * l;
  Buffer y(dev, count * ml * 4, "range sketches"), z(dev, count * nl * 4, "co-range sketches");
  {
    std::vector<double> omega(count * nl);  // Ω_i [n, l], one upload for the batch
#pragma omp parallel for schedule(static)
    for (int64_t e = 0; e < static_cast<int64_t>(count * nl); ++e) omega[e] = normal_at(seeds[e / nl], e % nl);
    Buffer om = upload_f32(dev, omega, "random test matrices");
    dev.gemm_f32_batched(count, y.as<float>(), ml, a, stride, om.as<float>(), nl, m, l, n, false, false, 1.0f, 0.0f);  // Y = AΩ
  }
  orthonormalize2(dev, y, count, m, l);
  for (int it = 0; it < kPowerIterations; ++it) {
    dev.gemm_f32_batched(count, z.as<float>(), nl, a, stride, y.as<float>(), ml, n, l, m, true, false, 1.0f, 0.0f);  // Z = AᵀY
    orthonormalize2(dev, z, count, n, l);
    dev.gemm_f32_batched(count, y.as<float>(), ml, a, stride, z.as<float>(), nl, m, l, n, false, false, 1.0f, 0.0f);  // Y = AZ
    orthonormalize2(dev, y, count, m, l);
  }
  // B_i = Y_iᵀA_i [l, n] = W Σ Vᵀ from the eigen-decomposition of B Bᵀ [l, l].
  Buffer b(dev, count * nl * 4, "projected matrices"), hd(dev, count * ll * 4, "Gram matrices");
  dev.gemm_f32_batched(count, b.as<float>(), nl, y.as<float>(), ml, a, stride, l, n, m, true, false, 1.0f, 0.0f);
  dev.gemm_f32_batched(count, hd.as<float>(), ll, b.as<float>(), nl, b.as<float>(), nl, l, l, n, false, true, 1.0f, 0.0f);
  // Top k of B Bᵀ = W Σ² Wᵀ: W Σ⁻¹ and W Σ per problem (gram_factors), on the device.
  const size_t lk = static_cast<size_t>(l) * k;
  Buffer wi(dev, count * lk * 4, "lowrank factors"), ws(dev, count * lk * 4, "lowrank factors");
  dev.gram_factors(count, l, k, hd.as<float>(), wi.as<float>(), ws.as<float>());
  std::vector<LowRankFactors> out;
  for (int i = 0; i < count; ++i) {
    LowRankFactors f = new_factors(dev, m, n, k);
    dev.gemm_f32(f.basis.as<float>(), b.as<float>() + i * nl, wi.as<float>() + i * lk, n, k, l, true, false, 1.0f, 0.0f);  // V = BᵀWΣ⁻¹
    dev.gemm_f32(f.coef.as<float>(), y.as<float>() + i * ml, ws.as<float>() + i * lk, m, k, l, false, false, 1.0f, 0.0f);  // UΣ = YWΣ
    out.push_back(std::move(f));
  }
  return out;
}

}  // namespace

std::vector<LowRankFactors> truncated_svds(Device& dev, const float* a, int64_t stride, int count, int m, int n, int k,
                                           const std::vector<uint64_t>& seeds) {
  if (count < 0 || seeds.size() != static_cast<size_t>(count)) throw std::invalid_argument("truncated_svds: one seed per matrix");
  k = std::max(0, std::min(k, std::min(m, n)));
  std::vector<LowRankFactors> out;
  if (count == 0) return out;
  if (k == 0) {
    for (int i = 0; i < count; ++i) out.push_back(new_factors(dev, m, n, 0));
    return out;
  }
  const int small = std::min(m, n);
  if (small <= kGramMax || k + kOversample >= small) {
    for (int i = 0; i < count; ++i) out.push_back(svd_gram(dev, a + i * stride, m, n, k));
    return out;
  }
  return svd_randomized(dev, a, stride, count, m, n, k, seeds);
}

}  // namespace al
