// What a pass does with its fp32 logits on the device, so that only tokens, probabilities
// and scores come back: argmax_rows, sample_rows (temperature / top-p), score_rows
// (teacher-forced KL, top-1, NLL). CPU references: the ops of the same names in
// device_cpu.cpp (sampling.cpp's argmax, sample_token, token_probability).
#include <cfloat>

#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

constexpr int kRowThreads = 1024;

// The block's (max, lowest index of it) over a row: ties keep the lower index.
__device__ void block_argmax(const float* row, int vocab, float& best_v, int& best_i) {
  __shared__ float sv[32];
  __shared__ int si[32];
  float best = -INFINITY;
  int bi = vocab;  // "none yet": loses every tie
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (bi == vocab || v > best) {  // ascending i: a tie keeps the lower index
      best = v;
      bi = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float v2 = __shfl_xor_sync(0xffffffffu, best, o);
    const int i2 = __shfl_xor_sync(0xffffffffu, bi, o);
    if (i2 != vocab && (bi == vocab || v2 > best || (v2 == best && i2 < bi))) best = v2, bi = i2;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) sv[warp] = best, si[warp] = bi;
  __syncthreads();
  best = sv[0];
  bi = si[0];
  for (int w = 1; w < static_cast<int>(blockDim.x / 32); ++w) {
    if (si[w] != vocab && (bi == vocab || sv[w] > best || (sv[w] == best && si[w] < bi))) best = sv[w], bi = si[w];
  }
  best_v = best;
  best_i = bi == vocab ? 0 : bi;
}

__global__ void argmax_k(int32_t* out, const float* logits, int vocab) {
  float v;
  int i;
  block_argmax(logits + static_cast<int64_t>(blockIdx.x) * vocab, vocab, v, i);
  if (threadIdx.x == 0) out[blockIdx.x] = i;
}

// Σ exp((row_i − mx) / t) over the row, in double.
__device__ double exp_sum(const float* row, int vocab, float mx, float t, double* red) {
  double s = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) s += exp(static_cast<double>((row[i] - mx) / t));
  return block_reduce(s, Add(), red);
}

// mass(τ) = Σ p_i over p_i ≥ τ, p_i = exp((row_i − mx)/t) / sum, in double.
__device__ double mass_at_least(const float* row, int vocab, float mx, float t, double sum, double tau, double* red) {
  double s = 0.0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const double p = exp(static_cast<double>((row[i] - mx) / t)) / sum;
    if (p >= tau) s += p;
  }
  return block_reduce(s, Add(), red);
}

__device__ __forceinline__ double bits_to_double(unsigned long long b) { return __longlong_as_double(static_cast<long long>(b)); }
__device__ __forceinline__ unsigned long long double_to_bits(double d) { return static_cast<unsigned long long>(__double_as_longlong(d)); }

