#include "engine/kv_store.h"

#include <algorithm>
#include <stdexcept>
#include <string>

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

size_t term_bytes(const LowRankTerm& t) { return t.coef.bytes() + t.own_basis.bytes(); }

// dst (positions [0, T) of a [heads, dst_cap, hd] tensor) += coef · basisᵀ.
void add_term(Device& dev, DT dt, void* dst, int dst_cap, const LowRankTerm& t, const Dims& d, Buffer& rows) {
  if (t.k == 0) return;
  rows.ensure(dev, static_cast<size_t>(d.T) * d.D() * 4, "rebuilt Δ rows");
  dev.gemm_f32(rows.as<float>(), t.coef.as<float>(), t.basis, d.T, d.D(), t.k, false, true, 1.0f, 0.0f);
  dev.add_rows(dt, dst, dst_cap, dst, dst_cap, rows.as<float>(), d.heads, d.hd, d.T);
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

    case StrategyKind::LowRank: {
      for (int l = 0; l < L; ++l) {
        LayerStore& ls = store->layers[l];
        for (int which = 0; which < 2; ++which) {
          delta.ensure(dev, static_cast<size_t>(d.T) * d.D() * 4, "Δ rows");
          dev.delta_rows(dt, delta.as<float>(), which ? exact.own_v(l) : exact.own_k(l), exact.own_capacity(),
                         which ? base.own_v(l) : base.own_k(l), base.own_capacity(), d.heads, d.hd, d.T);
          LowRankFactors f = truncated_svd(dev, delta.as<float>(), d.T, d.D(), spec.rank,
                                           0x5EED0000ull + static_cast<uint64_t>(2 * l + which));
          LowRankTerm t;
          t.k = f.k;
          t.coef = std::move(f.coef);
          t.own_basis = std::move(f.basis);
          t.basis = t.own_basis.as<float>();
          store->bytes += term_bytes(t);
          (which ? ls.dv : ls.dk) = std::move(t);
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

AttnCorrection store_correction(const KvStore& store, int layer) {
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
