// A truncated SVD of a device matrix through the device's fp32 products, for the lowrank
// strategy: only small Gram matrices (at most 256 × 256, or (k + 8)²) and factor columns come
// to the host, where they are eigen-decomposed in double. The same algorithm on every device.
#pragma once

#include <cstdint>

#include "engine/device.h"

namespace al {

struct LowRankFactors {
  int k = 0;
  Buffer coef;   // fp32 [m, k] = U·Σ
  Buffer basis;  // fp32 [n, k] = V
};

// A ≈ coef · basisᵀ of the device matrix A fp32 [m, n], the top k = min(k, m, n) singular
// triplets. Exact top-k from the eigen-decomposition of the smaller Gram matrix when
// min(m, n) <= 256 (or k + 8 reaches it); otherwise randomized subspace iteration
// (oversampling 8, 4 power iterations, each pass re-orthonormalized twice through the
// eigen-decomposition of its Gram matrix) seeded by `seed`, so results reproduce.
// Caller holds the device lock.
LowRankFactors truncated_svd(Device& dev, const float* a, int m, int n, int k, uint64_t seed);

}  // namespace al
