#include "addon/model_wrap.h"

#include <limits>
#include <string>

#include "addon/adapter_wrap.h"
#include "addon/addon.h"
#include "addon/cache_wrap.h"
#include "addon/cancel_token.h"
#include "addon/convert.h"
#include "addon/store_wrap.h"
#include "addon/workers.h"

namespace al::addon {

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeModel",
                     {
                         InstanceAccessor<&ModelWrap::Bytes>("bytes"),
                         InstanceMethod<&ModelWrap::NewCache>("newCache"),
                         InstanceMethod<&ModelWrap::NewView>("newView"),
                         InstanceMethod<&ModelWrap::PrefillBatch>("prefillBatch"),
                         InstanceMethod<&ModelWrap::Score>("score"),
                         InstanceMethod<&ModelWrap::LoadAdapter>("loadAdapter"),
                         InstanceMethod<&ModelWrap::Prefill>("prefill"),
                         InstanceMethod<&ModelWrap::Decode>("decode"),
                         InstanceMethod<&ModelWrap::EncodeStore>("encodeStore"),
                         InstanceMethod<&ModelWrap::CompareCaches>("compareCaches"),
                         InstanceMethod<&ModelWrap::OutsideSpan>("outsideSpan"),
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
    cache = new_cache(*live(), capacity);
  } catch (const std::bad_alloc&) {
    const double mib = 2.0 * c.num_layers * c.kv_dim() * static_cast<double>(capacity) * sizeof(float) / (1 << 20);
    throw Napi::Error::New(info.Env(), "out of memory allocating a KV cache of capacity " + std::to_string(capacity) +
                                           " (" + std::to_string(static_cast<int64_t>(mib)) + " MiB)");
  }
  return CacheWrap::New(info.Env(), std::move(cache));
}

Napi::Value ModelWrap::NewView(const Napi::CallbackInfo& info) {
  const Config& c = live()->config;
  const Napi::Object prefix = to_object(info[0], "prefix");
  std::shared_ptr<KvCache> cache = CacheWrap::from(prefix.Get("cache"), "prefix.cache");
  check_cache_fits(*cache, c, "prefix.cache");
  std::shared_ptr<const KvStore> store;
  const Napi::Value sv = prefix.Get("store");
  if (!sv.IsNull() && !sv.IsUndefined()) store = StoreWrap::from(sv, "prefix.store");
  if (cache->is_view()) throw Napi::TypeError::New(info.Env(), "prefix.cache must be a plain cache (from newCache), not a view");
  const int length = to_int(prefix.Get("length"), "prefix.length", 0, cache->length());
  if (cache->written()) {
    throw Napi::Error::New(info.Env(), "prefix.cache is being written by a running prefill or decode; await it first");
  }
  const int capacity = to_int(info[1], "capacity", std::max(length, 1), std::numeric_limits<int32_t>::max());
  if (store && store->tokens < length) {
    throw Napi::RangeError::New(info.Env(), "prefix.store holds " + std::to_string(store->tokens) +
                                                " positions but prefix.length is " + std::to_string(length));
  }
  return CacheWrap::New(info.Env(), KvCache::view(std::move(cache), std::move(store), length, capacity));
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
    const Napi::Value capture_opt = options.Get("captureLoraV");
    const bool capture = !capture_opt.IsUndefined() && to_bool(capture_opt, "options.captureLoraV");
    Napi::Function on_progress = to_optional_function(info[4], "onProgress");
    CancelFlag cancel = CancelToken::from(info[5], "cancel");

    check_cache_fits(*cache, c, "cache");
    const int start = cache->uniform_length();
    const int n = static_cast<int>(tokens.ElementLength());
    check_capacity(*cache, start, n, "the cache");
    std::vector<int32_t> ids(tokens.Data(), tokens.Data() + n);
    for (int i = 0; i < n; ++i) check_token(ids[i], c.vocab_size, "tokens[" + std::to_string(i) + "]");

    // captureLoraV appends to a capture that covers every earlier position, from this
    // same adapter; or starts one on an empty cache.
    bool fresh_capture = false;
    if (capture) {
      if (!adapter) {
        throw Napi::TypeError::New(env, "options.captureLoraV keeps the adapter's own LoRA-V inputs: pass the adapter");
      }
      const LoraVCapture* cap = cache->lora_v();
      const bool continues = cap && cap->adapter_id == adapter->id && cap->length == start;
      if (!continues) {
        if (start != 0) {
          throw Napi::Error::New(env, "options.captureLoraV: the cache holds " + std::to_string(start) +
                                          " positions whose LoRA-V inputs of this adapter were not captured (" +
                                          (cap ? std::to_string(cap->length) + " were" : "none was") +
                                          "); prefill from an empty cache with captureLoraV");
        }
        fresh_capture = true;
      }
    }

    CacheLease lease(std::move(cache));
    // Set up only now that the cache is ours: no job can be reading the capture.
    if (fresh_capture) (*lease).begin_lora_v_capture(adapter->id, adapter->v_ranks());
    PrefillRequest req{std::move(model), std::move(lease), std::move(adapter), std::move(ids),
                       start, chunk, logits, capture};
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

namespace {

// One {cache, adapter, tokens} item of a batch call, checked: the cache fits the model and
// has room, the tokens are in the vocabulary; no cache appears twice.
BatchItem parse_batch_item(const Napi::Value& v, const Model& model, const std::string& what,
                           std::vector<const KvCache*>& earlier) {
  const Config& c = model.config;
  const Napi::Object o = to_object(v, what);
  std::shared_ptr<KvCache> cache = CacheWrap::from(o.Get("cache"), what + ".cache");
  for (size_t j = 0; j < earlier.size(); ++j) {
    if (earlier[j] == cache.get()) {
      throw Napi::Error::New(v.Env(), what + ".cache is the same cache as item " + std::to_string(j) +
                                          "; each sequence needs its own cache");
    }
  }
  check_cache_fits(*cache, c, what + ".cache");
  std::shared_ptr<Adapter> adapter = AdapterWrap::from_optional(o.Get("adapter"), what + ".adapter");
  check_adapter_fits(adapter.get(), model, what + ".adapter");
  const Napi::Value tv = o.Get("tokens");
  if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw Napi::TypeError::New(v.Env(), what + ".tokens must be an Int32Array");
  }
  Napi::Int32Array t = tv.As<Napi::Int32Array>();
  std::vector<int32_t> ids(t.Data(), t.Data() + t.ElementLength());
  for (size_t i = 0; i < ids.size(); ++i) check_token(ids[i], c.vocab_size, what + ".tokens[" + std::to_string(i) + "]");
  const int start = cache->uniform_length();
  check_capacity(*cache, start, static_cast<int>(ids.size()), what + ".cache");
  earlier.push_back(cache.get());
  return BatchItem{CacheLease(std::move(cache)), std::move(adapter), std::move(ids), start};
}

}  // namespace

