// Next-token choice from one row of logits.
#pragma once

#include <cstdint>
#include <vector>

namespace al {

struct SamplingParams {
  float temperature = 0.0f;  // 0: greedy
  float top_p = 1.0f;        // nucleus mass in (0, 1]; 1 keeps every token
  uint64_t seed = 0;
};

// Lowest index of the maximum (torch.argmax's tie rule).
int32_t argmax(const float* x, int n);

// A uniform double in [0, 1) that depends only on (seed, counter): sampling reproduces
// exactly and does not depend on which other sequences share the batch.
double counter_uniform(uint64_t seed, uint64_t counter);

// Greedy when temperature is 0; otherwise softmax(logits / temperature), restricted to
// the smallest most-probable prefix with mass >= top_p, sampled with
// counter_uniform(seed, counter). probs and order are scratch, reused between calls.
int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t counter,
                     std::vector<double>& probs, std::vector<int32_t>& order);

}  // namespace al
