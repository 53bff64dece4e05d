// LoRA adapters kept unmerged: an adapted Linear computes y = W x + scale · B (A x), so
// one base model serves many adapters, several of them inside one decode batch.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/config.h"
#include "engine/job.h"
#include "engine/tensor.h"
#include "engine/weights.h"

namespace al {

struct Model;
namespace gpu {
struct DeviceAdapter;
}

// The seven Linears of a Llama layer that PEFT can adapt.
enum class LoraTarget { Q, K, V, O, Gate, Up, Down };
constexpr int kNumLoraTargets = 7;

const char* lora_target_name(LoraTarget t);               // "q_proj", ...
std::optional<LoraTarget> lora_target_from_name(const std::string& name);

// (in_features, out_features) of an adapted Linear.
struct LinearDims {
  int in, out;
};
LinearDims linear_dims(const Config& c, LoraTarget t);

struct LoraModule {
  int rank = 0;
  float scale = 0.0f;  // alpha / r (or alpha / sqrt(r)), patterns already applied
  Tensor a;            // [rank, in]   lora_A.weight
  Tensor b;            // [out, rank]  lora_B.weight
};

// pinv(B_v) of one layer in double, [rank, out]: what seed-minikv and outsideSpan need.
struct VPinv {
  std::vector<double> p;  // [rank, out] row-major
  int rank = 0, out = 0;
};

struct Adapter {
  uint64_t id = 0;        // unique per load; a LoRA-V capture remembers which adapter made it
  uint64_t model_id = 0;  // adapters are shaped for, and usable with, one model only
  std::vector<std::array<std::optional<LoraModule>, kNumLoraTargets>> layers;  // [num_layers][target]
  int max_rank = 0;
  size_t bytes = 0;
  // CUDA build: A and B also on the device, in the model's dtype (the host fp32 copies stay:
  // pinv(B_v) and the host-round-trip strategies read them).
  std::shared_ptr<gpu::DeviceAdapter> gpu;

  const LoraModule* find(int layer, LoraTarget t) const {
    const auto& m = layers[layer][static_cast<int>(t)];
    return m ? &*m : nullptr;
  }
  // r_v per layer, 0 where v_proj is not adapted.
  std::vector<int> v_ranks() const;
  // pinv(B_v) of `layer` (which must adapt v_proj), computed on first use and kept: many
  // stores and diagnostics of one adapter share it. Thread-safe.
  std::shared_ptr<const VPinv> v_pinv(int layer) const;

 private:
  mutable std::mutex pinv_mutex_;
  mutable std::vector<std::shared_ptr<const VPinv>> v_pinv_;  // [num_layers], filled lazily
};

// One module as the adapter spec names it.
struct LoraModuleSpec {
  int layer = 0;
  LoraTarget target = LoraTarget::Q;
  int rank = 0;
  float scale = 0.0f;
  TensorRef a, b;
};

// Reads and checks every module against the model's shapes. Progress is in bytes.
std::shared_ptr<Adapter> load_adapter(const Model& model, const std::vector<LoraModuleSpec>& modules,
                                      const JobHooks& hooks);

// y[n, out] += scale · B · (A · x[n, in]) for n rows; tmp holds n × rank floats.
void lora_apply(const Backend& be, const LoraModule& m, const float* x, float* y, int n, float* tmp);

}  // namespace al
