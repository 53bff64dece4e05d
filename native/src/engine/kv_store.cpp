#include "engine/kv_store.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <queue>
#include <stdexcept>
#include <string>

#include "engine/linalg.h"
#include "engine/lowrank.h"

namespace al {

namespace {

struct Dims {
  int heads, hd, T;
  int D() const { return heads * hd; }
};

// seed-minikv: miniV = pinv(B_v)·ΔV, kept as [T, r] (its transpose): ΔV [T, D] · P[r, D]ᵀ.
LowRankTerm encode_seed(Device& dev, DT dt, const Adapter& adapter, int layer, const KvCache& base,
                        const KvCache& exact, const Dims& d, Buffer& delta) {
  const LoraModule& m = *adapter.find(layer, LoraTarget::V);
  std::shared_ptr<const VPinv> pinv = adapter.v_pinv(layer);  // [r, D] in fp32, as torch's fp32 pinv
  delta.ensure(dev, static_cast<size_t>(d.T) * d.D() * 4, "ΔV rows");
  dev.delta_rows(dt, delta.as<float>(), exact.own_v(layer), exact.own_capacity(), base.own_v(layer),
                 base.own_capacity(), d.heads, d.hd, d.T);
  LowRankTerm term;
  term.k = m.rank;
  term.coef = Buffer(dev, static_cast<size_t>(d.T) * m.rank * 4, "seed-minikv store");
  dev.gemm_f32(term.coef.as<float>(), delta.as<float>(), pinv->dev_f32.as<float>(), d.T, m.rank, d.D(), false, true,
               1.0f, 0.0f);
  term.basis = adapter.v[layer]->basis;
  return term;
}

// lragent: the captured u = s·A_v·x of positions [0, T), [T, r].
LowRankTerm encode_lragent(Device& dev, const Adapter& adapter, int layer, const KvCache& exact, const Dims& d) {
  const LoraModule& m = *adapter.find(layer, LoraTarget::V);
  LowRankTerm term;
  term.k = m.rank;
  const size_t bytes = static_cast<size_t>(d.T) * m.rank * 4;
  term.coef = Buffer(dev, bytes, "lragent store");
  dev.copy(term.coef.get(), exact.lora_v()->u[layer].get(), bytes);
  term.basis = adapter.v[layer]->basis;
  return term;
}

QuantizedDelta encode_quantized(Device& dev, DT dt, const void* exact, int exact_cap, const void* base, int base_cap,
                                const Dims& d, int bits) {
  QuantizedDelta q;
  q.bits = bits;
  q.row_bytes = bits == 8 ? d.hd : (d.hd + 1) / 2;
  q.q = Buffer(dev, static_cast<size_t>(d.heads) * d.T * q.row_bytes, "delta store");
  q.scale = Buffer(dev, static_cast<size_t>(d.heads) * d.T * 4, "delta scales");
  dev.quantize_delta(dt, q.q.as<uint8_t>(), q.scale.as<float>(), exact, exact_cap, base, base_cap, d.heads, d.hd, d.T,
                     bits);
  return q;
}

// kLowRankBatchBytes, or ADAPTERLENS_LOWRANK_BATCH_BYTES where set (tests compare a delta at a
// time with whole batches: the factors must not depend on the batching).
size_t lowrank_batch_bytes() {
  const char* v = std::getenv("ADAPTERLENS_LOWRANK_BATCH_BYTES");
  if (v && *v) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 10);
    if (end && *end == '\0' && n > 0) return static_cast<size_t>(n);
  }
  return kLowRankBatchBytes;
}

size_t term_bytes(const LowRankTerm& t) { return t.coef.bytes() + t.own_basis.bytes(); }

