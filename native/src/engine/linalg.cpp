#include "engine/linalg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <numeric>
#include <stdexcept>

namespace al {

namespace {

// EISPACK tred2 (as in JAMA): reduces the symmetric V to tridiagonal form (diagonal d,
// sub-diagonal e) and accumulates the orthogonal transformation in V.
void tred2(int n, double* V, double* d, double* e) {
  auto at = [&](int i, int j) -> double& { return V[static_cast<size_t>(i) * n + j]; };
  for (int j = 0; j < n; ++j) d[j] = at(n - 1, j);
  for (int i = n - 1; i > 0; --i) {
    double scale = 0.0, h = 0.0;
    for (int k = 0; k < i; ++k) scale += std::abs(d[k]);
    if (scale == 0.0) {
      e[i] = d[i - 1];
      for (int j = 0; j < i; ++j) {
        d[j] = at(i - 1, j);
        at(i, j) = 0.0;
        at(j, i) = 0.0;
      }
    } else {
      // Householder vector from the scaled row.
      for (int k = 0; k < i; ++k) {
        d[k] /= scale;
        h += d[k] * d[k];
      }
      double f = d[i - 1];
      double g = std::sqrt(h);
      if (f > 0) g = -g;
      e[i] = scale * g;
      h -= f * g;
      d[i - 1] = f - g;
      for (int j = 0; j < i; ++j) e[j] = 0.0;
      // Similarity transformation of the remaining columns.
      for (int j = 0; j < i; ++j) {
        f = d[j];
        at(j, i) = f;
        g = e[j] + at(j, j) * f;
        for (int k = j + 1; k <= i - 1; ++k) {
          g += at(k, j) * d[k];
          e[k] += at(k, j) * f;
        }
        e[j] = g;
      }
      f = 0.0;
      for (int j = 0; j < i; ++j) {
        e[j] /= h;
        f += e[j] * d[j];
      }
      const double hh = f / (h + h);
      for (int j = 0; j < i; ++j) e[j] -= hh * d[j];
      for (int j = 0; j < i; ++j) {
        f = d[j];
        g = e[j];
        for (int k = j; k <= i - 1; ++k) at(k, j) -= (f * e[k] + g * d[k]);
        d[j] = at(i - 1, j);
        at(i, j) = 0.0;
      }
    }
    d[i] = h;
  }
  // Accumulate the transformations.
  for (int i = 0; i < n - 1; ++i) {
    at(n - 1, i) = at(i, i);
    at(i, i) = 1.0;
    const double h = d[i + 1];
    if (h != 0.0) {
      for (int k = 0; k <= i; ++k) d[k] = at(k, i + 1) / h;
      for (int j = 0; j <= i; ++j) {
        double g = 0.0;
        for (int k = 0; k <= i; ++k) g += at(k, i + 1) * at(k, j);
        for (int k = 0; k <= i; ++k) at(k, j) -= g * d[k];
      }
    }
    for (int k = 0; k <= i; ++k) at(k, i + 1) = 0.0;
  }
  for (int j = 0; j < n; ++j) {
    d[j] = at(n - 1, j);
    at(n - 1, j) = 0.0;
  }
  at(n - 1, n - 1) = 1.0;
  e[0] = 0.0;
}

// EISPACK tql2 (as in JAMA): implicit QL on the tridiagonal (d, e), rotating V along.
void tql2(int n, double* V, double* d, double* e) {
  auto at = [&](int i, int j) -> double& { return V[static_cast<size_t>(i) * n + j]; };
  for (int i = 1; i < n; ++i) e[i - 1] = e[i];
  e[n - 1] = 0.0;
  double f = 0.0, tst1 = 0.0;
  const double eps = std::ldexp(1.0, -52);
  for (int l = 0; l < n; ++l) {
    // Find a small sub-diagonal element.
    tst1 = std::max(tst1, std::abs(d[l]) + std::abs(e[l]));
    int m = l;
    while (m < n) {
      if (std::abs(e[m]) <= eps * tst1) break;
      ++m;
    }
    if (m == n) m = n - 1;  // e[n-1] is 0, so only NaN input gets here
    if (m > l) {
      int iter = 0;
      do {
        if (++iter > 100) throw std::runtime_error("eigen-decomposition did not converge (is the data finite?)");
        double g = d[l];
        double p = (d[l + 1] - g) / (2.0 * e[l]);
        double r = std::hypot(p, 1.0);
        if (p < 0) r = -r;
        d[l] = e[l] / (p + r);
        d[l + 1] = e[l] * (p + r);
        const double dl1 = d[l + 1];
        double h = g - d[l];
        for (int i = l + 2; i < n; ++i) d[i] -= h;
        f += h;
        // Implicit QL transformation.
        p = d[m];
        double c = 1.0, c2 = c, c3 = c;
        const double el1 = e[l + 1];
        double s = 0.0, s2 = 0.0;
        for (int i = m - 1; i >= l; --i) {
          c3 = c2;
          c2 = c;
          s2 = s;
          g = c * e[i];
          h = c * p;
          r = std::hypot(p, e[i]);
          e[i + 1] = s * r;
          s = e[i] / r;
          c = p / r;
          p = c * d[i] - s * g;
          d[i + 1] = h + s * (c * g + s * d[i]);
          for (int k = 0; k < n; ++k) {
            h = at(k, i + 1);
            at(k, i + 1) = s * at(k, i) + c * h;
            at(k, i) = c * at(k, i) - s * h;
          }
        }
        p = -s * s2 * c3 * el1 * e[l] / dl1;
        e[l] = s * p;
        d[l] = c * p;
      } while (std::abs(e[l]) > eps * tst1);
    }
    d[l] += f;
    e[l] = 0.0;
  }
}

// splitmix64: a reproducible stream for the randomized SVD's test matrix.
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

// Orthonormalizes c vectors of length len (q[j*len ..], each contiguous) in place:
// classical Gram–Schmidt applied twice ("twice is enough"), so the result is orthonormal
// to working precision even for nearly dependent columns. A column with nothing left
// after projection becomes zero.
void orthonormalize(std::vector<double>& q, int c, int len) {
  for (int j = 0; j < c; ++j) {
    double* qj = q.data() + static_cast<size_t>(j) * len;
    double before = 0.0;
    for (int t = 0; t < len; ++t) before += qj[t] * qj[t];
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 0; i < j; ++i) {
        const double* qi = q.data() + static_cast<size_t>(i) * len;
        double dot = 0.0;
        for (int t = 0; t < len; ++t) dot += qi[t] * qj[t];
        for (int t = 0; t < len; ++t) qj[t] -= dot * qi[t];
      }
    }
    double norm = 0.0;
    for (int t = 0; t < len; ++t) norm += qj[t] * qj[t];
    // What remains of a column already in the span of the others is rounding noise.
    const bool empty = !(norm > 1e-28 * before) || norm == 0.0;
    const double inv = empty ? 0.0 : 1.0 / std::sqrt(norm);
    for (int t = 0; t < len; ++t) qj[t] *= inv;
  }
}

