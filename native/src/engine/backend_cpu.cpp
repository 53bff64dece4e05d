// The CPU backend: fp32 ops, OpenMP-parallel over output rows or heads.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/backend.h"

// The build targets x86-64-v2 so the addon runs everywhere; the matmul kernel, where
// nearly all the time goes, also gets an AVX2 clone that the loader picks on CPUs that
// have it. Floating-point contraction is off (CMakeLists.txt), so both clones round
// identically and results do not depend on the machine's vector width.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__)
#define AL_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define AL_MULTIVERSION
#endif
// The kernel's helpers must be inlined into each clone to be compiled for its ISA.
#define AL_INLINE __attribute__((always_inline)) inline

namespace al {
namespace {

// Every dot product is kLanes interleaved partial sums reduced in one fixed order, in
// every tile shape below: an output depends only on its own row of x, never on how many
// tokens share the call. That keeps chunked prefill, batched decode and one-token decode
// bit-identical.
constexpr int kLanes = 8;
// Eight floats as one value: one AVX register in the x86-64-v3 clone, two SSE registers
// in the baseline one. (GCC/Clang vector extension.)
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

AL_INLINE Lanes load(const float* p) {
  Lanes v;
  std::memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}

// Tail elements (in % kLanes) go to the low lanes, in the same way in every tile shape.
AL_INLINE Lanes load_tail(const float* p, int count) {
  Lanes v = {};
  for (int j = 0; j < count; ++j) v[j] = p[j];
  return v;
}

AL_INLINE float lane_sum(Lanes p) {
  return ((p[0] + p[4]) + (p[1] + p[5])) + ((p[2] + p[6]) + (p[3] + p[7]));
}

AL_INLINE void store(float* y, float dot, const float* bias, float scale, bool accumulate, int o) {
  if (accumulate) {
    *y += scale * dot;
  } else {
    *y = bias ? dot + bias[o] : dot;
  }
}

// NT token rows × NR weight rows of y, starting at token t and output row o. Each weight
// vector loaded serves NT tokens and each x vector NR rows; 4 × 2 keeps the 8 accumulators
// in registers.
template <int NT, int NR>
AL_INLINE void dot_tile(float* y, const float* x, const float* w, const float* bias, float scale, bool accumulate,
                        int in, int out, int t, int o) {
  const int in_main = in - in % kLanes;
  const int tail = in - in_main;
  const float* xr[NT];
  const float* wr[NR];
  for (int i = 0; i < NT; ++i) xr[i] = x + static_cast<size_t>(t + i) * in;
  for (int r = 0; r < NR; ++r) wr[r] = w + static_cast<size_t>(o + r) * in;
  Lanes acc[NT][NR] = {};
  for (int k = 0; k < in_main; k += kLanes) {
    Lanes wv[NR];
    for (int r = 0; r < NR; ++r) wv[r] = load(wr[r] + k);
    for (int i = 0; i < NT; ++i) {
      const Lanes xv = load(xr[i] + k);
      for (int r = 0; r < NR; ++r) acc[i][r] += xv * wv[r];
    }
  }
  if (tail) {
    for (int i = 0; i < NT; ++i) {
      const Lanes xv = load_tail(xr[i] + in_main, tail);
      for (int r = 0; r < NR; ++r) acc[i][r] += xv * load_tail(wr[r] + in_main, tail);
    }
  }
  for (int i = 0; i < NT; ++i) {
    for (int r = 0; r < NR; ++r) {
      store(y + static_cast<size_t>(t + i) * out + o + r, lane_sum(acc[i][r]), bias, scale, accumulate, o + r);
    }
  }
}

// Output rows [o0, o1) for nt token rows of x.
AL_MULTIVERSION
void matmul_tile(float* y, const float* x, const float* w, const float* bias, float scale, bool accumulate, int nt,
                 int in, int out, int o0, int o1) {
  int o = o0;
  for (; o + 2 <= o1; o += 2) {
    int t = 0;
    for (; t + 4 <= nt; t += 4) dot_tile<4, 2>(y, x, w, bias, scale, accumulate, in, out, t, o);
    for (; t < nt; ++t) dot_tile<1, 2>(y, x, w, bias, scale, accumulate, in, out, t, o);
  }
  for (; o < o1; ++o) {
    int t = 0;
    for (; t + 4 <= nt; t += 4) dot_tile<4, 1>(y, x, w, bias, scale, accumulate, in, out, t, o);
    for (; t < nt; ++t) dot_tile<1, 1>(y, x, w, bias, scale, accumulate, in, out, t, o);
  }
}

void matmul_impl(float* y, const float* x, const float* w, const float* bias, float scale, bool accumulate, int n,
                 int in, int out) {
  // Token blocks sized so a block of x (~256 KiB) stays in L2 while the weight matrix
  // streams past once per block; row tasks small enough to balance across threads.
  const int block = std::max(4, std::min(128, (256 * 1024 / 4) / std::max(in, 1)) / 4 * 4);
  constexpr int kRowsPerTask = 16;
  const int token_blocks = (n + block - 1) / block;
  const int row_tasks = (out + kRowsPerTask - 1) / kRowsPerTask;
  const int64_t tasks = static_cast<int64_t>(token_blocks) * row_tasks;
#pragma omp parallel for schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int tb = static_cast<int>(task / row_tasks);
    const int rt = static_cast<int>(task % row_tasks);
    const int t0 = tb * block;
    const int nt = std::min(block, n - t0);
    const int o0 = rt * kRowsPerTask;
    const int o1 = std::min(out, o0 + kRowsPerTask);
    matmul_tile(y + static_cast<size_t>(t0) * out, x + static_cast<size_t>(t0) * in, w, bias, scale, accumulate, nt,
                in, out, o0, o1);
  }
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }

