// NativeModel: JS handle of loaded base-model weights.
#pragma once

#include <napi.h>

#include <memory>

#include "engine/model.h"

namespace al::addon {

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, std::shared_ptr<Model> model);

  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

 private:
  const std::shared_ptr<Model>& live() const;
  void release();

  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value NewCache(const Napi::CallbackInfo& info);
  Napi::Value NewView(const Napi::CallbackInfo& info);
  Napi::Value PrefillBatch(const Napi::CallbackInfo& info);
  Napi::Value Score(const Napi::CallbackInfo& info);
  Napi::Value LoadAdapter(const Napi::CallbackInfo& info);
  Napi::Value Prefill(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value EncodeStore(const Napi::CallbackInfo& info);
  Napi::Value CompareCaches(const Napi::CallbackInfo& info);
  Napi::Value OutsideSpan(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // Jobs, adapters' jobs included, hold their own reference: dispose() while a job runs
  // is safe and frees the weights when the last job ends.
  std::shared_ptr<Model> model_;
  int64_t accounted_ = 0;
};

}  // namespace al::addon
