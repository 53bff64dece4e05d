// NativeKvCache: JS handle of an engine KvCache.
#pragma once

#include <napi.h>

#include <memory>
#include <string>

#include "engine/config.h"
#include "engine/kv_cache.h"

namespace al::addon {

// A cache must have the shape of the model that runs on (or compares) it.
void check_cache_fits(const KvCache& cache, const Config& c, const std::string& what);

class CacheWrap : public Napi::ObjectWrap<CacheWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // Wraps a cache for JS (the only way to construct one).
  static Napi::Object New(Napi::Env env, std::shared_ptr<KvCache> cache);
  // The cache behind `v`, which must be a live NativeKvCache.
  static std::shared_ptr<KvCache> from(const Napi::Value& v, const std::string& what);

  explicit CacheWrap(const Napi::CallbackInfo& info);
  ~CacheWrap() override;

 private:
  KvCache& live() const;
  // writeLayer and truncate would race with a job using the cache.
  void check_idle(const char* op) const;
  // A prefill with captureLoraV grows the cache's bytes: keep V8's external-memory count
  // in step (checked whenever JS looks at the cache).
  void sync_accounting();
  void release();

  Napi::Value Length(const Napi::CallbackInfo& info);
  Napi::Value Capacity(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value ReadLayer(const Napi::CallbackInfo& info);
  Napi::Value WriteLayer(const Napi::CallbackInfo& info);
  Napi::Value Fork(const Napi::CallbackInfo& info);
  Napi::Value Truncate(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  // Jobs hold their own reference, so dispose() during a job frees the memory when it ends.
  std::shared_ptr<KvCache> cache_;
  int64_t accounted_ = 0;  // bytes reported to V8 as external memory
};

}  // namespace al::addon