// Top-k factors from the eigen-decomposition of the smaller Gram matrix.
LowRankFactors svd_gram(const std::vector<double>& a, int m, int n, int k) {
  LowRankFactors f;
  f.k = k;
  f.coef.assign(static_cast<size_t>(m) * k, 0.0f);
  f.basis.assign(static_cast<size_t>(n) * k, 0.0f);
  std::vector<double> w;
  if (n <= m) {
    // G = AᵀA [n, n]; its eigenvectors are V, and A·V = U·Σ.
    std::vector<double> g(static_cast<size_t>(n) * n, 0.0);
    for (int t = 0; t < m; ++t) {
      const double* row = a.data() + static_cast<size_t>(t) * n;
      for (int i = 0; i < n; ++i) {
        const double ai = row[i];
        if (ai == 0.0) continue;
        double* gi = g.data() + static_cast<size_t>(i) * n;
        for (int j = i; j < n; ++j) gi[j] += ai * row[j];
      }
    }
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < i; ++j) g[static_cast<size_t>(i) * n + j] = g[static_cast<size_t>(j) * n + i];
    sym_eigen(n, g, w);
    for (int o = 0; o < n; ++o)
      for (int j = 0; j < k; ++j) f.basis[static_cast<size_t>(o) * k + j] = static_cast<float>(g[static_cast<size_t>(o) * n + j]);
    for (int t = 0; t < m; ++t) {
      const double* row = a.data() + static_cast<size_t>(t) * n;
      for (int j = 0; j < k; ++j) {
        double s = 0.0;
        for (int o = 0; o < n; ++o) s += row[o] * g[static_cast<size_t>(o) * n + j];
        f.coef[static_cast<size_t>(t) * k + j] = static_cast<float>(s);
      }
    }
  } else {
    // G = AAᵀ [m, m]; its eigenvectors are U, and Aᵀ·U = V·Σ. Using the actual norm of
    // AᵀU_j (not sqrt(λ_j)) makes coef·basisᵀ exactly U_k U_kᵀ A.
    std::vector<double> g(static_cast<size_t>(m) * m, 0.0);
    for (int s = 0; s < m; ++s) {
      const double* rs = a.data() + static_cast<size_t>(s) * n;
      for (int t = s; t < m; ++t) {
        const double* rt = a.data() + static_cast<size_t>(t) * n;
        double dot = 0.0;
        for (int o = 0; o < n; ++o) dot += rs[o] * rt[o];
        g[static_cast<size_t>(s) * m + t] = g[static_cast<size_t>(t) * m + s] = dot;
      }
    }
    sym_eigen(m, g, w);
    std::vector<double> v(n);
    for (int j = 0; j < k; ++j) {
      std::fill(v.begin(), v.end(), 0.0);
      for (int t = 0; t < m; ++t) {
        const double u = g[static_cast<size_t>(t) * m + j];
        const double* row = a.data() + static_cast<size_t>(t) * n;
        for (int o = 0; o < n; ++o) v[o] += u * row[o];
      }
      double norm = 0.0;
      for (double x : v) norm += x * x;
      norm = std::sqrt(norm);
      if (norm == 0.0) continue;
      for (int o = 0; o < n; ++o) f.basis[static_cast<size_t>(o) * k + j] = static_cast<float>(v[o] / norm);
      for (int t = 0; t < m; ++t) f.coef[static_cast<size_t>(t) * k + j] = static_cast<float>(g[static_cast<size_t>(t) * m + j] * norm);
    }
  }
  return f;
}

