// Next-token choice from one row of logits: the CPU reference of the devices' argmax_rows
// and sample_rows ops.
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

// Greedy when temperature is 0; otherwise p = softmax(logits / temperature) (in double),
// restricted to the nucleus: the smallest most-probable set (ties: lower id first) whose mass
// reaches top_p (every token when top_p is 1). The token is the one where the cumulative
// mass, walked in id order over the nucleus, first exceeds counter_uniform(seed, counter) ·
// (the nucleus's mass). Walking in id order rather than in probability order gives the same
// distribution and lets a GPU find the token with a prefix sum instead of a sort.
// probs is scratch, reused between calls.
int32_t sample_token(const float* logits, int vocab, const SamplingParams& p, uint64_t counter,
                     std::vector<double>& probs);

// softmax(logits)[token] at temperature 1, in double: the model's own probability of a token.
double token_probability(const float* logits, int vocab, int32_t token);

}  // namespace al
