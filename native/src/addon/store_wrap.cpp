#include "addon/store_wrap.h"

#include <limits>
#include <string>

#include "addon/addon.h"
#include "addon/cache_wrap.h"
#include "addon/convert.h"
#include "addon/workers.h"

namespace al::addon {

namespace {
// What StoreWrap's constructor receives through its External.
struct StoreInit {
  std::shared_ptr<Model> shape;
  std::shared_ptr<const KvStore> store;
};
}  // namespace

Napi::Function StoreWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeKvStore",
                     {
                         InstanceAccessor<&StoreWrap::Bytes>("bytes"),
                         InstanceAccessor<&StoreWrap::Tokens>("tokens"),
                         InstanceMethod<&StoreWrap::Decode>("decode"),
                         InstanceMethod<&StoreWrap::Dispose>("dispose"),
                     });
}

Napi::Object StoreWrap::New(Napi::Env env, const std::shared_ptr<Model>& model, std::shared_ptr<const KvStore> store) {
  StoreInit init;
  init.shape = std::make_shared<Model>();
  init.shape->id = model->id;
  init.shape->config = model->config;
  init.shape->dev = model->dev;
  init.store = std::move(store);
  return addon_data(env).store_class.New({Napi::External<StoreInit>::New(env, &init)});
}

StoreWrap::StoreWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<StoreWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeKvStore cannot be constructed directly; use model.encodeStore()");
  }
  StoreInit& init = *info[0].As<Napi::External<StoreInit>>().Data();
  store_ = std::move(init.store);
  shape_ = std::move(init.shape);
  accounted_ = static_cast<int64_t>(store_->bytes);
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_);
}

StoreWrap::~StoreWrap() { release(); }

void StoreWrap::release() {
  if (!store_) return;
  store_.reset();
  Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_);
}

std::shared_ptr<const KvStore> StoreWrap::from(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).store_class.Value())) {
    throw Napi::TypeError::New(v.Env(), what + " must be a NativeKvStore (from model.encodeStore()) or null");
  }
  return Unwrap(v.As<Napi::Object>())->live();
}

const std::shared_ptr<const KvStore>& StoreWrap::live() const {
  if (!store_) throw Napi::Error::New(Env(), "KV store has been disposed");
  return store_;
}

Napi::Value StoreWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live()->bytes));
}

Napi::Value StoreWrap::Tokens(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live()->tokens); }

Napi::Value StoreWrap::Decode(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    std::shared_ptr<const KvStore> store = live();
    std::shared_ptr<KvCache> base = CacheWrap::from(info[0], "base");
    const int capacity = to_int(info[1], "capacity", 1, std::numeric_limits<int32_t>::max());
    check_cache_fits(*base, shape_->config, "base");
    if (capacity < store->tokens) {
      throw Napi::RangeError::New(info.Env(), "capacity " + std::to_string(capacity) + " is less than the " +
                                                  std::to_string(store->tokens) + " tokens the store holds");
    }
    if (base->length() < store->tokens) {
      throw Napi::RangeError::New(info.Env(), "base holds " + std::to_string(base->length()) +
                                                  " positions but the store was encoded over " +
                                                  std::to_string(store->tokens) +
                                                  "; decode against the base cache of the same document");
    }
    StoreDecodeRequest req{shape_, std::move(store), CacheLease(std::move(base), CacheLease::Shared), capacity};
    return start_store_decode(info.Env(), std::move(req));
  });
}

Napi::Value StoreWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace al::addon