// Randomized subspace iteration (Halko, Martinsson & Tropp 2011, alg. 4.4): a range basis
// Q [m, l] of A refined by power iterations, then the exact SVD of the small QᵀA.
LowRankFactors svd_randomized(const std::vector<double>& a, int m, int n, int k, uint64_t seed) {
  constexpr int kOversample = 8, kPowerIterations = 4;
  const int l = std::min(k + kOversample, std::min(m, n));
  // Column-major blocks: q[j] (length m) and z[j] (length n), each contiguous.
  std::vector<double> q(static_cast<size_t>(l) * m), z(static_cast<size_t>(l) * n);
  SplitMix rng{seed};
  for (double& x : z) x = rng.normal();  // Ω [n, l]
  auto a_times = [&]() {                  // q = A z
    std::fill(q.begin(), q.end(), 0.0);
    for (int t = 0; t < m; ++t) {
      const double* row = a.data() + static_cast<size_t>(t) * n;
      for (int j = 0; j < l; ++j) {
        const double* zj = z.data() + static_cast<size_t>(j) * n;
        double s = 0.0;
        for (int o = 0; o < n; ++o) s += row[o] * zj[o];
        q[static_cast<size_t>(j) * m + t] = s;
      }
    }
  };
  auto at_times = [&]() {  // z = Aᵀ q
    std::fill(z.begin(), z.end(), 0.0);
    for (int t = 0; t < m; ++t) {
      const double* row = a.data() + static_cast<size_t>(t) * n;
      for (int j = 0; j < l; ++j) {
        const double qt = q[static_cast<size_t>(j) * m + t];
        if (qt == 0.0) continue;
        double* zj = z.data() + static_cast<size_t>(j) * n;
        for (int o = 0; o < n; ++o) zj[o] += qt * row[o];
      }
    }
  };
  a_times();
  orthonormalize(q, l, m);
  for (int it = 0; it < kPowerIterations; ++it) {
    at_times();
    orthonormalize(z, l, n);
    a_times();
    orthonormalize(q, l, m);
  }
  at_times();  // z holds (QᵀA)ᵀ: row j of QᵀA is z[j]

  // QᵀA = W Σ Vᵀ from the eigen-decomposition of (QᵀA)(QᵀA)ᵀ [l, l].
  std::vector<double> g(static_cast<size_t>(l) * l), w;
  for (int i = 0; i < l; ++i) {
    for (int j = i; j < l; ++j) {
      double s = 0.0;
      for (int o = 0; o < n; ++o) s += z[static_cast<size_t>(i) * n + o] * z[static_cast<size_t>(j) * n + o];
      g[static_cast<size_t>(i) * l + j] = g[static_cast<size_t>(j) * l + i] = s;
    }
  }
  sym_eigen(l, g, w);
  LowRankFactors f;
  f.k = k;
  f.coef.assign(static_cast<size_t>(m) * k, 0.0f);
  f.basis.assign(static_cast<size_t>(n) * k, 0.0f);
  std::vector<double> v(n), u(m);
  for (int j = 0; j < k; ++j) {
    // v = (QᵀA)ᵀ W_j = V_j σ_j; u = Q W_j = U_j.
    std::fill(v.begin(), v.end(), 0.0);
    std::fill(u.begin(), u.end(), 0.0);
    for (int i = 0; i < l; ++i) {
      const double wij = g[static_cast<size_t>(i) * l + j];
      for (int o = 0; o < n; ++o) v[o] += wij * z[static_cast<size_t>(i) * n + o];
      for (int t = 0; t < m; ++t) u[t] += wij * q[static_cast<size_t>(i) * m + t];
    }
    double norm = 0.0;
    for (double x : v) norm += x * x;
    norm = std::sqrt(norm);
    if (norm == 0.0) continue;
    for (int o = 0; o < n; ++o) f.basis[static_cast<size_t>(o) * k + j] = static_cast<float>(v[o] / norm);
    for (int t = 0; t < m; ++t) f.coef[static_cast<size_t>(t) * k + j] = static_cast<float>(u[t] * norm);
  }
  return f;
}

}  // namespace

