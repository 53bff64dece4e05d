// Backend consistency, in the spirit of ggml's test-backend-ops: a table of cases
// {op, shape, dtypes, tolerance}, each running one op of the device interface
// (engine/device.h) on the CPU device (the reference) and on the CUDA device with the same
// inputs (rounded to the dtype) and comparing the outputs. Every op named in
// device_op_names() must have a case, or the run fails. Built with the CUDA addon
// (native/CMakeLists.txt) and run by bench/run-on-device.sh; prints one line per case and
// exits non-zero on any failure.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "engine/attention_plan.h"
#include "engine/cuda/common.cuh"
#include "engine/device.h"
#include "engine/kv_cache.h"
#include "engine/linalg.h"
#include "engine/kv_store.h"
#include "engine/lora.h"
#include "engine/lowrank.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/weights.h"
#include "../native/v_lora_adapter.h"

namespace al {
Device& cuda_device();
}

using namespace al;

namespace {

std::mt19937 rng(1234);
int failures = 0;

std::vector<float> randn(size_t n, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

float round_to(DT dt, float v) {
  if (dt == DT::BF16) return __bfloat162float(__float2bfloat16_rn(v));
  if (dt == DT::F16) return __half2float(__float2half_rn(v));
  return v;
}
std::vector<float> rounded(DT dt, std::vector<float> v) {
  for (float& x : v) x = round_to(dt, x);
  return v;
}

double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = double(a[i]) - b[i];
    d += e * e;
    n += double(b[i]) * b[i];
  }
  if (!std::isfinite(d)) return INFINITY;
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double d = 0, n = 0;
  for (size_t i = 0; i < a.size(); ++i) d += (a[i] - b[i]) * (a[i] - b[i]), n += b[i] * b[i];
  if (!std::isfinite(d)) return INFINITY;
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

Device& cpu = cpu_device();
Device* gpu = nullptr;

// ---- values on both devices -------------------------------------------------------------------

// Values held as dt on the GPU and as fp32 on the CPU (the same rounded numbers).
struct Pair {
  DT dt;
  size_t n;
  Buffer c, g;
  Pair(DT dt_, const std::vector<float>& v) : dt(dt_), n(v.size()) {
    const std::vector<float> r = rounded(dt, v);
    c = Buffer(cpu, std::max<size_t>(n, 1) * 4, "test");
    g = Buffer(*gpu, std::max<size_t>(n, 1) * dt_size(dt), "test");
    cpu.upload(c.get(), r.data(), n * 4);
    if (n) gpu->load_values(dt, g.get(), r.data(), 0, static_cast<int64_t>(n));
  }
  explicit Pair(DT dt_, size_t count) : Pair(dt_, std::vector<float>(count, 0.0f)) {}
  std::vector<float> cpu_values() const {
    std::vector<float> v(n);
    cpu.download(v.data(), c.get(), n * 4);
    return v;
  }
  std::vector<float> gpu_values() const {
    std::vector<float> v(n);
    gpu->sync("test");
    if (dt == DT::F32) {
      gpu->download(v.data(), g.get(), n * 4);
    } else {
      std::vector<uint16_t> raw(n);
      gpu->download(raw.data(), g.get(), n * 2);
      convert_to_f32(reinterpret_cast<const uint8_t*>(raw.data()), dt == DT::BF16 ? DType::BF16 : DType::F16,
                     static_cast<int64_t>(n), v.data());
    }
    return v;
  }
  // The CPU result rounded to dt: what a correct dt kernel would store.
  std::vector<float> cpu_rounded() const { return rounded(dt, cpu_values()); }
};

// The same raw bytes on both devices (ints, bytes, fp32 / fp64 tables).
template <typename X>
struct Raw {
  std::vector<X> host;
  Buffer c, g;
  explicit Raw(std::vector<X> v) : host(std::move(v)) {
    const size_t b = std::max<size_t>(host.size(), 1) * sizeof(X);
    c = Buffer(cpu, b, "test");
    g = Buffer(*gpu, b, "test");
    cpu.upload(c.get(), host.data(), host.size() * sizeof(X));
    gpu->upload(g.get(), host.data(), host.size() * sizeof(X));
  }
  X* cp() const { return c.as<X>(); }
  X* gp() const { return g.as<X>(); }
  std::vector<X> from(Device& d) const {
    std::vector<X> v(host.size());
    d.sync("test");
    d.download(v.data(), (&d == &cpu ? c : g).get(), v.size() * sizeof(X));
    return v;
  }
  Table<X> table(Device& d) const {
    Table<X> t;
    t.host = host.data();
    t.dev = &d == &cpu ? c.as<X>() : g.as<X>();
    t.n = static_cast<int>(host.size());
    return t;
  }
};

// ---- the table --------------------------------------------------------------------------------

struct Case {
  std::string op;
  std::string shape;
  std::vector<DT> dts;
  std::function<double(DT)> run;  // the comparison's error
  double tol_f32, tol_bf16, tol_f16;
};
std::vector<Case> cases;
const std::vector<DT> kAll = {DT::F32, DT::BF16, DT::F16};
const std::vector<DT> kF32 = {DT::F32};

void add(std::string op, std::string shape, std::vector<DT> dts, std::function<double(DT)> run, double tf32 = 2e-6,
         double tbf16 = 1.5e-2, double tf16 = 2e-3) {
  cases.push_back({std::move(op), std::move(shape), std::move(dts), std::move(run), tf32, tbf16, tf16});
}

std::string dims(std::initializer_list<int> v) {
  std::string s;
  for (int x : v) s += (s.empty() ? "" : "×") + std::to_string(x);
  return s;
}

// ---- dense ops ----------------------------------------------------------------------------------

// RoPE's inputs for n rows of head dim hd: Llama's inverse frequencies (base 10000) and
// positions spread over 0..4999.
struct RopeTables {
  Raw<float> inv_freq;
  Raw<int> pos;
  RopeTables(int n, int hd) : inv_freq(frequencies(hd)), pos(positions(n)) {}
  static std::vector<float> frequencies(int hd) {
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[i] = 1.0f / std::pow(10000.0f, 2.0f * i / hd);
    return inv;
  }
  static std::vector<int> positions(int n) {
    std::vector<int> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = i * 577 % 5000;
    return pos;
  }
};

void dense_cases() {
  for (int kind : {0, 1, 2}) {
    add("load_values", std::string("stored ") + (kind == 0 ? "F32" : kind == 1 ? "F16" : "BF16"), kAll, [kind](DT dt) {
      const int n = 1001;
      std::vector<uint8_t> raw(n * (kind == 0 ? 4 : 2));
      const std::vector<float> v = randn(n);
      for (int i = 0; i < n; ++i) {
        if (kind == 0) std::memcpy(raw.data() + 4 * i, &v[i], 4);
        else if (kind == 1) { const __half h = __float2half_rn(v[i]); std::memcpy(raw.data() + 2 * i, &h, 2); }
        else { const __nv_bfloat16 h = __float2bfloat16_rn(v[i]); std::memcpy(raw.data() + 2 * i, &h, 2); }
      }
      Pair out(dt, n);
      cpu.load_values(DT::F32, out.c.get(), raw.data(), kind, n);
      gpu->load_values(dt, out.g.get(), raw.data(), kind, n);
      return rel_err(out.gpu_values(), out.cpu_rounded());
    }, 0.0, 0.0, 0.0);
  }
  struct G { int n, in, out; float alpha, beta; };
  for (const G c : {G{1, 320, 200, 1, 0}, G{7, 320, 200, 0.5f, 1}, G{12, 4096, 512, 1, 0}, G{16, 256, 100, 2, 0.25f},
                    G{70, 320, 200, 1, 0}, G{7, 250, 200, 1, 0}, G{3, 4096, 4099, 1, 1}}) {
    add("gemm", dims({c.n, c.in, c.out}) + " α" + std::to_string(c.alpha).substr(0, 4) + " β" + std::to_string(c.beta).substr(0, 4), kAll, [c](DT dt) {
      Pair x(dt, randn(size_t(c.n) * c.in)), w(dt, randn(size_t(c.out) * c.in, 1.0f / std::sqrt(float(c.in))));
      Pair y(dt, randn(size_t(c.n) * c.out));
      cpu.gemm(DT::F32, y.c.get(), x.c.get(), w.c.get(), c.n, c.in, c.out, c.alpha, c.beta);
      gpu->gemm(dt, y.g.get(), x.g.get(), w.g.get(), c.n, c.in, c.out, c.alpha, c.beta);
      return rel_err(y.gpu_values(), y.cpu_rounded());
    });
  }
  for (int cfg = 0; cfg < cuda::kSkinnyConfigs; ++cfg) {
    add("gemm", "12×4096×520, skinny tiling " + std::to_string(cfg), {DT::BF16, DT::F16}, [cfg](DT dt) {
      Pair x(dt, randn(12 * 4096)), w(dt, randn(520 * 4096, 1.0f / 64)), y(dt, randn(12 * 520));
      cpu.gemm(DT::F32, y.c.get(), x.c.get(), w.c.get(), 12, 4096, 520, 0.5f, 1.0f);
      cuda::skinny_gemm(dt, y.g.get(), x.g.get(), w.g.get(), 12, 4096, 520, 0.5f, 1.0f, nullptr, cfg);
      cudaDeviceSynchronize();  // the default stream, not the device's
      return rel_err(y.gpu_values(), y.cpu_rounded());
    });
  }
  add("gemm_out_f32", "5×256×1000", kAll, [](DT dt) {
    Pair x(dt, randn(5 * 256)), w(dt, randn(1000 * 256, 0.06f));
    Raw<float> y(std::vector<float>(5 * 1000, 0.0f));
    cpu.gemm_out_f32(DT::F32, y.cp(), x.c.get(), w.c.get(), 5, 256, 1000);
    gpu->gemm_out_f32(dt, y.gp(), x.g.get(), w.g.get(), 5, 256, 1000);
    return rel_err(y.from(*gpu), y.from(cpu));
  }, 2e-6, 2e-6, 2e-6);
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    add("gemm_f32", std::string("37×29×53 ") + (ta ? "Aᵀ" : "A") + (tb ? "Bᵀ" : "B"), kF32, [ta, tb](DT) {
      const int m = 37, n = 29, k = 53;
      Raw<float> a(randn(size_t(m) * k)), b(randn(size_t(k) * n)), y(randn(size_t(m) * n));
      cpu.gemm_f32(y.cp(), a.cp(), b.cp(), m, n, k, ta, tb, 0.75f, 0.5f);
      gpu->gemm_f32(y.gp(), a.gp(), b.gp(), m, n, k, ta, tb, 0.75f, 0.5f);
      return rel_err(y.from(*gpu), y.from(cpu));
    });
  }
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    add("gemm_f32_batched", std::string("5 × 37×29×53, padded strides ") + (ta ? "Aᵀ" : "A") + (tb ? "Bᵀ" : "B"), kF32, [ta, tb](DT) {
      const int count = 5, m = 37, n = 29, k = 53;
      const int64_t sa = m * k + 3, sb = k * n + 5, sy = m * n + 7;  // strides past the matrices: gaps untouched
      Raw<float> a(randn(size_t(count) * sa)), b(randn(size_t(count) * sb)), y(randn(size_t(count) * sy));
      cpu.gemm_f32_batched(count, y.cp(), sy, a.cp(), sa, b.cp(), sb, m, n, k, ta, tb, 0.75f, 0.5f);
      gpu->gemm_f32_batched(count, y.gp(), sy, a.gp(), sa, b.gp(), sb, m, n, k, ta, tb, 0.75f, 0.5f);
      return rel_err(y.from(*gpu), y.from(cpu));
    });
  }
  // Gram matrices XᵀX of random X [rows, n] whose last `rank_gap` columns repeat others (zero
  // eigenvalues, dropped), scaled so their eigenvalues span decades. Compared through products
  // that do not depend on the eigenvectors' signs or a repeated eigenvalue's basis:
  // inv·invᵀ (the pseudo-inverse of G over the kept k) and inv·scaledᵀ (the projector onto them).
  struct Eig { int count, n, k; const char* what; };
  for (const Eig e : {Eig{22, 16, 16, "cuSOLVER, lowrank:8's orthonormalization"}, Eig{22, 16, 8, "cuSOLVER, its last step"},
                      Eig{3, 40, 12, "past 32: the host path"}}) {
    add("gram_factors", std::to_string(e.count) + " × " + std::to_string(e.n) + "², top " + std::to_string(e.k) + " (" + e.what + ")", kF32, [e](DT) {
      const int rows = 3 * e.n, gap = 3;
      std::vector<float> g(size_t(e.count) * e.n * e.n, 0.0f);
      for (int p = 0; p < e.count; ++p) {
        std::vector<float> x = randn(size_t(rows) * e.n);
        for (int r = 0; r < rows; ++r) {
          for (int c = 0; c < e.n; ++c) x[size_t(r) * e.n + c] *= std::pow(3.0f, -0.15f * c);
          for (int c = e.n - gap; c < e.n; ++c) x[size_t(r) * e.n + c] = x[size_t(r) * e.n + c - (e.n - gap)];
        }
        for (int i = 0; i < e.n; ++i)
          for (int j = 0; j < e.n; ++j) {
            double d = 0;
            for (int r = 0; r < rows; ++r) d += double(x[size_t(r) * e.n + i]) * x[size_t(r) * e.n + j];
            g[(size_t(p) * e.n + i) * e.n + j] = float(d);
          }
      }
      const size_t nk = size_t(e.count) * e.n * e.k;
      Raw<float> gm(g), inv(std::vector<float>(nk, 0.0f)), sc(std::vector<float>(nk, 0.0f));
      cpu.gram_factors(e.count, e.n, e.k, gm.cp(), inv.cp(), sc.cp());
      gpu->gram_factors(e.count, e.n, e.k, gm.gp(), inv.gp(), sc.gp());
      auto products = [&](const std::vector<float>& a, const std::vector<float>& b) {
        std::vector<double> out(size_t(e.count) * e.n * e.n, 0.0);
        for (int p = 0; p < e.count; ++p)
          for (int i = 0; i < e.n; ++i)
            for (int j = 0; j < e.n; ++j) {
              double d = 0;
              for (int q = 0; q < e.k; ++q) d += double(a[(size_t(p) * e.n + i) * e.k + q]) * b[(size_t(p) * e.n + j) * e.k + q];
              out[(size_t(p) * e.n + i) * e.n + j] = d;
            }
        return out;
      };
      const std::vector<float> ic = inv.from(cpu), ig = inv.from(*gpu), sc_c = sc.from(cpu), sc_g = sc.from(*gpu);
      const std::vector<double> want = products(ic, ic);
      double norm = 0;
      for (double v : want) norm += v * v;
      if (!(norm > 0)) return double(INFINITY);  // factors of nothing would compare equal to anything
      return std::max(rel_err(products(ig, ig), want), rel_err(products(ig, sc_g), products(ic, sc_c)));
    }, 1e-4);
  }
  add("add_bias", "7×130", kAll, [](DT dt) {
    Pair y(dt, randn(7 * 130)), b(dt, randn(130));
    cpu.add_bias(DT::F32, y.c.get(), b.c.get(), 7, 130);
    gpu->add_bias(dt, y.g.get(), b.g.get(), 7, 130);
    return rel_err(y.gpu_values(), y.cpu_rounded());
  });
  for (int n : {1, 7, 200}) {
    add("rmsnorm", dims({n, 333}), kAll, [n](DT dt) {
      Pair x(dt, randn(size_t(n) * 333, 3.0f)), w(dt, randn(333)), y(dt, size_t(n) * 333);
      cpu.rmsnorm(DT::F32, y.c.get(), x.c.get(), w.c.get(), n, 333, 1e-5f);
      gpu->rmsnorm(dt, y.g.get(), x.g.get(), w.g.get(), n, 333, 1e-5f);
      return rel_err(y.gpu_values(), y.cpu_rounded());
    });
  }
  add("add_rmsnorm", "7×333 (norm and sum)", kAll, [](DT dt) {
    Pair x(dt, randn(7 * 333, 3.0f)), d(dt, randn(7 * 333)), w(dt, randn(333)), y(dt, size_t(7) * 333);
    // The CPU sums in fp32; the GPU rounds the sum to dt first (HF's residual in dt): give the
    // CPU the rounded sum as its x and a zero delta, so both normalize the same values.
    std::vector<float> sum = x.cpu_values(), dv = d.cpu_values();
    for (size_t i = 0; i < sum.size(); ++i) sum[i] = round_to(dt, sum[i] + dv[i]);
    Pair xs(dt, sum), zero(dt, size_t(7) * 333);
    cpu.add_rmsnorm(DT::F32, y.c.get(), xs.c.get(), zero.c.get(), w.c.get(), 7, 333, 1e-5f);
    gpu->add_rmsnorm(dt, y.g.get(), x.g.get(), d.g.get(), w.g.get(), 7, 333, 1e-5f);
    return std::max(rel_err(y.gpu_values(), y.cpu_rounded()), rel_err(x.gpu_values(), sum) * 1e3);
  });
  for (int hd : {64, 128}) {
    add("rope", "9 rows, 8/2 heads, hd " + std::to_string(hd), kAll, [hd](DT dt) {
      const int n = 9, heads = 8, kv = 2;
      const RopeTables rt(n, hd);
      const Raw<float>& f = rt.inv_freq;
      const Raw<int>& p = rt.pos;
      Pair q(dt, randn(size_t(n) * heads * hd)), k(dt, randn(size_t(n) * kv * hd));
      cpu.rope(DT::F32, q.c.get(), k.c.get(), p.cp(), f.cp(), n, heads, kv, hd);
      gpu->rope(dt, q.g.get(), k.g.get(), p.gp(), f.gp(), n, heads, kv, hd);
      return std::max(rel_err(q.gpu_values(), q.cpu_rounded()), rel_err(k.gpu_values(), k.cpu_rounded()));
    }, 2e-6, 2e-2, 4e-3);
  }
  for (int hd : {64, 128}) {
    add("qkv_rope_store", "9 stacked rows, 8/2 heads, hd " + std::to_string(hd) + ", into 2 caches", kAll, [hd](DT dt) {
      const int n = 9, heads = 8, kv = 2, L = 2, cap = 12, w = (heads + 2 * kv) * hd;
      const RopeTables rt(n, hd);
      const Raw<float>& f = rt.inv_freq;
      const Raw<int>& p = rt.pos;
      Pair qkv(dt, randn(size_t(n) * w)), q(dt, randn(size_t(n) * heads * hd));
      const size_t elems = size_t(L) * kv * cap * hd;
      Pair k1(dt, randn(elems)), v1(dt, randn(elems)), k2(dt, randn(elems)), v2(dt, randn(elems));
      const int64_t stride = int64_t(kv) * cap * hd;
      auto rows = [&](Device& d) {
        const bool c = &d == &cpu;
        std::vector<KvWrite> r;
        for (int t = 0; t < n; ++t) {
          Pair& k = t % 2 ? k2 : k1;
          Pair& v = t % 2 ? v2 : v1;
          r.push_back({c ? k.c.get() : k.g.get(), c ? v.c.get() : v.g.get(), stride, cap, t});
        }
        return r;
      };
      Raw<KvWrite> rc(rows(cpu)), rg(rows(*gpu));
      cpu.qkv_rope_store(DT::F32, q.c.get(), qkv.c.get(), p.cp(), f.cp(), rc.table(cpu), 1, n, heads, kv, hd);
      gpu->qkv_rope_store(dt, q.g.get(), qkv.g.get(), p.gp(), f.gp(), rg.table(*gpu), 1, n, heads, kv, hd);
      double e = rel_err(q.gpu_values(), q.cpu_rounded());
      for (const Pair* c : {&k1, &v1, &k2, &v2}) e = std::max(e, rel_err(c->gpu_values(), c->cpu_rounded()));
      return e;
    }, 2e-6, 2e-2, 4e-3);
  }
  add("swiglu_stacked", "5 stacked rows of 2 × 333", kAll, [](DT dt) {
    Pair gu(dt, randn(5 * 666)), out(dt, randn(5 * 333));
    cpu.swiglu_stacked(DT::F32, out.c.get(), gu.c.get(), 5, 333);
    gpu->swiglu_stacked(dt, out.g.get(), gu.g.get(), 5, 333);
    return rel_err(out.gpu_values(), out.cpu_rounded());
  });
  add("swiglu", "4099", kAll, [](DT dt) {
    Pair g(dt, randn(4099)), u(dt, randn(4099));
    cpu.swiglu(DT::F32, g.c.get(), u.c.get(), 4099);
    gpu->swiglu(dt, g.g.get(), u.g.get(), 4099);
    return rel_err(g.gpu_values(), g.cpu_rounded());
  });
  add("embedding", "5 of 50×24", kAll, [](DT dt) {
    Pair table(dt, randn(50 * 24)), x(dt, size_t(5) * 24);
    Raw<int32_t> toks({3, 0, 49, 7, 7});
    cpu.embedding(DT::F32, x.c.get(), table.c.get(), toks.cp(), 5, 24);
    gpu->embedding(dt, x.g.get(), table.g.get(), toks.gp(), 5, 24);
    return rel_err(x.gpu_values(), x.cpu_rounded());
  }, 0.0, 0.0, 0.0);
  add("store_kv", "3 rows into 2 caches, layer 1", kAll, [](DT dt) {
    const int L = 2, kv = 2, hd = 16, cap = 10;
    const size_t elems = size_t(L) * kv * cap * hd;
    Pair k1(dt, randn(elems)), v1(dt, randn(elems)), k2(dt, randn(elems)), v2(dt, randn(elems));
    Pair nk(dt, randn(3 * kv * hd)), nv(dt, randn(3 * kv * hd));
    const int64_t stride = int64_t(kv) * cap * hd;
    auto rows = [&](Device& d) {
      const bool c = &d == &cpu;
      return std::vector<KvWrite>{{c ? k1.c.get() : k1.g.get(), c ? v1.c.get() : v1.g.get(), stride, cap, 4},
                                  {c ? k2.c.get() : k2.g.get(), c ? v2.c.get() : v2.g.get(), stride, cap, 0},
                                  {c ? k1.c.get() : k1.g.get(), c ? v1.c.get() : v1.g.get(), stride, cap, 9}};
    };
    Raw<KvWrite> rc(rows(cpu)), rg(rows(*gpu));
    cpu.store_kv(DT::F32, rc.table(cpu), 1, nk.c.get(), nv.c.get(), 3, kv, hd);
    gpu->store_kv(dt, rg.table(*gpu), 1, nk.g.get(), nv.g.get(), 3, kv, hd);
    double e = 0;
    for (const Pair* p : {&k1, &v1, &k2, &v2}) e = std::max(e, rel_err(p->gpu_values(), p->cpu_rounded()));
    return e;
  }, 0.0, 0.0, 0.0);
}

