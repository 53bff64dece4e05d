// The CPU device: every op of device.h in fp32 on host memory, OpenMP-parallel over output
// rows, heads or tokens. It is the reference the CUDA device's kernels are tested against
// (tests/cuda/backend_ops.cu) and the engine of the CPU build, HF-exact in fp32.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "engine/device.h"
#include "engine/linalg.h"
#include "engine/sampling.h"
#include "engine/weights.h"

// The build targets x86-64-v2 so the addon runs everywhere; the matmul kernel, where
// nearly all the time goes, also gets an AVX2 clone that the loader picks on CPUs that
// have it. Floating-point contraction is off (CMakeLists.txt), so both clones round
// identically and results do not depend on the machine's vector width.
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define AL_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define AL_MULTIVERSION
#endif
// The kernel's helpers must be inlined into each clone to be compiled for its ISA.
#define AL_INLINE __attribute__((always_inline)) inline

namespace al {
namespace {

// ---- matmul -------------------------------------------------------------------------------

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

// How a tile's dot products land in y: y = alpha·dot (+ bias), y += alpha·dot, or the
// general y = alpha·dot + beta·y. alpha = 1 with no beta is a plain store, so the forward
// pass's products round exactly as before this op took alpha and beta.
struct Epilogue {
  const float* bias;
  float alpha;
  float beta;  // 0: overwrite; 1: accumulate; otherwise general
};

AL_INLINE void store(float* y, float dot, const Epilogue& e, int o) {
  if (e.beta == 1.0f) {
    *y += e.alpha * dot;
  } else if (e.beta == 0.0f) {
    const float v = e.alpha == 1.0f ? dot : e.alpha * dot;
    *y = e.bias ? v + e.bias[o] : v;
  } else {
    *y = e.alpha * dot + e.beta * *y;
  }
}

// NT token rows × NR weight rows of y, starting at token t and output row o. Each weight
// vector loaded serves NT tokens and each x vector NR rows; 4 × 2 keeps the 8 accumulators
// in registers.
template <int NT, int NR>
AL_INLINE void dot_tile(float* y, const float* x, const float* w, const Epilogue& e, int in, int out, int t, int o) {
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
    for (int r = 0; r < NR; ++r) store(y + static_cast<size_t>(t + i) * out + o + r, lane_sum(acc[i][r]), e, o + r);
  }
}

// Output rows [o0, o1) for nt token rows of x.
AL_MULTIVERSION
void matmul_tile(float* y, const float* x, const float* w, const Epilogue& e, int nt, int in, int out, int o0,
                 int o1) {
  int o = o0;
  for (; o + 2 <= o1; o += 2) {
    int t = 0;
    for (; t + 4 <= nt; t += 4) dot_tile<4, 2>(y, x, w, e, in, out, t, o);
    for (; t < nt; ++t) dot_tile<1, 2>(y, x, w, e, in, out, t, o);
  }
  for (; o < o1; ++o) {
    int t = 0;
    for (; t + 4 <= nt; t += 4) dot_tile<4, 1>(y, x, w, e, in, out, t, o);
    for (; t < nt; ++t) dot_tile<1, 1>(y, x, w, e, in, out, t, o);
  }
}

// y[n, out] = x[n, in] · W[out, in]ᵀ through the epilogue.
void matmul(float* y, const float* x, const float* w, const Epilogue& e, int n, int in, int out) {
  if (n <= 0 || out <= 0) return;
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
    matmul_tile(y + static_cast<size_t>(t0) * out, x + static_cast<size_t>(t0) * in, w, e, nt, in, out, o0, o1);
  }
}

void need_f32(DT dt) {
  if (dt != DT::F32) {
    throw std::invalid_argument(std::string("the CPU engine computes in fp32 only; ") + compute_type_name(dt) +
                                " needs the CUDA build");
  }
}

const float* F(const void* p) { return static_cast<const float*>(p); }
float* F(void* p) { return static_cast<float*>(p); }

// ---- attention ----------------------------------------------------------------------------

// One head's softmax state over some keys: running max m, sum l, and the unnormalized
// P·V (acc) and P·cv (accc, a low-rank ΔV correction's r coefficients).
struct SoftmaxState {
  float m = -INFINITY;
  float l = 0.0f;
  std::vector<float> acc, accc;
};

int quant_value(const uint8_t* row, int i, int bits) {
  if (bits == 8) return static_cast<int8_t>(row[i]);
  const int nib = (row[i / 2] >> ((i & 1) * 4)) & 0xF;
  return (nib ^ 8) - 8;  // sign-extend the 4-bit two's complement
}

