// Module entry: start(), info(), CancelToken and loadModel(); everything else hangs off
// NativeModel.
#include "addon/addon.h"

#include <string>

#include "addon/adapter_wrap.h"
#include "addon/cache_wrap.h"
#include "addon/cancel_token.h"
#include "addon/convert.h"
#include "addon/model_wrap.h"
#include "addon/store_wrap.h"
#include "addon/workers.h"
#include "engine/device.h"

namespace al::addon {

AddonData& addon_data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Promise rejected(Napi::Env env, const Napi::Value& error) {
  Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
  d.Reject(error);
  return d.Promise();
}

namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Device& dev = default_device();
  Napi::Object out = Napi::Object::New(env);
  out.Set("engineVersion", ADAPTERLENS_VERSION);
  out.Set("backend", dev.name());
  out.Set("device", dev.describe());
  // Host threads still run the host parts (loading, the strategies' small eigenproblems).
  out.Set("threads", cpu_device().threads());
  Napi::Array dtypes = Napi::Array::New(env);
  uint32_t i = 0;
  for (DT dt : {DT::F32, DT::BF16, DT::F16}) {
    if (dev.supports(dt)) dtypes.Set(i++, compute_type_name(dt));
  }
  out.Set("dtypes", dtypes);
  out.Set("prefillChunk", dev.prefill_chunk());
  const DeviceMemory mem = dev.memory();
  out.Set("deviceMemoryUsed", static_cast<double>(mem.used));
  out.Set("deviceMemoryPeak", static_cast<double>(mem.peak));
  out.Set("deviceMemoryTotal", static_cast<double>(mem.total));
  out.Set("deviceToHostBytes", static_cast<double>(mem.d2h_bytes));
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

// Starts the device (on CUDA: the context, streams, cuBLAS handles) on a libuv thread, so
// that the JS thread is not held while CUDA starts; the first call that needs the device
// would otherwise start it where it is made. Rejects with the reason CUDA cannot start.
class StartDeviceJob final : public Napi::AsyncWorker {
 public:
  explicit StartDeviceJob(Napi::Env env) : Napi::AsyncWorker(env, "adapterlens.start"), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      default_device();  // constructed once; a throw leaves it unconstructed (the next call retries)
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(Env().Undefined()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
};

Napi::Value Start(const Napi::CallbackInfo& info) {
  auto* job = new StartDeviceJob(info.Env());  // deletes itself once settled
  Napi::Promise promise = job->promise();
  job->Queue();
  return promise;
}

}  // namespace

// Benchmarks: forget the peak device memory seen so far (a no-op on the CPU device).
Napi::Value ResetDevicePeak(const Napi::CallbackInfo& info) {
  default_device().reset_peak();
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // The device starts at start() (off this thread) or at the first call that needs it
  // (info() in the loader's probe, which reports why CUDA cannot start and falls back).
  auto* data = new AddonData();
  env.SetInstanceData(data);  // deleted by Node when the environment goes away
  data->model_class = Napi::Persistent(ModelWrap::Define(env));
  data->cache_class = Napi::Persistent(CacheWrap::Define(env));
  data->adapter_class = Napi::Persistent(AdapterWrap::Define(env));
  data->store_class = Napi::Persistent(StoreWrap::Define(env));
  Napi::Function cancel = CancelToken::Define(env);
  data->cancel_class = Napi::Persistent(cancel);

  exports.Set("start", Napi::Function::New<Start>(env, "start"));
  exports.Set("info", Napi::Function::New<Info>(env, "info"));
  exports.Set("CancelToken", cancel);
  exports.Set("loadModel", Napi::Function::New<LoadModel>(env, "loadModel"));
  exports.Set("resetDevicePeak", Napi::Function::New<ResetDevicePeak>(env, "resetDevicePeak"));
  return exports;
}

}  // namespace al::addon

static Napi::Object InitAdapterLens(Napi::Env env, Napi::Object exports) { return al::addon::Init(env, exports); }

NODE_API_MODULE(adapterlens_cpu, InitAdapterLens)