// dst (positions [0, T) of a [heads, dst_cap, hd] tensor) += coef · basisᵀ.
void add_term(Device& dev, DT dt, void* dst, int dst_cap, const LowRankTerm& t, const Dims& d, Buffer& rows) {
  if (t.k == 0) return;
  rows.ensure(dev, static_cast<size_t>(d.T) * d.D() * 4, "rebuilt Δ rows");
  dev.gemm_f32(rows.as<float>(), t.coef.as<float>(), t.basis, d.T, d.D(), t.k, false, true, 1.0f, 0.0f);
  dev.add_rows(dt, dst, dst_cap, dst, dst_cap, rows.as<float>(), d.heads, d.hd, d.T);
}

// ---- pca ------------------------------------------------------------------------------------
//
// Per part (a layer's ΔK before RoPE, or its ΔV) the eigen-decomposition of ΔᵀΔ (D × D, on the
// host in double, as lowrank's Gram matrices); one greedy allocation of bits to the components
// of every part under the store's byte budget; then per part its kept basis (8-bit codes) and
// its coefficients C = Δ·B, column j quantized to bits[j]. Why before RoPE: RoPE rotates each
// position by its own angles, so a delta that is low-rank across tokens before RoPE is not
// after it (measured on the demo model: rank for 90% of ΔK's energy ~10–30 before, ~60–80 after).

// A midrise uniform quantizer of a Gaussian of standard deviation σ with b bits: the step that
// minimises the mean squared error (in units of σ) and that error (in units of σ²), b = 0..8
// (Max 1960). What the allocation predicts and the encoder uses.
constexpr double kPcaStep[9] = {0.0, 1.596, 0.9957, 0.5860, 0.3352, 0.1881, 0.1041, 0.0569, 0.0308};
constexpr double kPcaMse[9] = {1.0, 0.3634, 0.1188, 0.03744, 0.01154, 0.003490, 0.001041, 0.0003071, 0.00008971};
// Bytes a component costs the first time it gets a bit: its basis column (D codes) and its
// metadata (bits, offset and step, for C and for B).
constexpr int kPcaColumnMeta = 2 * (1 + 4 + 4);

struct PcaSpectrum {
  std::vector<double> lambda;  // eigenvalues of ΔᵀΔ, descending, >= 0
  std::vector<float> vectors;  // [D, D]: column j = eigenvector j
};

// Δ of one part into `delta` (fp32 [T, D]); K is taken back before RoPE (RoPE at −t).
void pca_delta(Device& dev, DT dt, const KvCache& base, const KvCache& exact, int layer, bool is_v, const Dims& d,
               const Buffer& negpos, const Buffer& inv_freq, Buffer& delta) {
  delta.ensure(dev, static_cast<size_t>(d.T) * d.D() * 4, "Δ rows");
  dev.delta_rows(dt, delta.as<float>(), is_v ? exact.own_v(layer) : exact.own_k(layer), exact.own_capacity(),
                 is_v ? base.own_v(layer) : base.own_k(layer), base.own_capacity(), d.heads, d.hd, d.T);
  if (!is_v) dev.rope(DT::F32, nullptr, delta.as<float>(), negpos.as<int>(), inv_freq.as<float>(), d.T, 0, d.heads, d.hd);
}

