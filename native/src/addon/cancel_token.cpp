#include "addon/cancel_token.h"

#include "addon/addon.h"

namespace al::addon {

Napi::Function CancelToken::Define(Napi::Env env) {
  return DefineClass(env, "CancelToken",
                     {
                         InstanceMethod<&CancelToken::Cancel>("cancel"),
                         InstanceAccessor<&CancelToken::Cancelled>("cancelled"),
                     });
}

CancelToken::CancelToken(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CancelToken>(info) {}

Napi::Value CancelToken::Cancel(const Napi::CallbackInfo& info) {
  flag_->store(true);
  return info.Env().Undefined();
}

Napi::Value CancelToken::Cancelled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), flag_->load());
}

CancelFlag CancelToken::from(const Napi::Value& v, const char* what) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).cancel_class.Value())) {
    throw Napi::TypeError::New(v.Env(), std::string(what) + " must be a CancelToken (new addon.CancelToken()) or null");
  }
  return Unwrap(v.As<Napi::Object>())->flag_;
}

}  // namespace al::addon