void sym_eigen(int n, std::vector<double>& a, std::vector<double>& w) {
  if (n <= 0) {
    w.clear();
    return;
  }
  std::vector<double> d(n), e(n);
  tred2(n, a.data(), d.data(), e.data());
  tql2(n, a.data(), d.data(), e.data());
  // Descending eigenvalues, eigenvectors permuted along.
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return d[x] > d[y]; });
  std::vector<double> sorted(a.size());
  w.resize(n);
  for (int j = 0; j < n; ++j) {
    w[j] = d[order[j]];
    for (int i = 0; i < n; ++i) sorted[static_cast<size_t>(i) * n + j] = a[static_cast<size_t>(i) * n + order[j]];
  }
  a.swap(sorted);
}

std::vector<double> pinv_tall(const float* b, int out, int r) {
  std::vector<double> g(static_cast<size_t>(r) * r, 0.0), w;
  for (int o = 0; o < out; ++o) {
    const float* row = b + static_cast<size_t>(o) * r;
    for (int i = 0; i < r; ++i)
      for (int j = 0; j < r; ++j) g[static_cast<size_t>(i) * r + j] += static_cast<double>(row[i]) * row[j];
  }
  sym_eigen(r, g, w);
  const double sigma_max = std::sqrt(std::max(w[0], 0.0));
  const double tol = std::max(out, r) * static_cast<double>(FLT_EPSILON) * sigma_max;
  // G⁺ = Σ over kept λ_j of W_j W_jᵀ / λ_j.
  std::vector<double> gp(static_cast<size_t>(r) * r, 0.0);
  for (int j = 0; j < r; ++j) {
    const double sigma = std::sqrt(std::max(w[j], 0.0));
    if (!(sigma > tol)) continue;
    const double inv = 1.0 / w[j];
    for (int i = 0; i < r; ++i)
      for (int q = 0; q < r; ++q)
        gp[static_cast<size_t>(i) * r + q] += g[static_cast<size_t>(i) * r + j] * g[static_cast<size_t>(q) * r + j] * inv;
  }
  std::vector<double> p(static_cast<size_t>(r) * out, 0.0);  // G⁺ Bᵀ
  for (int i = 0; i < r; ++i) {
    for (int o = 0; o < out; ++o) {
      double s = 0.0;
      for (int q = 0; q < r; ++q) s += gp[static_cast<size_t>(i) * r + q] * b[static_cast<size_t>(o) * r + q];
      p[static_cast<size_t>(i) * out + o] = s;
    }
  }
  return p;
}

LowRankFactors truncated_svd(const float* a32, int m, int n, int k, uint64_t seed) {
  k = std::max(0, std::min(k, std::min(m, n)));
  std::vector<double> a(a32, a32 + static_cast<size_t>(m) * n);
  const int small = std::min(m, n);
  if (small <= 512 || k + 8 >= small) return svd_gram(a, m, n, k);
  return svd_randomized(a, m, n, k, seed);
}

}  // namespace al
