// A test adapter with a v_proj LoRA on every layer (what the shared-cache strategies read of
// an adapter: B_v on the host and as fp32 on the device), for the C++ checks:
// tests/cuda/backend_ops.cu and tests/native/attention_plan_key_test.cpp.
#pragma once

#include <memory>
#include <vector>

#include "engine/lora.h"

// B: fp32 [kv_dim, rank], the same on every layer; scale 1.
inline std::shared_ptr<al::Adapter> v_lora_adapter(al::Device& d, al::DT dt, int layers, const std::vector<float>& B,
                                                   int rank, uint64_t id) {
  auto adapter = std::make_shared<al::Adapter>();
  adapter->id = id;
  adapter->dev = &d;
  adapter->dt = dt;
  adapter->layers.resize(layers);
  adapter->v.resize(layers);
  for (int l = 0; l < layers; ++l) {
    al::LoraModule& mod = adapter->layers[l][static_cast<int>(al::LoraTarget::V)].emplace();
    mod.rank = rank;
    mod.scale = 1.0f;
    al::VProjection& vp = adapter->v[l].emplace();
    vp.b_host = B;
    vp.b_f32 = al::Buffer(d, B.size() * 4, "test");
    d.upload(vp.b_f32.get(), B.data(), B.size() * 4);
    vp.basis = vp.b_f32.as<float>();
  }
  adapter->max_rank = rank;
  return adapter;
}
