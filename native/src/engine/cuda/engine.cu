// The CUDA engine (engine/gpu.h): device-resident weights, adapters, KV caches and stores,
// and the forward pass as a flat sequence of the ops in cuda/ops.h, mirroring model.cpp.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/backend.h"
#include "engine/cuda/ops.h"
#include "engine/gpu.h"
#include "engine/job.h"
#include "engine/kv_cache.h"
#include "engine/kv_store.h"
#include "engine/lora.h"
#include "engine/metrics.h"
#include "engine/model.h"
#include "engine/weights.h"

namespace al::gpu {

using cuda::DT;
using Lock = std::lock_guard<std::recursive_mutex>;

// ---- device buffers -----------------------------------------------------------------------

struct Buf {
  void* p = nullptr;
  size_t bytes = 0;
  Buf() = default;
  Buf(size_t b, const char* what) : p(cuda::dmalloc(b, what)), bytes(b) {}
  ~Buf() { cuda::dfree(p); }
  Buf(Buf&& o) noexcept : p(o.p), bytes(o.bytes) { o.p = nullptr, o.bytes = 0; }
  Buf& operator=(Buf&& o) noexcept {
    if (this != &o) {
      cuda::dfree(p);
      p = o.p, bytes = o.bytes;
      o.p = nullptr, o.bytes = 0;
    }
    return *this;
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  // Grows (never shrinks) to at least `b` bytes; the old contents are dropped.
  void ensure(size_t b, const char* what) {
    if (b > bytes) *this = Buf(b, what);
  }
  template <typename X>
  X* as() const { return static_cast<X*>(p); }
};

// ---- device info --------------------------------------------------------------------------

std::string DeviceInfo::describe() const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s (%.1f GiB, sm_%d%d), CUDA runtime %d.%d, driver %d.%d", name.c_str(),
                total_bytes / double(1ull << 30), cc_major, cc_minor, runtime_version / 1000,
                runtime_version % 1000 / 10, driver_version / 1000, driver_version % 1000 / 10);
  return buf;
}

const DeviceInfo& init() {
  static DeviceInfo info;
  static bool ready = false;
  Lock lock(cuda::gpu_mutex());
  if (ready) return info;
  cuda::start();
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) throw std::runtime_error("no CUDA device: cannot query it");
  info.name = prop.name;
  info.total_bytes = prop.totalGlobalMem;
  info.cc_major = prop.major;
  info.cc_minor = prop.minor;
  cudaDriverGetVersion(&info.driver_version);
  cudaRuntimeGetVersion(&info.runtime_version);
  ready = true;
  return info;
}

size_t used_bytes() { return cuda::used_bytes(); }
size_t peak_used_bytes() { return cuda::peak_bytes(); }
void reset_peak() { cuda::reset_peak(); }

// ---- model --------------------------------------------------------------------------------

struct DevLayer {
  Buf input_norm, bq, bk, bv, wo, post_norm, down;
  // The q/k/v and the gate/up projections stacked on their output dimension, so that a
  // decode batch runs each triple or pair as one GEMM (a lone 4096×4096 projection ran cuBLAS
  // at half the copy bandwidth); prefill runs one GEMM per part. qkv = [wq; wk; wv] T
  // [q_dim + 2·kv_dim, hidden];
  // gate_up = [gate; up] T [2·intermediate, hidden].
  Buf qkv, gate_up;
};

// Activations for up to `rows` token rows, kept between calls (allocation is slow).
struct Scratch {
  Buf x, xn, xb, q, k, v, att, gate, up;  // T
  Buf qkv, gate_up;                        // T: the fused projections' outputs, before the split
  Buf lora_t;                              // T [rows, max_rank]: A·x of a prefill segment
  Buf lora_u;                              // fp32 [rows, max_rank]: BGMV's A·x
  Buf tokens, pos, kvrows, lora_rows;      // per-row tables
  Buf logits, greedy, scores;
};

// A captured decode step (CUDA graph): the whole device side of forward() for one batch
// shape, replayed while the shape, the LoRA layout and the scratch buffers stay the same
// (the per-row tables it reads are re-uploaded into the same buffers every step). A 7B
// decode step is ~700 kernel launches and cuBLAS calls; as one graph the host's launch
// cost and the gaps between kernels go away. ADAPTERLENS_CUDA_GRAPH=0 turns it off.
struct DecodeGraph {
  cudaGraphExec_t exec = nullptr;
  std::vector<uintptr_t> key;
  bool broken = false;  // a capture failed once: eager launches from then on
  DecodeGraph() = default;
  DecodeGraph(const DecodeGraph&) = delete;
  DecodeGraph& operator=(const DecodeGraph&) = delete;
  ~DecodeGraph() { reset(); }
  void reset() {
    if (exec) cudaGraphExecDestroy(exec);
    exec = nullptr;
    key.clear();
  }
};

struct DeviceModel {
  Config c;
  DT dt = DT::F32;
  std::vector<DevLayer> layers;
  Buf embed, final_norm, lm_head, inv_freq;
  size_t bytes = 0;
  Scratch s;  // used under gpu_mutex
  DecodeGraph graph;  // likewise
  const Buf& output() const { return lm_head.p ? lm_head : embed; }
};

size_t model_bytes(const DeviceModel& m) { return m.bytes; }

