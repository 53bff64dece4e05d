#include "engine/kv_store.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "engine/linalg.h"

namespace al {

namespace {

// Shapes every helper below shares.
struct Dims {
  int heads, hd, T;
  int D() const { return heads * hd; }
};

// (exact − base) of positions [0, T) as [T, D] rows, subtracted in fp32.
std::vector<float> delta_rows(const float* exact, int exact_cap, const float* base, int base_cap, const Dims& d) {
  std::vector<float> rows(static_cast<size_t>(d.T) * d.D());
#pragma omp parallel for schedule(static) if (d.T >= 256)
  for (int t = 0; t < d.T; ++t) {
    for (int h = 0; h < d.heads; ++h) {
      const float* e = exact + (static_cast<size_t>(h) * exact_cap + t) * d.hd;
      const float* b = base + (static_cast<size_t>(h) * base_cap + t) * d.hd;
      float* r = rows.data() + static_cast<size_t>(t) * d.D() + static_cast<size_t>(h) * d.hd;
      for (int i = 0; i < d.hd; ++i) r[i] = e[i] - b[i];
    }
  }
  return rows;
}

// dst [heads, capacity, hd] positions [0, T) += rows [T, D].
void add_rows(float* dst, int capacity, const std::vector<float>& rows, const Dims& d) {
#pragma omp parallel for schedule(static) if (d.T >= 256)
  for (int t = 0; t < d.T; ++t) {
    for (int h = 0; h < d.heads; ++h) {
      float* o = dst + (static_cast<size_t>(h) * capacity + t) * d.hd;
      const float* r = rows.data() + static_cast<size_t>(t) * d.D() + static_cast<size_t>(h) * d.hd;
      for (int i = 0; i < d.hd; ++i) o[i] += r[i];
    }
  }
}

// Copies positions [0, T) of a [heads, src_cap, hd] tensor into a [heads, dst_cap, hd] one.
void copy_positions(float* dst, int dst_cap, const float* src, int src_cap, const Dims& d) {
  for (int h = 0; h < d.heads; ++h) {
    std::memcpy(dst + static_cast<size_t>(h) * dst_cap * d.hd, src + static_cast<size_t>(h) * src_cap * d.hd,
                static_cast<size_t>(d.T) * d.hd * sizeof(float));
  }
}

// The adapter's B_v [out, r] as a shared basis: aliasing keeps the whole adapter alive.
std::shared_ptr<const Tensor> b_v_basis(const std::shared_ptr<const Adapter>& adapter, const LoraModule& m) {
  return std::shared_ptr<const Tensor>(adapter, &m.b);
}

// seed-minikv: miniV = pinv(B_v)·ΔV, kept as [T, r] (its transpose).
LowRankTerm encode_seed(const Backend& be, const std::shared_ptr<const Adapter>& adapter, int layer,
                        const KvCache& base, const KvCache& exact, const Dims& d) {
  const LoraModule& m = *adapter->find(layer, LoraTarget::V);
  std::shared_ptr<const VPinv> pinv = adapter->v_pinv(layer);
  std::vector<float> p(pinv->p.begin(), pinv->p.end());  // [r, out] in fp32, as torch's fp32 pinv
  const std::vector<float> dv = delta_rows(exact.v(layer), exact.capacity(), base.v(layer), base.capacity(), d);
  LowRankTerm term;
  term.k = m.rank;
  term.coef.resize(static_cast<size_t>(d.T) * m.rank);
  be.matmul(term.coef.data(), dv.data(), p.data(), nullptr, d.T, d.D(), m.rank);  // [T, out] · [r, out]ᵀ
  term.basis = b_v_basis(adapter, m);
  return term;
}

// lragent: the captured u = s·A_v·x of positions [0, T), [T, r].
LowRankTerm encode_lragent(const std::shared_ptr<const Adapter>& adapter, int layer, const KvCache& exact,
                           const Dims& d) {
  const LoraModule& m = *adapter->find(layer, LoraTarget::V);
  const LoraVCapture& cap = *exact.lora_v();
  LowRankTerm term;
  term.k = m.rank;
  const float* u = cap.u[layer].data();
  term.coef.assign(u, u + static_cast<size_t>(d.T) * m.rank);
  term.basis = b_v_basis(adapter, m);
  return term;
}

QuantizedDelta encode_quantized(const float* exact, int exact_cap, const float* base, int base_cap, const Dims& d,
                                int bits) {
  const int qmax = bits == 8 ? 127 : 7;
  QuantizedDelta q;
  q.bits = bits;
  q.row_bytes = bits == 8 ? d.hd : (d.hd + 1) / 2;
  q.q.assign(static_cast<size_t>(d.heads) * d.T * q.row_bytes, 0);
  q.scale.assign(static_cast<size_t>(d.heads) * d.T, 0.0f);
  const int64_t rows = static_cast<int64_t>(d.heads) * d.T;
#pragma omp parallel
  {
    std::vector<int> vals(d.hd);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      const int h = static_cast<int>(row / d.T), t = static_cast<int>(row % d.T);
      const float* e = exact + (static_cast<size_t>(h) * exact_cap + t) * d.hd;
      const float* b = base + (static_cast<size_t>(h) * base_cap + t) * d.hd;
      float amax = 0.0f;
      for (int i = 0; i < d.hd; ++i) amax = std::max(amax, std::abs(e[i] - b[i]));
      const float scale = amax / static_cast<float>(qmax);
      q.scale[row] = scale;
      for (int i = 0; i < d.hd; ++i) {
        // Round half to even (nearbyint in the default mode), as torch.round does.
        const float r = scale > 0.0f ? std::nearbyint((e[i] - b[i]) / scale) : 0.0f;
        vals[i] = static_cast<int>(std::min(std::max(r, static_cast<float>(-qmax)), static_cast<float>(qmax)));
      }
      uint8_t* out = q.q.data() + static_cast<size_t>(row) * q.row_bytes;
      if (bits == 8) {
        for (int i = 0; i < d.hd; ++i) out[i] = static_cast<uint8_t>(static_cast<int8_t>(vals[i]));
      } else {
        for (int i = 0; i < d.hd; i += 2) {
          const int lo = vals[i] & 0xF, hi = i + 1 < d.hd ? vals[i + 1] & 0xF : 0;
          out[i / 2] = static_cast<uint8_t>(lo | (hi << 4));
        }
      }
    }
  }
  return q;
}

size_t quantized_bytes(const QuantizedDelta& q) { return q.q.size() + q.scale.size() * sizeof(float); }

size_t term_bytes(const LowRankTerm& term, bool owns_basis) {
  return term.coef.size() * sizeof(float) + (owns_basis ? term.basis->bytes() : 0);
}

LowRankTerm encode_lowrank(const float* exact, int exact_cap, const float* base, int base_cap, const Dims& d, int k,
                           uint64_t seed) {
  const std::vector<float> delta = delta_rows(exact, exact_cap, base, base_cap, d);
  LowRankFactors f = truncated_svd(delta.data(), d.T, d.D(), k, seed);
  LowRankTerm term;
  term.k = f.k;
  term.coef = std::move(f.coef);
  auto basis = std::make_shared<Tensor>(Shape{d.D(), f.k});
  basis->data = std::move(f.basis);
  term.basis = std::move(basis);
  return term;
}

void add_term(const Backend& be, float* dst, int capacity, const LowRankTerm& term, const Dims& d) {
  if (term.k == 0) return;
  std::vector<float> rows(static_cast<size_t>(d.T) * d.D());
  be.matmul(rows.data(), term.coef.data(), term.basis->ptr(), nullptr, d.T, term.k, d.D());  // [T, k] · [D, k]ᵀ
  add_rows(dst, capacity, rows, d);
}

void add_quantized(float* dst, int capacity, const QuantizedDelta& q, const Dims& d) {
  const int64_t rows = static_cast<int64_t>(d.heads) * d.T;
#pragma omp parallel for schedule(static) if (rows >= 1024)
  for (int64_t row = 0; row < rows; ++row) {
    const int h = static_cast<int>(row / d.T), t = static_cast<int>(row % d.T);
    const float scale = q.scale[row];
    const uint8_t* in = q.q.data() + static_cast<size_t>(row) * q.row_bytes;
    float* o = dst + (static_cast<size_t>(h) * capacity + t) * d.hd;
    for (int i = 0; i < d.hd; ++i) {
      int v;
      if (q.bits == 8) {
        v = static_cast<int8_t>(in[i]);
      } else {
        const int nib = (in[i / 2] >> ((i & 1) * 4)) & 0xF;
        v = (nib ^ 8) - 8;  // sign-extend the 4-bit two's complement
      }
      o[i] += static_cast<float>(v) * scale;
    }
  }
}

}  // namespace