  int threads() const override {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }

  void matmul(float* y, const float* x, const float* w, const float* bias, int n, int in, int out) const override {
    matmul_impl(y, x, w, bias, 1.0f, false, n, in, out);
  }

  void matmul_add(float* y, const float* x, const float* w, float scale, int n, int in, int out) const override {
    matmul_impl(y, x, w, nullptr, scale, true, n, in, out);
  }

  void rmsnorm(float* y, const float* x, const float* weight, int n, int dim, float eps) const override {
#pragma omp parallel for schedule(static) if (n >= 8)
    for (int t = 0; t < n; ++t) {
      const float* xr = x + static_cast<size_t>(t) * dim;
      float* yr = y + static_cast<size_t>(t) * dim;
      // torch reduces mean(x²) with a cascaded fp32 sum, which is accurate to about
      // one rounding; a double sum rounded once to fp32 is the closest match.
      double ss = 0.0;
      for (int i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float variance = static_cast<float>(ss / dim);
      const float r = 1.0f / std::sqrt(variance + eps);
      for (int i = 0; i < dim; ++i) yr[i] = weight[i] * (xr[i] * r);
    }
  }

  void rope(float* q, float* k, const int* pos, const float* inv_freq, int n, int num_heads, int num_kv_heads,
            int head_dim) const override {
    const int half = head_dim / 2;
#pragma omp parallel if (n >= 8)
    {
      std::vector<float> cs(half), sn(half);
#pragma omp for schedule(static)
      for (int t = 0; t < n; ++t) {
        // HF: freqs = inv_freq ⊗ position in fp32, emb = cat(freqs, freqs).
        for (int i = 0; i < half; ++i) {
          const float angle = static_cast<float>(pos[t]) * inv_freq[i];
          cs[i] = std::cos(angle);
          sn[i] = std::sin(angle);
        }
        auto rotate = [&](float* x, int heads) {
          for (int h = 0; h < heads; ++h) {
            float* xh = x + static_cast<size_t>(h) * head_dim;
            // x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1).
            for (int i = 0; i < half; ++i) {
              const float a = xh[i], b = xh[i + half];
              xh[i] = a * cs[i] - b * sn[i];
              xh[i + half] = b * cs[i] + a * sn[i];
            }
          }
        };
        rotate(q + static_cast<size_t>(t) * num_heads * head_dim, num_heads);
        rotate(k + static_cast<size_t>(t) * num_kv_heads * head_dim, num_kv_heads);
      }
    }
  }

  void store_kv(const KvRow* rows, const float* k, const float* v, int n, int num_kv_heads,
                int head_dim) const override {
    const size_t kv_dim = static_cast<size_t>(num_kv_heads) * head_dim;
    for (int t = 0; t < n; ++t) {
      const KvRow& r = rows[t];
      for (int h = 0; h < num_kv_heads; ++h) {
        const size_t dst = (static_cast<size_t>(h) * r.capacity + r.pos) * head_dim;
        std::memcpy(r.k + dst, k + t * kv_dim + static_cast<size_t>(h) * head_dim, head_dim * sizeof(float));
        std::memcpy(r.v + dst, v + t * kv_dim + static_cast<size_t>(h) * head_dim, head_dim * sizeof(float));
      }
    }
  }

  void attention(float* out, const float* q, const KvRow* rows, int n, int num_heads, int num_kv_heads,
                 int head_dim) const override {
    const int group = num_heads / num_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    int max_len = 0;
    for (int t = 0; t < n; ++t) max_len = std::max(max_len, rows[t].pos + 1);
    const size_t q_dim = static_cast<size_t>(num_heads) * head_dim;
#pragma omp parallel
    {
      std::vector<float> p(max_len);
      // Causal rows differ in length, so hand out (row, head) pairs dynamically.
#pragma omp for collapse(2) schedule(dynamic, 4)
      for (int t = 0; t < n; ++t) {
        for (int h = 0; h < num_heads; ++h) {
          const KvRow& r = rows[t];
          const int len = r.pos + 1;
          const float* qh = q + t * q_dim + static_cast<size_t>(h) * head_dim;
          const size_t head_off = static_cast<size_t>(h / group) * r.capacity * head_dim;
          const float* kh = r.k + head_off;
          const float* vh = r.v + head_off;
          float mx = -INFINITY;
          for (int j = 0; j < len; ++j) {
            const float* kj = kh + static_cast<size_t>(j) * head_dim;
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int d = 0; d < head_dim; ++d) s += qh[d] * kj[d];
            p[j] = s * scale;
            mx = std::max(mx, p[j]);
          }
          // Softmax in fp32 with the max subtracted, normalized before weighting V (as HF).
          float sum = 0.0f;
          for (int j = 0; j < len; ++j) {
            p[j] = std::exp(p[j] - mx);
            sum += p[j];
          }
          float* oh = out + t * q_dim + static_cast<size_t>(h) * head_dim;
          std::fill(oh, oh + head_dim, 0.0f);
          for (int j = 0; j < len; ++j) {
            const float pj = p[j] / sum;
            const float* vj = vh + static_cast<size_t>(j) * head_dim;
            for (int d = 0; d < head_dim; ++d) oh[d] += pj * vj[d];
          }
        }
      }
    }
  }

  void swiglu(float* gate, const float* up, int64_t count) const override {
#pragma omp parallel for schedule(static) if (count >= 16384)
    for (int64_t i = 0; i < count; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  }

  void add(float* x, const float* y, int64_t count) const override {
#pragma omp parallel for schedule(static) if (count >= 65536)
    for (int64_t i = 0; i < count; ++i) x[i] += y[i];
  }

  void embedding(float* x, const float* table, const int32_t* tokens, int n, int dim) const override {
    for (int t = 0; t < n; ++t) {
      std::memcpy(x + static_cast<size_t>(t) * dim, table + static_cast<size_t>(tokens[t]) * dim,
                  dim * sizeof(float));
    }
  }
};

}  // namespace

const Backend& cpu_backend() {
  static const CpuBackend backend;
  return backend;
}

}  // namespace al
