#include "engine/linalg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <exception>
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

void gram_factors_host(int count, int n, int k, const float* g, float* inv_scaled, float* scaled) {
  const size_t nn = static_cast<size_t>(n) * n, nk = static_cast<size_t>(n) * k;
  // Small matrices (lowrank's 16×16) in one thread: an OpenMP region per batch of them cost
  // more than their arithmetic, and its threads compete with the process's other work.
  // sym_eigen's "QL did not converge" must not leave an OpenMP region: rethrown after it.
  std::vector<std::exception_ptr> failed(count);
#pragma omp parallel for schedule(static) if (count > 1 && n >= 64)
  for (int p = 0; p < count; ++p) {
    std::vector<double> a(g + p * nn, g + (p + 1) * nn), w;
    try {
      sym_eigen(n, a, w);
    } catch (...) {
      failed[p] = std::current_exception();
      continue;
    }
    const double top = w.empty() ? 0.0 : std::max(w[0], 0.0);
    for (int j = 0; j < k; ++j) {
      const bool kept = w[j] > 1e-12 * top && w[j] > 0.0;
      const double s = kept ? std::sqrt(w[j]) : 0.0;
      for (int i = 0; i < n; ++i) {
        const double v = a[static_cast<size_t>(i) * n + j];
        inv_scaled[p * nk + static_cast<size_t>(i) * k + j] = kept ? static_cast<float>(v / s) : 0.0f;
        if (scaled) scaled[p * nk + static_cast<size_t>(i) * k + j] = kept ? static_cast<float>(v * s) : 0.0f;
      }
    }
  }
  for (const auto& e : failed)
    if (e) std::rethrow_exception(e);
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

}  // namespace al
