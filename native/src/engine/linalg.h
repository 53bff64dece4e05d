// Small dense linear algebra in double on the host for the KV strategies: a symmetric
// eigen-decomposition (of the small Gram matrices lowrank.cpp forms on the device) and pinv
// of a tall LoRA B. Serial (gram_factors_host: its matrices in parallel where they are large).
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

// Per matrix i of `count` symmetric n×n fp32 matrices (g + i·n·n, row-major): its eigenpairs
// (w_j, λ_j) by sym_eigen (in double, λ descending) and, for j < k, column j of
//   inv_scaled_i [n, k] = w_j / sqrt(λ_j)      scaled_i [n, k] = w_j · sqrt(λ_j) (if not null),
// a column being zero where λ_j ≤ 1e-12·max(λ_0, 0) or λ_j ≤ 0. The Device op gram_factors
// (device.h) on host memory: the CPU device's, and the reference the CUDA one is checked against.
void gram_factors_host(int count, int n, int k, const float* g, float* inv_scaled, float* scaled);

// pinv(B) of B [out, r] (fp32, row-major) as [r, out] in double, what torch.linalg.pinv
// computes in fp32: pinv = G⁺ Bᵀ with G = BᵀB eigen-decomposed, singular values
// σ = sqrt(λ) <= max(out, r)·eps_float32·σ_max treated as zero.
std::vector<double> pinv_tall(const float* b, int out, int r);

}  // namespace al
