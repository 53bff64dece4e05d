// NativeCancelToken: a flag JS sets and running jobs poll between chunks and layers.
#pragma once

#include <napi.h>

#include <atomic>
#include <memory>

namespace al::addon {

using CancelFlag = std::shared_ptr<std::atomic<bool>>;

class CancelToken : public Napi::ObjectWrap<CancelToken> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit CancelToken(const Napi::CallbackInfo& info);

  // null / undefined → no flag; a CancelToken → its flag; anything else → TypeError.
  static CancelFlag from(const Napi::Value& v, const char* what);

 private:
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Cancelled(const Napi::CallbackInfo& info);

  // Shared with jobs, which may outlive this object.
  CancelFlag flag_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace al::addon