namespace {

Buf* slot_buf(DeviceModel& m, const WeightLoad& w) {
  if (w.layer < 0) {
    switch (w.slot) {
      case Slot::Embed: return &m.embed;
      case Slot::FinalNorm: return &m.final_norm;
      case Slot::LmHead: return &m.lm_head;
      default: break;
    }
    throw std::logic_error("load_model: a layer slot without a layer");
  }
  DevLayer& l = m.layers.at(w.layer);
  switch (w.slot) {
    case Slot::InputNorm: return &l.input_norm;
    case Slot::Bq: return &l.bq;
    case Slot::Bk: return &l.bk;
    case Slot::Bv: return &l.bv;
    case Slot::Wo: return &l.wo;
    case Slot::PostNorm: return &l.post_norm;
    case Slot::Down: return &l.down;
    default: break;
  }
  throw std::logic_error("load_model: a model slot with a layer");
}

int stored_kind(DType d) { return d == DType::F32 ? 0 : d == DType::F16 ? 1 : 2; }

// Where a q/k/v or gate/up weight goes inside its layer's fused buffer (allocated on the
// first of its parts): the part's first element; nullptr for every other slot.
void* fused_slot(DeviceModel& m, const WeightLoad& w) {
  const Config& c = m.c;
  const size_t ds = cuda::dt_size(m.dt), H = static_cast<size_t>(c.hidden_size);
  const size_t q = static_cast<size_t>(c.q_dim()), kv = static_cast<size_t>(c.kv_dim());
  const size_t I = static_cast<size_t>(c.intermediate_size);
  Buf* buf = nullptr;
  size_t rows = 0, first = 0;  // the fused buffer's rows; the part's first row
  switch (w.slot) {
    case Slot::Wq: buf = &m.layers.at(w.layer).qkv, rows = q + 2 * kv, first = 0; break;
    case Slot::Wk: buf = &m.layers.at(w.layer).qkv, rows = q + 2 * kv, first = q; break;
    case Slot::Wv: buf = &m.layers.at(w.layer).qkv, rows = q + 2 * kv, first = q + kv; break;
    case Slot::Gate: buf = &m.layers.at(w.layer).gate_up, rows = 2 * I, first = 0; break;
    case Slot::Up: buf = &m.layers.at(w.layer).gate_up, rows = 2 * I, first = I; break;
    default: return nullptr;
  }
  if (!buf->p) {
    *buf = Buf(rows * H * ds, w.slot == Slot::Gate || w.slot == Slot::Up ? "gate/up weights" : "q/k/v weights");
    m.bytes += buf->bytes;
  }
  return buf->as<char>() + first * H * ds;
}

}  // namespace

std::shared_ptr<DeviceModel> load_model(const Config& c, const std::vector<WeightLoad>& loads,
                                        const std::vector<float>& inv_freq, const JobHooks& hooks) {
  init();
  Lock lock(cuda::gpu_mutex());
  auto m = std::make_shared<DeviceModel>();
  m->c = c;
  m->dt = c.dtype;
  m->layers.resize(c.num_layers);
  const size_t ds = cuda::dt_size(m->dt);
  TensorReader reader;
  size_t staging_bytes = 0;
  double total = 0;
  for (const WeightLoad& w : loads) {
    reader.check(*w.ref, w.shape);
    staging_bytes = std::max<size_t>(staging_bytes, w.ref->nbytes);
    total += static_cast<double>(w.ref->nbytes);
  }
  // Stored bytes go up as they are and become the compute dtype on the device.
  Buf staging(staging_bytes, "weight staging");
  double done = 0;
  for (const WeightLoad& w : loads) {
    hooks.check_stop();
    const uint8_t* raw = reader.raw(*w.ref, w.shape);
    const int64_t n = numel(w.shape);
    cuda::h2d(staging.p, raw, w.ref->nbytes);
    if (void* part = w.layer >= 0 ? fused_slot(*m, w) : nullptr) {
      cuda::convert(m->dt, part, staging.p, stored_kind(w.ref->dtype), n);
    } else {
      Buf dst(static_cast<size_t>(n) * ds, w.ref->name.c_str());
      cuda::convert(m->dt, dst.p, staging.p, stored_kind(w.ref->dtype), n);
      m->bytes += dst.bytes;
      *slot_buf(*m, w) = std::move(dst);
    }
    done += static_cast<double>(w.ref->nbytes);
    hooks.report(done, total);
  }
  m->inv_freq = Buf(inv_freq.size() * sizeof(float), "RoPE frequencies");
  cuda::h2d(m->inv_freq.p, inv_freq.data(), m->inv_freq.bytes);
  cuda::sync("loading the model");
  return m;
}

// ---- adapters -----------------------------------------------------------------------------

struct DeviceAdapter {
  struct Module {
    Buf a, b;  // T [rank, in], T [out, rank]
  };
  std::vector<std::array<Module, kNumLoraTargets>> layers;
};

namespace {

// A host fp32 array to a new device buffer of dtype dt.
Buf upload_as(DT dt, const float* src, size_t n, const char* what) {
  Buf out(n * cuda::dt_size(dt), what);
  if (dt == DT::F32) {
    cuda::h2d(out.p, src, n * sizeof(float));
  } else {
    std::vector<uint16_t> tmp(n);
    cuda::host_to_dt(dt, tmp.data(), src, n);
    cuda::h2d(out.p, tmp.data(), n * 2);
  }
  return out;
}

}  // namespace

std::shared_ptr<DeviceAdapter> upload_adapter(const DeviceModel& m, const Adapter& a) {
  Lock lock(cuda::gpu_mutex());
  auto d = std::make_shared<DeviceAdapter>();
  d->layers.resize(a.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    for (int t = 0; t < kNumLoraTargets; ++t) {
      const LoraModule* mod = a.find(static_cast<int>(l), static_cast<LoraTarget>(t));
      if (!mod) continue;
      d->layers[l][t].a = upload_as(m.dt, mod->a.ptr(), mod->a.data.size(), "LoRA A");
      d->layers[l][t].b = upload_as(m.dt, mod->b.ptr(), mod->b.data.size(), "LoRA B");
    }
  }
  return d;
}

// ---- KV caches ----------------------------------------------------------------------------

struct DeviceKv {
  DT dt = DT::F32;
  int layers = 0, heads = 0, hd = 0, cap = 0;
  int64_t layer_stride = 0;  // elements
  Buf k, v;
  void* k_at(int l) const { return k.as<char>() + static_cast<size_t>(l) * layer_stride * cuda::dt_size(dt); }
  void* v_at(int l) const { return v.as<char>() + static_cast<size_t>(l) * layer_stride * cuda::dt_size(dt); }
};