// ---- LoRA -----------------------------------------------------------------------------------------

// Three adapters' A/B for three Linears sharing x; rows pick an adapter (-1: none); target 2
// captures s·A·x of every adapted row.
// begin: lora_begin first, then a product that reads x (as the forward pass runs the base
// Linear), then lora; begin_other: lora_begin on other arguments (lora alone must still be right).
enum class LoraBegin { none, begin, begin_other };
// stacked: the three outputs are parts of one [n, 320] buffer's rows (a stacked projection's).
double lora_case(DT dt, const std::vector<int>& which, int in, LoraBegin begin = LoraBegin::none, bool stacked = false) {
  const int n = static_cast<int>(which.size());
  const int outs[3] = {192, 64, 64};
  const int ranks[3] = {8, 16, 64};
  const float scales[3] = {2.0f, 0.5f, 0.25f};
  std::vector<std::unique_ptr<Pair>> A, B;  // [target * 3 + adapter]
  for (int t = 0; t < 3; ++t)
    for (int a = 0; a < 3; ++a) {
      A.push_back(std::make_unique<Pair>(dt, randn(size_t(ranks[a]) * in, 0.1f)));
      B.push_back(std::make_unique<Pair>(dt, randn(size_t(outs[t]) * ranks[a], 0.1f)));
    }
  Pair x(dt, randn(size_t(n) * in));
  std::vector<std::unique_ptr<Pair>> y;
  const int width = outs[0] + outs[1] + outs[2], offsets[3] = {0, outs[0], outs[0] + outs[1]};
  if (stacked) y.push_back(std::make_unique<Pair>(dt, randn(size_t(n) * width)));
  else for (int t = 0; t < 3; ++t) y.push_back(std::make_unique<Pair>(dt, randn(size_t(n) * outs[t])));
  Raw<float> cap(std::vector<float>(size_t(n) * 64, 0.0f));
  auto run = [&](Device& d, DT ddt) {
    const bool c = &d == &cpu;
    std::vector<std::vector<LoraRow>> rows(3);
    for (int t = 0; t < 3; ++t)
      for (int i = 0; i < n; ++i) {
        const int a = which[i];
        if (a < 0) { rows[t].push_back({nullptr, nullptr, 0, 0.0f, nullptr}); continue; }
        Pair& pa = *A[t * 3 + a];
        Pair& pb = *B[t * 3 + a];
        float* capture = t == 2 ? (c ? cap.cp() : cap.gp()) + size_t(i) * 64 : nullptr;
        rows[t].push_back({c ? pa.c.get() : pa.g.get(), c ? pb.c.get() : pb.g.get(), ranks[a], scales[a], capture});
      }
    std::vector<std::unique_ptr<Raw<LoraRow>>> tables;
    std::vector<LoraOutput> targets;
    for (int t = 0; t < 3; ++t) {
      tables.push_back(std::make_unique<Raw<LoraRow>>(rows[t]));
      if (stacked) {
        Pair& ys = *y[0];
        void* base = c ? ys.c.get() : ys.g.get();
        targets.push_back({static_cast<char*>(base) + size_t(offsets[t]) * (c ? 4 : dt_size(ddt)), outs[t], tables[t]->table(d), width});
      } else {
        targets.push_back({c ? y[t]->c.get() : y[t]->g.get(), outs[t], tables[t]->table(d)});
      }
    }
    Buffer scratch(d, size_t(3) * n * 64 * 4, "test");
    const void* xp = c ? x.c.get() : x.g.get();
    if (begin != LoraBegin::none) {
      // The base product's place: a product of x into a buffer of its own.
      Buffer base(d, size_t(n) * 64 * dt_size(ddt), "test");
      d.lora_begin(ddt, xp, n, in, targets.data(), begin == LoraBegin::begin ? 3 : 2, 64, scratch.as<float>());
      d.gemm(ddt, base.get(), xp, c ? A[0]->c.get() : A[0]->g.get(), n, in, 8, 1.0f, 0.0f);
    }
    d.lora(ddt, xp, n, in, targets.data(), 3, 64, scratch.as<float>());
    d.sync("lora");
  };
  run(cpu, DT::F32);
  run(*gpu, dt);
  double e = 0;
  for (const auto& yt : y) e = std::max(e, rel_err(yt->gpu_values(), yt->cpu_rounded()));
  // Captures: in BGMV s·(A·x) in fp32; in GEMM segments A·x is rounded to dt first.
  const double cap_err = rel_err(cap.from(*gpu), cap.from(cpu));
  return std::max(e, dt == DT::F32 ? cap_err : cap_err * 0.25);
}

