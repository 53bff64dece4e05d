#include "engine/lora.h"

#include <atomic>
#include <cmath>
#include <stdexcept>

#include "engine/linalg.h"
#include "engine/model.h"

namespace al {

namespace {
constexpr const char* kTargetNames[kNumLoraTargets] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};

int stored_kind(DType d) { return d == DType::F32 ? 0 : d == DType::F16 ? 1 : 2; }
}  // namespace

const char* lora_target_name(LoraTarget t) { return kTargetNames[static_cast<int>(t)]; }

std::optional<LoraTarget> lora_target_from_name(const std::string& name) {
  for (int i = 0; i < kNumLoraTargets; ++i) {
    if (name == kTargetNames[i]) return static_cast<LoraTarget>(i);
  }
  return std::nullopt;
}

LinearDims linear_dims(const Config& c, LoraTarget t) {
  switch (t) {
    case LoraTarget::Q: return {c.hidden_size, c.q_dim()};
    case LoraTarget::K:
    case LoraTarget::V: return {c.hidden_size, c.kv_dim()};
    case LoraTarget::O: return {c.q_dim(), c.hidden_size};
    case LoraTarget::Gate:
    case LoraTarget::Up: return {c.hidden_size, c.intermediate_size};
    case LoraTarget::Down: return {c.intermediate_size, c.hidden_size};
  }
  return {0, 0};
}

std::shared_ptr<Adapter> load_adapter(const Model& model, const std::vector<LoraModuleSpec>& modules,
                                      const JobHooks& hooks) {
  const Config& c = model.config;
  Device& dev = *model.dev;
  static std::atomic<uint64_t> next_id{1};
  auto adapter = std::make_shared<Adapter>();
  adapter->id = next_id++;
  adapter->model_id = model.id;
  adapter->dev = &dev;
  adapter->dt = c.dtype;
  adapter->layers.resize(c.num_layers);
  adapter->v.resize(c.num_layers);

  // Check the whole spec, shapes and files included, before reading any bytes.
  TensorReader reader;
  double total = 0;
  for (const LoraModuleSpec& s : modules) {
    const std::string what = "adapter module layers." + std::to_string(s.layer) + "." + lora_target_name(s.target);
    if (s.layer < 0 || s.layer >= c.num_layers) {
      throw std::runtime_error(what + ": layer is out of range (the model has " + std::to_string(c.num_layers) +
                               " layers)");
    }
    if (s.rank <= 0) throw std::runtime_error(what + ": rank must be positive, got " + std::to_string(s.rank));
    if (!std::isfinite(s.scale)) throw std::runtime_error(what + ": scale is not a finite number");
    auto& slot = adapter->layers[s.layer][static_cast<int>(s.target)];
    if (slot) throw std::runtime_error(what + " appears twice in the adapter spec");
    slot.emplace();
    const LinearDims d = linear_dims(c, s.target);
    reader.check(s.a, {s.rank, d.in});
    reader.check(s.b, {d.out, s.rank});
    total += static_cast<double>(s.a.nbytes) + static_cast<double>(s.b.nbytes);
  }

  const DT dt = c.dtype;
  double done = 0;
  auto lock = dev.lock();
  for (const LoraModuleSpec& s : modules) {
    hooks.check_stop();
    const LinearDims d = linear_dims(c, s.target);
    LoraModule& m = *adapter->layers[s.layer][static_cast<int>(s.target)];
    m.rank = s.rank;
    m.scale = s.scale;
    const int64_t na = static_cast<int64_t>(s.rank) * d.in, nb = static_cast<int64_t>(d.out) * s.rank;
    m.a = Buffer(dev, na * dt_size(dt), "LoRA A");
    m.b = Buffer(dev, nb * dt_size(dt), "LoRA B");
    dev.load_values(dt, m.a.get(), reader.raw(s.a, {s.rank, d.in}), stored_kind(s.a.dtype), na);
    dev.load_values(dt, m.b.get(), reader.raw(s.b, {d.out, s.rank}), stored_kind(s.b.dtype), nb);
    adapter->bytes += m.a.bytes() + m.b.bytes();
    if (s.target == LoraTarget::V) {
      // B_v in fp32 on both sides: pinv on the host, the strategies' basis on the device.
      VProjection& vp = adapter->v[s.layer].emplace();
      const Tensor b = reader.read(s.b, {d.out, s.rank});
      vp.b_host = b.data;
      if (dt == DT::F32) {
        vp.basis = m.b.as<float>();
      } else {
        vp.b_f32 = Buffer(dev, b.bytes(), "B_v (fp32)");
        dev.upload(vp.b_f32.get(), b.ptr(), b.bytes());
        adapter->bytes += vp.b_f32.bytes();
        vp.basis = vp.b_f32.as<float>();
      }
    }
    adapter->max_rank = std::max(adapter->max_rank, s.rank);
    done += static_cast<double>(s.a.nbytes) + static_cast<double>(s.b.nbytes);
    hooks.report(done, total);
  }
  dev.sync("loading an adapter");
  return adapter;
}

std::vector<int> Adapter::v_ranks() const {
  std::vector<int> r(layers.size(), 0);
  for (size_t l = 0; l < layers.size(); ++l) {
    if (const LoraModule* m = find(static_cast<int>(l), LoraTarget::V)) r[l] = m->rank;
  }
  return r;
}

std::shared_ptr<const VPinv> Adapter::v_pinv(int layer) const {
  if (!find(layer, LoraTarget::V)) throw std::logic_error("v_pinv: layer " + std::to_string(layer) + " does not adapt v_proj");
  std::lock_guard<std::mutex> lock(pinv_mutex_);
  if (v_pinv_.empty()) {
    // Every layer's at the first request (each store that needs one needs them all), on all
    // cores: a rank-64 adapter of a 7B model is about 1.5 s of host work on one.
    const int L = static_cast<int>(layers.size());
    std::vector<std::shared_ptr<VPinv>> made(L);
#pragma omp parallel for schedule(dynamic)
    for (int l = 0; l < L; ++l) {
      const LoraModule* m = find(l, LoraTarget::V);
      if (!m) continue;
      auto p = std::make_shared<VPinv>();
      const VProjection& vp = *v[l];
      p->rank = m->rank;
      p->out = static_cast<int>(vp.b_host.size() / m->rank);
      p->p = pinv_tall(vp.b_host.data(), p->out, p->rank);
      made[l] = std::move(p);
    }
    v_pinv_.resize(L);
    for (int l = 0; l < L; ++l) {
      if (!made[l]) continue;
      VPinv& p = *made[l];
      const std::vector<float> f(p.p.begin(), p.p.end());
      p.dev_f64 = Buffer(*dev, p.p.size() * sizeof(double), "pinv(B_v)");
      p.dev_f32 = Buffer(*dev, f.size() * sizeof(float), "pinv(B_v)");
      dev->upload(p.dev_f64.get(), p.p.data(), p.p.size() * sizeof(double));
      dev->upload(p.dev_f32.get(), f.data(), f.size() * sizeof(float));
      v_pinv_[l] = std::move(made[l]);
    }
  }
  return v_pinv_[layer];
}

}  // namespace al