std::shared_ptr<DeviceKv> new_kv(ComputeType dt, int num_layers, int num_kv_heads, int head_dim, int capacity) {
  Lock lock(cuda::gpu_mutex());
  auto kv = std::make_shared<DeviceKv>();
  kv->dt = dt;
  kv->layers = num_layers;
  kv->heads = num_kv_heads;
  kv->hd = head_dim;
  kv->cap = capacity;
  kv->layer_stride = static_cast<int64_t>(num_kv_heads) * capacity * head_dim;
  const size_t bytes = static_cast<size_t>(kv->layer_stride) * num_layers * cuda::dt_size(dt);
  kv->k = Buf(bytes, "a KV cache (K)");
  kv->v = Buf(bytes, "a KV cache (V)");
  cuda::memset0(kv->k.p, bytes);
  cuda::memset0(kv->v.p, bytes);
  cuda::sync("clearing a KV cache");
  return kv;
}

size_t kv_bytes(const DeviceKv& kv) { return kv.k.bytes + kv.v.bytes; }

void kv_read_layer(const DeviceKv& kv, int layer, int tokens, float* k, float* v) {
  Lock lock(cuda::gpu_mutex());
  const size_t ds = cuda::dt_size(kv.dt);
  const size_t row = static_cast<size_t>(tokens) * kv.hd, n = row * kv.heads;
  std::vector<uint8_t> tmp(kv.dt == DT::F32 ? 0 : n * ds);
  for (int which = 0; which < 2; ++which) {
    float* out = which ? v : k;
    void* dst = kv.dt == DT::F32 ? static_cast<void*>(out) : tmp.data();
    cuda::d2h_2d(dst, row * ds, which ? kv.v_at(layer) : kv.k_at(layer), static_cast<size_t>(kv.cap) * kv.hd * ds,
                 row * ds, kv.heads);
    if (kv.dt != DT::F32) cuda::host_from_dt(kv.dt, out, tmp.data(), n);
  }
}

void kv_write_layer(DeviceKv& kv, int layer, const float* k, const float* v, int tokens) {
  Lock lock(cuda::gpu_mutex());
  const size_t ds = cuda::dt_size(kv.dt);
  const size_t row = static_cast<size_t>(tokens) * kv.hd, n = row * kv.heads;
  std::vector<uint8_t> tmp(kv.dt == DT::F32 ? 0 : n * ds);
  for (int which = 0; which < 2; ++which) {
    const float* in = which ? v : k;
    const void* src = in;
    if (kv.dt != DT::F32) {
      cuda::host_to_dt(kv.dt, tmp.data(), in, n);
      src = tmp.data();
    }
    cuda::h2d_2d(which ? kv.v_at(layer) : kv.k_at(layer), static_cast<size_t>(kv.cap) * kv.hd * ds, src, row * ds,
                 row * ds, kv.heads);
  }
}

std::shared_ptr<DeviceKv> kv_fork(const DeviceKv& kv, int capacity, const std::vector<int>& lengths) {
  Lock lock(cuda::gpu_mutex());
  auto out = new_kv(kv.dt, kv.layers, kv.heads, kv.hd, capacity);
  const size_t ds = cuda::dt_size(kv.dt);
  for (int l = 0; l < kv.layers; ++l) {
    const size_t row = static_cast<size_t>(lengths[l]) * kv.hd * ds;
    cuda::d2d_2d(out->k_at(l), static_cast<size_t>(capacity) * kv.hd * ds, kv.k_at(l),
                 static_cast<size_t>(kv.cap) * kv.hd * ds, row, kv.heads);
    cuda::d2d_2d(out->v_at(l), static_cast<size_t>(capacity) * kv.hd * ds, kv.v_at(l),
                 static_cast<size_t>(kv.cap) * kv.hd * ds, row, kv.heads);
  }
  cuda::sync("forking a KV cache");
  return out;
}

// ---- forward ------------------------------------------------------------------------------