// Bits per component of every part: greedy, best predicted distortion drop per byte first, a
// component's predicted squared error being weight · λ_j · kPcaMse[bits] (λ_j: the energy of
// component j over the document). A bit is taken only while the store stays within `budget`
// bytes, counting the rows' padding to whole bytes, so the result never exceeds it.
std::vector<std::vector<int>> allocate_bits(const std::vector<PcaSpectrum>& parts, const std::vector<double>& weights,
                                            const std::vector<bool>& coded, int T, int D, double budget) {
  const int P = static_cast<int>(parts.size());
  std::vector<std::vector<int>> bits(P, std::vector<int>(D, 0));
  std::vector<int> row_bits(P, 0);
  struct Step {
    double ratio;
    int part, comp;
    bool operator<(const Step& o) const {
      if (ratio != o.ratio) return ratio < o.ratio;
      if (part != o.part) return part > o.part;
      return comp > o.comp;
    }
  };
  std::priority_queue<Step> heap;
  auto push = [&](int p, int j) {
    const int b = bits[p][j];
    if (b >= 8) return;
    const double gain = weights[p] * parts[p].lambda[j] * (kPcaMse[b] - kPcaMse[b + 1]);
    if (!(gain > 0.0)) return;
    const double cost = T / 8.0 + (b == 0 ? D + kPcaColumnMeta : 0);
    heap.push(Step{gain / cost, p, j});
  };
  for (int p = 0; p < P; ++p)
    if (coded[p])
      for (int j = 0; j < D; ++j) push(p, j);
  double used = 0.0;
  while (!heap.empty()) {
    const Step st = heap.top();
    heap.pop();
    const int p = st.part, j = st.comp, b = bits[p][j];
    // Real cost: a new byte per row when the row's bits reach a byte boundary; the column's
    // basis and metadata (and the part's padding of its metadata to 4 columns) on its first bit.
    double cost = (row_bits[p] % 8 == 0) ? static_cast<double>(T) : 0.0;
    if (b == 0) cost += D + kPcaColumnMeta + 2;
    if (used + cost > budget) continue;
    used += cost;
    bits[p][j] = b + 1;
    row_bits[p] += 1;
    push(p, j);
  }
  return bits;
}

PcaPart encode_pca_part(Device& dev, const float* delta, const PcaSpectrum& sp, const std::vector<int>& bits, int T,
                        int D, Buffer& scratch) {
  PcaPart part;
  std::vector<int> keep;
  for (int j = 0; j < D; ++j)
    if (bits[j] > 0) keep.push_back(j);
  const int k = static_cast<int>(keep.size());
  part.k = k;
  if (k == 0) return part;
  // Basis codes: 8 bits per column, the step covering ±max|B_j| (no clipping).
  std::vector<float> basis(static_cast<size_t>(D) * k);
  std::vector<uint8_t> meta_bits(2 * part.kp(), 0);
  std::vector<int> coef_offs(k), basis_offs(k);
  std::vector<float> coef_step(k), basis_step(k);
  int off = 0;
  for (int c = 0; c < k; ++c) {
    const int j = keep[c];
    float amax = 0.0f;
    for (int i = 0; i < D; ++i) {
      basis[static_cast<size_t>(i) * k + c] = sp.vectors[static_cast<size_t>(i) * D + j];
      amax = std::max(amax, std::abs(sp.vectors[static_cast<size_t>(i) * D + j]));
    }
    basis_step[c] = amax > 0.0f ? amax / 128.0f : 1.0f;
    meta_bits[part.kp() + c] = 8;
    basis_offs[c] = 8 * c;
    meta_bits[c] = static_cast<uint8_t>(bits[j]);
    coef_offs[c] = off;
    off += bits[j];
    const double sigma = std::sqrt(sp.lambda[j] / T);
    coef_step[c] = static_cast<float>(kPcaStep[bits[j]] * sigma);
    if (!(coef_step[c] > 0.0f)) coef_step[c] = 1.0f;
    part.bits_host.push_back(bits[j]);
  }
  part.row_bytes = (off + 7) / 8;
  std::vector<uint8_t> meta(2 * part.kp() + static_cast<size_t>(k) * 16);
  std::memcpy(meta.data(), meta_bits.data(), meta_bits.size());
  std::memcpy(meta.data() + 2 * part.kp(), coef_offs.data(), k * 4);
  std::memcpy(meta.data() + 2 * part.kp() + 4 * k, basis_offs.data(), k * 4);
  std::memcpy(meta.data() + 2 * part.kp() + 8 * k, coef_step.data(), k * 4);
  std::memcpy(meta.data() + 2 * part.kp() + 12 * k, basis_step.data(), k * 4);
  part.meta = Buffer(dev, meta.size(), "pca store");
  dev.upload(part.meta.get(), meta.data(), meta.size());
  part.basis = Buffer(dev, static_cast<size_t>(D) * k, "pca store");
  part.coef = Buffer(dev, static_cast<size_t>(T) * part.row_bytes, "pca store");
  // scratch: fp32 basis [D, k], then its decoded values [D, k], then C [T, k].
  scratch.ensure(dev, (2 * static_cast<size_t>(D) * k + static_cast<size_t>(T) * k) * 4, "pca scratch");
  float* b32 = scratch.as<float>();
  float* bq = b32 + static_cast<size_t>(D) * k;
  float* c32 = bq + static_cast<size_t>(D) * k;
  dev.upload(b32, basis.data(), basis.size() * 4);
  dev.quantize_columns(part.basis.as<uint8_t>(), b32, D, k, part.basis_bits(), part.basis_offs(), part.basis_step(), k);
  // The coefficients against the basis as the rebuild decodes it.
  dev.dequantize_columns(bq, part.basis.as<uint8_t>(), D, k, part.basis_bits(), part.basis_offs(), part.basis_step(), k);
  dev.gemm_f32(c32, delta, bq, T, k, D, false, false, 1.0f, 0.0f);
  dev.quantize_columns(part.coef.as<uint8_t>(), c32, T, k, part.coef_bits(), part.coef_offs(), part.coef_step(),
                       part.row_bytes);
  return part;
}

