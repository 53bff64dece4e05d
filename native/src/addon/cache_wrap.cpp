#include "addon/cache_wrap.h"

#include <limits>

#include "addon/addon.h"
#include "addon/convert.h"

namespace al::addon {

void check_cache_fits(const KvCache& cache, const Config& c, const std::string& what) {
  if (cache.num_layers() != c.num_layers || cache.num_kv_heads() != c.num_kv_heads || cache.head_dim() != c.head_dim) {
    throw std::runtime_error(what + " was created for a different model (layers, kv heads, head dim: " +
                             std::to_string(cache.num_layers()) + ", " + std::to_string(cache.num_kv_heads()) + ", " +
                             std::to_string(cache.head_dim()) + " vs " + std::to_string(c.num_layers) + ", " +
                             std::to_string(c.num_kv_heads) + ", " + std::to_string(c.head_dim) + ")");
  }
}

Napi::Function CacheWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeKvCache",
                     {
                         InstanceAccessor<&CacheWrap::Length>("length"),
                         InstanceAccessor<&CacheWrap::Capacity>("capacity"),
                         InstanceAccessor<&CacheWrap::Bytes>("bytes"),
                         InstanceMethod<&CacheWrap::ReadLayer>("readLayer"),
                         InstanceMethod<&CacheWrap::WriteLayer>("writeLayer"),
                         InstanceMethod<&CacheWrap::Fork>("fork"),
                         InstanceMethod<&CacheWrap::Truncate>("truncate"),
                         InstanceMethod<&CacheWrap::Dispose>("dispose"),
                     });
}

Napi::Object CacheWrap::New(Napi::Env env, std::shared_ptr<KvCache> cache) {
  return addon_data(env).cache_class.New({Napi::External<std::shared_ptr<KvCache>>::New(env, &cache)});
}

CacheWrap::CacheWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<CacheWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeKvCache cannot be constructed directly; use model.newCache()");
  }
  cache_ = *info[0].As<Napi::External<std::shared_ptr<KvCache>>>().Data();
  // Tell V8 about the memory, so forgotten caches get collected under memory pressure.
  accounted_ = static_cast<int64_t>(cache_->bytes());
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_);
}

CacheWrap::~CacheWrap() { release(); }

void CacheWrap::release() {
  if (!cache_) return;
  cache_.reset();
  Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_);
}

std::shared_ptr<KvCache> CacheWrap::from(const Napi::Value& v, const std::string& what) {
  if (!v.IsObject() || !v.As<Napi::Object>().InstanceOf(addon_data(v.Env()).cache_class.Value())) {
    throw Napi::TypeError::New(v.Env(), what + " must be a NativeKvCache (from model.newCache())");
  }
  CacheWrap* w = Unwrap(v.As<Napi::Object>());
  w->live();
  return w->cache_;
}

KvCache& CacheWrap::live() const {
  if (!cache_) throw Napi::Error::New(Env(), "KV cache has been disposed");
  return *cache_;
}

void CacheWrap::check_idle(const char* op) const {
  const KvCache& c = live();
  if (c.written()) {
    throw Napi::Error::New(Env(), std::string("cannot ") + op +
                                      " a KV cache while a prefill or decode on it is running; await it first");
  }
  if (c.busy()) {
    throw Napi::Error::New(Env(), std::string("cannot ") + op +
                                      " a KV cache while a job reading it (encodeStore, a store's decode, "
                                      "compareCaches or outsideSpan) is running; await it first");
  }
}

void CacheWrap::sync_accounting() {
  const int64_t now = static_cast<int64_t>(live().bytes());
  if (now != accounted_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), now - accounted_);
    accounted_ = now;
  }
}

Napi::Value CacheWrap::Length(const Napi::CallbackInfo& info) {
  sync_accounting();
  return Napi::Number::New(info.Env(), live().length());
}

Napi::Value CacheWrap::Capacity(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), live().capacity());
}

Napi::Value CacheWrap::Bytes(const Napi::CallbackInfo& info) {
  sync_accounting();
  return Napi::Number::New(info.Env(), static_cast<double>(live().bytes()));
}

Napi::Value CacheWrap::ReadLayer(const Napi::CallbackInfo& info) {
  // A running job only writes positions at or past the length, so reading is safe.
  KvCache& c = live();
  const int layer = to_int(info[0], "layer", 0, c.num_layers() - 1);
  const size_t n = static_cast<size_t>(c.num_kv_heads()) * c.layer_length(layer) * c.head_dim();
  Napi::Float32Array k = Napi::Float32Array::New(info.Env(), n);
  Napi::Float32Array v = Napi::Float32Array::New(info.Env(), n);
  c.read_layer(layer, k.Data(), v.Data());
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("k", k);
  out.Set("v", v);
  return out;
}

Napi::Value CacheWrap::WriteLayer(const Napi::CallbackInfo& info) {
  check_idle("write");
  KvCache& c = live();
  const int layer = to_int(info[0], "layer", 0, c.num_layers() - 1);
  const int tokens = to_int(info[3], "tokens", 0, c.capacity());
  const size_t want = static_cast<size_t>(c.num_kv_heads()) * tokens * c.head_dim();
  auto array = [&](const Napi::Value& v, const char* name) {
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Float32Array");
    }
    Napi::Float32Array a = v.As<Napi::Float32Array>();
    if (a.ElementLength() != want) {
      throw Napi::RangeError::New(info.Env(), std::string(name) + " has " + std::to_string(a.ElementLength()) +
                                                  " values but [numKvHeads=" + std::to_string(c.num_kv_heads()) +
                                                  ", tokens=" + std::to_string(tokens) +
                                                  ", headDim=" + std::to_string(c.head_dim()) + "] needs " +
                                                  std::to_string(want));
    }
    return a;
  };
  Napi::Float32Array k = array(info[1], "k");
  Napi::Float32Array v = array(info[2], "v");
  c.write_layer(layer, k.Data(), v.Data(), tokens);
  return info.Env().Undefined();
}

Napi::Value CacheWrap::Fork(const Napi::CallbackInfo& info) {
  KvCache& c = live();
  const int capacity = to_int(info[0], "capacity", 1, std::numeric_limits<int32_t>::max());
  std::shared_ptr<KvCache> copy;
  try {
    copy = c.fork(capacity);
  } catch (const std::bad_alloc&) {
    throw Napi::Error::New(info.Env(), "out of memory forking a KV cache into capacity " + std::to_string(capacity));
  }
  return New(info.Env(), std::move(copy));
}

Napi::Value CacheWrap::Truncate(const Napi::CallbackInfo& info) {
  check_idle("truncate");
  KvCache& c = live();
  c.truncate(to_int(info[0], "length", 0, std::numeric_limits<int32_t>::max()));
  return info.Env().Undefined();
}

Napi::Value CacheWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace al::addon