void lora_cases() {
  for (int in : {256, 250}) {
    add("lora", "BGMV, 5 rows, 3 Linears, in " + std::to_string(in), kAll,
        [in](DT dt) { return lora_case(dt, {2, -1, 0, 1, 0}, in); });
  }
  add("lora", "BGMV into a stacked projection's rows, 5 rows, in 256", kAll,
      [](DT dt) { return lora_case(dt, {2, -1, 0, 1, 0}, 256, LoraBegin::none, true); });
  add("lora_begin", "BGMV begun before a product of x, 5 rows, in 256", kAll,
      [](DT dt) { return lora_case(dt, {2, -1, 0, 1, 0}, 256, LoraBegin::begin); });
  add("lora_begin", "begun on other arguments, then lora alone, 5 rows", kAll,
      [](DT dt) { return lora_case(dt, {2, -1, 0, 1, 0}, 256, LoraBegin::begin_other); });
  // Prefill chunks: the skinny shrink where in % 32 == 0 (ranks 8, 16 and 64: one and four
  // launches of 16 rank rows), cuBLAS for both halves where not (in 250).
  for (int in : {256, 250}) {
    add("lora", "GEMM segments, 77 rows (3 runs), in " + std::to_string(in), kAll, [in](DT dt) {
      std::vector<int> which(77);
      for (int i = 0; i < 77; ++i) which[i] = i < 30 ? 0 : i < 55 ? 2 : i < 70 ? 1 : -1;
      return lora_case(dt, which, in);
    });
  }
}