void encode_pca(const StrategySpec& spec, const KvCache& base, const KvCache& exact, KvStore& store, const Dims& d) {
  Device& dev = *store.dev;
  const DT dt = store.dt;
  const int L = store.num_layers, D = d.D(), P = 2 * L;
  if (static_cast<int>(spec.inv_freq.size()) != d.hd / 2) throw std::logic_error("pca: the model's RoPE frequencies are missing");
  if (!spec.weights.empty() && static_cast<int>(spec.weights.size()) != P) {
    throw std::runtime_error("pca: " + std::to_string(spec.weights.size()) + " weights given, the model has " +
                             std::to_string(P) + " parts (K and V of " + std::to_string(L) + " layers)");
  }
  std::vector<bool> exact_part(P, false);
  for (int p : spec.exact_parts) exact_part.at(p) = true;
  std::vector<int> pos(d.T), neg(d.T);
  for (int t = 0; t < d.T; ++t) pos[t] = t, neg[t] = -t;
  store.positions = Buffer(dev, static_cast<size_t>(d.T) * 4, "pca store");
  dev.upload(store.positions.get(), pos.data(), pos.size() * 4);
  store.inv_freq = Buffer(dev, spec.inv_freq.size() * 4, "pca store");
  dev.upload(store.inv_freq.get(), spec.inv_freq.data(), spec.inv_freq.size() * 4);
  store.bytes += store.positions.bytes() + store.inv_freq.bytes();
  Buffer negpos(dev, static_cast<size_t>(d.T) * 4, "pca scratch");
  dev.upload(negpos.get(), neg.data(), neg.size() * 4);

  // Pass 1: every coded part's spectrum.
  Buffer delta, gram(dev, static_cast<size_t>(D) * D * 4, "pca scratch"), scratch;
  std::vector<PcaSpectrum> spectra(P);
  std::vector<float> g(static_cast<size_t>(D) * D);
  std::vector<double> a;
  int coded_parts = 0;
  for (int p = 0; p < P; ++p) {
    const int l = p / 2;
    const bool is_v = p % 2 == 1;
    LayerStore& ls = store.layers[l];
    if (exact_part[p]) {
      const size_t bytes = static_cast<size_t>(d.heads) * d.T * d.hd * dt_size(dt);
      Buffer& dst = is_v ? ls.v : ls.k;
      dst = Buffer(dev, bytes, "pca's exact parts");
      dev.copy_positions(dt, dst.get(), d.T, is_v ? exact.own_v(l) : exact.own_k(l), exact.own_capacity(), d.heads, d.hd,
                         d.T);
      (is_v ? ls.exact_v : ls.exact_k) = true;
      store.bytes += bytes;
      continue;
    }
    ++coded_parts;
    pca_delta(dev, dt, base, exact, l, is_v, d, negpos, store.inv_freq, delta);
    dev.gemm_f32(gram.as<float>(), delta.as<float>(), delta.as<float>(), D, D, d.T, true, false, 1.0f, 0.0f);
    dev.download(g.data(), gram.get(), g.size() * 4);
    a.assign(g.begin(), g.end());
    PcaSpectrum& sp = spectra[p];
    sym_eigen(D, a, sp.lambda);
    for (double& x : sp.lambda) x = std::max(0.0, x);
    sp.vectors.assign(a.begin(), a.end());
  }

  // The allocation: the budget is bits_per_value over the coded parts' values, less what
  // every store of this kind holds anyway (positions, frequencies).
  const double values = static_cast<double>(coded_parts) * d.T * D;
  const double budget = spec.bits_per_value / 8.0 * values - static_cast<double>(store.positions.bytes() + store.inv_freq.bytes());
  std::vector<double> weights = spec.weights.empty() ? std::vector<double>(P, 1.0) : spec.weights;
  std::vector<bool> coded(P);
  for (int p = 0; p < P; ++p) coded[p] = !exact_part[p];
  const std::vector<std::vector<int>> bits = allocate_bits(spectra, weights, coded, d.T, D, std::max(0.0, budget));

  // Pass 2: each coded part's basis and coefficients (Δ formed again: one part's rows at a time).
  for (int p = 0; p < P; ++p) {
    if (exact_part[p]) continue;
    if (std::none_of(bits[p].begin(), bits[p].end(), [](int b) { return b > 0; })) continue;
    const int l = p / 2;
    const bool is_v = p % 2 == 1;
    pca_delta(dev, dt, base, exact, l, is_v, d, negpos, store.inv_freq, delta);
    PcaPart part = encode_pca_part(dev, delta.as<float>(), spectra[p], bits[p], d.T, D, scratch);
    store.max_k = std::max(store.max_k, part.k);
    store.bytes += part.bytes();
    (is_v ? store.layers[l].pv : store.layers[l].pk) = std::move(part);
  }
  // The scratch above is freed when this returns: wait for the queued ops that read it.
  dev.sync("encoding a pca store");
}

