// Per-environment state of the addon. Each Node environment (main thread, worker_threads)
// that loads the addon gets its own class constructors.
#pragma once

#include <napi.h>

namespace al::addon {

struct AddonData {
  Napi::FunctionReference model_class;
  Napi::FunctionReference cache_class;
  Napi::FunctionReference adapter_class;
  Napi::FunctionReference store_class;
  Napi::FunctionReference cancel_class;
};

AddonData& addon_data(Napi::Env env);

// A promise already rejected with `error`: async methods report bad arguments this way
// instead of throwing synchronously.
Napi::Promise rejected(Napi::Env env, const Napi::Value& error);

// Runs `body` (which returns a Promise); a Napi::Error or std::exception thrown while
// checking arguments becomes a rejected promise.
template <typename Body>
Napi::Value promise_or_reject(Napi::Env env, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error& e) {
    return rejected(env, e.Value());
  } catch (const std::bad_alloc&) {
    return rejected(env, Napi::Error::New(env, "out of memory").Value());
  } catch (const std::exception& e) {
    return rejected(env, Napi::Error::New(env, e.what()).Value());
  }
}

}  // namespace al::addon