Napi::Value ModelWrap::PrefillBatch(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    PrefillBatchRequest req;
    req.model = live();
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "items must be an array");
    const Napi::Array items = info[0].As<Napi::Array>();
    std::vector<const KvCache*> seen;
    for (uint32_t i = 0; i < items.Length(); ++i) {
      req.items.push_back(parse_batch_item(items.Get(i), *req.model, "items[" + std::to_string(i) + "]", seen));
    }
    const Napi::Object options = to_object(info[1], "options");
    req.max_rows = to_int(options.Get("maxRows"), "options.maxRows", 1, 1 << 20);
    Napi::Function on_progress = to_optional_function(info[2], "onProgress");
    CancelFlag cancel = CancelToken::from(info[3], "cancel");
    return start_prefill_batch(info.Env(), std::move(req), on_progress, std::move(cancel));
  });
}

Napi::Value ModelWrap::Score(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    ScoreRequest req;
    req.model = live();
    if (!info[0].IsArray()) throw Napi::TypeError::New(info.Env(), "items must be an array");
    const Napi::Array items = info[0].As<Napi::Array>();
    std::vector<const KvCache*> seen;  // for the duplicate-cache check
    for (uint32_t i = 0; i < items.Length(); ++i) {
      const std::string what = "items[" + std::to_string(i) + "]";
      const Napi::Object o = to_object(items.Get(i), what);
      BatchItem batch = parse_batch_item(o, *req.model, what, seen);
      const Napi::Value tv = o.Get("targets");
      if (!tv.IsTypedArray() || tv.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
        throw Napi::TypeError::New(info.Env(), what + ".targets must be an Int32Array");
      }
      Napi::Int32Array t = tv.As<Napi::Int32Array>();
      std::vector<int32_t> targets(t.Data(), t.Data() + t.ElementLength());
      if (targets.size() != batch.tokens.size()) {
        throw Napi::RangeError::New(info.Env(), what + ".targets must have one token per fed token");
      }
      for (size_t j = 0; j < targets.size(); ++j) {
        check_token(targets[j], req.model->config.vocab_size, what + ".targets[" + std::to_string(j) + "]");
      }
      const int reference = to_int(o.Get("reference"), what + ".reference", 0, static_cast<int64_t>(items.Length()) - 1);
      ScoreItem it{std::move(batch), std::move(targets), reference};
      req.items.push_back(std::move(it));
    }
    for (size_t i = 0; i < req.items.size(); ++i) {
      const ScoreItem& it = req.items[i];
      if (req.items[it.reference].batch.tokens.size() != it.batch.tokens.size()) {
        throw Napi::RangeError::New(info.Env(), "items[" + std::to_string(i) + "] and its reference items[" +
                                                    std::to_string(it.reference) + "] must feed the same number of tokens");
      }
    }
    CancelFlag cancel = CancelToken::from(info[1], "cancel");
    return start_score(info.Env(), std::move(req), std::move(cancel));
  });
}