namespace {

// Rows of up to this many tokens run LoRA as BGMV (every row its own adapter, one kernel
// pair per Linear); longer batches (prefill chunks) as two cuBLAS GEMMs per adapter segment.
constexpr int kBgmvMaxRows = 64;

struct Pass {
  const Model& m;
  DeviceModel& d;
  Scratch& s;
  const Row* rows;
  int n;
  int max_rank;
  bool bgmv;
  std::vector<uint8_t> has;  // [L * 7]: some row adapts (layer, target)
};

void* off(const Buf& b, size_t elems, DT dt) { return b.as<char>() + elems * cuda::dt_size(dt); }

// y += each row's LoRA on x for `target`: BGMV over the whole batch, or per adapter segment.
void lora_add(Pass& p, int layer, LoraTarget target, const Buf& y, const Buf& x) {
  const DT dt = p.d.dt;
  const LinearDims dims = linear_dims(p.m.config, target);
  if (p.max_rank == 0 || !p.has[layer * kNumLoraTargets + static_cast<int>(target)]) return;
  cuda::prof_mark("lora");
  const bool capture = target == LoraTarget::V;
  if (p.bgmv) {
    const auto* table = p.s.lora_rows.as<cuda::LoraRowDev>() +
                        static_cast<size_t>(layer * kNumLoraTargets + static_cast<int>(target)) * p.n;
    cuda::lora_shrink(dt, p.s.lora_u.as<float>(), x.p, table, p.n, dims.in, p.max_rank);
    cuda::lora_expand(dt, y.p, p.s.lora_u.as<float>(), table, p.n, dims.out, p.max_rank);
    bool any_capture = false;
    for (int i = 0; i < p.n; ++i) any_capture = any_capture || (capture && p.rows[i].capture_lora_v);
    if (any_capture) {
      std::vector<float> u(static_cast<size_t>(p.n) * p.max_rank);
      cuda::d2h(u.data(), p.s.lora_u.p, u.size() * sizeof(float));
      for (int i = 0; i < p.n; ++i) {
        if (!p.rows[i].capture_lora_v || !p.rows[i].adapter) continue;
        const LoraModule* mod = p.rows[i].adapter->find(layer, target);
        if (!mod) continue;
        float* dst = p.rows[i].cache->lora_v(layer) + static_cast<size_t>(p.rows[i].pos) * mod->rank;
        for (int q = 0; q < mod->rank; ++q) dst[q] = mod->scale * u[static_cast<size_t>(i) * p.max_rank + q];
      }
    }
    return;
  }
  for (int i = 0; i < p.n;) {
    int j = i + 1;
    while (j < p.n && p.rows[j].adapter == p.rows[i].adapter) ++j;
    const Adapter* a = p.rows[i].adapter;
    const LoraModule* mod = a ? a->find(layer, target) : nullptr;
    if (mod) {
      const auto& dm = a->gpu->layers[layer][static_cast<int>(target)];
      const int len = j - i;
      cuda::gemm(dt, p.s.lora_t.p, off(x, static_cast<size_t>(i) * dims.in, dt), dm.a.p, len, dims.in, mod->rank,
                 1.0f, 0.0f);
      cuda::gemm(dt, off(y, static_cast<size_t>(i) * dims.out, dt), p.s.lora_t.p, dm.b.p, len, mod->rank, dims.out,
                 mod->scale, 1.0f);
      if (capture) {
        bool any = false;
        for (int r = i; r < j; ++r) any = any || p.rows[r].capture_lora_v;
        if (any) {
          std::vector<uint8_t> raw(static_cast<size_t>(len) * mod->rank * cuda::dt_size(dt));
          std::vector<float> ax(static_cast<size_t>(len) * mod->rank);
          cuda::d2h(raw.data(), p.s.lora_t.p, raw.size());
          cuda::host_from_dt(dt, ax.data(), raw.data(), ax.size());
          for (int r = i; r < j; ++r) {
            if (!p.rows[r].capture_lora_v) continue;
            float* dst = p.rows[r].cache->lora_v(layer) + static_cast<size_t>(p.rows[r].pos) * mod->rank;
            for (int q = 0; q < mod->rank; ++q) dst[q] = mod->scale * ax[static_cast<size_t>(r - i) * mod->rank + q];
          }
        }
      }
    }
    i = j;
  }
}

// y = x·Wᵀ (+ b), then the rows' LoRA.
void linear(Pass& p, int layer, LoraTarget target, const Buf& y, const Buf& x, const Buf& w, const Buf& b) {
  const LinearDims dims = linear_dims(p.m.config, target);
  cuda::prof_mark(target == LoraTarget::O ? "gemm o" : "gemm down");
  cuda::gemm(p.d.dt, y.p, x.p, w.p, p.n, dims.in, dims.out, 1.0f, 0.0f);
  if (b.p) cuda::add_bias(p.d.dt, y.p, b.p, p.n, dims.out);
  lora_add(p, layer, target, y, x);
}

bool graphs_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_GRAPH");
    return !(v && std::string(v) == "0");
  }();
  return on;
}

// Runs enqueue(true) as the model's decode graph: replays the captured graph when the key
// (batch shape, LoRA layout, every buffer the kernels address) matches, captures a new one
// otherwise. A failed capture turns graphs off for this model and runs the pass eagerly.
template <typename F>
void run_graph(DeviceModel& d, const Scratch& s, int n, int max_rank, const std::vector<uint8_t>& has, int rows_out,
               int logits_from, bool greedy, int attn_len, const F& enqueue) {
  std::vector<uintptr_t> key = {static_cast<uintptr_t>(n), static_cast<uintptr_t>(max_rank),
                                static_cast<uintptr_t>(rows_out), static_cast<uintptr_t>(logits_from),
                                static_cast<uintptr_t>(greedy), static_cast<uintptr_t>(attn_len)};
  for (const Buf* b : {&s.x, &s.xn, &s.xb, &s.q, &s.k, &s.v, &s.att, &s.gate, &s.up, &s.qkv, &s.gate_up, &s.lora_t,
                       &s.lora_u, &s.tokens, &s.pos, &s.kvrows, &s.lora_rows, &s.logits, &s.greedy, &s.scores}) {
    key.push_back(reinterpret_cast<uintptr_t>(b->p));
  }
  key.insert(key.end(), has.begin(), has.end());
  const auto stream = static_cast<cudaStream_t>(cuda::current_stream());
  if (!d.graph.exec || d.graph.key != key) {
    d.graph.reset();
    cudaGraph_t g = nullptr;
    cudaGraphExec_t exec = nullptr;
    cudaError_t e = cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal);
    std::string why;
    if (e == cudaSuccess) {
      try {
        enqueue(true);
      } catch (const std::exception& ex) {
        why = ex.what();
      }
      e = cudaStreamEndCapture(stream, &g);
      if (why.empty() && e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
      if (g) cudaGraphDestroy(g);
    }
    if (!why.empty() || e != cudaSuccess || !exec) {
      if (why.empty()) why = cudaGetErrorString(e);
      cudaGetLastError();  // capture errors are not sticky; clear the last one
      d.graph.broken = true;
      std::fprintf(stderr, "adapterlens: CUDA graph capture failed (%s); plain launches from now on\n", why.c_str());
      enqueue(false);
      return;
    }
    d.graph.exec = exec;
    d.graph.key = std::move(key);
  }
  const cudaError_t e = cudaGraphLaunch(d.graph.exec, stream);
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA graph launch: ") + cudaGetErrorString(e));
}

}  // namespace

