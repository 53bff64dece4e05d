#include "addon/model_wrap.h"

#include <limits>
#include <string>

#include "addon/adapter_wrap.h"
#include "addon/addon.h"
#include "addon/cache_wrap.h"
#include "addon/cancel_token.h"
#include "addon/convert.h"
#include "addon/workers.h"

namespace al::addon {

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceAccessor<&ModelWrap::Bytes>("bytes"),
                         InstanceMethod<&ModelWrap::NewCache>("newCache"),
                         InstanceMethod<&ModelWrap::LoadAdapter>("loadAdapter"),
                         InstanceMethod<&ModelWrap::Prefill>("prefill"),
                         InstanceMethod<&ModelWrap::Decode>("decode"),
                         InstanceMethod<&ModelWrap::Dispose>("dispose"),
                     });
}

Napi::Object ModelWrap::New(Napi::Env env, std::shared_ptr<Model> model) {
  return addon_data(env).model_class.New({Napi::External<std::shared_ptr<Model>>::New(env, &model)});
}

ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  if (info.Length() != 1 || !info[0].IsExternal()) {
    throw Napi::TypeError::New(info.Env(), "NativeModel cannot be constructed directly; use addon.loadModel()");
  }
  model_ = *info[0].As<Napi::External<std::shared_ptr<Model>>>().Data();
  accounted_ = static_cast<int64_t>(model_->bytes);
  Napi::MemoryManagement::AdjustExternalMemory(info.Env(), accounted_);
}

ModelWrap::~ModelWrap() { release(); }

void ModelWrap::release() {
  if (!model_) return;
  model_.reset();
  Napi::MemoryManagement::AdjustExternalMemory(Env(), -accounted_);
}

const std::shared_ptr<Model>& ModelWrap::live() const {
  if (!model_) throw Napi::Error::New(Env(), "model has been disposed");
  return model_;
}

Napi::Value ModelWrap::Bytes(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(live()->bytes));
}

Napi::Value ModelWrap::NewCache(const Napi::CallbackInfo& info) {
  const Config& c = live()->config;
  const int capacity = to_int(info[0], "capacity", 1, std::numeric_limits<int32_t>::max());
  std::shared_ptr<KvCache> cache;
  try {
    cache = std::make_shared<KvCache>(c.num_layers, c.num_kv_heads, c.head_dim, capacity);
  } catch (const std::bad_alloc&) {
    const double mib = 2.0 * c.num_layers * c.kv_dim() * static_cast<double>(capacity) * sizeof(float) / (1 << 20);
    throw Napi::Error::New(info.Env(), "out of memory allocating a KV cache of capacity " + std::to_string(capacity) +
                                           " (" + std::to_string(static_cast<int64_t>(mib)) + " MiB)");
  }
  return CacheWrap::New(info.Env(), std::move(cache));
}

Napi::Value ModelWrap::LoadAdapter(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    std::shared_ptr<Model> model = live();
    std::vector<LoraModuleSpec> modules = parse_adapter_spec(info[0]);
    Napi::Function on_progress = to_optional_function(info[1], "onProgress");
    CancelFlag cancel = CancelToken::from(info[2], "cancel");
    return start_load_adapter(info.Env(), std::move(model), std::move(modules), on_progress, std::move(cancel));
  });
}

namespace {

// A cache must have the shape of the model that runs on it.
void check_cache_fits(const KvCache& cache, const Config& c, const std::string& what) {
  if (cache.num_layers() != c.num_layers || cache.num_kv_heads() != c.num_kv_heads || cache.head_dim() != c.head_dim) {
    throw std::runtime_error(what + " was created for a different model (layers, kv heads, head dim: " +
                             std::to_string(cache.num_layers()) + ", " + std::to_string(cache.num_kv_heads()) + ", " +
                             std::to_string(cache.head_dim()) + " vs " + std::to_string(c.num_layers) + ", " +
                             std::to_string(c.num_kv_heads) + ", " + std::to_string(c.head_dim) + ")");
  }
}

void check_adapter_fits(const Adapter* adapter, const Model& model, const std::string& what) {
  if (adapter && adapter->model_id != model.id) {
    throw std::runtime_error(what + " was loaded for a different model; load it with this model's loadAdapter()");
  }
}

void check_token(int32_t token, int vocab, const std::string& what) {
  if (token < 0 || token >= vocab) {
    throw std::out_of_range(what + " = " + std::to_string(token) + " is out of range: the vocabulary has " +
                            std::to_string(vocab) + " tokens (ids 0.." + std::to_string(vocab - 1) + ")");
  }
}

void check_capacity(const KvCache& cache, int start, int more, const std::string& what) {
  if (static_cast<int64_t>(start) + more > cache.capacity()) {
    throw std::out_of_range("KV cache capacity exceeded: " + what + " holds " + std::to_string(start) + " of " +
                            std::to_string(cache.capacity()) + " positions and " + std::to_string(more) +
                            " more were requested; create or fork it with capacity >= " +
                            std::to_string(static_cast<int64_t>(start) + more));
  }
}

}  // namespace

