#include "addon/adapter_wrap.h"

#include "addon/addon.h"

namespace al::addon {

void check_adapter_fits(const Adapter* adapter, const Model& model, const std::string& what) {
  if (adapter && adapter->model_id != model.id) {
    throw std::runtime_error(what + " was loaded for a different model; load it with this model's loadAdapter()");
  }
}

Napi::Function AdapterWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeAdapter",
                     {
                         InstanceAccessor<&AdapterWrap::Rank>("rank"),
                         InstanceAccessor<&AdapterWrap::Bytes>("bytes"),
                         InstanceMethod<&AdapterWrap::Dispose>("dispose"),
                     });
}

Napi::Object AdapterWrap::New(Napi::Env env, std::shared_ptr<Adapter> adapter) {
  return addon_data(env).adapter_class.New({Napi::External<std::shared_ptr<Adapter>>::New(env, &adapter)});
}

AdapterWrap::AdapterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<AdapterWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeAdapter cannot be constructed directly; use model.loadAdapter()");
  }
  adapter_ = *info[0].As<Napi::External<std::shared_ptr<Adapter>>>().Data();
  accounted_ = static_cast<int64_t>(adapter_->bytes);
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_);
}

AdapterWrap::~AdapterWrap() { release(); }

void AdapterWrap::release() {
  if (!adapter_) return;
  adapter_.reset();
  Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_);
}

std::shared_ptr<Adapter> AdapterWrap::from_optional(const Napi::Value& v, const std::string& what) {
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).adapter_class.Value())) {
    throw Napi::TypeError::New(v.Env(), what + " must be a NativeAdapter (from model.loadAdapter()) or null");
  }
  AdapterWrap* w = Unwrap(v.As<Napi::Object>());
  w->live();
  return w->adapter_;
}

const Adapter& AdapterWrap::live() const {
  if (!adapter_) throw Napi::Error::New(Env(), "adapter has been disposed");
  return *adapter_;
}

Napi::Value AdapterWrap::Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live().max_rank); }

Napi::Value AdapterWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live().bytes));
}

Napi::Value AdapterWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace al::addon