namespace {

// The common length of two caches of one document: both must hold exactly T positions.
int same_length(const KvCache& base, const KvCache& exact, const char* op) {
  const int tb = base.uniform_length(), te = exact.uniform_length();
  if (tb != te) {
    throw std::runtime_error(std::string(op) + ": base holds " + std::to_string(tb) + " positions and exact holds " +
                             std::to_string(te) + "; both must be prefilled over the same document");
  }
  if (tb == 0) throw std::runtime_error(std::string(op) + ": the caches are empty; prefill the document first");
  return tb;
}

std::shared_ptr<Adapter> required_adapter(const Napi::Value& v, const Model& model) {
  std::shared_ptr<Adapter> adapter = AdapterWrap::from_optional(v, "adapter");
  if (!adapter) throw Napi::TypeError::New(v.Env(), "adapter must be a NativeAdapter (from model.loadAdapter())");
  check_adapter_fits(adapter.get(), model, "adapter");
  return adapter;
}

}  // namespace

Napi::Value ModelWrap::EncodeStore(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    std::shared_ptr<Model> model = live();
    const Config& c = model->config;
    StrategySpec spec = parse_strategy(info[0], c.num_layers);
    if (spec.kind == StrategyKind::Pca) spec.inv_freq = model->inv_freq;  // ΔK is coded before RoPE
    std::shared_ptr<KvCache> base = CacheWrap::from(info[1], "base");
    std::shared_ptr<KvCache> exact = CacheWrap::from(info[2], "exact");
    std::shared_ptr<Adapter> adapter = required_adapter(info[3], *model);
    check_cache_fits(*base, c, "base");
    check_cache_fits(*exact, c, "exact");
    if (base->is_view() || exact->is_view()) throw Napi::TypeError::New(info.Env(), "encodeStore: base and exact must be plain caches");
    const int tokens = same_length(*base, *exact, "encodeStore");
    EncodeStoreRequest req{std::move(model), std::move(spec), CacheLease(std::move(base), CacheLease::Shared),
                           CacheLease(std::move(exact), CacheLease::Shared), std::move(adapter), tokens};
    return start_encode_store(info.Env(), std::move(req));
  });
}

Napi::Value ModelWrap::CompareCaches(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    const Config& c = live()->config;
    std::shared_ptr<KvCache> rebuilt = CacheWrap::from(info[0], "rebuilt");
    std::shared_ptr<KvCache> exact = CacheWrap::from(info[1], "exact");
    check_cache_fits(*rebuilt, c, "rebuilt");
    check_cache_fits(*exact, c, "exact");
    const int tokens = std::min(rebuilt->uniform_length(), exact->uniform_length());
    int bin = 1;
    if (info.Length() > 2 && !info[2].IsUndefined() && !info[2].IsNull()) {
      const Napi::Value b = to_object(info[2], "options").Get("tokenBin");
      if (!b.IsUndefined()) bin = to_int(b, "options.tokenBin", 1, std::numeric_limits<int32_t>::max());
    }
    if (exact->is_view()) throw Napi::TypeError::New(info.Env(), "exact must be a plain cache (the adapter's own), not a view");
    CompareRequest req{CacheLease(std::move(rebuilt), CacheLease::Shared), CacheLease(std::move(exact), CacheLease::Shared),
                       tokens, bin};
    return start_compare_caches(info.Env(), std::move(req));
  });
}

Napi::Value ModelWrap::OutsideSpan(const Napi::CallbackInfo& info) {
  return promise_or_reject(info.Env(), [&] {
    std::shared_ptr<Model> model = live();
    const Config& c = model->config;
    std::shared_ptr<KvCache> base = CacheWrap::from(info[0], "base");
    std::shared_ptr<KvCache> exact = CacheWrap::from(info[1], "exact");
    std::shared_ptr<Adapter> adapter = required_adapter(info[2], *model);
    check_cache_fits(*base, c, "base");
    check_cache_fits(*exact, c, "exact");
    if (base->is_view() || exact->is_view()) throw Napi::TypeError::New(info.Env(), "outsideSpan: base and exact must be plain caches");
    const int tokens = same_length(*base, *exact, "outsideSpan");
    OutsideSpanRequest req{CacheLease(std::move(base), CacheLease::Shared), CacheLease(std::move(exact), CacheLease::Shared),
                           std::move(adapter), tokens};
    return start_outside_span(info.Env(), std::move(req));
  });
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

}  // namespace al::addon