void forward(const Model& m, const int32_t* tokens, const Row* rows, int n, float* logits, int logits_from,
             int32_t* greedy, const JobHooks& hooks) {
  Lock lock(cuda::gpu_mutex());
  DeviceModel& d = *m.gpu;
  Scratch& s = d.s;
  const Config& c = m.config;
  const DT dt = d.dt;
  const size_t ds = cuda::dt_size(dt);
  const int H = c.hidden_size, L = c.num_layers;

  int max_rank = 0, max_len = 0, max_cap = 0;
  bool captures = false;
  for (int i = 0; i < n; ++i) {
    if (!rows[i].cache->on_device()) throw std::logic_error("gpu::forward: a host KV cache");
    if (rows[i].adapter) {
      if (!rows[i].adapter->gpu) throw std::logic_error("gpu::forward: an adapter without device copies");
      max_rank = std::max(max_rank, rows[i].adapter->max_rank);
    }
    max_len = std::max(max_len, rows[i].pos + 1);
    max_cap = std::max(max_cap, rows[i].cache->dev()->cap);
    captures = captures || rows[i].capture_lora_v;
  }
  const int rows_out = (logits || greedy) && logits_from < n ? n - logits_from : 0;
  // A few rows (decode): one GEMM per stacked weight, then a split (measured on an H200, 7B,
  // 12 rows: q/k/v 1.56 → 1.15 ms per step). Many rows (prefill): one GEMM per part straight
  // into its output (the stacked GEMMs plus the split were 15% slower there).
  const bool fused = n <= kBgmvMaxRows;

  const size_t r = static_cast<size_t>(n);
  s.x.ensure(r * H * ds, "activations");
  s.xn.ensure(r * H * ds, "activations");
  s.xb.ensure(r * H * ds, "activations");
  s.q.ensure(r * c.q_dim() * ds, "activations");
  s.att.ensure(r * c.q_dim() * ds, "activations");
  s.k.ensure(r * c.kv_dim() * ds, "activations");
  s.v.ensure(r * c.kv_dim() * ds, "activations");
  s.gate.ensure(r * c.intermediate_size * ds, "activations");
  s.up.ensure(r * c.intermediate_size * ds, "activations");
  if (fused) {  // the stacked projections' outputs
    s.qkv.ensure(r * (c.q_dim() + 2 * c.kv_dim()) * ds, "activations");
    s.gate_up.ensure(r * 2 * c.intermediate_size * ds, "activations");
  }
  s.lora_t.ensure(r * std::max(max_rank, 1) * ds, "LoRA scratch");
  s.lora_u.ensure(r * std::max(max_rank, 1) * sizeof(float), "LoRA scratch");
  s.tokens.ensure(r * sizeof(int32_t), "token ids");
  s.pos.ensure(r * sizeof(int), "positions");
  s.kvrows.ensure(r * sizeof(cuda::KvRowDev), "row table");
  s.logits.ensure(static_cast<size_t>(std::max(rows_out, 1)) * c.vocab_size * ds, "logits");
  s.greedy.ensure(static_cast<size_t>(std::max(rows_out, 1)) * sizeof(int32_t), "argmax");

  // Per-row tables, one upload each per call.
  std::vector<int> pos(n);
  std::vector<cuda::KvRowDev> kv(n);
  bool one_seq = n > 1;
  for (int i = 0; i < n; ++i) {
    const DeviceKv& dk = *rows[i].cache->dev();
    pos[i] = rows[i].pos;
    kv[i] = {dk.k.p, dk.v.p, dk.layer_stride, dk.cap, rows[i].pos};
    one_seq = one_seq && rows[i].cache == rows[0].cache && rows[i].pos == rows[0].pos + i;
  }
  cuda::h2d(s.tokens.p, tokens, r * sizeof(int32_t));
  cuda::h2d(s.pos.p, pos.data(), r * sizeof(int));
  cuda::h2d(s.kvrows.p, kv.data(), r * sizeof(cuda::KvRowDev));

  Pass p{m, d, s, rows, n, max_rank, n <= kBgmvMaxRows, std::vector<uint8_t>(static_cast<size_t>(L) * kNumLoraTargets, 0)};
  if (max_rank > 0) {
    std::vector<cuda::LoraRowDev> table(p.bgmv ? static_cast<size_t>(L) * kNumLoraTargets * n : 0);
    for (int l = 0; l < L; ++l) {
      for (int t = 0; t < kNumLoraTargets; ++t) {
        for (int i = 0; i < n; ++i) {
          const Adapter* a = rows[i].adapter;
          const LoraModule* mod = a ? a->find(l, static_cast<LoraTarget>(t)) : nullptr;
          if (!mod) {
            if (p.bgmv) table[(static_cast<size_t>(l) * kNumLoraTargets + t) * n + i] = {nullptr, nullptr, 0, 0.0f};
            continue;
          }
          p.has[l * kNumLoraTargets + t] = 1;
          if (p.bgmv) {
            const auto& dm = a->gpu->layers[l][t];
            table[(static_cast<size_t>(l) * kNumLoraTargets + t) * n + i] = {dm.a.p, dm.b.p, mod->rank, mod->scale};
          }
        }
      }
    }
    if (p.bgmv) {
      s.lora_rows.ensure(table.size() * sizeof(cuda::LoraRowDev), "LoRA row table");
      cuda::h2d(s.lora_rows.p, table.data(), table.size() * sizeof(cuda::LoraRowDev));
    }
  }

  // Decode batches (rows of different sequences, nothing copied to the host mid-pass) run
  // as a CUDA graph; attention then covers every row's capacity (keys past a row's length
  // are skipped in the kernel) so that the graph does not depend on the lengths.
  const bool graph = p.bgmv && !one_seq && !captures && !d.graph.broken && !cuda::profiling() && graphs_enabled();
  const int attn_len = graph ? max_cap : max_len;
  if (graph) s.scores.ensure(cuda::attention_rows_scratch(n, c.num_heads, c.head_dim, attn_len), "attention partials");

  const auto* kvrows = s.kvrows.as<cuda::KvRowDev>();
  // Everything on the device, from the embedding to the argmax; `capturing`: no host checks.
  const auto enqueue = [&](bool capturing) {
    cuda::prof_mark("embedding");
    cuda::embedding(dt, s.x.p, d.embed.p, s.tokens.as<int32_t>(), n, H);
    for (int l = 0; l < L; ++l) {
      if (!capturing) hooks.check_stop();
      const DevLayer& w = d.layers[l];

      // Attention block: x += o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x).
      // (The residual adds are fused into the next rmsnorm: x += the previous block's output.)
      cuda::prof_mark("rmsnorm (+ residual add)");
      if (l == 0) {
        cuda::rmsnorm(dt, s.xn.p, s.x.p, w.input_norm.p, n, H, c.rms_norm_eps);
      } else {
        cuda::add_rmsnorm(dt, s.xn.p, s.x.p, s.xb.p, w.input_norm.p, n, H, c.rms_norm_eps);
      }
      cuda::prof_mark("gemm q/k/v");
      if (fused) {
        cuda::gemm(dt, s.qkv.p, s.xn.p, w.qkv.p, n, H, c.q_dim() + 2 * c.kv_dim(), 1.0f, 0.0f);
        cuda::split_columns(dt, s.q.p, s.k.p, s.v.p, s.qkv.p, n, c.q_dim(), c.kv_dim(), c.kv_dim());
      } else {
        cuda::gemm(dt, s.q.p, s.xn.p, w.qkv.p, n, H, c.q_dim(), 1.0f, 0.0f);
        cuda::gemm(dt, s.k.p, s.xn.p, off(w.qkv, static_cast<size_t>(c.q_dim()) * H, dt), n, H, c.kv_dim(), 1.0f, 0.0f);
        cuda::gemm(dt, s.v.p, s.xn.p, off(w.qkv, static_cast<size_t>(c.q_dim() + c.kv_dim()) * H, dt), n, H,
                   c.kv_dim(), 1.0f, 0.0f);
      }
      if (w.bq.p) cuda::add_bias(dt, s.q.p, w.bq.p, n, c.q_dim());
      if (w.bk.p) cuda::add_bias(dt, s.k.p, w.bk.p, n, c.kv_dim());
      if (w.bv.p) cuda::add_bias(dt, s.v.p, w.bv.p, n, c.kv_dim());
      lora_add(p, l, LoraTarget::Q, s.q, s.xn);
      lora_add(p, l, LoraTarget::K, s.k, s.xn);
      lora_add(p, l, LoraTarget::V, s.v, s.xn);
      cuda::prof_mark("rope, store kv");
      cuda::rope(dt, s.q.p, s.k.p, s.pos.as<int>(), d.inv_freq.as<float>(), n, c.num_heads, c.num_kv_heads, c.head_dim);
      cuda::store_kv(dt, kvrows, l, s.k.p, s.v.p, n, c.num_kv_heads, c.head_dim);
      const DeviceKv& dk0 = *rows[0].cache->dev();
      cuda::prof_mark("attention");
      // One sequence's chunk: tensor cores in bf16/fp16, the fp32 CUDA-core kernel otherwise
      // (fp32 parity runs keep fp32 products); any rows: the split decode kernel.
      const auto prefill = [&](auto kernel) {
        return kernel(dt, s.att.p, s.q.p, dk0.k_at(l), dk0.v_at(l), dk0.cap, rows[0].pos, n, c.num_heads,
                      c.num_kv_heads, c.head_dim);
      };
      if (!(one_seq && (prefill(cuda::attention_prefill_tc) || prefill(cuda::attention_prefill)))) {
        s.scores.ensure(cuda::attention_rows_scratch(n, c.num_heads, c.head_dim, attn_len), "attention partials");
        cuda::attention_rows(dt, s.att.p, s.q.p, kvrows, l, n, c.num_heads, c.num_kv_heads, c.head_dim, attn_len,
                             s.scores.as<float>());
      }
      linear(p, l, LoraTarget::O, s.xb, s.att, w.wo, Buf());

      // MLP block: x += down_proj(silu(gate_proj(h)) * up_proj(h)) on h = rmsnorm(x).
      cuda::prof_mark("rmsnorm (+ residual add)");
      cuda::add_rmsnorm(dt, s.xn.p, s.x.p, s.xb.p, w.post_norm.p, n, H, c.rms_norm_eps);
      cuda::prof_mark("gemm gate/up");
      if (fused) {
        cuda::gemm(dt, s.gate_up.p, s.xn.p, w.gate_up.p, n, H, 2 * c.intermediate_size, 1.0f, 0.0f);
        cuda::split_columns(dt, s.gate.p, s.up.p, nullptr, s.gate_up.p, n, c.intermediate_size, c.intermediate_size,
                            0);
      } else {
        cuda::gemm(dt, s.gate.p, s.xn.p, w.gate_up.p, n, H, c.intermediate_size, 1.0f, 0.0f);
        cuda::gemm(dt, s.up.p, s.xn.p, off(w.gate_up, static_cast<size_t>(c.intermediate_size) * H, dt), n, H,
                   c.intermediate_size, 1.0f, 0.0f);
      }
      lora_add(p, l, LoraTarget::Gate, s.gate, s.xn);
      lora_add(p, l, LoraTarget::Up, s.up, s.xn);
      cuda::prof_mark("swiglu");
      cuda::swiglu(dt, s.gate.p, s.up.p, static_cast<int64_t>(n) * c.intermediate_size);
      linear(p, l, LoraTarget::Down, s.xb, s.gate, w.down, Buf());  // added by the next norm
    }

    if (rows_out > 0) {
      const size_t o = static_cast<size_t>(logits_from) * H;
      cuda::prof_mark("lm head, argmax, logits out");
      cuda::add_rmsnorm(dt, off(s.xn, o, dt), off(s.x, o, dt), off(s.xb, o, dt), d.final_norm.p, rows_out, H,
                        c.rms_norm_eps);
      cuda::gemm(dt, s.logits.p, off(s.xn, o, dt), d.output().p, rows_out, H, c.vocab_size, 1.0f, 0.0f);
      if (greedy) cuda::argmax_rows(dt, s.greedy.as<int32_t>(), s.logits.p, rows_out, c.vocab_size);
    }
  };  // enqueue

  if (graph) {
    hooks.check_stop();
    run_graph(d, s, n, max_rank, p.has, rows_out, logits_from, greedy != nullptr, attn_len, enqueue);
    hooks.check_stop();
  } else {
    enqueue(false);
  }

  if (rows_out > 0) {
    if (greedy) cuda::d2h(greedy, s.greedy.p, static_cast<size_t>(rows_out) * sizeof(int32_t));
    if (logits) {
      const size_t count = static_cast<size_t>(rows_out) * c.vocab_size;
      if (dt == DT::F32) {
        cuda::d2h(logits, s.logits.p, count * sizeof(float));
      } else {
        std::vector<uint16_t> raw(count);
        cuda::d2h(raw.data(), s.logits.p, count * 2);
        cuda::host_from_dt(dt, logits, raw.data(), count);
      }
    }
  }
  cuda::sync("the forward pass");
  if (cuda::profiling()) {
    cuda::prof_report("forward of " + std::to_string(n) + (one_seq || n == 1 ? " tokens of one sequence" : " rows"));
  }
}

