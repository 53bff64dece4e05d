// LoRA adapters kept unmerged: an adapted Linear computes y = W x + scale · B (A x), so
// one base model serves many adapters, several of them inside one decode batch.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/device.h"
#include "engine/job.h"
#include "engine/weights.h"

namespace al {

struct Model;

// The seven Linears of a Llama layer that PEFT can adapt.
enum class LoraTarget { Q, K, V, O, Gate, Up, Down };
constexpr int kNumLoraTargets = 7;

const char* lora_target_name(LoraTarget t);  // "q_proj", ...
std::optional<LoraTarget> lora_target_from_name(const std::string& name);

// (in_features, out_features) of an adapted Linear.
struct LinearDims {
  int in, out;
};
LinearDims linear_dims(const Config& c, LoraTarget t);

struct LoraModule {
  int rank = 0;
  float scale = 0.0f;  // alpha / r (or alpha / sqrt(r)), patterns already applied
  Buffer a;            // T [rank, in]   lora_A.weight
  Buffer b;            // T [out, rank]  lora_B.weight
};

// What the shared-cache strategies need of one layer's v_proj LoRA, beyond its A and B.
struct VProjection {
  std::vector<float> b_host;    // fp32 [out, rank]: B_v on the host (pinv is computed from it)
  Buffer b_f32;                 // an fp32 device copy, when the model computes in bf16/fp16
  const float* basis = nullptr; // fp32 [out, rank] on the device: b_f32, or the module's own B in fp32
};

// pinv(B_v) of one layer, [rank, out]: in double on the host and on the device (outsideSpan)
// and in fp32 on the device (seed-minikv's encode, as torch's fp32 pinv).
struct VPinv {
  std::vector<double> p;  // [rank, out] row-major
  int rank = 0, out = 0;
  Buffer dev_f64, dev_f32;
};

struct Adapter {
  uint64_t id = 0;        // unique per load; a LoRA-V capture remembers which adapter made it
  uint64_t model_id = 0;  // adapters are shaped for, and usable with, one model only
  Device* dev = nullptr;
  DT dt = DT::F32;
  std::vector<std::array<std::optional<LoraModule>, kNumLoraTargets>> layers;  // [num_layers][target]
  std::vector<std::optional<VProjection>> v;                                    // [num_layers]
  int max_rank = 0;
  size_t bytes = 0;  // device bytes held

  const LoraModule* find(int layer, LoraTarget t) const {
    const auto& m = layers[layer][static_cast<int>(t)];
    return m ? &*m : nullptr;
  }
  // r_v per layer, 0 where v_proj is not adapted.
  std::vector<int> v_ranks() const;
  // pinv(B_v) of `layer` (which must adapt v_proj), computed on first use and kept: many
  // stores and diagnostics of one adapter share it. Thread-safe; uses the device (lock held
  // by the caller).
  std::shared_ptr<const VPinv> v_pinv(int layer) const;

 private:
  mutable std::mutex pinv_mutex_;
  mutable std::vector<std::shared_ptr<const VPinv>> v_pinv_;  // [num_layers], all filled at the first v_pinv
};

// One module as the adapter spec names it.
struct LoraModuleSpec {
  int layer = 0;
  LoraTarget target = LoraTarget::Q;
  int rank = 0;
  float scale = 0.0f;
  TensorRef a, b;
};

// Reads and checks every module against the model's shapes and loads it onto the model's
// device in its dtype. Progress in bytes.
std::shared_ptr<Adapter> load_adapter(const Model& model, const std::vector<LoraModuleSpec>& modules,
                                      const JobHooks& hooks);

}  // namespace al