// splitmix64 at step `counter` of the stream seeded by mix64(seed): sampling.cpp's counter_uniform.
__device__ uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
__device__ double counter_uniform(uint64_t seed, uint64_t counter) {
  const uint64_t bits = mix64(mix64(seed) + (counter + 1) * 0x9E3779B97F4A7C15ull);
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

// One row per block: the token (greedy or sampled, sampling.cpp's rule) and its probability
// at temperature 1.
__global__ void sample_k(int32_t* tokens, float* probs, const float* logits, const SampleRow* rows, int vocab) {
  __shared__ double red[32];
  __shared__ double s_prefix[kRowThreads];
  __shared__ int s_ties[kRowThreads];
  __shared__ int s_token;
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const SampleRow sr = rows[blockIdx.x];
  float mx;
  int amax;
  block_argmax(row, vocab, mx, amax);
  int token = amax;
  if (sr.temperature != 0.0f) {
    const float t = sr.temperature;
    const double sum = exp_sum(row, vocab, mx, t, red);
    // The nucleus: cut = the largest probability τ with mass(≥ τ) ≥ top_p, found by bisection
    // on the bit patterns of positive doubles (their integer order is their numeric order).
    double cut = -1.0;
    int ties = 0;
    double kept = 1.0;
    if (sr.top_p < 1.0f) {
      unsigned long long lo = 0, hi = double_to_bits(1.0) + 1;  // mass(≥ lo) ≥ top_p; mass(≥ hi) < top_p
      while (hi - lo > 1) {
        const unsigned long long mid = lo + (hi - lo) / 2;
        if (mass_at_least(row, vocab, mx, t, sum, bits_to_double(mid), red) >= sr.top_p) lo = mid;
        else hi = mid;
      }
      cut = bits_to_double(lo);
      // Above the cut and at it; the ties needed (lowest ids first) to reach top_p.
      double above = 0.0, at = 0.0;
      int n_at = 0;
      for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        const double p = exp(static_cast<double>((row[i] - mx) / t)) / sum;
        if (p > cut) above += p;
        else if (p == cut) at += p, ++n_at;
      }
      above = block_reduce(above, Add(), red);
      n_at = static_cast<int>(block_reduce(static_cast<double>(n_at), Add(), red));
      ties = 0;
      double k = above;
      while (ties < n_at && k < sr.top_p) k += cut, ++ties;
      kept = above + ties * cut;
    }
    const double target = counter_uniform(sr.seed, sr.counter) * kept;
    // Inverse CDF in id order over the nucleus: each thread sums a contiguous range of ids,
    // an exclusive scan over threads finds the range where the target falls.
    const int per = (vocab + blockDim.x - 1) / blockDim.x;
    const int i0 = threadIdx.x * per, i1 = min(vocab, i0 + per);
    double local = 0.0;
    int local_ties = 0;
    for (int i = i0; i < i1; ++i) {
      const double p = exp(static_cast<double>((row[i] - mx) / t)) / sum;
      if (p > cut) local += p;
      else if (p == cut) ++local_ties;
    }
    s_prefix[threadIdx.x] = local;
    s_ties[threadIdx.x] = local_ties;
    __syncthreads();
    if (threadIdx.x == 0) {
      // Serial over threads (1024 values): the ties before each range, and the ranges' sums.
      double cum = 0.0;
      int ties_seen = 0, found = -1;
      for (int w = 0; w < static_cast<int>(blockDim.x) && found < 0; ++w) {
        const int take = min(s_ties[w], max(0, ties - ties_seen));
        const double range = s_prefix[w] + take * cut;
        if (target < cum + range) found = w;
        else cum += range, ties_seen += s_ties[w];
      }
      int chosen = -1, last = 0;
      if (found >= 0) {
        const int a = found * per, b = min(vocab, a + per);
        for (int i = a; i < b && chosen < 0; ++i) {
          const double p = exp(static_cast<double>((row[i] - mx) / t)) / sum;
          bool in = p > cut;
          if (!in && p == cut && ties_seen < ties) in = true, ++ties_seen;
          if (!in) continue;
          cum += p;
          last = i;
          if (target < cum) chosen = i;
        }
      }
      if (chosen < 0) {
        // Within rounding of the nucleus's mass: the last token of the nucleus.
        for (int i = vocab - 1; i >= 0 && chosen < 0; --i) {
          const double p = exp(static_cast<double>((row[i] - mx) / t)) / sum;
          if (p >= cut) chosen = i;
        }
        if (chosen < 0) chosen = last;
      }
      s_token = chosen;
    }
    __syncthreads();
    token = s_token;
  }
  // The model's own probability of the token: softmax at temperature 1.
  const double z = exp_sum(row, vocab, mx, 1.0f, red);
  if (threadIdx.x == 0) {
    tokens[blockIdx.x] = token;
    probs[blockIdx.x] = static_cast<float>(exp(static_cast<double>(row[token]) - mx) / z);
  }
}

// log Σ exp(row) in double (max subtracted).
__device__ double log_sum_exp(const float* row, int vocab, float mx, double* red) {
  return mx + log(exp_sum(row, vocab, mx, 1.0f, red));
}

__global__ void score_k(ScoreOut* out, const float* logits, const ScoreRow* rows, int vocab) {
  __shared__ double red[32];
  const ScoreRow sr = rows[blockIdx.x];
  const float* ps = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const float* pe = logits + static_cast<int64_t>(sr.ref) * vocab;
  float ms, me;
  int as, ae;
  block_argmax(ps, vocab, ms, as);
  block_argmax(pe, vocab, me, ae);
  const double lse_s = log_sum_exp(ps, vocab, ms, red), lse_e = log_sum_exp(pe, vocab, me, red);
  double kl = 0.0;
  for (int j = threadIdx.x; j < vocab; j += blockDim.x) {
    const double le = pe[j] - lse_e;
    const double p = exp(le);
    if (p > 0.0) kl += p * (le - (ps[j] - lse_s));
  }
  kl = block_reduce(kl, Add(), red);
  if (threadIdx.x == 0) {
    ScoreOut o;
    o.kl = kl > 0.0 ? kl : 0.0;
    o.nll = lse_s - ps[sr.target];
    o.nll_ref = lse_e - pe[sr.target];
    o.argmax = as;
    o.argmax_ref = ae;
    out[blockIdx.x] = o;
  }
}

}  // namespace

void argmax_rows(int32_t* out, const float* logits, int n, int vocab, cudaStream_t s) {
  if (n == 0) return;
  argmax_k<<<n, kRowThreads, 0, s>>>(out, logits, vocab);
  check("argmax");
}

void sample_rows(int32_t* tokens, float* probs, const float* logits, const SampleRow* rows, int n, int vocab,
                 cudaStream_t s) {
  if (n == 0) return;
  sample_k<<<n, kRowThreads, 0, s>>>(tokens, probs, logits, rows, vocab);
  check("sampling");
}

void score_rows(ScoreOut* out, const float* logits, const ScoreRow* rows, int n, int vocab, cudaStream_t s) {
  if (n == 0) return;
  score_k<<<n, kRowThreads, 0, s>>>(out, logits, rows, vocab);
  check("scoring");
}

}  // namespace al::cuda