// ---- strategies ---------------------------------------------------------------------------

struct DeviceStore {
  struct Layer {
    int rank = 0;
    Buf coef;   // fp32 [T, rank]: seed-minikv's miniV
    Buf basis;  // fp32 [D, rank]: the adapter's B_v (not counted: the adapter holds it)
    Buf qk, qv; // [heads, T, row_bytes]
    Buf sk, sv; // fp32 [heads, T]
  };
  int bits = 0;
  std::vector<Layer> layers;
};

namespace {

const DeviceKv& dkv(const KvCache& c) {
  if (!c.on_device()) throw std::logic_error("a host KV cache where a device one was expected");
  return *c.dev();
}

// A host fp32 copy of a device cache (positions each layer holds, and any LoRA-V capture).
std::unique_ptr<KvCache> to_host(const KvCache& c) {
  int longest = 1;
  for (int l = 0; l < c.num_layers(); ++l) longest = std::max(longest, c.layer_length(l));
  auto h = std::make_unique<KvCache>(c.num_layers(), c.num_kv_heads(), c.head_dim(), longest);
  std::vector<float> k, v;
  for (int l = 0; l < c.num_layers(); ++l) {
    const int len = c.layer_length(l);
    k.resize(static_cast<size_t>(c.num_kv_heads()) * len * c.head_dim());
    v.resize(k.size());
    c.read_layer(l, k.data(), v.data());
    h->write_layer(l, k.data(), v.data(), len);
  }
  if (const LoraVCapture* cap = c.lora_v()) {
    h->begin_lora_v_capture(cap->adapter_id, cap->ranks);
    for (int l = 0; l < c.num_layers(); ++l) {
      std::copy_n(cap->u[l].data(), static_cast<size_t>(cap->length) * cap->ranks[l], h->lora_v(l));
    }
    h->set_lora_v_length(cap->length);
  }
  return h;
}

}  // namespace