// Keys [begin, end) of span `s` for query head `h` of query q (head_dim hd), with correction
// `c` (may be null) applied: scores q·k_base + q·ΔK, then the softmax state of those keys.
// scores is scratch.
void part_state(SoftmaxState& st, const float* q, const AttnSpan& s, int end, const AttnCorrection* c, int h,
                int group, int hd, float scale, std::vector<float>& scores, std::vector<float>& qk_low) {
  const int g = h / group;
  const int begin = s.begin;
  const int len = end - begin;
  st.acc.assign(hd, 0.0f);
  st.accc.assign(c && c->cv ? c->rv : 0, 0.0f);
  st.m = -INFINITY;
  st.l = 0.0f;
  if (len <= 0) return;
  scores.resize(len);
  const float* kh = F(s.k) + static_cast<size_t>(g) * s.capacity * hd;
  const float* vh = F(s.v) + static_cast<size_t>(g) * s.capacity * hd;
  // Low-rank ΔK: q·(bk_g · ck_j) = (bk_gᵀ q)·ck_j, the r-vector bk_gᵀ q once per head.
  if (c && c->ck) {
    qk_low.assign(c->rk, 0.0f);
    for (int d = 0; d < hd; ++d) {
      const float* brow = c->bk + (static_cast<size_t>(g) * hd + d) * c->rk;
      for (int r = 0; r < c->rk; ++r) qk_low[r] += q[d] * brow[r];
    }
  }
  const int row_bytes = c && c->qk ? (c->bits == 8 ? hd : (hd + 1) / 2) : 0;
  float mx = -INFINITY;
  for (int j = 0; j < len; ++j) {
    const int key = begin + j;
    const float* kj = kh + static_cast<size_t>(j) * hd;  // slot j holds position begin + j
    float sc = 0.0f;
    for (int d = 0; d < hd; ++d) sc += q[d] * kj[d];
    if (c && c->qk) {
      const uint8_t* qr = c->qk + (static_cast<size_t>(g) * c->tokens + key) * row_bytes;
      float dq = 0.0f;
      for (int d = 0; d < hd; ++d) dq += q[d] * static_cast<float>(quant_value(qr, d, c->bits));
      sc += c->sk[static_cast<size_t>(g) * c->tokens + key] * dq;
    }
    if (c && c->ck) {
      const float* cr = c->ck + static_cast<size_t>(key) * c->rk;
      float lo = 0.0f;
      for (int r = 0; r < c->rk; ++r) lo += qk_low[r] * cr[r];
      sc += lo;
    }
    sc *= scale;
    scores[j] = sc;
    mx = std::max(mx, sc);
  }
  float sum = 0.0f;
  for (int j = 0; j < len; ++j) {
    const int key = begin + j;
    const float p = std::exp(scores[j] - mx);
    sum += p;
    const float* vj = vh + static_cast<size_t>(j) * hd;
    for (int d = 0; d < hd; ++d) st.acc[d] += p * vj[d];
    if (c && c->qv) {
      const uint8_t* qr = c->qv + (static_cast<size_t>(g) * c->tokens + key) * row_bytes;
      const float ps = p * c->sv[static_cast<size_t>(g) * c->tokens + key];
      for (int d = 0; d < hd; ++d) st.acc[d] += ps * static_cast<float>(quant_value(qr, d, c->bits));
    }
    if (c && c->cv) {
      const float* cr = c->cv + static_cast<size_t>(key) * c->rv;
      for (int r = 0; r < c->rv; ++r) st.accc[r] += p * cr[r];
    }
  }
  st.m = mx;
  st.l = sum;
}

// out (hd) = the log-sum-exp merge of the row's part states, low-rank ΔV corrections applied.
void merge_states(float* out, const std::vector<SoftmaxState>& states, const std::vector<const AttnCorrection*>& corrs,
                  int g, int hd) {
  float mx = -INFINITY;
  for (const SoftmaxState& s : states) {
    if (s.l > 0.0f) mx = std::max(mx, s.m);
  }
  float total = 0.0f;
  std::vector<float> w(states.size(), 0.0f);
  for (size_t i = 0; i < states.size(); ++i) {
    if (states[i].l <= 0.0f) continue;
    w[i] = std::exp(states[i].m - mx);
    total += states[i].l * w[i];
  }
  for (int d = 0; d < hd; ++d) {
    float a = 0.0f;
    for (size_t i = 0; i < states.size(); ++i) {
      if (w[i] == 0.0f) continue;
      float v = states[i].acc[d];
      const AttnCorrection* c = corrs[i];
      if (c && c->cv) {
        const float* brow = c->bv + (static_cast<size_t>(g) * hd + d) * c->rv;
        for (int r = 0; r < c->rv; ++r) v += brow[r] * states[i].accc[r];
      }
      a += w[i] * v;
    }
    out[d] = total > 0.0f ? a / total : 0.0f;
  }
}

