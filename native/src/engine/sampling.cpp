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
                     std::vector<double>& probs) {
  if (p.temperature == 0.0f) return argmax(logits, vocab);

  probs.resize(vocab);
  const float mx = logits[argmax(logits, vocab)];
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) {
    probs[i] = std::exp(static_cast<double>((logits[i] - mx) / p.temperature));
    sum += probs[i];
  }
  for (double& q : probs) q /= sum;

  // The nucleus as a threshold: every token above `cut`, plus the first `ties` tokens (in id
  // order) equal to it. top_p = 1 keeps everything (cut below every probability).
  double cut = -1.0;
  int ties = 0;
  double kept = 1.0;
  if (p.top_p < 1.0f) {
    std::vector<double> sorted(probs);
    std::sort(sorted.begin(), sorted.end(), [](double a, double b) { return a > b; });
    double mass = 0.0;
    int k = 0;
    while (k < vocab) {
      mass += sorted[k++];
      if (mass >= p.top_p) break;
    }
    cut = sorted[k - 1];
    double above = 0.0;
    int n_above = 0;
    for (int i = 0; i < k; ++i) {
      if (sorted[i] > cut) above += sorted[i], ++n_above;
    }
    ties = k - n_above;
    kept = above + ties * cut;
  }

  const double target = counter_uniform(p.seed, counter) * kept;
  double cum = 0.0;
  int last = 0, seen_ties = 0;
  for (int i = 0; i < vocab; ++i) {
    bool in = probs[i] > cut;
    if (!in && probs[i] == cut && seen_ties < ties) in = true, ++seen_ties;
    if (!in) continue;
    cum += probs[i];
    last = i;
    if (target < cum) return i;
  }
  return last;  // target within rounding of the nucleus's mass
}

double token_probability(const float* logits, int vocab, int32_t token) {
  float mx = logits[0];
  for (int i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - mx);
  return std::exp(static_cast<double>(logits[token]) - mx) / sum;
}

}  // namespace al