// ---- attention ---------------------------------------------------------------------------------------

void attention_prefill_cases() {
  struct P { int hd, heads, kv, pos0, n; };
  for (const P c : {P{64, 8, 2, 5, 70}, P{128, 8, 8, 5, 70}, P{128, 32, 4, 0, 200}, P{80, 8, 2, 5, 70},
                    P{96, 8, 2, 0, 33}, P{48, 8, 2, 3, 20}, P{128, 8, 2, 130, 1}}) {
    add("attention_prefill", "hd " + std::to_string(c.hd) + ", " + std::to_string(c.heads) + "/" + std::to_string(c.kv) +
                                 " heads, rows " + std::to_string(c.pos0) + "+" + std::to_string(c.n), kAll,
        [c](DT dt) {
          const int cap = c.pos0 + c.n + 3;
          const size_t elems = size_t(c.kv) * cap * c.hd;
          std::vector<float> k = randn(elems), v = randn(elems);
          // Positions past the last key are never read: NaN there would show.
          for (int h = 0; h < c.kv; ++h)
            for (int t = c.pos0 + c.n; t < cap; ++t)
              for (int d = 0; d < c.hd; ++d) k[(size_t(h) * cap + t) * c.hd + d] = v[(size_t(h) * cap + t) * c.hd + d] = NAN;
          Pair K(dt, k), Vv(dt, v), q(dt, randn(size_t(c.n) * c.heads * c.hd)), out(dt, size_t(c.n) * c.heads * c.hd);
          cpu.attention_prefill(DT::F32, out.c.get(), q.c.get(), K.c.get(), Vv.c.get(), cap, c.pos0, c.n, c.heads, c.kv, c.hd);
          gpu->attention_prefill(dt, out.g.get(), q.g.get(), K.g.get(), Vv.g.get(), cap, c.pos0, c.n, c.heads, c.kv, c.hd);
          return rel_err(out.gpu_values(), out.cpu_rounded());
        });
  }
}

// The real thing on both devices: a base and an exact cache of a 333-token document, an
// adapter whose v_proj LoRA the seed / lragent stores use, one store per strategy, views
// reading the document through them, rows planned by the engine's AttnPlanner (one chunk on
// the CPU, 256-key chunks on the GPU) — then one layer's attention_parts on each device.
struct World {
  Device& d;
  DT dt;
  Config c;
  std::shared_ptr<Model> model;
  std::shared_ptr<KvCache> base, exact;
  std::shared_ptr<Adapter> adapter;
  std::vector<std::shared_ptr<KvCache>> views;
  World(Device& dev, DT dt_, int hd, int heads, int kv, int T, int own, uint32_t seed) : d(dev), dt(dt_) {
    std::mt19937 r(seed);
    auto gen = [&](size_t n, float s) {
      std::normal_distribution<float> nd(0.0f, s);
      std::vector<float> v(n);
      for (float& x : v) x = round_to(dt, nd(r));
      return v;
    };
    c.num_layers = 2;
    c.num_heads = heads;
    c.num_kv_heads = kv;
    c.head_dim = hd;
    c.hidden_size = 64;
    c.dtype = dt;
    model = std::make_shared<Model>();
    model->config = c;
    model->dev = &d;
    base = std::make_shared<KvCache>(d, dt, 2, kv, hd, T);
    exact = std::make_shared<KvCache>(d, dt, 2, kv, hd, T);
    const size_t layer = size_t(kv) * T * hd;
    const int D = kv * hd, rank = 8;
    // ΔV lies mostly in span(B) (seed-minikv's premise), ΔK is low rank plus noise.
    std::vector<float> B = gen(size_t(D) * rank, 0.3f);
    for (int l = 0; l < 2; ++l) {
      std::vector<float> bk = gen(layer, 1.0f), bv = gen(layer, 1.0f), ek = bk, ev = bv;
      const std::vector<float> uk = gen(size_t(T) * 4, 0.3f), vk = gen(size_t(D) * 4, 0.3f), m = gen(size_t(T) * rank, 0.5f);
      const std::vector<float> noise = gen(2 * layer, 0.01f);
      for (int t = 0; t < T; ++t)
        for (int o = 0; o < D; ++o) {
          const int h = o / hd, i = o % hd;
          float dk = 0, dv = 0;
          for (int j = 0; j < 4; ++j) dk += uk[size_t(t) * 4 + j] * vk[size_t(o) * 4 + j];
          for (int j = 0; j < rank; ++j) dv += B[size_t(o) * rank + j] * m[size_t(t) * rank + j];
          const size_t at = (size_t(h) * T + t) * hd + i;
          ek[at] = round_to(dt, ek[at] + dk + noise[at]);
          ev[at] = round_to(dt, ev[at] + dv + noise[layer + at]);
        }
      base->write_layer(l, bk.data(), bv.data(), T);
      exact->write_layer(l, ek.data(), ev.data(), T);
    }
    // The adapter: v_proj LoRA on both layers (B above), plus the lragent capture.
    adapter = v_lora_adapter(d, dt, 2, B, rank, 7);
    exact->begin_lora_v_capture(7, {rank, rank});
    for (int l = 0; l < 2; ++l) {
      const std::vector<float> u = gen(size_t(T) * rank, 0.5f);
      d.upload(exact->lora_v()->u[l].get(), u.data(), u.size() * 4);
    }
    exact->set_lora_v_length(T);
    // One view per strategy, plus exact's own view and a view of the base with nothing.
    std::vector<StrategySpec> specs(7);
    specs[0].kind = StrategyKind::Base;
    specs[1].kind = StrategyKind::SeedMiniKv;
    specs[2].kind = StrategyKind::LrAgent;
    specs[3].kind = StrategyKind::DeltaInt8;
    specs[4].kind = StrategyKind::DeltaInt4;
    // Rank 4, where ΔK's spectrum has its gap (rank 4 + noise above): each device's own encode
    // then finds the same factors to rounding, so the case measures attention_parts, not how
    // two devices' rounding picks directions among ΔK's equal noise singular values (rank 8
    // there: fp32 outputs 1e-4 apart, once cuBLAS's batched products summed in another order).
    specs[5].kind = StrategyKind::LowRank;
    specs[5].rank = 4;
    specs[6].kind = StrategyKind::Hybrid;
    specs[6].exact_layers = {1};
    for (const StrategySpec& s : specs) {
      views.push_back(KvCache::view(base, encode_store(s, *base, *exact, adapter, T), T, T + own));
    }
    views.push_back(KvCache::view(exact, nullptr, T, T + own));
    // Own positions: random K/V in each view's own storage.
    for (auto& v : views) {
      for (int l = 0; l < 2; ++l) {
        const std::vector<float> k = gen(size_t(kv) * own * hd, 1.0f), vv = gen(size_t(kv) * own * hd, 1.0f);
        d.load_values(dt, v->own_k(l), k.data(), 0, static_cast<int64_t>(k.size()));
        d.load_values(dt, v->own_v(l), vv.data(), 0, static_cast<int64_t>(vv.size()));
      }
      v->set_length(T + own);
    }
    d.sync("test world");
  }
};