std::shared_ptr<KvStore> encode_store(const Backend& be, const StrategySpec& spec, const KvCache& base,
                                      const KvCache& exact, std::shared_ptr<const Adapter> adapter, int tokens) {
  const int L = exact.num_layers();
  const Dims d{exact.num_kv_heads(), exact.head_dim(), tokens};
  auto store = std::make_shared<KvStore>();
  store->kind = spec.kind;
  store->num_layers = L;
  store->num_kv_heads = d.heads;
  store->head_dim = d.hd;
  store->tokens = tokens;
  store->adapter = adapter;
  store->layers.resize(L);

  auto adapts_v = [&](int l) { return adapter && adapter->find(l, LoraTarget::V) != nullptr; };

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
          ls.k.resize(static_cast<size_t>(d.heads) * d.T * d.hd);
          ls.v.resize(ls.k.size());
          copy_positions(ls.k.data(), d.T, exact.k(l), exact.capacity(), d);
          copy_positions(ls.v.data(), d.T, exact.v(l), exact.capacity(), d);
          store->bytes += (ls.k.size() + ls.v.size()) * sizeof(float);
        } else if (adapts_v(l)) {
          ls.dv = encode_seed(be, adapter, l, base, exact, d);
          store->bytes += term_bytes(*ls.dv, false);
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
        ls.dv = encode_lragent(adapter, l, exact, d);
        store->bytes += term_bytes(*ls.dv, false);
      }
      break;
    }

    case StrategyKind::DeltaInt8:
    case StrategyKind::DeltaInt4: {
      const int bits = spec.kind == StrategyKind::DeltaInt8 ? 8 : 4;
      for (int l = 0; l < L; ++l) {
        LayerStore& ls = store->layers[l];
        ls.qk = encode_quantized(exact.k(l), exact.capacity(), base.k(l), base.capacity(), d, bits);
        ls.qv = encode_quantized(exact.v(l), exact.capacity(), base.v(l), base.capacity(), d, bits);
        store->bytes += quantized_bytes(*ls.qk) + quantized_bytes(*ls.qv);
      }
      break;
    }

    case StrategyKind::LowRank: {
      // Matrices are independent: one per thread, each factored serially.
      std::vector<LowRankTerm> terms(2 * static_cast<size_t>(L));
      std::string failure;
      bool out_of_memory = false;
#pragma omp parallel for schedule(dynamic, 1)
      for (int i = 0; i < 2 * L; ++i) {
        const int l = i / 2;
        const bool is_v = i % 2 == 1;
        try {
          terms[i] = encode_lowrank(is_v ? exact.v(l) : exact.k(l), exact.capacity(), is_v ? base.v(l) : base.k(l),
                                    base.capacity(), d, spec.rank, 0x5EED0000ull + static_cast<uint64_t>(i));
        } catch (const std::bad_alloc&) {
#pragma omp critical(al_lowrank_failure)
          out_of_memory = true;
        } catch (const std::exception& e) {
#pragma omp critical(al_lowrank_failure)
          if (failure.empty()) failure = std::string("lowrank, layer ") + std::to_string(l) + ": " + e.what();
        }
      }
      // Exceptions cannot leave an OpenMP region: rethrown here, on the job's thread.
      if (out_of_memory) throw std::bad_alloc();
      if (!failure.empty()) throw std::runtime_error(failure);
      for (int l = 0; l < L; ++l) {
        LayerStore& ls = store->layers[l];
        ls.dk = std::move(terms[2 * l]);
        ls.dv = std::move(terms[2 * l + 1]);
        store->bytes += term_bytes(*ls.dk, true) + term_bytes(*ls.dv, true);
      }
      break;
    }
  }
  return store;
}

void decode_store(const Backend& be, const KvStore& store, const KvCache& base, KvCache& out) {
  const Dims d{store.num_kv_heads, store.head_dim, store.tokens};
  for (int l = 0; l < store.num_layers; ++l) {
    const LayerStore& ls = store.layers[l];
    if (ls.exact) {
      copy_positions(out.k(l), out.capacity(), ls.k.data(), d.T, d);
      copy_positions(out.v(l), out.capacity(), ls.v.data(), d.T, d);
      continue;
    }
    copy_positions(out.k(l), out.capacity(), base.k(l), base.capacity(), d);
    copy_positions(out.v(l), out.capacity(), base.v(l), base.capacity(), d);
    if (ls.dk) add_term(be, out.k(l), out.capacity(), *ls.dk, d);
    if (ls.dv) add_term(be, out.v(l), out.capacity(), *ls.dv, d);
    if (ls.qk) add_quantized(out.k(l), out.capacity(), *ls.qk, d);
    if (ls.qv) add_quantized(out.v(l), out.capacity(), *ls.qv, d);
  }
  out.set_length(store.tokens);
}

}  // namespace al