std::shared_ptr<KvStore> encode_store(const Model& m, const StrategySpec& spec, const KvCache& base,
                                      const KvCache& exact, std::shared_ptr<const Adapter> adapter, int tokens) {
  const bool native = spec.kind == StrategyKind::Base || spec.kind == StrategyKind::SeedMiniKv ||
                      spec.kind == StrategyKind::DeltaInt8 || spec.kind == StrategyKind::DeltaInt4;
  if (!native) {
    // lragent, lowrank, hybrid: host round trip through the CPU implementation.
    auto hb = to_host(base);
    auto he = to_host(exact);
    return al::encode_store(cpu_backend(), spec, *hb, *he, std::move(adapter), tokens);
  }
  Lock lock(cuda::gpu_mutex());
  const DeviceKv& b = dkv(base);
  const DeviceKv& e = dkv(exact);
  const DT dt = e.dt;
  const int L = e.layers, heads = e.heads, hd = e.hd, D = heads * hd, T = tokens;
  auto store = std::make_shared<KvStore>();
  store->kind = spec.kind;
  store->num_layers = L;
  store->num_kv_heads = heads;
  store->head_dim = hd;
  store->tokens = T;
  store->adapter = adapter;
  store->gpu = std::make_shared<DeviceStore>();
  DeviceStore& ds = *store->gpu;
  ds.layers.resize(L);

  if (spec.kind == StrategyKind::SeedMiniKv) {
    Buf dv(static_cast<size_t>(T) * D * sizeof(float), "seed-minikv ΔV");
    for (int l = 0; l < L; ++l) {
      const LoraModule* mod = adapter ? adapter->find(l, LoraTarget::V) : nullptr;
      if (!mod) continue;
      auto& dl = ds.layers[l];
      dl.rank = mod->rank;
      std::shared_ptr<const VPinv> pinv = adapter->v_pinv(l);
      std::vector<float> p(pinv->p.begin(), pinv->p.end());  // [r, D] in fp32, as torch's fp32 pinv
      Buf pd(p.size() * sizeof(float), "pinv(B_v)");
      cuda::h2d(pd.p, p.data(), pd.bytes);
      dl.basis = Buf(mod->b.data.size() * sizeof(float), "B_v");
      cuda::h2d(dl.basis.p, mod->b.ptr(), dl.basis.bytes);
      dl.coef = Buf(static_cast<size_t>(T) * mod->rank * sizeof(float), "seed-minikv store");
      cuda::delta_rows(dt, dv.as<float>(), e.v_at(l), e.cap, b.v_at(l), b.cap, heads, hd, T);
      cuda::gemm_f32(dl.coef.as<float>(), dv.as<float>(), pd.as<float>(), T, D, mod->rank, 1.0f, 0.0f);
      cuda::sync("seed-minikv encode");  // pd goes out of scope
      store->bytes += dl.coef.bytes;
    }
  } else if (spec.kind == StrategyKind::DeltaInt8 || spec.kind == StrategyKind::DeltaInt4) {
    ds.bits = spec.kind == StrategyKind::DeltaInt8 ? 8 : 4;
    const size_t row_bytes = ds.bits == 8 ? hd : (hd + 1) / 2;
    for (int l = 0; l < L; ++l) {
      auto& dl = ds.layers[l];
      dl.qk = Buf(static_cast<size_t>(heads) * T * row_bytes, "delta store");
      dl.qv = Buf(dl.qk.bytes, "delta store");
      dl.sk = Buf(static_cast<size_t>(heads) * T * sizeof(float), "delta scales");
      dl.sv = Buf(dl.sk.bytes, "delta scales");
      cuda::quantize_delta(dt, dl.qk.as<uint8_t>(), dl.sk.as<float>(), e.k_at(l), e.cap, b.k_at(l), b.cap, heads, hd,
                           T, ds.bits);
      cuda::quantize_delta(dt, dl.qv.as<uint8_t>(), dl.sv.as<float>(), e.v_at(l), e.cap, b.v_at(l), b.cap, heads, hd,
                           T, ds.bits);
      store->bytes += dl.qk.bytes + dl.qv.bytes + dl.sk.bytes + dl.sv.bytes;
    }
  }
  cuda::sync("encoding a store");
  return store;
}