// ---- the device ----------------------------------------------------------------------------

class CpuDevice final : public Device {
 public:
  const char* name() const override { return "cpu"; }

  std::string describe() const override {
#if defined(__x86_64__) || defined(_M_X64)
    const char* arch = "x86_64";
#elif defined(__aarch64__) || defined(_M_ARM64)
    const char* arch = "arm64";
#else
    const char* arch = "unknown-arch";
#endif
    const int t = threads();
    return std::string(arch) + " CPU, " + std::to_string(t) + (t == 1 ? " thread" : " threads");
  }

  int threads() const override {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }

  bool supports(DT dt) const override { return dt == DT::F32; }
  int attention_chunk() const override { return std::numeric_limits<int>::max() / 4; }
  int prefill_chunk() const override { return 128; }
  // As the CUDA device: batches of up to 64 rows take the stacked q/k/v and gate/up products and
  // their fused glue (qkv_rope_store, swiglu_stacked, LoRA into the stacked rows), so the CPU
  // tests run the forward pass the GPU runs for a decode step (the same dot products either way).
  bool prefers_stacked(int n) const override { return n <= 64; }

  std::unique_lock<std::recursive_mutex> lock() override { return std::unique_lock<std::recursive_mutex>(mutex_); }

  void* alloc(size_t bytes, const char* what) override {
    if (bytes == 0) return nullptr;
    void* p = std::malloc(bytes);
    if (!p) {
      throw std::runtime_error("out of memory allocating " + std::to_string(bytes >> 20) + " MiB for " + what);
    }
    return p;
  }
  void release(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
  }
  void memset0(void* p, size_t bytes) override {
    if (bytes) std::memset(p, 0, bytes);
  }
  void sync(const char*) override {}
  DeviceMemory memory() const override { return {}; }
  void reset_peak() override {}

  void load_values(DT dt, void* dst, const void* src, int src_kind, int64_t n) override {
    need_f32(dt);
    const DType kind = src_kind == 0 ? DType::F32 : src_kind == 1 ? DType::F16 : DType::BF16;
    convert_to_f32(static_cast<const uint8_t*>(src), kind, n, F(dst));
  }

