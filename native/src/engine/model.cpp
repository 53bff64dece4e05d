#include "engine/model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "engine/attention_plan.h"
#include "engine/kv_store.h"

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

namespace {
int stored_kind(DType d) { return d == DType::F32 ? 0 : d == DType::F16 ? 1 : 2; }
}  // namespace

std::shared_ptr<Model> load_model(Device& dev, const Config& c, const std::vector<TensorRef>& tensors,
                                  const JobHooks& hooks) {
  validate_config(c);
  if (!dev.supports(c.dtype)) {
    // The CPU device computes in fp32 only (device_cpu.cpp says the same per op).
    throw std::invalid_argument(std::string("the ") + (std::string(dev.name()) == "cpu" ? "CPU engine computes in fp32 only; " : "CUDA engine cannot compute in this dtype; ") +
                                compute_type_name(c.dtype) + " needs the CUDA build");
  }
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
  m->dev = &dev;
  m->weights.layers.resize(c.num_layers);

  // Everything the config implies: its shape, and where it goes (a buffer of its own, or a
  // row range of a stacked buffer).
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  const int64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  struct Need {
    std::string name;
    Shape shape;
    Buffer* dest;        // the buffer (allocated for `dest_elems` on first use)
    int64_t dest_elems;  // elements of the whole destination buffer
    int64_t offset;      // first element this tensor fills
  };
  std::vector<Need> needs;
  Weights& w = m->weights;
  auto own = [&](const std::string& name, Shape s, Buffer* b) {
    const int64_t n = numel(s);
    needs.push_back({name, std::move(s), b, n, 0});
  };
  own("model.embed_tokens.weight", {V, H}, &w.embed);
  for (int l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    LayerWeights& lw = w.layers[l];
    const int64_t qkv_rows = q_dim + 2 * kv_dim;
    own(p + "input_layernorm.weight", {H}, &lw.input_norm);
    needs.push_back({p + "self_attn.q_proj.weight", {q_dim, H}, &lw.qkv, qkv_rows * H, 0});
    needs.push_back({p + "self_attn.k_proj.weight", {kv_dim, H}, &lw.qkv, qkv_rows * H, q_dim * H});
    needs.push_back({p + "self_attn.v_proj.weight", {kv_dim, H}, &lw.qkv, qkv_rows * H, (q_dim + kv_dim) * H});
    if (c.attention_bias) {
      needs.push_back({p + "self_attn.q_proj.bias", {q_dim}, &lw.qkv_bias, qkv_rows, 0});
      needs.push_back({p + "self_attn.k_proj.bias", {kv_dim}, &lw.qkv_bias, qkv_rows, q_dim});
      needs.push_back({p + "self_attn.v_proj.bias", {kv_dim}, &lw.qkv_bias, qkv_rows, q_dim + kv_dim});
    }
    own(p + "self_attn.o_proj.weight", {H, q_dim}, &lw.wo);
    own(p + "post_attention_layernorm.weight", {H}, &lw.post_norm);
    needs.push_back({p + "mlp.gate_proj.weight", {I, H}, &lw.gate_up, 2 * I * H, 0});
    needs.push_back({p + "mlp.up_proj.weight", {I, H}, &lw.gate_up, 2 * I * H, I * H});
    own(p + "mlp.down_proj.weight", {H, I}, &lw.down);
  }
  own("model.norm.weight", {H}, &w.final_norm);
  if (!c.tie_word_embeddings) own("lm_head.weight", {V, H}, &w.lm_head);

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

  const DT dt = c.dtype;
  const size_t ds = dt_size(dt);
  auto lock = dev.lock();
  double done = 0;
  for (size_t i = 0; i < needs.size(); ++i) {
    hooks.check_stop();
    Need& n = needs[i];
    if (!*n.dest) {
      *n.dest = Buffer(dev, static_cast<size_t>(n.dest_elems) * ds, n.name.c_str());
      m->bytes += n.dest->bytes();
    }
    dev.load_values(dt, n.dest->at(static_cast<size_t>(n.offset), ds), reader.raw(*refs[i], n.shape),
                    stored_kind(refs[i]->dtype), numel(n.shape));
    done += static_cast<double>(refs[i]->nbytes);
    hooks.report(done, total);
  }
  m->inv_freq = rope_inv_freq(c);
  w.inv_freq = Buffer(dev, m->inv_freq.size() * sizeof(float), "RoPE frequencies");
  dev.upload(w.inv_freq.get(), m->inv_freq.data(), m->inv_freq.size() * sizeof(float));
  dev.sync("loading the model");
  return m;
}

