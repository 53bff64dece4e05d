// NativeKvStore: JS handle of one adapter's compact strategy store (engine/kv_store.h).
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "engine/kv_store.h"
#include "engine/model.h"

namespace al::addon {

class StoreWrap : public Napi::ObjectWrap<StoreWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object New(Napi::Env env, const std::shared_ptr<Model>& model, std::shared_ptr<const KvStore> store);
  // The store behind `v`, which must be a live NativeKvStore.
  static std::shared_ptr<const KvStore> from(const Napi::Value& v, const std::string& what);

  explicit StoreWrap(const Napi::CallbackInfo& info);
  ~StoreWrap() override;

 private:
  const std::shared_ptr<const KvStore>& live() const;
  void release();

  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value Tokens(const Napi::CallbackInfo& info);
  Napi::Value Decode(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // Shared with running decodes; the store in turn holds the adapter whose B_v it uses.
  std::shared_ptr<const KvStore> store_;
  // Decoding needs the model's cache shape, not its weights: a store does not keep a
  // disposed model's weights alive.
  std::shared_ptr<Model> shape_;  // a weightless Model carrying id, config and device
  int64_t accounted_ = 0;
};

}  // namespace al::addon