// dst (positions [0, tokens) of a [heads, cap, hd] tensor) += the part's Δ (K: RoPE applied again).
void add_pca_part(Device& dev, const KvStore& store, const PcaPart& part, bool is_k, void* dst, int cap, int tokens,
                  Buffer& scratch) {
  const int heads = store.num_kv_heads, hd = store.head_dim, D = heads * hd, k = part.k;
  scratch.ensure(dev, decode_scratch_bytes(store, tokens), "pca rebuild scratch");
  float* bq = scratch.as<float>();
  float* c = bq + static_cast<size_t>(D) * store.max_k;
  float* rows = c + static_cast<size_t>(tokens) * store.max_k;
  dev.dequantize_columns(bq, part.basis.as<uint8_t>(), D, k, part.basis_bits(), part.basis_offs(), part.basis_step(), k);
  dev.dequantize_columns(c, part.coef.as<uint8_t>(), tokens, k, part.coef_bits(), part.coef_offs(), part.coef_step(),
                         part.row_bytes);
  dev.gemm_f32(rows, c, bq, tokens, D, k, false, true, 1.0f, 0.0f);
  if (is_k) dev.rope(DT::F32, nullptr, rows, store.positions.as<int>(), store.inv_freq.as<float>(), tokens, 0, heads, hd);
  dev.add_rows(store.dt, dst, cap, dst, cap, rows, heads, hd, tokens);
}

}  // namespace