Napi::Value ModelWrap::Prefill(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    Napi::Env env = info.Env();
    std::shared_ptr<Model> model = live();
    const Config& c = model->config;
    std::shared_ptr<KvCache> cache = CacheWrap::from(info[0], "cache");

    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
      throw Napi::TypeError::New(env, "tokens must be an Int32Array");
    }
    Napi::Int32Array tokens = info[1].As<Napi::Int32Array>();
    if (tokens.ElementLength() == 0) throw Napi::RangeError::New(env, "prefill needs at least one token");
    if (tokens.ElementLength() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
      throw Napi::RangeError::New(env, "too many tokens for one prefill");
    }

    std::shared_ptr<Adapter> adapter = AdapterWrap::from_optional(info[2], "adapter");
    check_adapter_fits(adapter.get(), *model, "adapter");

    const Napi::Object options = to_object(info[3], "options");
    const int chunk = to_int(options.Get("chunkSize"), "options.chunkSize", 1, std::numeric_limits<int32_t>::max());
    const std::string mode = to_string(options.Get("logits"), "options.logits");
    LogitsMode logits;
    if (mode == "none") {
      logits = LogitsMode::None;
    } else if (mode == "last") {
      logits = LogitsMode::Last;
    } else if (mode == "all") {
      logits = LogitsMode::All;
    } else {
      throw Napi::TypeError::New(env, "options.logits must be 'none', 'last' or 'all' (got \"" + mode + "\")");
    }
    Napi::Function on_progress = to_optional_function(info[4], "onProgress");
    CancelFlag cancel = CancelToken::from(info[5], "cancel");

    check_cache_fits(*cache, c, "cache");
    const int start = cache->uniform_length();
    const int n = static_cast<int>(tokens.ElementLength());
    check_capacity(*cache, start, n, "the cache");
    std::vector<int32_t> ids(tokens.Data(), tokens.Data() + n);
    for (int i = 0; i < n; ++i) check_token(ids[i], c.vocab_size, "tokens[" + std::to_string(i) + "]");

    PrefillRequest req{std::move(model), CacheLease(std::move(cache)), std::move(adapter), std::move(ids),
                       start, chunk, logits};
    return start_prefill(env, std::move(req), on_progress, std::move(cancel));
  });
}

Napi::Value ModelWrap::Decode(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    Napi::Env env = info.Env();
    DecodeRequest req;
    req.model = live();
    const Config& c = req.model->config;
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "sequences must be an array");
    const Napi::Array seqs = info[0].As<Napi::Array>();
    if (seqs.Length() == 0) throw Napi::RangeError::New(env, "decode needs at least one sequence");
    req.want_logits = to_bool(to_object(info[1], "options").Get("logits"), "options.logits");

    for (uint32_t i = 0; i < seqs.Length(); ++i) {
      const std::string what = "sequences[" + std::to_string(i) + "]";
      const Napi::Object s = to_object(seqs.Get(i), what);
      std::shared_ptr<KvCache> cache = CacheWrap::from(s.Get("cache"), what + ".cache");
      for (uint32_t j = 0; j < i; ++j) {
        if (req.items[j].cache.get() == cache.get()) {
          throw Napi::Error::New(env, what + ".cache is the same cache as sequences[" + std::to_string(j) +
                                          "].cache; each sequence needs its own cache (fork it)");
        }
      }
      check_cache_fits(*cache, c, what + ".cache");
      const int start = cache->uniform_length();
      check_capacity(*cache, start, 1, what + ".cache");
      std::shared_ptr<Adapter> adapter = AdapterWrap::from_optional(s.Get("adapter"), what + ".adapter");
      check_adapter_fits(adapter.get(), *req.model, what + ".adapter");
      const int32_t token = to_int(s.Get("token"), what + ".token", std::numeric_limits<int32_t>::min(),
                                   std::numeric_limits<int32_t>::max());
      check_token(token, c.vocab_size, what + ".token");
      const SamplingParams sampling = parse_sampling(s.Get("sampling"), what + ".sampling");
      req.items.push_back(DecodeItem{CacheLease(std::move(cache)), std::move(adapter), token, sampling, start});
    }
    return start_decode(env, std::move(req));
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace al::addon