std::shared_ptr<KvCache> new_cache(const Model& m, int capacity) {
  const Config& c = m.config;
  return std::make_shared<KvCache>(*m.dev, c.dtype, c.num_layers, c.num_kv_heads, c.head_dim, capacity);
}

namespace {

// Batches of up to this many rows are "decode-like": one row per sequence, captured as a
// graph where the device can, LoRA as BGMV.
constexpr int kDecodeRows = 64;
// Attention partial states are bounded to this many floats (chunks grow to fit).
constexpr size_t kMaxPartialFloats = size_t(64) << 20;  // 256 MiB

const LoraTarget kQkv[3] = {LoraTarget::Q, LoraTarget::K, LoraTarget::V};

}  // namespace

void forward(const Model& m, const int32_t* tokens, const Row* rows, int n, const ForwardOutputs& out,
             const JobHooks& hooks) {
  if (n <= 0) return;
  Device& dev = *m.dev;
  auto lock = dev.lock();
  const Config& c = m.config;
  const DT dt = c.dtype;
  const size_t ds = dt_size(dt);
  const int H = c.hidden_size, L = c.num_layers, I = c.intermediate_size, V = c.vocab_size;
  const int qd = c.q_dim(), kvd = c.kv_dim();
  RunState& s = m.scratch;

  // ---- what this batch is ----
  int max_rank = 0;
  bool captures = false;
  for (int i = 0; i < n; ++i) {
    if (&rows[i].cache->device() != &dev) throw std::logic_error("forward: a KV cache on another device");
    if (rows[i].adapter) max_rank = std::max(max_rank, rows[i].adapter->max_rank);
    captures = captures || rows[i].capture_lora_v;
  }
  // One plain sequence's consecutive rows (a prefill chunk): the causal prefill kernel over
  // its own cache. Anything else (decode batches, views, several sequences): planned parts.
  bool one_seq = n > 1 && !rows[0].cache->is_view();
  for (int i = 1; i < n && one_seq; ++i) {
    one_seq = rows[i].cache == rows[0].cache && rows[i].pos == rows[0].pos + i;
  }
  const bool wants_out = out.logits || out.greedy || out.sample || out.score;
  const int from = wants_out ? std::max(0, std::min(out.logits_from, n)) : n;
  const int rows_out = n - from;
  const bool stacked = dev.prefers_stacked(n);
  const bool decode_like = n <= kDecodeRows && !one_seq;
  // A decode step runs as one captured graph where the device can: nothing may come back to
  // the host mid-pass (logits to the host and LoRA-V captures are fine: they happen after or
  // inside kernels, but a capture changes buffers per row, so it stays eager).
  const bool graph = decode_like && !captures;

  // ---- scratch ----
  const size_t r = static_cast<size_t>(n);
  s.x.ensure(dev, r * H * ds, "activations");
  s.xn.ensure(dev, r * H * ds, "activations");
  s.xb.ensure(dev, r * H * ds, "activations");
  s.q.ensure(dev, r * qd * ds, "activations");
  s.att.ensure(dev, r * qd * ds, "activations");
  s.k.ensure(dev, r * kvd * ds, "activations");
  s.v.ensure(dev, r * kvd * ds, "activations");
  s.gate.ensure(dev, r * I * ds, "activations");
  s.up.ensure(dev, r * I * ds, "activations");
  if (stacked) {
    s.qkv.ensure(dev, r * (qd + 2 * kvd) * ds, "activations");
    s.gate_up.ensure(dev, r * 2 * I * ds, "activations");
  }
  s.lora.ensure(dev, 3 * r * std::max(max_rank, 1) * sizeof(float), "LoRA scratch");
  s.logits.ensure(dev, static_cast<size_t>(std::max(rows_out, 1)) * V * sizeof(float), "logits");
  // Outputs after the logits: tokens (int32), then probabilities (fp32), then scores.
  const size_t out_rows = static_cast<size_t>(std::max(rows_out, 1));
  const size_t off_probs = (out_rows * 4 + 15) / 16 * 16, off_scores = off_probs + (out_rows * 4 + 15) / 16 * 16;
  s.outs.ensure(dev, off_scores + out_rows * sizeof(ScoreOut), "outputs");

  // ---- per-row tables, one upload ----
  TableUpload up;
  std::vector<int32_t> tok(tokens, tokens + n);
  std::vector<int> pos(n);
  std::vector<KvWrite> kv(n);
  for (int i = 0; i < n; ++i) {
    KvCache& cache = *rows[i].cache;
    pos[i] = rows[i].pos;
    kv[i] = {cache.own_k(0), cache.own_v(0), cache.layer_stride(), cache.own_capacity(), rows[i].pos - cache.own_begin()};
  }
  const size_t off_tok = up.add(tok), off_pos = up.add(pos), off_kv = up.add(kv);
  // LoRA: [layer][target][row]; `has` marks (layer, target) that some row adapts.
  std::vector<LoraRow> lora(max_rank > 0 ? static_cast<size_t>(L) * kNumLoraTargets * n : 0);
  std::vector<uint8_t> has(static_cast<size_t>(L) * kNumLoraTargets, 0);
  if (max_rank > 0) {
    for (int l = 0; l < L; ++l) {
      for (int t = 0; t < kNumLoraTargets; ++t) {
        for (int i = 0; i < n; ++i) {
          const Adapter* a = rows[i].adapter;
          const LoraModule* mod = a ? a->find(l, static_cast<LoraTarget>(t)) : nullptr;
          LoraRow& e = lora[(static_cast<size_t>(l) * kNumLoraTargets + t) * n + i];
          e = LoraRow{nullptr, nullptr, 0, 0.0f, nullptr};
          if (!mod) continue;
          has[l * kNumLoraTargets + t] = 1;
          float* cap = nullptr;
          if (t == static_cast<int>(LoraTarget::V) && rows[i].capture_lora_v) cap = rows[i].cache->lora_v_row(l, rows[i].pos);
          e = LoraRow{mod->a.get(), mod->b.get(), mod->rank, mod->scale, cap};
        }
      }
    }
  }
  const size_t off_lora = up.add(lora);
  AttnPlanner planner;
  if (!one_seq) {
    planner.build(m, rows, n, graph, kMaxPartialFloats);
    planner.bind(dev, dt, s.rebuilt, s.rebuild_f32);
    planner.add_to(up);
    s.partials.ensure(dev, std::max<size_t>(planner.partial_floats(), 1) * sizeof(float), "attention partials");
  }
  std::vector<SampleRow> samples(out.sample ? rows_out : 0);
  std::vector<ScoreRow> scores(out.score ? rows_out : 0);
  for (int i = 0; i < rows_out; ++i) {
    if (out.sample) samples[i] = out.sample[i];
    if (out.score) scores[i] = out.score[i];
  }
  const size_t off_sample = up.add(samples), off_score = up.add(scores);
  up.upload(dev, s.tables, &dev == &cpu_device());

  const Table<int32_t> t_tok = up.table<int32_t>(off_tok, n);
  const Table<int> t_pos = up.table<int>(off_pos, n);
  const Table<KvWrite> t_kv = up.table<KvWrite>(off_kv, n);
  auto lora_rows = [&](int l, LoraTarget t) {
    return up.table<LoraRow>(off_lora + ((static_cast<size_t>(l) * kNumLoraTargets + static_cast<int>(t)) * n) *
                                            sizeof(LoraRow),
                             n);
  };
  const bool any_lora = max_rank > 0;
  auto adapts = [&](int l, LoraTarget t) { return any_lora && has[l * kNumLoraTargets + static_cast<int>(t)]; };
  auto at = [&](const Buffer& b, size_t elems) { return b.at(elems, ds); };

  // Outputs on the device after the logits: argmax / samples (tokens, probabilities) or scores.
  int32_t* d_tokens = s.outs.as<int32_t>();
  float* d_probs = reinterpret_cast<float*>(s.outs.as<char>() + off_probs);
  ScoreOut* d_scores = reinterpret_cast<ScoreOut*>(s.outs.as<char>() + off_scores);

  // Everything on the device, from the embedding to the outputs.
  const auto enqueue = [&](bool capturing) {
    dev.embedding(dt, s.x.get(), m.weights.embed.get(), t_tok.dev, n, H);
    for (int l = 0; l < L; ++l) {
      if (!capturing) hooks.check_stop();
      const LayerWeights& w = m.weights.layers[l];

      // Attention block: x += o_proj(attn(rope(q), rope(k), v)) on rmsnorm(x). The residual
      // adds are fused into the next norm: x += the previous block's output first.
      if (l == 0) {
        dev.rmsnorm(dt, s.xn.get(), s.x.get(), w.input_norm.get(), n, H, c.rms_norm_eps);
      } else {
        dev.add_rmsnorm(dt, s.xn.get(), s.x.get(), s.xb.get(), w.input_norm.get(), n, H, c.rms_norm_eps);
      }
      // q/k/v LoRA: one call for the projections some row adapts (a device may fuse them),
      // begun before the base product (a device may run its first half beside it).
      // Stacked, each LoRA adds into its part of the q/k/v product's rows.
      LoraOutput qkv_lora[3];
      int qkv_count = 0;
      {
        void* outs[3] = {s.q.get(), s.k.get(), s.v.get()};
        if (stacked) outs[0] = s.qkv.get(), outs[1] = at(s.qkv, qd), outs[2] = at(s.qkv, static_cast<size_t>(qd) + kvd);
        const int dims[3] = {qd, kvd, kvd};
        const int ld = stacked ? qd + 2 * kvd : 0;
        for (int t = 0; t < 3; ++t) {
          if (adapts(l, kQkv[t])) qkv_lora[qkv_count++] = LoraOutput{outs[t], dims[t], lora_rows(l, kQkv[t]), ld};
        }
      }
      if (qkv_count) dev.lora_begin(dt, s.xn.get(), n, H, qkv_lora, qkv_count, max_rank, s.lora.as<float>());
      if (stacked) {
        dev.gemm(dt, s.qkv.get(), s.xn.get(), w.qkv.get(), n, H, qd + 2 * kvd, 1.0f, 0.0f);
        if (w.qkv_bias) dev.add_bias(dt, s.qkv.get(), w.qkv_bias.get(), n, qd + 2 * kvd);
      } else {
        dev.gemm(dt, s.q.get(), s.xn.get(), w.qkv.get(), n, H, qd, 1.0f, 0.0f);
        dev.gemm(dt, s.k.get(), s.xn.get(), at(w.qkv, static_cast<size_t>(qd) * H), n, H, kvd, 1.0f, 0.0f);
        dev.gemm(dt, s.v.get(), s.xn.get(), at(w.qkv, static_cast<size_t>(qd + kvd) * H), n, H, kvd, 1.0f, 0.0f);
        if (w.qkv_bias) {
          dev.add_bias(dt, s.q.get(), w.qkv_bias.get(), n, qd);
          dev.add_bias(dt, s.k.get(), at(w.qkv_bias, qd), n, kvd);
          dev.add_bias(dt, s.v.get(), at(w.qkv_bias, qd + kvd), n, kvd);
        }
      }
      if (qkv_count) dev.lora(dt, s.xn.get(), n, H, qkv_lora, qkv_count, max_rank, s.lora.as<float>());
      if (stacked) {
        // RoPE and the cache writes straight from the stacked rows (one pass, no split).
        dev.qkv_rope_store(dt, s.q.get(), s.qkv.get(), t_pos.dev, m.weights.inv_freq.as<float>(), t_kv, l, n, c.num_heads,
                           c.num_kv_heads, c.head_dim);
      } else {
        dev.rope(dt, s.q.get(), s.k.get(), t_pos.dev, m.weights.inv_freq.as<float>(), n, c.num_heads, c.num_kv_heads,
                 c.head_dim);
        dev.store_kv(dt, t_kv, l, s.k.get(), s.v.get(), n, c.num_kv_heads, c.head_dim);
      }
      if (one_seq) {
        const KvCache& cache = *rows[0].cache;
        dev.attention_prefill(dt, s.att.get(), s.q.get(), cache.own_k(l), cache.own_v(l), cache.own_capacity(),
                              rows[0].pos, n, c.num_heads, c.num_kv_heads, c.head_dim);
      } else {
        if (planner.has_expansions()) planner.expand(dev, l, s.rebuild_f32);
        dev.attention_parts(dt, s.att.get(), s.q.get(), planner.plan(up, l, s.partials.as<float>()), n, c.num_heads,
                            c.num_kv_heads, c.head_dim);
      }
      const LoraOutput o_lora = adapts(l, LoraTarget::O) ? LoraOutput{s.xb.get(), H, lora_rows(l, LoraTarget::O)} : LoraOutput{};
      if (adapts(l, LoraTarget::O)) dev.lora_begin(dt, s.att.get(), n, qd, &o_lora, 1, max_rank, s.lora.as<float>());
      dev.gemm(dt, s.xb.get(), s.att.get(), w.wo.get(), n, qd, H, 1.0f, 0.0f);
      if (adapts(l, LoraTarget::O)) dev.lora(dt, s.att.get(), n, qd, &o_lora, 1, max_rank, s.lora.as<float>());

      // MLP block: x += down_proj(silu(gate_proj(h)) * up_proj(h)) on h = rmsnorm(x).
      dev.add_rmsnorm(dt, s.xn.get(), s.x.get(), s.xb.get(), w.post_norm.get(), n, H, c.rms_norm_eps);
      LoraOutput mlp_lora[2];
      int mlp_count = 0;
      void* gate_out = stacked ? s.gate_up.get() : s.gate.get();
      void* up_out = stacked ? at(s.gate_up, I) : s.up.get();
      const int mlp_ld = stacked ? 2 * I : 0;
      if (adapts(l, LoraTarget::Gate)) mlp_lora[mlp_count++] = LoraOutput{gate_out, I, lora_rows(l, LoraTarget::Gate), mlp_ld};
      if (adapts(l, LoraTarget::Up)) mlp_lora[mlp_count++] = LoraOutput{up_out, I, lora_rows(l, LoraTarget::Up), mlp_ld};
      if (mlp_count) dev.lora_begin(dt, s.xn.get(), n, H, mlp_lora, mlp_count, max_rank, s.lora.as<float>());
      if (stacked) {
        dev.gemm(dt, s.gate_up.get(), s.xn.get(), w.gate_up.get(), n, H, 2 * I, 1.0f, 0.0f);
      } else {
        dev.gemm(dt, s.gate.get(), s.xn.get(), w.gate_up.get(), n, H, I, 1.0f, 0.0f);
        dev.gemm(dt, s.up.get(), s.xn.get(), at(w.gate_up, static_cast<size_t>(I) * H), n, H, I, 1.0f, 0.0f);
      }
      if (mlp_count) dev.lora(dt, s.xn.get(), n, H, mlp_lora, mlp_count, max_rank, s.lora.as<float>());
      if (stacked) dev.swiglu_stacked(dt, s.gate.get(), s.gate_up.get(), n, I);
      else dev.swiglu(dt, s.gate.get(), s.up.get(), static_cast<int64_t>(n) * I);
      const LoraOutput down_lora = adapts(l, LoraTarget::Down) ? LoraOutput{s.xb.get(), H, lora_rows(l, LoraTarget::Down)} : LoraOutput{};
      if (adapts(l, LoraTarget::Down)) dev.lora_begin(dt, s.gate.get(), n, I, &down_lora, 1, max_rank, s.lora.as<float>());
      dev.gemm(dt, s.xb.get(), s.gate.get(), w.down.get(), n, I, H, 1.0f, 0.0f);  // added by the next norm
      if (adapts(l, LoraTarget::Down)) dev.lora(dt, s.gate.get(), n, I, &down_lora, 1, max_rank, s.lora.as<float>());
    }

    if (rows_out > 0) {
      const size_t o = static_cast<size_t>(from) * H;
      dev.add_rmsnorm(dt, at(s.xn, o), at(s.x, o), at(s.xb, o), m.weights.final_norm.get(), rows_out, H,
                      c.rms_norm_eps);
      dev.gemm_out_f32(dt, s.logits.as<float>(), at(s.xn, o), m.weights.output().get(), rows_out, H, V);
      if (out.sample) {
        dev.sample_rows(d_tokens, d_probs, s.logits.as<float>(), up.table<SampleRow>(off_sample, rows_out), rows_out, V);
      } else if (out.greedy) {
        dev.argmax_rows(d_tokens, s.logits.as<float>(), rows_out, V);
      }
      if (out.score) dev.score_rows(d_scores, s.logits.as<float>(), up.table<ScoreRow>(off_score, rows_out), rows_out, V);
    }
  };  // enqueue

  if (graph) {
    hooks.check_stop();
    std::vector<uint64_t> key = {static_cast<uint64_t>(n), static_cast<uint64_t>(max_rank),
                                 static_cast<uint64_t>(rows_out), static_cast<uint64_t>(from),
                                 static_cast<uint64_t>(out.sample != nullptr), static_cast<uint64_t>(out.greedy != nullptr),
                                 static_cast<uint64_t>(out.score != nullptr), up.size()};
    for (const Buffer* b : {&s.x, &s.xn, &s.xb, &s.q, &s.k, &s.v, &s.att, &s.gate, &s.up, &s.qkv, &s.gate_up, &s.lora,
                            &s.partials, &s.logits, &s.tables, &s.outs, &s.rebuilt, &s.rebuild_f32}) {
      key.push_back(reinterpret_cast<uintptr_t>(b->get()));
    }
    key.insert(key.end(), has.begin(), has.end());
    planner.shape_key(key);
    dev.run_captured(key, [&] { enqueue(true); });
    hooks.check_stop();
  } else {
    enqueue(false);
  }

  if (rows_out > 0) {
    if (out.sample) {
      dev.download(out.tokens, d_tokens, static_cast<size_t>(rows_out) * sizeof(int32_t));
      if (out.probs) dev.download(out.probs, d_probs, static_cast<size_t>(rows_out) * sizeof(float));
    } else if (out.greedy) {
      dev.download(out.greedy, d_tokens, static_cast<size_t>(rows_out) * sizeof(int32_t));
    }
    if (out.score) dev.download(out.scores, d_scores, static_cast<size_t>(rows_out) * sizeof(ScoreOut));
    if (out.logits) dev.download(out.logits, s.logits.get(), static_cast<size_t>(rows_out) * V * sizeof(float));
  }
  dev.sync("the forward pass");
}

}  // namespace al
