#include "engine/model.h"

#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "engine/sampling.h"
#ifdef AL_CUDA
#include "engine/gpu.h"
#endif

namespace al {

void validate_config(const Config& c) {
  auto positive = [](const char* name, double v) {
    if (!(v > 0) || !std::isfinite(v)) {
      throw std::invalid_argument(std::string("model config: ") + name + " must be positive, got " +
                                  std::to_string(v));
    }
  };
  positive("vocabSize", c.vocab_size);
  positive("hiddenSize", c.hidden_size);
  positive("intermediateSize", c.intermediate_size);
  positive("numLayers", c.num_layers);
  positive("numHeads", c.num_heads);
  positive("numKvHeads", c.num_kv_heads);
  positive("headDim", c.head_dim);
  positive("rmsNormEps", c.rms_norm_eps);
  positive("ropeTheta", c.rope_theta);
  if (c.num_heads % c.num_kv_heads != 0) {
    throw std::invalid_argument("model config: numHeads (" + std::to_string(c.num_heads) +
                                ") must be a multiple of numKvHeads (" + std::to_string(c.num_kv_heads) + ")");
  }
  if (c.head_dim % 2 != 0) {
    throw std::invalid_argument("model config: headDim must be even for rotate-half RoPE, got " +
                                std::to_string(c.head_dim));
  }
  const RopeScaling& r = c.rope_scaling;
  if (r.type != RopeScalingType::Default) positive("ropeScaling.factor", r.factor);
  if (r.type == RopeScalingType::Llama3) {
    positive("ropeScaling.lowFreqFactor", r.low_freq_factor);
    positive("ropeScaling.highFreqFactor", r.high_freq_factor);
    positive("ropeScaling.originalMaxPositionEmbeddings", r.original_max_position_embeddings);
    if (r.high_freq_factor == r.low_freq_factor) {
      throw std::invalid_argument("model config: ropeScaling.highFreqFactor must differ from lowFreqFactor");
    }
  }
}

// Mirrors transformers' _compute_default_rope_parameters and the linear / llama3 variants
// op by op in fp32 (torch does tensor ⊙ Python-scalar ops in the tensor's dtype, and
// `scalar / tensor` as reciprocal(tensor) * scalar).
std::vector<float> rope_inv_freq(const Config& c) {
  const int half = c.head_dim / 2;
  std::vector<float> inv(half);
  const float base = static_cast<float>(c.rope_theta);
  for (int i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    inv[i] = 1.0f / std::pow(base, e);
  }
  const RopeScaling& r = c.rope_scaling;
  if (r.type == RopeScalingType::Linear) {
    for (float& f : inv) f = f / static_cast<float>(r.factor);
  } else if (r.type == RopeScalingType::Llama3) {
    const float factor = static_cast<float>(r.factor);
    const float low_freq_wavelen = static_cast<float>(r.original_max_position_embeddings / r.low_freq_factor);
    const float high_freq_wavelen = static_cast<float>(r.original_max_position_embeddings / r.high_freq_factor);
    const float two_pi = static_cast<float>(2.0 * 3.14159265358979323846);
    for (float& f : inv) {
      const float wavelen = (1.0f / f) * two_pi;
      const float scaled = wavelen > low_freq_wavelen ? f / factor : f;
      const float smooth = ((1.0f / wavelen) * static_cast<float>(r.original_max_position_embeddings) -
                            static_cast<float>(r.low_freq_factor)) /
                           static_cast<float>(r.high_freq_factor - r.low_freq_factor);
      const float smoothed = (1.0f - smooth) * scaled / factor + smooth * scaled;
      const bool is_medium = !(wavelen < high_freq_wavelen) && !(wavelen > low_freq_wavelen);
      f = is_medium ? smoothed : scaled;
    }
  }
  return inv;
}

std::shared_ptr<Model> load_model(const Config& c, const std::vector<TensorRef>& tensors, const JobHooks& hooks) {
  validate_config(c);
#ifndef AL_CUDA
  if (c.dtype != ComputeType::F32) {
    throw std::invalid_argument(std::string("the CPU engine computes in fp32 only; ") + compute_type_name(c.dtype) +
                                " needs the CUDA build");
  }
#endif
  std::unordered_map<std::string, const TensorRef*> by_name;
  for (const TensorRef& t : tensors) {
    if (!by_name.emplace(t.name, &t).second) {
      throw std::runtime_error("tensor '" + t.name + "' is listed twice (in '" + t.file + "' and '" +
                               by_name[t.name]->file + "')");
    }
  }

  static std::atomic<uint64_t> next_id{1};
  auto m = std::make_shared<Model>();
  m->id = next_id++;
  m->config = c;
  m->backend = &cpu_backend();
  m->weights.layers.resize(c.num_layers);

  // Everything the config implies, with the shape it must have.
  struct Need {
    std::string name;
    Shape shape;
    Tensor* dest;
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  std::vector<Need> needs;
  Weights& w = m->weights;
  needs.push_back({"model.embed_tokens.weight", {V, H}, &w.embed});
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& lw = w.layers[l];
    needs.push_back({p + "input_layernorm.weight", {H}, &lw.input_norm});
    needs.push_back({p + "self_attn.q_proj.weight", {q_dim, H}, &lw.wq});
    needs.push_back({p + "self_attn.k_proj.weight", {kv_dim, H}, &lw.wk});
    needs.push_back({p + "self_attn.v_proj.weight", {kv_dim, H}, &lw.wv});
    if (c.attention_bias) {
      needs.push_back({p + "self_attn.q_proj.bias", {q_dim}, &lw.bq});
      needs.push_back({p + "self_attn.k_proj.bias", {kv_dim}, &lw.bk});
      needs.push_back({p + "self_attn.v_proj.bias", {kv_dim}, &lw.bv});
    }
    needs.push_back({p + "self_attn.o_proj.weight", {H, q_dim}, &lw.wo});
    needs.push_back({p + "post_attention_layernorm.weight", {H}, &lw.post_norm});
    needs.push_back({p + "mlp.gate_proj.weight", {I, H}, &lw.w_gate});
    needs.push_back({p + "mlp.up_proj.weight", {I, H}, &lw.w_up});
    needs.push_back({p + "mlp.down_proj.weight", {H, I}, &lw.w_down});
  }
  needs.push_back({"model.norm.weight", {H}, &w.final_norm});
  if (!c.tie_word_embeddings) needs.push_back({"lm_head.weight", {V, H}, &w.lm_head});

  // Resolve and check every tensor before reading gigabytes.
  TensorReader reader;
  std::vector<const TensorRef*> refs;
  double total = 0;
  for (const Need& n : needs) {
    auto it = by_name.find(n.name);
    if (it == by_name.end()) {
      throw std::runtime_error("checkpoint has no tensor '" + n.name + "' (expected shape " + shape_str(n.shape) +
                               ")" + (n.name == "lm_head.weight" ? "; is tieWordEmbeddings right?" : ""));
    }
    reader.check(*it->second, n.shape);
    refs.push_back(it->second);
    total += static_cast<double>(it->second->nbytes);
  }

  m->inv_freq = rope_inv_freq(c);
#ifdef AL_CUDA
  // The CUDA engine keeps no host copy: every tensor goes to the device in config.dtype.
  {
    std::vector<gpu::WeightLoad> loads;
    auto slot_of = [&](const Need& n, int& layer) -> gpu::Slot {
      layer = -1;
      if (n.dest == &w.embed) return gpu::Slot::Embed;
      if (n.dest == &w.final_norm) return gpu::Slot::FinalNorm;
      if (n.dest == &w.lm_head) return gpu::Slot::LmHead;
      for (int l = 0; l < c.num_layers; ++l) {
        LayerWeights& lw = w.layers[l];
        layer = l;
        if (n.dest == &lw.input_norm) return gpu::Slot::InputNorm;
        if (n.dest == &lw.wq) return gpu::Slot::Wq;
        if (n.dest == &lw.bq) return gpu::Slot::Bq;
        if (n.dest == &lw.wk) return gpu::Slot::Wk;
        if (n.dest == &lw.bk) return gpu::Slot::Bk;
        if (n.dest == &lw.wv) return gpu::Slot::Wv;
        if (n.dest == &lw.bv) return gpu::Slot::Bv;
        if (n.dest == &lw.wo) return gpu::Slot::Wo;
        if (n.dest == &lw.post_norm) return gpu::Slot::PostNorm;
        if (n.dest == &lw.w_gate) return gpu::Slot::Gate;
        if (n.dest == &lw.w_up) return gpu::Slot::Up;
        if (n.dest == &lw.w_down) return gpu::Slot::Down;
      }
      throw std::logic_error("load_model: unknown weight slot");
    };
    for (size_t i = 0; i < needs.size(); ++i) {
      gpu::WeightLoad wl{refs[i], needs[i].shape, gpu::Slot::Embed, -1};
      wl.slot = slot_of(needs[i], wl.layer);
      loads.push_back(std::move(wl));
    }
    m->gpu = gpu::load_model(c, loads, m->inv_freq, hooks);
    m->bytes = gpu::model_bytes(*m->gpu);
    return m;
  }
#endif
  double done = 0;
  for (size_t i = 0; i < needs.size(); ++i) {
    hooks.check_stop();
    *needs[i].dest = reader.read(*refs[i], needs[i].shape);
    m->bytes += needs[i].dest->bytes();
    done += static_cast<double>(refs[i]->nbytes);
    hooks.report(done, total);
  }
  return m;
}

std::shared_ptr<KvCache> new_cache(const Model& m, int capacity) {
  const Config& c = m.config;
#ifdef AL_CUDA
  if (m.gpu) {
    return std::make_shared<KvCache>(c.num_layers, c.num_kv_heads, c.head_dim, capacity,
                                     gpu::new_kv(c.dtype, c.num_layers, c.num_kv_heads, c.head_dim, capacity));
  }
#endif
  return std::make_shared<KvCache>(c.num_layers, c.num_kv_heads, c.head_dim, capacity);
}

void forward_any(const Model& m, RunState* state, const int32_t* tokens, const Row* rows, int n, float* logits,
                 int logits_from, int32_t* greedy, const JobHooks& hooks) {
#ifdef AL_CUDA
  if (m.gpu) return gpu::forward(m, tokens, rows, n, logits, logits_from, greedy, hooks);
#endif
  forward(m, *state, tokens, rows, n, logits, logits_from, hooks);
  if (greedy && logits) {
    for (int i = logits_from; i < n; ++i) {
      greedy[i - logits_from] = argmax(logits + static_cast<size_t>(i - logits_from) * m.config.vocab_size,
                                       m.config.vocab_size);
    }
  }
}

RunState::RunState(const Config& c, int rows, int max_rank)
    : max_rows(rows),
      x(static_cast<size_t>(rows) * c.hidden_size),
      xn(x.size()),
      xb(x.size()),
      q(static_cast<size_t>(rows) * c.q_dim()),
      k(static_cast<size_t>(rows) * c.kv_dim()),
      v(k.size()),
      att(q.size()),
      gate(static_cast<size_t>(rows) * c.intermediate_size),
      up(gate.size()),
      lora(static_cast<size_t>(rows) * std::max(max_rank, 1)),
      pos(rows),
      kv(rows) {}

namespace {

const Tensor kNoBias;

// y = x Wᵀ (+ b), then each row's adapter adds its low-rank term. The base product runs
// once over the whole batch; rows that share an adapter (all rows of a prefill chunk)
// share one LoRA product.
void linear(const Model& m, RunState& s, const Row* rows, int n, int layer, LoraTarget target, float* y,
            const float* x, const Tensor& w, const Tensor& b) {
  const LinearDims d = linear_dims(m.config, target);
  m.backend->matmul(y, x, w.ptr(), b.empty() ? nullptr : b.ptr(), n, d.in, d.out);
  for (int i = 0; i < n;) {
    int j = i + 1;
    while (j < n && rows[j].adapter == rows[i].adapter) ++j;
    if (rows[i].adapter) {
      if (const LoraModule* mod = rows[i].adapter->find(layer, target)) {
        lora_apply(*m.backend, *mod, x + static_cast<size_t>(i) * d.in, y + static_cast<size_t>(i) * d.out, j - i,
                   s.lora.data());
        // lora_apply left A·x of these rows in s.lora ([j - i, rank]); lragent keeps
        // s·(A·x), scaled after the product as the reference does.
        if (target == LoraTarget::V) {
          for (int r = i; r < j; ++r) {
            if (!rows[r].capture_lora_v) continue;
            float* u = rows[r].cache->lora_v(layer) + static_cast<size_t>(rows[r].pos) * mod->rank;
            const float* ax = s.lora.data() + static_cast<size_t>(r - i) * mod->rank;
            for (int q = 0; q < mod->rank; ++q) u[q] = mod->scale * ax[q];
          }
        }
      }
    }
    i = j;
  }
}

}  // namespace

void forward(const Model& m, RunState& s, const int32_t* tokens, const Row* rows, int n, float* logits,
             int logits_from, const JobHooks& hooks) {
  const Config& c = m.config;
  const Backend& be = *m.backend;
  const int H = c.hidden_size;
  if (n > s.max_rows) throw std::logic_error("forward: more rows than the RunState holds");

  for (int i = 0; i < n; ++i) s.pos[i] = rows[i].pos;
  be.embedding(s.x.data(), m.weights.embed.ptr(), tokens, n, H);

  for (int l = 0; l < c.num_layers; ++l) {
    hooks.check_stop();
    const LayerWeights& w = m.weights.layers[l];

    // Attention block: x += o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x).
    be.rmsnorm(s.xn.data(), s.x.data(), w.input_norm.ptr(), n, H, c.rms_norm_eps);
    linear(m, s, rows, n, l, LoraTarget::Q, s.q.data(), s.xn.data(), w.wq, w.bq);
    linear(m, s, rows, n, l, LoraTarget::K, s.k.data(), s.xn.data(), w.wk, w.bk);
    linear(m, s, rows, n, l, LoraTarget::V, s.v.data(), s.xn.data(), w.wv, w.bv);
    be.rope(s.q.data(), s.k.data(), s.pos.data(), m.inv_freq.data(), n, c.num_heads, c.num_kv_heads, c.head_dim);
    for (int i = 0; i < n; ++i) {
      s.kv[i] = {rows[i].cache->k(l), rows[i].cache->v(l), rows[i].cache->capacity(), rows[i].pos};
    }
    be.store_kv(s.kv.data(), s.k.data(), s.v.data(), n, c.num_kv_heads, c.head_dim);
    be.attention(s.att.data(), s.q.data(), s.kv.data(), n, c.num_heads, c.num_kv_heads, c.head_dim);
    linear(m, s, rows, n, l, LoraTarget::O, s.xb.data(), s.att.data(), w.wo, kNoBias);
    be.add(s.x.data(), s.xb.data(), static_cast<int64_t>(n) * H);

    // MLP block: x += down_proj(silu(gate_proj(h)) * up_proj(h)) on h = rmsnorm(x).
    be.rmsnorm(s.xn.data(), s.x.data(), w.post_norm.ptr(), n, H, c.rms_norm_eps);
    linear(m, s, rows, n, l, LoraTarget::Gate, s.gate.data(), s.xn.data(), w.w_gate, kNoBias);
    linear(m, s, rows, n, l, LoraTarget::Up, s.up.data(), s.xn.data(), w.w_up, kNoBias);
    be.swiglu(s.gate.data(), s.up.data(), static_cast<int64_t>(n) * c.intermediate_size);
    linear(m, s, rows, n, l, LoraTarget::Down, s.xb.data(), s.gate.data(), w.w_down, kNoBias);
    be.add(s.x.data(), s.xb.data(), static_cast<int64_t>(n) * H);
  }

  if (logits && logits_from < n) {
    const int rows_out = n - logits_from;
    const size_t off = static_cast<size_t>(logits_from) * H;
    be.rmsnorm(s.xn.data() + off, s.x.data() + off, m.weights.final_norm.ptr(), rows_out, H, c.rms_norm_eps);
    be.matmul(logits, s.xn.data() + off, m.weights.output().ptr(), nullptr, rows_out, H, c.vocab_size);
  }
}

}  // namespace al