  void gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta) override {
    need_f32(dt);
    matmul(F(y), F(x), F(w), Epilogue{nullptr, alpha, beta}, n, in, out);
  }

  void gemm_out_f32(DT dt, float* y, const void* x, const void* w, int n, int in, int out) override {
    need_f32(dt);
    matmul(y, F(x), F(w), Epilogue{nullptr, 1.0f, 0.0f}, n, in, out);
  }

  void gemm_f32(float* y, const float* a, const float* b, int m, int n, int k, bool ta, bool tb, float alpha,
                float beta) override {
    if (m <= 0 || n <= 0) return;
    // matmul computes x[m, k] · W[n, k]ᵀ: give it A as [m, k] and B as [n, k].
    std::vector<float> at, bt;
    const float* x = a;
    const float* w = b;
    if (ta) {  // A stored [k, m]
      at.resize(static_cast<size_t>(m) * k);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(m) * k >= 65536)
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < k; ++j) at[static_cast<size_t>(i) * k + j] = a[static_cast<size_t>(j) * m + i];
      x = at.data();
    }
    if (!tb) {  // B stored [k, n]
      bt.resize(static_cast<size_t>(n) * k);
#pragma omp parallel for schedule(static) if (static_cast<int64_t>(n) * k >= 65536)
      for (int i = 0; i < n; ++i)
        for (int j = 0; j < k; ++j) bt[static_cast<size_t>(i) * k + j] = b[static_cast<size_t>(j) * n + i];
      w = bt.data();
    }
    if (k == 0) {
      for (int64_t i = 0; i < static_cast<int64_t>(m) * n; ++i) y[i] = beta == 0.0f ? 0.0f : beta * y[i];
      return;
    }
    matmul(y, x, w, Epilogue{nullptr, alpha, beta}, m, k, n);
  }
  void gemm_f32_batched(int count, float* y, int64_t sy, const float* a, int64_t sa, const float* b, int64_t sb, int m,
                        int n, int k, bool ta, bool tb, float alpha, float beta) override {
    for (int i = 0; i < count; ++i) gemm_f32(y + i * sy, a + i * sa, b + i * sb, m, n, k, ta, tb, alpha, beta);
  }


  void gram_factors(int count, int n, int k, const float* g, float* inv_scaled, float* scaled) override {
    gram_factors_host(count, n, k, g, inv_scaled, scaled);
  }

  void add_bias(DT dt, void* y, const void* bias, int n, int out) override {
    need_f32(dt);
    for (int t = 0; t < n; ++t)
      for (int o = 0; o < out; ++o) F(y)[static_cast<size_t>(t) * out + o] += F(bias)[o];
  }

  void rmsnorm(DT dt, void* y, const void* x, const void* w, int n, int dim, float eps) override {
    need_f32(dt);
    norm_rows(F(y), F(x), F(w), n, dim, eps);
  }

  void add_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps) override {
    need_f32(dt);
    const int64_t count = static_cast<int64_t>(n) * dim;
#pragma omp parallel for schedule(static) if (count >= 65536)
    for (int64_t i = 0; i < count; ++i) F(x)[i] += F(delta)[i];
    norm_rows(F(y), F(x), F(w), n, dim, eps);
  }

  void rope(DT dt, void* qv, void* kv, const int* pos, const float* inv_freq, int n, int heads, int kv_heads,
            int hd) override {
    need_f32(dt);
    float* q = F(qv);
    float* k = F(kv);
    const int half = hd / 2;
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
        auto rotate = [&](float* x, int nh) {
          for (int h = 0; h < nh; ++h) {
            float* xh = x + static_cast<size_t>(h) * hd;
            // x*cos + rotate_half(x)*sin, rotate_half(x) = cat(-x2, x1).
            for (int i = 0; i < half; ++i) {
              const float a = xh[i], b = xh[i + half];
              xh[i] = a * cs[i] - b * sn[i];
              xh[i + half] = b * cs[i] + a * sn[i];
            }
          }
        };
        rotate(q + static_cast<size_t>(t) * heads * hd, heads);
        rotate(k + static_cast<size_t>(t) * kv_heads * hd, kv_heads);
      }
    }
  }

  void qkv_rope_store(DT dt, void* q, const void* qkv, const int* pos, const float* inv_freq, Table<KvWrite> rows,
                      int layer, int n, int heads, int kv_heads, int hd) override {
    need_f32(dt);
    // The reference is the composition it replaces: split, rope, store_kv.
    const size_t qd = static_cast<size_t>(heads) * hd, kvd = static_cast<size_t>(kv_heads) * hd, w = qd + 2 * kvd;
    std::vector<float> k(n * kvd), v(n * kvd);
    for (int t = 0; t < n; ++t) {
      const float* r = F(qkv) + t * w;
      std::memcpy(F(q) + t * qd, r, qd * sizeof(float));
      std::memcpy(k.data() + t * kvd, r + qd, kvd * sizeof(float));
      std::memcpy(v.data() + t * kvd, r + qd + kvd, kvd * sizeof(float));
    }
    rope(dt, q, k.data(), pos, inv_freq, n, heads, kv_heads, hd);
    store_kv(dt, rows, layer, k.data(), v.data(), n, kv_heads, hd);
  }

  void swiglu(DT dt, void* gv, const void* up, int64_t count) override {
    need_f32(dt);
    float* gate = F(gv);
#pragma omp parallel for schedule(static) if (count >= 16384)
    for (int64_t i = 0; i < count; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * F(up)[i];
    }
  }

  void swiglu_stacked(DT dt, void* out, const void* gate_up, int n, int inter) override {
    need_f32(dt);
    for (int t = 0; t < n; ++t) {
      const float* g = F(gate_up) + static_cast<size_t>(t) * 2 * inter;
      float* o = F(out) + static_cast<size_t>(t) * inter;
      for (int i = 0; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * g[inter + i];
    }
  }

  void embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim) override {
    need_f32(dt);
    for (int t = 0; t < n; ++t) {
      std::memcpy(F(x) + static_cast<size_t>(t) * dim, F(table) + static_cast<size_t>(tokens[t]) * dim,
                  dim * sizeof(float));
    }
  }

  void store_kv(DT dt, Table<KvWrite> rows, int layer, const void* k, const void* v, int n, int kv_heads,
                int hd) override {
    need_f32(dt);
    const size_t kv_dim = static_cast<size_t>(kv_heads) * hd;
    for (int t = 0; t < n; ++t) {
      const KvWrite& r = rows[t];
      float* kl = F(r.k) + r.layer_stride * layer;
      float* vl = F(r.v) + r.layer_stride * layer;
      for (int h = 0; h < kv_heads; ++h) {
        const size_t dst = (static_cast<size_t>(h) * r.capacity + r.slot) * hd;
        std::memcpy(kl + dst, F(k) + t * kv_dim + static_cast<size_t>(h) * hd, hd * sizeof(float));
        std::memcpy(vl + dst, F(v) + t * kv_dim + static_cast<size_t>(h) * hd, hd * sizeof(float));
      }
    }
  }

  void lora(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
            float* scratch) override {
    need_f32(dt);
    for (int ti = 0; ti < count; ++ti) {
      const LoraOutput& tg = targets[ti];
      float* tmp = scratch + static_cast<size_t>(ti) * n * std::max(max_rank, 1);
      // Consecutive rows through the same adapter (a prefill chunk: all of them) share one
      // pair of products: tmp = x Aᵀ, y += scale · tmp Bᵀ (PEFT scales after B).
      for (int i = 0; i < n;) {
        const LoraRow& r = tg.rows[i];
        int j = i + 1;
        while (j < n && tg.rows[j].a == r.a && tg.rows[j].b == r.b && tg.rows[j].scale == r.scale) ++j;
        if (r.a) {
          const int len = j - i;
          matmul(tmp, F(x) + static_cast<size_t>(i) * in, F(r.a), Epilogue{nullptr, 1.0f, 0.0f}, len, in, r.rank);
          for (int q = i; q < j; ++q) {
            if (!tg.rows[q].capture) continue;
            const float* ax = tmp + static_cast<size_t>(q - i) * r.rank;
            for (int e = 0; e < r.rank; ++e) tg.rows[q].capture[e] = r.scale * ax[e];
          }
          if (tg.stride() == tg.out) {
            matmul(F(tg.y) + static_cast<size_t>(i) * tg.out, tmp, F(r.b), Epilogue{nullptr, r.scale, 1.0f}, len,
                   r.rank, tg.out);
          } else {
            // y's rows are a stacked projection's: the product apart, then added row by row.
            std::vector<float> add(static_cast<size_t>(len) * tg.out);
            matmul(add.data(), tmp, F(r.b), Epilogue{nullptr, r.scale, 0.0f}, len, r.rank, tg.out);
            for (int q = 0; q < len; ++q) {
              float* yr = F(tg.y) + static_cast<size_t>(i + q) * tg.stride();
              for (int o = 0; o < tg.out; ++o) yr[o] += add[static_cast<size_t>(q) * tg.out + o];
            }
          }
        }
        i = j;
      }
    }
  }

  void attention_prefill(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                         int heads, int kv_heads, int hd) override {
    need_f32(dt);
    // The same per-(row, head) computation as attention_parts with one part per row, so a
    // token's output does not depend on whether it came in a prefill chunk or a decode batch.
    const AttnSpan span{k, v, capacity, 0, pos0 + n, 1};
    const int group = heads / kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const size_t q_dim = static_cast<size_t>(heads) * hd;
#pragma omp parallel
    {
      std::vector<float> scores, qk_low;
      SoftmaxState st;
#pragma omp for collapse(2) schedule(dynamic, 4)
      for (int t = 0; t < n; ++t) {
        for (int h = 0; h < heads; ++h) {
          part_state(st, F(q) + t * q_dim + static_cast<size_t>(h) * hd, span, pos0 + t + 1, nullptr, h, group, hd,
                     scale, scores, qk_low);
          float* oh = F(out) + t * q_dim + static_cast<size_t>(h) * hd;
          for (int d = 0; d < hd; ++d) oh[d] = st.acc[d] / st.l;
        }
      }
    }
  }

  void attention_parts(DT dt, void* out, const void* q, const AttnPlan& plan, int n_rows, int heads, int kv_heads,
                       int hd) override {
    need_f32(dt);
    const int group = heads / kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const size_t q_dim = static_cast<size_t>(heads) * hd;
#pragma omp parallel
    {
      std::vector<float> scores, qk_low;
      std::vector<SoftmaxState> states;
      std::vector<const AttnCorrection*> corrs;
#pragma omp for collapse(2) schedule(dynamic, 4)
      for (int r = 0; r < n_rows; ++r) {
        for (int h = 0; h < heads; ++h) {
          const int b = plan.row_parts_begin[r], e = plan.row_parts_begin[r + 1];
          states.resize(e - b);
          corrs.assign(e - b, nullptr);
          for (int i = b; i < e; ++i) {
            const AttnPart& p = plan.parts[plan.row_parts[i]];
            const AttnCorrection* c = p.corr >= 0 ? &plan.corrs[p.corr] : nullptr;
            corrs[i - b] = c;
            part_state(states[i - b], F(q) + r * q_dim + static_cast<size_t>(h) * hd, plan.spans[p.span], p.end, c, h,
                       group, hd, scale, scores, qk_low);
          }
          merge_states(F(out) + r * q_dim + static_cast<size_t>(h) * hd, states, corrs, h / group, hd);
        }
      }
    }
  }

  void argmax_rows(int32_t* out, const float* logits, int n, int vocab) override {
    for (int i = 0; i < n; ++i) out[i] = argmax(logits + static_cast<size_t>(i) * vocab, vocab);
  }

  void sample_rows(int32_t* tokens, float* probs, const float* logits, Table<SampleRow> rows, int n,
                   int vocab) override {
    std::vector<double> scratch;
    for (int i = 0; i < n; ++i) {
      const float* row = logits + static_cast<size_t>(i) * vocab;
      const SampleRow& s = rows[i];
      const SamplingParams p{s.temperature, s.top_p, s.seed};
      tokens[i] = sample_token(row, vocab, p, s.counter, scratch);
      probs[i] = static_cast<float>(token_probability(row, vocab, tokens[i]));
    }
  }

  void score_rows(ScoreOut* out, const float* logits, Table<ScoreRow> rows, int n, int vocab) override {
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < n; ++i) {
      const float* ps = logits + static_cast<size_t>(i) * vocab;
      const float* pe = logits + static_cast<size_t>(rows[i].ref) * vocab;
      const double lse_s = log_sum_exp(ps, vocab), lse_e = log_sum_exp(pe, vocab);
      double kl = 0.0;
      for (int j = 0; j < vocab; ++j) {
        const double le = pe[j] - lse_e;
        const double p = std::exp(le);
        if (p > 0.0) kl += p * (le - (ps[j] - lse_s));
      }
      const int t = rows[i].target;
      out[i] = ScoreOut{std::max(0.0, kl), lse_s - ps[t], lse_e - pe[t], argmax(ps, vocab), argmax(pe, vocab)};
    }
  }

  void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads,
                  int hd, int T) override {
    need_f32(dt);
    const size_t D = static_cast<size_t>(heads) * hd;
#pragma omp parallel for schedule(static) if (T >= 256)
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < heads; ++h) {
        const float* e = F(exact) + (static_cast<size_t>(h) * exact_cap + t) * hd;
        const float* b = F(base) + (static_cast<size_t>(h) * base_cap + t) * hd;
        float* r = rows + t * D + static_cast<size_t>(h) * hd;
        for (int i = 0; i < hd; ++i) r[i] = e[i] - b[i];
      }
    }
  }

  void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads, int hd,
                int T) override {
    need_f32(dt);
    const size_t D = static_cast<size_t>(heads) * hd;
#pragma omp parallel for schedule(static) if (T >= 256)
    for (int t = 0; t < T; ++t) {
      for (int h = 0; h < heads; ++h) {
        float* o = F(out) + (static_cast<size_t>(h) * out_cap + t) * hd;
        const float* b = F(base) + (static_cast<size_t>(h) * base_cap + t) * hd;
        const float* r = rows + t * D + static_cast<size_t>(h) * hd;
        for (int i = 0; i < hd; ++i) o[i] = b[i] + r[i];
      }
    }
  }

  void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int hd,
                      int T) override {
    need_f32(dt);
    for (int h = 0; h < heads; ++h) {
      std::memmove(F(dst) + static_cast<size_t>(h) * dst_cap * hd, F(src) + static_cast<size_t>(h) * src_cap * hd,
                   static_cast<size_t>(T) * hd * sizeof(float));
    }
  }

  void quantize_delta(DT dt, uint8_t* q, float* scale_out, const void* exact, int exact_cap, const void* base,
                      int base_cap, int heads, int hd, int T, int bits) override {
    need_f32(dt);
    const int qmax = bits == 8 ? 127 : 7;
    const int row_bytes = bits == 8 ? hd : (hd + 1) / 2;
    const int64_t rows = static_cast<int64_t>(heads) * T;
#pragma omp parallel
    {
      std::vector<int> vals(hd);
#pragma omp for schedule(static)
      for (int64_t row = 0; row < rows; ++row) {
        const int h = static_cast<int>(row / T), t = static_cast<int>(row % T);
        const float* e = F(exact) + (static_cast<size_t>(h) * exact_cap + t) * hd;
        const float* b = F(base) + (static_cast<size_t>(h) * base_cap + t) * hd;
        float amax = 0.0f;
        for (int i = 0; i < hd; ++i) amax = std::max(amax, std::abs(e[i] - b[i]));
        const float scale = amax / static_cast<float>(qmax);
        scale_out[row] = scale;
        for (int i = 0; i < hd; ++i) {
          // Round half to even (nearbyint in the default mode), as torch.round does.
          const float r = scale > 0.0f ? std::nearbyint((e[i] - b[i]) / scale) : 0.0f;
          vals[i] = static_cast<int>(std::min(std::max(r, static_cast<float>(-qmax)), static_cast<float>(qmax)));
        }
        uint8_t* o = q + static_cast<size_t>(row) * row_bytes;
        if (bits == 8) {
          for (int i = 0; i < hd; ++i) o[i] = static_cast<uint8_t>(static_cast<int8_t>(vals[i]));
        } else {
          for (int i = 0; i < hd; i += 2) {
            const int lo = vals[i] & 0xF, hi = i + 1 < hd ? vals[i + 1] & 0xF : 0;
            o[i / 2] = static_cast<uint8_t>(lo | (hi << 4));
          }
        }
      }
    }
  }

  void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q,
                     const float* scale, int heads, int hd, int T, int bits) override {
    need_f32(dt);
    const int row_bytes = bits == 8 ? hd : (hd + 1) / 2;
    const int64_t rows = static_cast<int64_t>(heads) * T;
#pragma omp parallel for schedule(static) if (rows >= 1024)
    for (int64_t row = 0; row < rows; ++row) {
      const int h = static_cast<int>(row / T), t = static_cast<int>(row % T);
      const uint8_t* in = q + static_cast<size_t>(row) * row_bytes;
      float* o = F(out) + (static_cast<size_t>(h) * out_cap + t) * hd;
      const float* b = F(base) + (static_cast<size_t>(h) * base_cap + t) * hd;
      for (int i = 0; i < hd; ++i) o[i] = b[i] + static_cast<float>(quant_value(in, i, bits)) * scale[row];
    }
  }
  void quantize_columns(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs,
                        const float* step, int row_bytes) override {
#pragma omp parallel for schedule(static) if (rows >= 256)
    for (int t = 0; t < rows; ++t) {
      uint8_t* o = q + static_cast<size_t>(t) * row_bytes;
      std::memset(o, 0, row_bytes);
      for (int j = 0; j < k; ++j) {
        const int b = bits[j], half = 1 << (b - 1);
        const float f = std::floor(x[static_cast<size_t>(t) * k + j] / step[j]);
        const int c = static_cast<int>(std::min(std::max(f + static_cast<float>(half), 0.0f), static_cast<float>(2 * half - 1)));
        // The code's bits at [offs, offs + b) of the row: at most two bytes (b <= 8).
        const int at = offs[j] >> 3, sh = offs[j] & 7;
        const unsigned v = static_cast<unsigned>(c) << sh;
        o[at] = static_cast<uint8_t>(o[at] | (v & 0xFF));
        if (sh + b > 8) o[at + 1] = static_cast<uint8_t>(o[at + 1] | (v >> 8));
      }
    }
  }

  void dequantize_columns(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                          const float* step, int row_bytes) override {
#pragma omp parallel for schedule(static) if (rows >= 256)
    for (int t = 0; t < rows; ++t) {
      const uint8_t* in = q + static_cast<size_t>(t) * row_bytes;
      for (int j = 0; j < k; ++j) {
        const int b = bits[j], half = 1 << (b - 1);
        const int at = offs[j] >> 3, sh = offs[j] & 7;
        unsigned v = in[at];
        if (sh + b > 8) v |= static_cast<unsigned>(in[at + 1]) << 8;
        const int c = static_cast<int>((v >> sh) & ((1u << b) - 1));
        x[static_cast<size_t>(t) * k + j] = (static_cast<float>(c - half) + 0.5f) * step[j];
      }
    }
  }


  void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap, const void* ek,
                  const void* ev, int e_cap, int heads, int hd, int T, int bin) override {
    need_f32(dt);
    // One (head, token) row: its four sums.
    auto row = [&](int h, int t, double o[4]) {
      const size_t ro = (static_cast<size_t>(h) * r_cap + t) * hd, eo = (static_cast<size_t>(h) * e_cap + t) * hd;
      double kd = 0, kn = 0, vd = 0, vn = 0;
      for (int i = 0; i < hd; ++i) {
        const double ekv = F(ek)[eo + i], evv = F(ev)[eo + i];
        const double dk = static_cast<double>(F(rk)[ro + i]) - ekv, dv = static_cast<double>(F(rv)[ro + i]) - evv;
        kd += dk * dk;
        kn += ekv * ekv;
        vd += dv * dv;
        vn += evv * evv;
      }
      o[0] = kd, o[1] = kn, o[2] = vd, o[3] = vn;
    };
#pragma omp parallel for schedule(static)
    for (int h = 0; h < heads; ++h) {
      double acc[4] = {0, 0, 0, 0}, r[4];
      for (int t = 0; t < T; ++t) {
        row(h, t, r);
        for (int j = 0; j < 4; ++j) acc[j] += r[j];
      }
      for (int j = 0; j < 4; ++j) by_head[h * 4 + j] = acc[j];
    }
    const int bins = (T + bin - 1) / bin;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < bins; ++b) {
      double acc[4] = {0, 0, 0, 0}, r[4];
      for (int t = b * bin; t < std::min(T, (b + 1) * bin); ++t) {
        double tok[4] = {0, 0, 0, 0};
        for (int h = 0; h < heads; ++h) {
          row(h, t, r);
          for (int j = 0; j < 4; ++j) tok[j] += r[j];
        }
        for (int j = 0; j < 4; ++j) acc[j] += tok[j];
      }
      for (int j = 0; j < 4; ++j) by_bin[b * 4 + j] = acc[j];
    }
  }

  void outside_span_sums(DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v, int base_cap,
                         const double* P, const float* B, int r, int heads, int hd, int T) override {
    need_f32(dt);
    const int D = heads * hd;
    double outside = 0.0, total = 0.0;
#pragma omp parallel reduction(+ : outside, total)
    {
      std::vector<double> dv(D), c(r);
#pragma omp for schedule(static)
      for (int t = 0; t < T; ++t) {
        // ΔV's column t, subtracted in fp32 as the cache holds it.
        for (int h = 0; h < heads; ++h) {
          const float* e = F(exact_v) + (static_cast<size_t>(h) * exact_cap + t) * hd;
          const float* b = F(base_v) + (static_cast<size_t>(h) * base_cap + t) * hd;
          for (int i = 0; i < hd; ++i) dv[static_cast<size_t>(h) * hd + i] = static_cast<double>(e[i] - b[i]);
        }
        // Residual of the projection onto span(B): dv − B·(Bᐩ·dv).
        for (int j = 0; j < r; ++j) {
          double s = 0.0;
          for (int o = 0; o < D; ++o) s += P[static_cast<size_t>(j) * D + o] * dv[o];
          c[j] = s;
        }
        for (int o = 0; o < D; ++o) {
          double proj = 0.0;
          for (int j = 0; j < r; ++j) proj += static_cast<double>(B[static_cast<size_t>(o) * r + j]) * c[j];
          const double res = dv[o] - proj;
          outside += res * res;
          total += dv[o] * dv[o];
        }
      }
    }
    out2[0] = outside;
    out2[1] = total;
  }

 private:
  static void norm_rows(float* y, const float* x, const float* w, int n, int dim, float eps) {
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
      for (int i = 0; i < dim; ++i) yr[i] = w[i] * (xr[i] * r);
    }
  }

  static double log_sum_exp(const float* row, int n) {
    float mx = row[0];
    for (int i = 1; i < n; ++i) mx = std::max(mx, row[i]);
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += std::exp(static_cast<double>(row[i]) - mx);
    return mx + std::log(sum);
  }

  std::recursive_mutex mutex_;
};

}  // namespace

Device& cpu_device() {
  static CpuDevice device;
  return device;
}

}  // namespace al
