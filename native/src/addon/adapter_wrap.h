// NativeAdapter: JS handle of a loaded LoRA adapter.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "engine/lora.h"
#include "engine/model.h"

namespace al::addon {

// An adapter (when not null) must have been loaded for `model`.
void check_adapter_fits(const Adapter* adapter, const Model& model, const std::string& what);

class AdapterWrap : public Napi::ObjectWrap<AdapterWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, std::shared_ptr<Adapter> adapter);
  // null / undefined → nullptr; otherwise `v` must be a live NativeAdapter.
  static std::shared_ptr<Adapter> from_optional(const Napi::Value& v, const std::string& what);

  explicit AdapterWrap(const Napi::CallbackInfo& info);
  ~AdapterWrap() override;

 private:
  const Adapter& live() const;
  void release();

  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<Adapter> adapter_;  // shared with running jobs
  int64_t accounted_ = 0;
};

}  // namespace al::addon