std::shared_ptr<KvStore> encode_store(const StrategySpec& spec, const KvCache& base, const KvCache& exact,
                                      std::shared_ptr<const Adapter> adapter, int tokens) {
  if (base.is_view() || exact.is_view()) throw std::runtime_error("encodeStore: base and exact must be plain caches");
  Device& dev = exact.device();
  const DT dt = exact.dtype();
  const int L = exact.num_layers();
  const Dims d{exact.num_kv_heads(), exact.head_dim(), tokens};
  auto store = std::make_shared<KvStore>();
  store->dev = &dev;
  store->dt = dt;
  store->kind = spec.kind;
  store->num_layers = L;
  store->num_kv_heads = d.heads;
  store->head_dim = d.hd;
  store->tokens = tokens;
  store->adapter = adapter;
  store->layers.resize(L);

  auto adapts_v = [&](int l) { return adapter && adapter->find(l, LoraTarget::V) != nullptr; };
  auto lock = dev.lock();
  Buffer delta;  // fp32 [T, D] scratch

  switch (spec.kind) {
    case StrategyKind::Base:
      break;

    case StrategyKind::SeedMiniKv:
    case StrategyKind::Hybrid: {
      std::vector<bool> keep(L, false);
      for (int l : spec.exact_layers) keep.at(l) = true;
      for (int l = 0; l < L; ++l) {
        LayerStore& ls = store->layers[l];
        if (keep[l]) {
          ls.exact = true;
          const size_t bytes = static_cast<size_t>(d.heads) * d.T * d.hd * dt_size(dt);
          ls.k = Buffer(dev, bytes, "hybrid's exact layers");
          ls.v = Buffer(dev, bytes, "hybrid's exact layers");
          dev.copy_positions(dt, ls.k.get(), d.T, exact.own_k(l), exact.own_capacity(), d.heads, d.hd, d.T);
          dev.copy_positions(dt, ls.v.get(), d.T, exact.own_v(l), exact.own_capacity(), d.heads, d.hd, d.T);
          store->bytes += 2 * bytes;
        } else if (adapts_v(l)) {
          ls.dv = encode_seed(dev, dt, *adapter, l, base, exact, d, delta);
          store->bytes += term_bytes(*ls.dv);
        }
      }
      break;
    }

    case StrategyKind::LrAgent: {
      bool needed = false;
      for (int l = 0; l < L; ++l) needed = needed || adapts_v(l);
      if (!needed) break;  // no v_proj adapted: lragent is base
      const LoraVCapture* cap = exact.lora_v();
      if (!cap) {
        throw std::runtime_error(
            "lragent needs the adapter prefill with captureLoraV: the exact cache holds no captured LoRA-V inputs "
            "(prefill it with options.captureLoraV = true)");
      }
      if (cap->adapter_id != adapter->id) {
        throw std::runtime_error(
            "lragent: the exact cache's captured LoRA-V inputs come from a different adapter than the one given");
      }
      if (cap->length < tokens) {
        throw std::runtime_error("lragent: the exact cache captured LoRA-V inputs for only " +
                                 std::to_string(cap->length) + " of its " + std::to_string(tokens) +
                                 " positions; prefill the whole document with captureLoraV");
      }
      for (int l = 0; l < L; ++l) {
        if (!adapts_v(l)) continue;
        LayerStore& ls = store->layers[l];
        ls.dv = encode_lragent(dev, *adapter, l, exact, d);
        store->bytes += term_bytes(*ls.dv);
      }
      break;
    }

    case StrategyKind::DeltaInt8:
    case StrategyKind::DeltaInt4: {
      const int bits = spec.kind == StrategyKind::DeltaInt8 ? 8 : 4;
      for (int l = 0; l < L; ++l) {
        LayerStore& ls = store->layers[l];
        ls.qk = encode_quantized(dev, dt, exact.own_k(l), exact.own_capacity(), base.own_k(l), base.own_capacity(), d,
                                 bits);
        ls.qv = encode_quantized(dev, dt, exact.own_v(l), exact.own_capacity(), base.own_v(l), base.own_capacity(), d,
                                 bits);
        store->bytes += ls.qk->q.bytes() + ls.qk->scale.bytes() + ls.qv->q.bytes() + ls.qv->scale.bytes();
      }
      break;
    }

    case StrategyKind::Pca:
      encode_pca(spec, base, exact, *store, d);
      break;

    case StrategyKind::LowRank: {
      // The 2L deltas (each layer's ΔK and ΔV, fp32 [T, D]) go through the SVD in batches that
      // fit kLowRankBatchBytes of Δ rows, side by side: one batched product and one wait for the
      // device per step for the whole batch, where a delta at a time paid each per delta (H200,
      // 22 deltas of the Llama-2-7B shape at 1,098 tokens: 102.6 ms → 14.7 ms).
      const size_t delta_bytes = static_cast<size_t>(d.T) * d.D() * 4;
      const int64_t stride = static_cast<int64_t>(d.T) * d.D();
      const int problems = 2 * L;
      const int per_batch = static_cast<int>(std::clamp<size_t>(lowrank_batch_bytes() / std::max<size_t>(delta_bytes, 1), 1, problems));
      const int batches = (problems + per_batch - 1) / per_batch;
      const int batch = (problems + batches - 1) / batches;  // even batches, none larger than per_batch
      for (int first = 0; first < problems; first += batch) {
        const int count = std::min(batch, problems - first);
        Buffer deltas(dev, count * delta_bytes, "Δ rows");
        std::vector<uint64_t> seeds;
        for (int i = 0; i < count; ++i) {
          const int l = (first + i) / 2, which = (first + i) % 2;  // which: 0 ΔK, 1 ΔV
          dev.delta_rows(dt, deltas.as<float>() + i * stride, which ? exact.own_v(l) : exact.own_k(l),
                         exact.own_capacity(), which ? base.own_v(l) : base.own_k(l), base.own_capacity(), d.heads,
                         d.hd, d.T);
          seeds.push_back(0x5EED0000ull + static_cast<uint64_t>(first + i));
        }
        std::vector<LowRankFactors> f = truncated_svds(dev, deltas.as<float>(), stride, count, d.T, d.D(), spec.rank, seeds);
        for (int i = 0; i < count; ++i) {
          const int l = (first + i) / 2, which = (first + i) % 2;
          LowRankTerm t;
          t.k = f[i].k;
          t.coef = std::move(f[i].coef);
          t.own_basis = std::move(f[i].basis);
          t.basis = t.own_basis.as<float>();
          store->bytes += term_bytes(t);
          (which ? store->layers[l].dv : store->layers[l].dk) = std::move(t);
        }
      }
      break;
    }
  }
  dev.sync("encoding a store");
  return store;
}

