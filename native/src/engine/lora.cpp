#include "engine/lora.h"

#include <atomic>
#include <cmath>
#include <stdexcept>

#include "engine/linalg.h"
#include "engine/model.h"
#ifdef AL_CUDA
#include "engine/gpu.h"
#endif

namespace al {

namespace {
constexpr const char* kTargetNames[kNumLoraTargets] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                       "gate_proj", "up_proj", "down_proj"};
}

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
  static std::atomic<uint64_t> next_id{1};
  auto adapter = std::make_shared<Adapter>();
  adapter->id = next_id++;
  adapter->model_id = model.id;
  adapter->layers.resize(c.num_layers);

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

  double done = 0;
  for (const LoraModuleSpec& s : modules) {
    hooks.check_stop();
    const LinearDims d = linear_dims(c, s.target);
    LoraModule& m = *adapter->layers[s.layer][static_cast<int>(s.target)];
    m.rank = s.rank;
    m.scale = s.scale;
    m.a = reader.read(s.a, {s.rank, d.in});
    m.b = reader.read(s.b, {d.out, s.rank});
    adapter->max_rank = std::max(adapter->max_rank, s.rank);
    adapter->bytes += m.a.bytes() + m.b.bytes();
    done += static_cast<double>(s.a.nbytes) + static_cast<double>(s.b.nbytes);
    hooks.report(done, total);
  }
#ifdef AL_CUDA
  if (model.gpu) adapter->gpu = gpu::upload_adapter(*model.gpu, *adapter);
#endif
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
  const LoraModule* m = find(layer, LoraTarget::V);
  if (!m) throw std::logic_error("v_pinv: layer " + std::to_string(layer) + " does not adapt v_proj");
  std::lock_guard<std::mutex> lock(pinv_mutex_);
  if (v_pinv_.empty()) v_pinv_.resize(layers.size());
  if (!v_pinv_[layer]) {
    auto p = std::make_shared<VPinv>();
    p->rank = m->rank;
    p->out = static_cast<int>(m->b.shape[0]);
    p->p = pinv_tall(m->b.ptr(), p->out, p->rank);
    v_pinv_[layer] = std::move(p);
  }
  return v_pinv_[layer];
}

void lora_apply(const Backend& be, const LoraModule& m, const float* x, float* y, int n, float* tmp) {
  const int in = static_cast<int>(m.a.shape[1]);
  const int out = static_cast<int>(m.b.shape[0]);
  be.matmul(tmp, x, m.a.ptr(), nullptr, n, in, m.rank);        // tmp[n, r] = x A^T
  be.matmul_add(y, tmp, m.b.ptr(), m.scale, n, m.rank, out);    // y += scale · tmp B^T (PEFT scales after B)
}

}  // namespace al