void attention_parts_cases() {
  struct C { int hd, heads, kv; };
  for (const C c : {C{64, 8, 2}, C{128, 8, 8}, C{128, 32, 4}, C{80, 8, 2}, C{96, 8, 2}, C{48, 4, 2}}) {
    for (const int per_view : {0, 1, 10}) {  // 0: one row in all; 1: a decode step (one row per view); 10: scoring-like
      const int rows_n = per_view == 0 ? 1 : per_view * 8;
      add("attention_parts", "hd " + std::to_string(c.hd) + ", " + std::to_string(c.heads) + "/" + std::to_string(c.kv) +
                                 " heads, " + std::to_string(rows_n) + " rows, every strategy, 333-token document",
          kAll, [c, per_view, rows_n](DT dt) {
            const int T = 333, own = 12;
            World wc(cpu, DT::F32, c.hd, c.heads, c.kv, T, own, 99), wg(*gpu, dt, c.hd, c.heads, c.kv, T, own, 99);
            const std::vector<float> q = randn(size_t(rows_n) * c.heads * c.hd);
            auto run = [&](World& w, DT ddt) {
              std::vector<Row> rows;
              if (per_view == 0) {
                rows.push_back(Row{w.views[3].get(), T + 5, nullptr, false});
              } else {
                for (int j = 0; j < per_view; ++j)
                  for (size_t v = 0; v < w.views.size(); ++v) rows.push_back(Row{w.views[v].get(), T + j, nullptr, false});
              }
              std::vector<float> out;
              Pair qp(ddt, q), op(ddt, q.size());
              AttnPlanner planner;
              planner.build(*w.model, rows.data(), rows_n, per_view == 1, size_t(64) << 20);
              TableUpload up;
              planner.add_to(up);
              Buffer tables, partials(w.d, std::max<size_t>(planner.partial_floats(), 1) * 4, "test");
              up.upload(w.d, tables, &w.d == &cpu);
              for (int layer = 0; layer < 2; ++layer) {
                w.d.attention_parts(ddt, &w.d == &cpu ? op.c.get() : op.g.get(), &w.d == &cpu ? qp.c.get() : qp.g.get(),
                                    planner.plan(up, layer, partials.as<float>()), rows_n, c.heads, c.kv, c.hd);
                std::vector<float> r = &w.d == &cpu ? op.cpu_values() : op.gpu_values();
                out.insert(out.end(), r.begin(), r.end());
              }
              return out;
            };
            const std::vector<float> ref = rounded(dt, run(wc, DT::F32)), got = run(wg, dt);
            return rel_err(got, ref);
          },
          2e-5, 2e-2, 4e-3);
    }
  }
}

// The pca strategy end to end on each device from the same caches (World's): encode (Gram,
// host eigen-decomposition, allocation, codes) and the rebuild of both layers. Eigenvectors
// from the two devices' Gram matrices agree to rounding, so a few codes may fall one step
// apart: the rebuilt K/V are compared, not the codes (CPU-built, rounded to the GPU's dtype).
void pca_store_cases() {
  for (const double bpv : {1.0, 3.0}) {
    add("pca store", "hd 64, 8/2 heads, 333 tokens, " + std::to_string(bpv).substr(0, 3) + " bits a value", kAll, [bpv](DT dt) {
      const int T = 333;
      World wc(cpu, DT::F32, 64, 8, 2, T, 12, 99), wg(*gpu, dt, 64, 8, 2, T, 12, 99);
      auto rebuilt = [&](World& w) {
        StrategySpec s;
        s.kind = StrategyKind::Pca;
        s.bits_per_value = bpv;
        s.inv_freq = rope_inv_freq(w.c);
        std::shared_ptr<KvStore> st = encode_store(s, *w.base, *w.exact, w.adapter, T);
        KvCache out(w.d, w.dt, 2, 2, 64, T);
        decode_store(*st, *w.base, out);
        std::vector<float> all, k(size_t(2) * T * 64), v(k.size());
        for (int l = 0; l < 2; ++l) {
          out.read_layer(l, k.data(), v.data());
          all.insert(all.end(), k.begin(), k.end());
          all.insert(all.end(), v.begin(), v.end());
        }
        return std::make_pair(all, st->bytes);
      };
      const auto [ref, ref_bytes] = rebuilt(wc);
      const auto [got, got_bytes] = rebuilt(wg);
      // Near the budget's edge the two allocations may give one component a bit more or less:
      // bytes within a row's byte per part, values within a fraction of a quantization step.
      const double bytes_apart = std::abs(double(ref_bytes) - double(got_bytes)) / double(ref_bytes);
      return std::max(rel_err(got, rounded(dt, ref)), bytes_apart > 0.05 ? 1.0 : 0.0);
      // fp16: the reference encodes the unrounded caches, so at 1 bit a value a code the
      // inputs' rounding flips moves that value a whole step (5.2e-3 measured on the H200,
      // bf16 1.2e-2): half bf16's limit.
    }, 2e-3, 2e-2, 1e-2);
  }
}

// ---- logits ----------------------------------------------------------------------------------------

void logits_cases() {
  add("argmax_rows", "3×5000 with planted ties", kF32, [](DT) {
    std::vector<float> lg = randn(3 * 5000);
    lg[100] = lg[4000] = 50.0f;
    lg[5000 + 4999] = 60.0f;
    lg[10000] = lg[10001] = 70.0f;
    Raw<float> l(lg);
    Raw<int32_t> out(std::vector<int32_t>(3, -1));
    cpu.argmax_rows(out.cp(), l.cp(), 3, 5000);
    gpu->argmax_rows(out.gp(), l.gp(), 3, 5000);
    const auto a = out.from(cpu), b = out.from(*gpu);
    int bad = 0;
    for (int i = 0; i < 3; ++i) bad += a[i] != b[i];
    return double(bad);
  }, 0, 0, 0);
  add("sample_rows", "7 rows of 32000: greedy, temperatures, nuclei, ties", kF32, [](DT) {
    const int V = 32000, n = 7;
    std::vector<float> lg = randn(size_t(n) * V, 2.0f);
    for (int j = 0; j < 40; ++j) lg[size_t(6) * V + 1000 + j] = 9.0f;  // row 6: a block of tied tokens
    Raw<float> l(lg);
    Raw<SampleRow> rows({{0.0f, 1.0f, 1, 5}, {0.7f, 1.0f, 2, 9}, {1.3f, 0.9f, 3, 11}, {1.0f, 0.5f, 4, 100},
                         {8.0f, 0.95f, 5, 7}, {1.0f, 1e-6f, 6, 3}, {1.0f, 0.3f, 7, 12345}});
    Raw<int32_t> tok(std::vector<int32_t>(n, -1));
    Raw<float> prob(std::vector<float>(n, -1.0f));
    cpu.sample_rows(tok.cp(), prob.cp(), l.cp(), rows.table(cpu), n, V);
    gpu->sample_rows(tok.gp(), prob.gp(), l.gp(), rows.table(*gpu), n, V);
    const auto a = tok.from(cpu), b = tok.from(*gpu);
    int bad = 0;
    for (int i = 0; i < n; ++i) bad += a[i] != b[i];
    return bad + rel_err(prob.from(*gpu), prob.from(cpu)) * 1e4;  // any token apart fails
  }, 1e-1, 1e-1, 1e-1);
  add("score_rows", "6 rows of 32000 against 2 references", kF32, [](DT) {
    const int V = 32000, n = 6;
    Raw<float> l(randn(size_t(n) * V, 3.0f));
    Raw<ScoreRow> rows({{0, 5}, {0, 17}, {0, 31999}, {3, 2}, {3, 9}, {3, 0}});
    Raw<ScoreOut> out{std::vector<ScoreOut>(n)};
    cpu.score_rows(out.cp(), l.cp(), rows.table(cpu), n, V);
    gpu->score_rows(out.gp(), l.gp(), rows.table(*gpu), n, V);
    const auto a = out.from(cpu), b = out.from(*gpu);
    double e = 0;
    for (int i = 0; i < n; ++i) {
      e = std::max(e, std::abs(a[i].kl - b[i].kl) / (1e-9 + std::abs(a[i].kl)));
      e = std::max(e, std::abs(a[i].nll - b[i].nll) / std::abs(a[i].nll));
      e = std::max(e, std::abs(a[i].nll_ref - b[i].nll_ref) / std::abs(a[i].nll_ref));
      if (a[i].argmax != b[i].argmax || a[i].argmax_ref != b[i].argmax_ref) e = 1;
    }
    return e;
  }, 1e-5, 1e-5, 1e-5);
}

