// A truncated SVD of a device matrix through the device's fp32 products, for the lowrank
// strategy: only small Gram matrices (at most 256 × 256, or (k + 8)²) and factor columns come
// to the host, where they are eigen-decomposed in double. The same algorithm on every device.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/device.h"

namespace al {

struct LowRankFactors {
  int k = 0;
  Buffer coef;   // fp32 [m, k] = U·Σ
  Buffer basis;  // fp32 [n, k] = V
};

// A_i ≈ coef · basisᵀ of each of the `count` device matrices A_i = a + i·stride (fp32 [m, n],
// stride in floats), the top k = min(k, m, n) singular triplets. Exact top-k from the
// eigen-decomposition of the smaller Gram matrix when min(m, n) <= 256 (or k + 8 reaches it);
// otherwise randomized subspace iteration (oversampling 8, 4 power iterations, each pass
// re-orthonormalized twice through the eigen-decomposition of its Gram matrix), A_i's test
// matrix drawn from seeds[i], so results reproduce. The matrices of one call go through the
// randomized iteration together (batched products, one wait for the device per step for all of
// them); each one's result is what it would be alone. Caller holds the device lock.
std::vector<LowRankFactors> truncated_svds(Device& dev, const float* a, int64_t stride, int count, int m, int n, int k,
                                           const std::vector<uint64_t>& seeds);

}  // namespace al
