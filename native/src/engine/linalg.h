// Small dense linear algebra in double for the KV strategies: a symmetric
// eigen-decomposition, pinv of a tall LoRA B, and a truncated SVD. All serial: callers run
// independent matrices (layers, K and V) in parallel.
#pragma once

#include <cstdint>
#include <vector>

namespace al {

// Eigen-decomposition of the symmetric n×n matrix `a` (row-major; only its values are
// read, the whole matrix must be given). On return `a` holds the eigenvectors as columns
// (a[i*n + j] = component i of eigenvector j) and `w` the eigenvalues, in descending order.
// Householder tridiagonalization then implicit QL (EISPACK tred2/tql2): backward stable,
// O(n³) with a small constant. Throws if QL does not converge.
void sym_eigen(int n, std::vector<double>& a, std::vector<double>& w);

// pinv(B) of B [out, r] (fp32, row-major) as [r, out] in double, what torch.linalg.pinv
// computes in fp32: pinv = G⁺ Bᵀ with G = BᵀB eigen-decomposed, singular values
// σ = sqrt(λ) <= max(out, r)·eps_float32·σ_max treated as zero.
std::vector<double> pinv_tall(const float* b, int out, int r);

// A truncated SVD A ≈ coef · basisᵀ of A [m, n] (fp32, row-major): coef = U·Σ [m, k],
// basis = V [n, k], both row-major fp32, the top k = min(k, m, n) singular triplets.
// Exact top-k from the eigen-decomposition of the smaller Gram matrix when
// min(m, n) <= 512 (or when k is close to it); otherwise randomized subspace iteration
// (oversampling 8, 4 power iterations, re-orthonormalized every pass) seeded by `seed`,
// so results reproduce.
struct LowRankFactors {
  int k = 0;
  std::vector<float> coef;   // [m, k]
  std::vector<float> basis;  // [n, k]
};
LowRankFactors truncated_svd(const float* a, int m, int n, int k, uint64_t seed);

}  // namespace al
