#include "engine/sampling.h"

#include <algorithm>
#include <cmath>

namespace al {

int32_t argmax(const float* x, int n) {
  int32_t best = 0;
  for (int i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;
  }
  return best;
}

namespace {
// splitmix64's output function: a bijective 64-bit mixer.
uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

double counter_uniform(uint64_t seed, uint64_t counter) {
  // splitmix64 jumped straight to step `counter` of the stream seeded by mix64(seed).
  const uint64_t bits = mix64(mix64(seed) + (counter + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t counter,
                     std::vector<double>& probs, std::vector<int32_t>& order) {
  if (p.temperature == 0.0f) return argmax(logits, vocab);

  probs.resize(vocab);
  const float mx = logits[argmax(logits, vocab)];
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    probs[i] = std::exp(static_cast<double>((logits[i] - mx) / p.temperature));
    sum += probs[i];
  }
  for (double& q : probs) q /= sum;

  const double u = counter_uniform(p.seed, counter);
  if (p.top_p >= 1.0f) {
    // No nucleus: walk the distribution in id order.
    double target = u, cum = 0.0;
    for (int i = 0; i < vocab; ++i) {
      cum += probs[i];
      if (target < cum) return i;
    }
    return vocab - 1;  // u within rounding of 1
  }

  // Nucleus: most probable first (ties: lower id first), keep the smallest prefix
  // whose mass reaches top_p, renormalize by sampling within that mass.
  order.resize(vocab);
  for (int i = 0; i < vocab; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
  });
  double kept = 0.0;
  int n_kept = 0;
  while (n_kept < vocab) {
    kept += probs[order[n_kept++]];
    if (kept >= p.top_p) break;
  }
  const double target = u * kept;
  double cum = 0.0;
  for (int i = 0; i < n_kept; ++i) {
    cum += probs[order[i]];
    if (target < cum) return order[i];
  }
  return order[n_kept - 1];
}

}  // namespace al