void decode_store(const Model& m, const KvStore& store, const KvCache& base, KvCache& out) {
  const int T = store.tokens;
  if (!store.gpu) {
    // A store encoded on the host (lragent, lowrank, hybrid): rebuild there, copy up.
    auto hb = to_host(base);
    KvCache host_out(store.num_layers, store.num_kv_heads, store.head_dim, std::max(T, 1));
    al::decode_store(cpu_backend(), store, *hb, host_out);
    std::vector<float> k(static_cast<size_t>(store.num_kv_heads) * T * store.head_dim), v(k.size());
    for (int l = 0; l < store.num_layers; ++l) {
      host_out.read_layer(l, k.data(), v.data());
      out.write_layer(l, k.data(), v.data(), T);
    }
    out.set_length(T);
    return;
  }
  Lock lock(cuda::gpu_mutex());
  const DeviceKv& b = dkv(base);
  const DeviceKv& o = dkv(out);
  const DT dt = o.dt;
  const int heads = store.num_kv_heads, hd = store.head_dim, D = heads * hd;
  const DeviceStore& ds = *store.gpu;
  Buf rows;
  for (int l = 0; l < store.num_layers; ++l) {
    const auto& dl = ds.layers[l];
    if (dl.qk.p) {
      cuda::add_quantized(dt, o.k_at(l), o.cap, b.k_at(l), b.cap, dl.qk.as<uint8_t>(), dl.sk.as<float>(), heads, hd, T,
                          ds.bits);
      cuda::add_quantized(dt, o.v_at(l), o.cap, b.v_at(l), b.cap, dl.qv.as<uint8_t>(), dl.sv.as<float>(), heads, hd, T,
                          ds.bits);
      continue;
    }
    cuda::copy_positions(dt, o.k_at(l), o.cap, b.k_at(l), b.cap, heads, hd, T);
    if (dl.coef.p) {
      rows.ensure(static_cast<size_t>(T) * D * sizeof(float), "rebuilt ΔV");
      cuda::gemm_f32(rows.as<float>(), dl.coef.as<float>(), dl.basis.as<float>(), T, dl.rank, D, 1.0f, 0.0f);
      cuda::add_rows(dt, o.v_at(l), o.cap, b.v_at(l), b.cap, rows.as<float>(), heads, hd, T);
    } else {
      cuda::copy_positions(dt, o.v_at(l), o.cap, b.v_at(l), b.cap, heads, hd, T);
    }
  }
  cuda::sync("decoding a store");
  out.set_length(T);
}

ErrorSums compare_caches(const KvCache& rebuilt, const KvCache& exact, int tokens) {
  Lock lock(cuda::gpu_mutex());
  const DeviceKv& r = dkv(rebuilt);
  const DeviceKv& e = dkv(exact);
  const int L = e.layers, H = e.heads, T = tokens;
  ErrorSums s;
  s.num_layers = L;
  s.num_kv_heads = H;
  s.tokens = T;
  const size_t by_head = static_cast<size_t>(L) * H, by_token = static_cast<size_t>(L) * T;
  for (auto* v : {&s.k_diff_head, &s.k_norm_head, &s.v_diff_head, &s.v_norm_head}) v->assign(by_head, 0.0);
  for (auto* v : {&s.k_diff_token, &s.k_norm_token, &s.v_diff_token, &s.v_norm_token}) v->assign(by_token, 0.0);
  if (T == 0) return s;
  // Each (layer, head, token) row's four sums on the GPU; the sums over rows on the host in
  // the CPU reference's order, so both backends give the same doubles for the same caches.
  const size_t per_layer = static_cast<size_t>(H) * T * 4;
  Buf sums(per_layer * L * sizeof(double), "error sums");
  for (int l = 0; l < L; ++l) {
    cuda::error_rows(e.dt, sums.as<double>() + per_layer * l, r.k_at(l), r.v_at(l), r.cap, e.k_at(l), e.v_at(l), e.cap,
                     H, e.hd, T);
  }
  std::vector<double> h(per_layer * L);
  cuda::d2h(h.data(), sums.p, h.size() * sizeof(double));
  for (int l = 0; l < L; ++l) {
    for (int hh = 0; hh < H; ++hh) {
      double acc[4] = {0, 0, 0, 0};
      for (int t = 0; t < T; ++t) {
        const double* row = h.data() + per_layer * l + (static_cast<size_t>(hh) * T + t) * 4;
        for (int j = 0; j < 4; ++j) acc[j] += row[j];
      }
      const size_t i = static_cast<size_t>(l) * H + hh;
      s.k_diff_head[i] = acc[0], s.k_norm_head[i] = acc[1], s.v_diff_head[i] = acc[2], s.v_norm_head[i] = acc[3];
    }
    for (int t = 0; t < T; ++t) {
      double acc[4] = {0, 0, 0, 0};
      for (int hh = 0; hh < H; ++hh) {
        const double* row = h.data() + per_layer * l + (static_cast<size_t>(hh) * T + t) * 4;
        for (int j = 0; j < 4; ++j) acc[j] += row[j];
      }
      const size_t i = static_cast<size_t>(l) * T + t;
      s.k_diff_token[i] = acc[0], s.k_norm_token[i] = acc[1], s.v_diff_token[i] = acc[2], s.v_norm_token[i] = acc[3];
    }
  }
  return s;
}

std::vector<double> outside_span(const KvCache& base, const KvCache& exact, const Adapter& adapter, int tokens) {
  auto hb = to_host(base);
  auto he = to_host(exact);
  return al::outside_span(*hb, *he, adapter, tokens);
}

}  // namespace al::gpu