void decode_store_layer(const KvStore& store, const KvCache& base, int layer, int tokens, void* dk, void* dv,
                        int dst_capacity, Buffer& scratch) {
  Device& dev = *store.dev;
  const DT dt = store.dt;
  const Dims d{store.num_kv_heads, store.head_dim, tokens};
  const LayerStore& ls = store.layers[layer];
  if (store.kind == StrategyKind::Pca) {
    for (int which = 0; which < 2; ++which) {
      void* dst = which ? dv : dk;
      if (which ? ls.exact_v : ls.exact_k) {
        dev.copy_positions(dt, dst, dst_capacity, (which ? ls.v : ls.k).get(), store.tokens, d.heads, d.hd, tokens);
        continue;
      }
      dev.copy_positions(dt, dst, dst_capacity, which ? base.own_v(layer) : base.own_k(layer), base.own_capacity(),
                         d.heads, d.hd, tokens);
      const std::optional<PcaPart>& part = which ? ls.pv : ls.pk;
      if (part && part->k > 0) add_pca_part(dev, store, *part, which == 0, dst, dst_capacity, tokens, scratch);
    }
    return;
  }
  if (ls.exact) {
    dev.copy_positions(dt, dk, dst_capacity, ls.k.get(), store.tokens, d.heads, d.hd, tokens);
    dev.copy_positions(dt, dv, dst_capacity, ls.v.get(), store.tokens, d.heads, d.hd, tokens);
    return;
  }
  dev.copy_positions(dt, dk, dst_capacity, base.own_k(layer), base.own_capacity(), d.heads, d.hd, tokens);
  dev.copy_positions(dt, dv, dst_capacity, base.own_v(layer), base.own_capacity(), d.heads, d.hd, tokens);
  if (ls.dk) add_term(dev, dt, dk, dst_capacity, *ls.dk, d, scratch);
  if (ls.dv) add_term(dev, dt, dv, dst_capacity, *ls.dv, d, scratch);
  // The quantized rows are [heads, store.tokens, row_bytes]: one call per head when only a
  // prefix of the store's positions is rebuilt.
  auto add_q = [&](void* dst, const QuantizedDelta& q) {
    if (tokens == store.tokens) {
      dev.add_quantized(dt, dst, dst_capacity, dst, dst_capacity, q.q.as<uint8_t>(), q.scale.as<float>(), d.heads, d.hd,
                        tokens, q.bits);
      return;
    }
    for (int h = 0; h < d.heads; ++h) {
      void* dh = static_cast<char*>(dst) + static_cast<size_t>(h) * dst_capacity * d.hd * dt_size(dt);
      dev.add_quantized(dt, dh, dst_capacity, dh, dst_capacity,
                        q.q.as<uint8_t>() + static_cast<size_t>(h) * store.tokens * q.row_bytes,
                        q.scale.as<float>() + static_cast<size_t>(h) * store.tokens, 1, d.hd, tokens, q.bits);
    }
  };
  if (ls.qk) add_q(dk, *ls.qk);
  if (ls.qv) add_q(dv, *ls.qv);
}