// ---- strategies and metrics ---------------------------------------------------------------------------

struct Layer {
  int heads = 3, hd = 40, cap = 50, T = 37;
  std::unique_ptr<Pair> e, b;
  explicit Layer(DT dt) {
    std::vector<float> base = randn(size_t(heads) * cap * hd), ex = base, d = randn(base.size(), 0.1f);
    for (size_t i = 0; i < ex.size(); ++i) ex[i] += d[i];
    e = std::make_unique<Pair>(dt, ex);
    b = std::make_unique<Pair>(dt, base);
  }
};

void strategy_cases() {
  add("delta_rows", "3 heads × 37 of cap 50, hd 40", kAll, [](DT dt) {
    Layer l(dt);
    Raw<float> rows(std::vector<float>(size_t(l.T) * l.heads * l.hd, 0.0f));
    cpu.delta_rows(DT::F32, rows.cp(), l.e->c.get(), l.cap, l.b->c.get(), l.cap, l.heads, l.hd, l.T);
    gpu->delta_rows(dt, rows.gp(), l.e->g.get(), l.cap, l.b->g.get(), l.cap, l.heads, l.hd, l.T);
    return rel_err(rows.from(*gpu), rows.from(cpu));
  }, 0, 0, 0);
  add("add_rows", "into a cache of another capacity", kAll, [](DT dt) {
    Layer l(dt);
    Raw<float> rows(randn(size_t(l.T) * l.heads * l.hd, 0.1f));
    Pair out(dt, size_t(l.heads) * 40 * l.hd);
    cpu.add_rows(DT::F32, out.c.get(), 40, l.b->c.get(), l.cap, rows.cp(), l.heads, l.hd, l.T);
    gpu->add_rows(dt, out.g.get(), 40, l.b->g.get(), l.cap, rows.gp(), l.heads, l.hd, l.T);
    return rel_err(out.gpu_values(), out.cpu_rounded());
  });
  add("copy_positions", "37 positions, cap 50 → 40", kAll, [](DT dt) {
    Layer l(dt);
    Pair out(dt, size_t(l.heads) * 40 * l.hd);
    cpu.copy_positions(DT::F32, out.c.get(), 40, l.e->c.get(), l.cap, l.heads, l.hd, l.T);
    gpu->copy_positions(dt, out.g.get(), 40, l.e->g.get(), l.cap, l.heads, l.hd, l.T);
    return rel_err(out.gpu_values(), out.cpu_rounded());
  }, 0, 0, 0);
  for (int bits : {8, 4}) {
    add("quantize_delta", "int" + std::to_string(bits), kAll, [bits](DT dt) {
      Layer l(dt);
      const int rb = bits == 8 ? l.hd : (l.hd + 1) / 2;
      Raw<uint8_t> q(std::vector<uint8_t>(size_t(l.heads) * l.T * rb, 0));
      Raw<float> s(std::vector<float>(size_t(l.heads) * l.T, 0.0f));
      cpu.quantize_delta(DT::F32, q.cp(), s.cp(), l.e->c.get(), l.cap, l.b->c.get(), l.cap, l.heads, l.hd, l.T, bits);
      gpu->quantize_delta(dt, q.gp(), s.gp(), l.e->g.get(), l.cap, l.b->g.get(), l.cap, l.heads, l.hd, l.T, bits);
      const auto a = q.from(cpu), b = q.from(*gpu);
      size_t apart = 0;
      for (size_t i = 0; i < a.size(); ++i) apart += a[i] != b[i];
      // A value on a rounding boundary may land one step apart: allow a few in a thousand.
      return std::max(rel_err(s.from(*gpu), s.from(cpu)), double(apart) / a.size() > 3e-3 ? 1.0 : 0.0);
    }, 1e-6, 1e-6, 1e-6);
    add("add_quantized", "int" + std::to_string(bits), kAll, [bits](DT dt) {
      Layer l(dt);
      const int rb = bits == 8 ? l.hd : (l.hd + 1) / 2;
      std::vector<uint8_t> qv(size_t(l.heads) * l.T * rb);
      for (auto& x : qv) x = static_cast<uint8_t>(rng() & 0xFF);
      if (bits == 8)
        for (auto& x : qv) x = static_cast<uint8_t>(static_cast<int8_t>(static_cast<int>(x) % 255 - 127));
      Raw<uint8_t> q(qv);
      std::vector<float> sc = randn(size_t(l.heads) * l.T, 0.01f);
      for (float& x : sc) x = std::abs(x);
      Raw<float> s(sc);
      Pair out(dt, size_t(l.heads) * l.cap * l.hd);
      cpu.add_quantized(DT::F32, out.c.get(), l.cap, l.b->c.get(), l.cap, q.cp(), s.cp(), l.heads, l.hd, l.T, bits);
      gpu->add_quantized(dt, out.g.get(), l.cap, l.b->g.get(), l.cap, q.gp(), s.gp(), l.heads, l.hd, l.T, bits);
      return rel_err(out.gpu_values(), out.cpu_rounded());
    });
  }
  // The pca strategy's column codes: mixed widths 1..8 straddling bytes, wide and narrow rows.
  struct Q { int rows, k; };
  for (const Q c : {Q{333, 13}, Q{64, 128}, Q{1, 3}}) {
    std::vector<uint8_t> bits(c.k);
    std::vector<int> offs(c.k);
    std::vector<float> step(c.k);
    int off = 0;
    for (int j = 0; j < c.k; ++j) {
      bits[j] = static_cast<uint8_t>(1 + (j * 5 + c.rows) % 8);
      offs[j] = off;
      off += bits[j];
      step[j] = 0.05f + 0.01f * (j % 7);
    }
    const int row_bytes = (off + 7) / 8;
    const std::string shape = dims({c.rows, c.k}) + ", " + std::to_string(off) + " bits a row";
    add("quantize_columns", shape, kF32, [=](DT) {
      // Values on the steps' grid, between them and far outside the range (clamped).
      std::vector<float> x = randn(size_t(c.rows) * c.k, 0.3f);
      for (size_t i = 0; i < x.size(); i += 17) x[i] = 40.0f * (i % 2 ? 1 : -1);
      for (size_t i = 5; i < x.size(); i += 23) x[i] = step[i % c.k] * 3.0f;
      Raw<float> xs(x), st(step);
      Raw<uint8_t> b(bits), q(std::vector<uint8_t>(size_t(c.rows) * row_bytes, 0xAB));
      Raw<int> o(offs);
      cpu.quantize_columns(q.cp(), xs.cp(), c.rows, c.k, b.cp(), o.cp(), st.cp(), row_bytes);
      gpu->quantize_columns(q.gp(), xs.gp(), c.rows, c.k, b.gp(), o.gp(), st.gp(), row_bytes);
      const auto a = q.from(cpu), g = q.from(*gpu);
      size_t apart = 0;
      for (size_t i = 0; i < a.size(); ++i) apart += a[i] != g[i];
      return double(apart);
    }, 0, 0, 0);
    add("dequantize_columns", shape, kF32, [=](DT) {
      std::vector<uint8_t> qv(size_t(c.rows) * row_bytes);
      for (auto& x : qv) x = static_cast<uint8_t>(rng() & 0xFF);
      Raw<uint8_t> q(qv), b(bits);
      Raw<int> o(offs);
      Raw<float> st(step), out(std::vector<float>(size_t(c.rows) * c.k, 0.0f));
      cpu.dequantize_columns(out.cp(), q.cp(), c.rows, c.k, b.cp(), o.cp(), st.cp(), row_bytes);
      gpu->dequantize_columns(out.gp(), q.gp(), c.rows, c.k, b.gp(), o.gp(), st.gp(), row_bytes);
      return rel_err(out.from(*gpu), out.from(cpu));
    }, 0, 0, 0);
  }
  for (int bin : {1, 5}) {
    add("error_sums", "bins of " + std::to_string(bin), kAll, [bin](DT dt) {
      Layer l(dt);
      const int bins = (l.T + bin - 1) / bin;
      Raw<double> hd(std::vector<double>(size_t(l.heads) * 4, 0.0)), bd(std::vector<double>(size_t(bins) * 4, 0.0));
      cpu.error_sums(DT::F32, hd.cp(), bd.cp(), l.b->c.get(), l.b->c.get(), l.cap, l.e->c.get(), l.e->c.get(), l.cap,
                     l.heads, l.hd, l.T, bin);
      gpu->error_sums(dt, hd.gp(), bd.gp(), l.b->g.get(), l.b->g.get(), l.cap, l.e->g.get(), l.e->g.get(), l.cap,
                      l.heads, l.hd, l.T, bin);
      return std::max(rel_err(hd.from(*gpu), hd.from(cpu)), rel_err(bd.from(*gpu), bd.from(cpu)));
    }, 1e-12, 1e-12, 1e-12);
  }
  add("outside_span_sums", "r 8, 3 heads × hd 40, 37 tokens", kAll, [](DT dt) {
    Layer l(dt);
    const int D = l.heads * l.hd, r = 8;
    std::vector<float> B = randn(size_t(D) * r, 0.3f);
    const std::vector<double> P = pinv_tall(B.data(), D, r);
    Raw<float> b(B);
    Raw<double> p(P), out(std::vector<double>(2, 0.0));
    cpu.outside_span_sums(DT::F32, out.cp(), l.e->c.get(), l.cap, l.b->c.get(), l.cap, p.cp(), b.cp(), r, l.heads, l.hd, l.T);
    gpu->outside_span_sums(dt, out.gp(), l.e->g.get(), l.cap, l.b->g.get(), l.cap, p.gp(), b.gp(), r, l.heads, l.hd, l.T);
    return rel_err(out.from(*gpu), out.from(cpu));
  }, 1e-10, 1e-10, 1e-10);
}

