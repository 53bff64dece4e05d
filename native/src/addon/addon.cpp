// Module entry: info(), CancelToken and loadModel(); everything else hangs off NativeModel.
#include "addon/addon.h"

#include <string>

#include "addon/adapter_wrap.h"
#include "addon/cache_wrap.h"
#include "addon/cancel_token.h"
#include "addon/convert.h"
#include "addon/model_wrap.h"
#include "addon/store_wrap.h"
#include "addon/workers.h"
#include "engine/backend.h"
#ifdef AL_CUDA
#include "engine/gpu.h"
#endif

namespace al::addon {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Promise rejected(Napi::Env env, const Napi::Value& error) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(error);
  return d.Promise();
}

namespace {

#if defined(__x86_64__) || defined(_M_X64)
constexpr const char* kArch = "x86_64";
#elif defined(__aarch64__) || defined(_M_ARM64)
constexpr const char* kArch = "arm64";
#else
constexpr const char* kArch = "unknown-arch";
#endif

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Backend& be = cpu_backend();
  const int threads = be.threads();
  Napi::Object out = Napi::Object::New(env);
  out.Set("engineVersion", ADAPTERLENS_VERSION);
  out.Set("threads", threads);
#ifdef AL_CUDA
  // Host threads still run the host parts (loading, the host-round-trip strategies).
  out.Set("backend", "cuda");
  out.Set("device", gpu::init().describe());
  out.Set("deviceMemoryUsed", static_cast<double>(gpu::used_bytes()));
  out.Set("deviceMemoryPeak", static_cast<double>(gpu::peak_used_bytes()));
#else
  out.Set("backend", be.name());
  out.Set("device", std::string(kArch) + " CPU, " + std::to_string(threads) + (threads == 1 ? " thread" : " threads"));
#endif
  return out;
}

Napi::Value LoadModel(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    Config config = parse_config(info[0]);
    std::vector<TensorRef> tensors = parse_tensor_refs(info[1]);
    Napi::Function on_progress = to_optional_function(info[2], "onProgress");
    CancelFlag cancel = CancelToken::from(info[3], "cancel");
    return start_load_model(info.Env(), config, std::move(tensors), on_progress, std::move(cancel));
  });
}

}  // namespace

#ifdef AL_CUDA
// Benchmarks: forget the peak device memory seen so far.
Napi::Value ResetDevicePeak(const Napi::CallbackInfo& info) {
  gpu::reset_peak();
  return info.Env().Undefined();
}
#endif

Napi::Object Init(Napi::Env env, Napi::Object exports) {
#ifdef AL_CUDA
  // Fail the require() itself when CUDA cannot start: the loader's probe reports the reason
  // and falls back to the CPU build.
  gpu::init();
#endif
  auto* data = new AddonData();
  env.SetInstanceData(data);  // deleted by Node when the environment goes away
  data->model_class = Napi::Persistent(ModelWrap::Define(env));
  data->cache_class = Napi::Persistent(CacheWrap::Define(env));
  data->adapter_class = Napi::Persistent(AdapterWrap::Define(env));
  data->store_class = Napi::Persistent(StoreWrap::Define(env));
  Napi::Function cancel = CancelToken::Define(env);
  data->cancel_class = Napi::Persistent(cancel);

  exports.Set("info", Napi::Function::New<Info>(env, "info"));
  exports.Set("CancelToken", cancel);
  exports.Set("loadModel", Napi::Function::New<LoadModel>(env, "loadModel"));
#ifdef AL_CUDA
  exports.Set("resetDevicePeak", Napi::Function::New<ResetDevicePeak>(env, "resetDevicePeak"));
#endif
  return exports;
}

}  // namespace al::addon

static Napi::Object InitAdapterLens(Napi::Env env, Napi::Object exports) { return al::addon::Init(env, exports); }

NODE_API_MODULE(adapterlens_cpu, InitAdapterLens)