void decode_store(const KvStore& store, const KvCache& base, KvCache& out) {
  Device& dev = *store.dev;
  auto lock = dev.lock();
  Buffer scratch;
  for (int l = 0; l < store.num_layers; ++l) {
    decode_store_layer(store, base, l, store.tokens, out.own_k(l), out.own_v(l), out.own_capacity(), scratch);
  }
  dev.sync("decoding a store");
  out.set_length(store.tokens);
}

bool store_rebuilds_layers(const KvStore& store) { return store.kind == StrategyKind::Pca; }

size_t decode_scratch_bytes(const KvStore& store, int tokens) {
  if (store.kind == StrategyKind::Pca) {
    const size_t D = static_cast<size_t>(store.num_kv_heads) * store.head_dim, k = static_cast<size_t>(store.max_k);
    return std::max<size_t>((D * k + static_cast<size_t>(tokens) * (k + D)) * 4, 4);
  }
  return static_cast<size_t>(tokens) * store.num_kv_heads * store.head_dim * 4;
}

AttnCorrection store_correction(const KvStore& store, int layer) {
  if (store_rebuilds_layers(store)) throw std::logic_error("store_correction: a pca store is read from rebuilt layers");
  AttnCorrection c;
  const LayerStore& ls = store.layers[layer];
  c.tokens = store.tokens;
  if (ls.qk && ls.qv) {
    c.qk = ls.qk->q.as<uint8_t>();
    c.sk = ls.qk->scale.as<float>();
    c.qv = ls.qv->q.as<uint8_t>();
    c.sv = ls.qv->scale.as<float>();
    c.bits = ls.qk->bits;
  }
  if (ls.dk && ls.dk->k > 0) {
    c.ck = ls.dk->coef.as<float>();
    c.bk = ls.dk->basis;
    c.rk = ls.dk->k;
  }
  if (ls.dv && ls.dv->k > 0) {
    c.cv = ls.dv->coef.as<float>();
    c.bv = ls.dv->basis;
    c.rv = ls.dv->k;
  }
  return c;
}

bool correction_empty(const AttnCorrection& c) { return !c.qk && !c.ck && !c.cv; }

}  // namespace al