// --bench: the decode step's products (12 rows, Llama-2-7B / Llama-3-8B shapes) through the
// skinny kernel and through cuBLAS, as weight bytes read per second.
void bench_gemms() {
  cudaStream_t s;
  cudaStreamCreate(&s);
  cublasHandle_t h;
  cublasCreate(&h);
  cublasSetStream(h, s);
  struct S { const char* what; int in, out; };
  std::printf("gemm, 12 rows, bf16 (weights GB/s: skinny configs 0..3 | cuBLAS)\n");
  for (const S c : {S{"q/k/v 7B", 4096, 12288}, S{"o 7B", 4096, 4096}, S{"gate/up 7B", 4096, 22016}, S{"down 7B", 11008, 4096},
                    S{"q/k/v 8B", 4096, 6144}, S{"gate/up 8B", 4096, 28672}, S{"down 8B", 14336, 4096}}) {
    const int n = 12;
    void *x, *w, *y;
    cudaMalloc(&x, size_t(n) * c.in * 2);
    cudaMalloc(&w, size_t(c.out) * c.in * 2);
    cudaMalloc(&y, size_t(n) * c.out * 2);
    cudaMemset(x, 0, size_t(n) * c.in * 2);
    cudaMemset(w, 0, size_t(c.out) * c.in * 2);
    double gbs[cuda::kSkinnyConfigs + 1];
    for (int way = 0; way <= cuda::kSkinnyConfigs; ++way) {
      auto run = [&] {
        if (way < cuda::kSkinnyConfigs) cuda::skinny_gemm(DT::BF16, y, x, w, n, c.in, c.out, 1.0f, 0.0f, s, way);
        else cuda::cublas_gemm(h, DT::BF16, y, x, w, n, c.in, c.out, 1.0f, 0.0f);
      };
      for (int i = 0; i < 5; ++i) run();
      cudaEvent_t a, b;
      cudaEventCreate(&a);
      cudaEventCreate(&b);
      cudaEventRecord(a, s);
      const int reps = 50;
      for (int i = 0; i < reps; ++i) run();
      cudaEventRecord(b, s);
      cudaEventSynchronize(b);
      float ms = 0;
      cudaEventElapsedTime(&ms, a, b);
      gbs[way] = double(c.out) * c.in * 2 * reps / (ms * 1e-3) / 1e9;
    }
    std::printf("  %-12s %6d × %-6d  %6.0f %6.0f %6.0f %6.0f | %6.0f\n", c.what, c.in, c.out, gbs[0], gbs[1], gbs[2], gbs[3], gbs[4]);
    cudaFree(x);
    cudaFree(w);
    cudaFree(y);
  }
}


// --bench: one layer's attention_parts on the benchmark's decode step (Llama-2-7B attention:
// 32 heads of 128, a 1098-token document, 3 adapters × exact, base, seed-minikv, delta-int8 →
// 12 rows: the base span read by 9 of them through each adapter's own stores, 3 exact caches)
// and on its teacher-forced scoring (the same 12 rows × 32 positions), as time per layer and
// the K/V bytes it must read per second.
void bench_attention() {
  const int hd = 128, heads = 32, kv = 32, T = 1098, own = 40;
  World w(*gpu, DT::BF16, hd, heads, kv, T, own, 5);
  std::vector<std::shared_ptr<KvCache>> exacts;
  for (int a = 0; a < 3; ++a) {
    auto e = std::make_shared<KvCache>(*gpu, DT::BF16, 2, kv, hd, T + own);
    e->set_length(T + own);
    exacts.push_back(e);
  }
  // Each adapter's own stores (as in a comparison: 3 seed-minikv and 3 delta-int8 stores over
  // the one base cache), and a plain view of the base for its base rows.
  std::vector<std::vector<std::shared_ptr<KvCache>>> views(3);
  for (int a = 0; a < 3; ++a) {
    for (const StrategyKind k : {StrategyKind::Base, StrategyKind::SeedMiniKv, StrategyKind::DeltaInt8}) {
      StrategySpec spec;
      spec.kind = k;
      auto v = KvCache::view(w.base, encode_store(spec, *w.base, *w.exact, w.adapter, T), T, T + own);
      v->set_length(T + own);
      views[a].push_back(v);
    }
  }
  const size_t span_bytes = size_t(2) * kv * T * hd * 2;  // one layer's K and V of the document
  std::printf("attention_parts, one layer, bf16, hd %d, %d/%d heads, %d-token document (µs per layer; K/V GB/s)\n", hd, heads, kv, T);
  // One layer's attention_parts over `rows` (decode: plan sized by capacity), µs per call.
  auto time_rows = [&](std::vector<Row> rows, bool by_capacity, int reps) {
    const int n = static_cast<int>(rows.size());
    AttnPlanner planner;
    planner.build(*w.model, rows.data(), n, by_capacity, size_t(256) << 20);
    TableUpload up;
    planner.add_to(up);
    Buffer tables, partials(*gpu, std::max<size_t>(planner.partial_floats(), 1) * 4, "bench");
    up.upload(*gpu, tables, false);
    Buffer q(*gpu, size_t(n) * heads * hd * 2, "bench"), out(*gpu, size_t(n) * heads * hd * 2, "bench");
    gpu->memset0(q.get(), size_t(n) * heads * hd * 2);
    const AttnPlan plan = planner.plan(up, 0, partials.as<float>());
    auto run = [&] { gpu->attention_parts(DT::BF16, out.get(), q.get(), plan, n, heads, kv, hd); };
    for (int i = 0; i < 3; ++i) run();
    gpu->sync("bench");
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) run();
    gpu->sync("bench");
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
  };
  for (const int per_row : {1, 32}) {
    std::vector<Row> rows;
    for (int j = 0; j < per_row; ++j) {
      for (int a = 0; a < 3; ++a) {
        const int pos = T + j;
        rows.push_back(Row{exacts[a].get(), pos, nullptr, false});
        for (const auto& v : views[a]) rows.push_back(Row{v.get(), pos, nullptr, false});
      }
    }
    const int n = static_cast<int>(rows.size());
    const double us = time_rows(rows, per_row == 1, per_row == 1 ? 200 : 20);
    // Bytes it must read: the base span once, the 3 exact caches, the 3 int8 stores (≈ half a
    // span each; the seed stores' r values per token are small).
    const double bytes = 5.5 * span_bytes;
    std::printf("  %-40s %8.1f µs  %6.0f GB/s  (%d rows; ×32 layers: %.2f ms)\n",
                per_row == 1 ? "decode step (12 rows)" : "scoring (12 rows × 32 positions)", us, bytes / (us * 1e-6) / 1e9, n,
                us * 32 / 1000);
  }
  // The decode step's rows by kind, each kind alone (where the step's time goes).
  const char* kinds[] = {"exact rows alone (3)", "base rows alone (3)", "seed-minikv rows alone (3)", "delta-int8 rows alone (3)"};
  for (int k = 0; k < 4; ++k) {
    std::vector<Row> rows;
    for (int a = 0; a < 3; ++a) rows.push_back(Row{k == 0 ? exacts[a].get() : views[a][k - 1].get(), T, nullptr, false});
    std::printf("    %-38s %8.1f µs\n", kinds[k], time_rows(rows, true, 200));
  }
}

// --bench: a prefill chunk's LoRA (1098 rows of the Llama-2-7B shape, one adapter): the lora op
// on q and v (rank 8) and on q, k, v (rank 64), and the shrink alone both ways (the skinny
// kernel's transposed product, cuBLAS's), as µs per layer's call.
void bench_lora_prefill() {
  const int n = 1098, in = 4096, out = 4096;
  cudaStream_t s = nullptr;
  cublasHandle_t h;
  cublasCreate(&h);
  std::printf("lora, a prefill chunk of %d rows, bf16, in %d (µs a call)\n", n, in);
  Buffer x(*gpu, size_t(n) * in * 2, "bench"), tmp(*gpu, size_t(n) * 64 * 4, "bench");
  gpu->memset0(x.get(), x.bytes());
  for (const int rank : {8, 16, 64}) {
    Buffer a(*gpu, size_t(rank) * in * 2, "bench"), b(*gpu, size_t(out) * rank * 2, "bench");
    gpu->memset0(a.get(), a.bytes());
    gpu->memset0(b.get(), b.bytes());
    std::vector<std::unique_ptr<Buffer>> ys;
    std::vector<std::unique_ptr<Raw<LoraRow>>> tables;
    std::vector<LoraOutput> targets;
    for (int t = 0; t < 3; ++t) {
      ys.push_back(std::make_unique<Buffer>(*gpu, size_t(n) * out * 2, "bench"));
      gpu->memset0(ys.back()->get(), ys.back()->bytes());
      tables.push_back(std::make_unique<Raw<LoraRow>>(std::vector<LoraRow>(n, LoraRow{a.get(), b.get(), rank, 2.0f, nullptr})));
      targets.push_back({ys.back()->get(), out, tables.back()->table(*gpu)});
    }
    // The device's stream and the default one (the shrinks alone): the whole device waited for.
    auto time = [&](auto run) {
      for (int i = 0; i < 3; ++i) run();
      cudaDeviceSynchronize();
      const int reps = 20;
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < reps; ++i) run();
      cudaDeviceSynchronize();
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    };
    const double two = time([&] { gpu->lora(DT::BF16, x.get(), n, in, targets.data(), 2, rank, tmp.as<float>()); });
    const double three = time([&] { gpu->lora(DT::BF16, x.get(), n, in, targets.data(), 3, rank, tmp.as<float>()); });
    const double skinny = time([&] {
      for (int r0 = 0; r0 < rank; r0 += 16)
        cuda::skinny_gemm(DT::BF16, tmp.as<char>() + size_t(r0) * n * 2, a.as<char>() + size_t(r0) * in * 2, x.get(),
                          std::min(16, rank - r0), in, n, 1.0f, 0.0f, s, 0);
    });
    const double blas = time([&] { cuda::cublas_gemm(h, DT::BF16, tmp.get(), x.get(), a.get(), n, in, rank, 1.0f, 0.0f); });
    std::printf("  rank %2d: lora on 2 Linears %7.1f µs, on 3 %7.1f µs; shrink alone: skinny %6.1f µs, cuBLAS %6.1f µs\n",
                rank, two, three, skinny, blas);
  }
  cublasDestroy(h);
}

// --bench: prefill attention on the Llama-3-8B shape (32 heads of 128, 8 KV heads), one layer's
// chunk of 8192 queries at several depths of a 48k-token document, as causal TFLOP/s (the
// products a causal mask leaves: 4·hd·heads per (query, key) pair at or before it).
void bench_prefill() {
  const int hd = 128, heads = 32, kv = 8, cap = 49152, n = 8192;
  Buffer q(*gpu, size_t(n) * heads * hd * 2, "bench"), out(*gpu, size_t(n) * heads * hd * 2, "bench");
  Buffer k(*gpu, size_t(kv) * cap * hd * 2, "bench"), v(*gpu, size_t(kv) * cap * hd * 2, "bench");
  for (Buffer* b : {&q, &k, &v}) gpu->memset0(b->get(), b->bytes());
  std::printf("attention_prefill, one layer, bf16, hd %d, %d/%d heads, chunks of %d queries (causal TFLOP/s)\n", hd, heads, kv, n);
  for (const int pos0 : {0, 16384, 40960}) {
    auto run = [&] { gpu->attention_prefill(DT::BF16, out.get(), q.get(), k.get(), v.get(), cap, pos0, n, heads, kv, hd); };
    run();
    gpu->sync("bench");
    const int reps = 5;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) run();
    gpu->sync("bench");
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps;
    const double pairs = double(n) * pos0 + double(n) * (n + 1) / 2;
    std::printf("  queries %5d..%5d  %8.2f ms  %6.0f TFLOP/s\n", pos0, pos0 + n - 1, s * 1e3, 4.0 * hd * heads * pairs / s / 1e12);
  }
}

// --bench: lowrank's encode on the benchmark's shape (a layer's ΔK or ΔV: 1098 tokens × 4096,
// rank 8, so 16 sketch columns): each fp32 product of its subspace iteration alone, then one
// batch of 22 SVDs (what kv_store.cpp runs: 64 deltas in 3 batches) with its host work.
void bench_lowrank() {
  const int m = 1098, n = 4096, l = 16, count = 22;
  const std::vector<float> host = randn(size_t(m) * n, 0.05f);
  Buffer deltas(*gpu, size_t(count) * m * n * 4, "bench");
  for (int i = 0; i < count; ++i) gpu->upload(deltas.as<float>() + size_t(i) * m * n, host.data(), host.size() * 4);
  Buffer x(*gpu, size_t(n) * l * 4, "bench"), y(*gpu, size_t(n) * l * 4, "bench"), g(*gpu, size_t(l) * l * 4, "bench");
  gpu->memset0(x.get(), x.bytes());
  struct P { const char* what; int m, n, k; bool ta, tb; const float *a, *b; float* y; };
  const float* A = deltas.as<float>();
  std::printf("lowrank encode, fp32 products (%d × %d delta, %d sketch columns): µs each\n", m, n, l);
  for (const P p : {P{"Y = A·Z      [1098×16], k 4096", m, l, n, false, false, A, x.as<float>(), y.as<float>()},
                    P{"Z = Aᵀ·Y     [4096×16], k 1098", n, l, m, true, false, A, x.as<float>(), y.as<float>()},
                    P{"G = XᵀX      [16×16],   k 4096", l, l, n, true, false, x.as<float>(), x.as<float>(), g.as<float>()},
                    P{"G = XᵀX      [16×16],   k 1098", l, l, m, true, false, x.as<float>(), x.as<float>(), g.as<float>()},
                    P{"X·M          [4096×16], k 16", n, l, l, false, false, x.as<float>(), g.as<float>(), y.as<float>()}}) {
    auto run = [&] { gpu->gemm_f32(p.y, p.a, p.b, p.m, p.n, p.k, p.ta, p.tb, 1.0f, 0.0f); };
    for (int i = 0; i < 3; ++i) run();
    gpu->sync("bench");
    const int reps = 50;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) run();
    gpu->sync("bench");
    std::printf("  %-34s %8.1f µs\n", p.what, std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  std::vector<uint64_t> seeds;
  for (int i = 0; i < count; ++i) seeds.push_back(i);
  for (int rep = 0; rep < 2; ++rep) {
    auto lock = gpu->lock();
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<LowRankFactors> f = truncated_svds(*gpu, deltas.as<float>(), int64_t(m) * n, count, m, n, 8, seeds);
    gpu->sync("bench");
    std::printf("  truncated_svds, %d deltas, rank 8: %.1f ms%s\n", count,
                std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), rep ? "" : " (first)");
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && (std::string(argv[1]) == "--bench" || std::string(argv[1]) == "--bench-attention")) {
    try {
      gpu = &cuda_device();
      bench_attention();
      if (std::string(argv[1]) == "--bench") {
        bench_gemms();
        bench_lora_prefill();
        bench_prefill();
        bench_lowrank();
      }
    } catch (const std::exception& e) {
      std::printf("bench: error: %s\n", e.what());
      return 2;
    }
    return 0;
  }
  try {
    gpu = &cuda_device();
    std::printf("backend consistency: every device op, CUDA (%s) against the CPU device\n", gpu->describe().c_str());
    dense_cases();
    lora_cases();
    attention_prefill_cases();
    attention_parts_cases();
    logits_cases();
    strategy_cases();
    pca_store_cases();
    std::set<std::string> covered;
    for (const Case& c : cases) {
      covered.insert(c.op);
      for (DT dt : c.dts) {
        double err;
        std::string what;
        try {
          err = c.run(dt);
        } catch (const std::exception& e) {
          err = INFINITY;
          what = std::string(" (") + e.what() + ")";
        }
        const double limit = dt == DT::F32 ? c.tol_f32 : dt == DT::BF16 ? c.tol_bf16 : c.tol_f16;
        const bool ok = std::isfinite(err) && err <= limit;
        if (!ok) ++failures;
        std::printf("  %-18s %-5s %-70s err %.2e (limit %.0e) %s%s\n", c.op.c_str(), compute_type_name(dt), c.shape.c_str(),
                    err, limit, ok ? "ok" : "FAIL", what.c_str());
      }
    }
    for (const std::string& op : device_op_names()) {
      if (!covered.count(op)) {
        ++failures;
        std::printf("  %-18s no case: every op of the device interface needs one FAIL\n", op.c_str());
      }
    }
  } catch (const std::exception& e) {
    std::printf("backend consistency: error: %s\n", e.what());
    return 2;
  }
  std::printf("backend consistency: %s (%d failure%s, %zu cases)\n", failures ? "FAILED" : "passed", failures,
              failures == 1 ? "" : "s", cases.size());
  return failures ? 1 : 0;
}
