#include "addon/workers.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>

#include "addon/adapter_wrap.h"
#include "addon/cache_wrap.h"
#include "addon/model_wrap.h"
#include "addon/store_wrap.h"
#include "engine/metrics.h"
#ifdef AL_CUDA
#include "engine/gpu.h"
#endif

namespace al::addon {

CacheLease::CacheLease(std::shared_ptr<KvCache> cache, Mode mode) : cache_(std::move(cache)) {
  const bool ok = mode == Exclusive ? cache_->try_acquire() : cache_->try_acquire_shared();
  if (!ok) {
    const bool written = cache_->written();
    cache_.reset();  // not ours to release
    if (written) throw std::runtime_error("the KV cache is already in use by a running prefill or decode; await it first");
    throw std::runtime_error(
        "the KV cache is being read by a running job (encodeStore, a store's decode, compareCaches or outsideSpan); "
        "await it first");
  }
}

void CacheLease::release() {
  if (cache_) cache_->release();
  cache_.reset();
}

namespace {

struct Progress {
  double done, total;
};

// Common machinery: promise, progress (one ThreadSafeFunction per job, owned by
// AsyncProgressQueueWorker, which also delays completion until every queued progress
// call has run), cancellation, and turning every C++ failure into a rejection.
class Job : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  Napi::Promise promise() const { return deferred_.Promise(); }

 protected:
  Job(Napi::Env env, const char* name, Napi::Function on_progress, CancelFlag cancel)
      : Napi::AsyncProgressQueueWorker<Progress>(env, name),
        deferred_(Napi::Promise::Deferred::New(env)),
        has_progress_(!on_progress.IsEmpty()),
        cancel_(std::move(cancel)),
        name_(name) {
    if (has_progress_) on_progress_ = Napi::Persistent(on_progress);
  }

  // Worker thread: the engine work. Throws on failure.
  virtual void Run(const JobHooks& hooks) = 0;
  // JS thread, after Run succeeded: commit state and build the resolved value.
  virtual Napi::Value Result(Napi::Env env) = 0;
  // JS thread, success or failure, before the promise settles: give leases back.
  virtual void Finish() {}

 private:
  void Execute(const ExecutionProgress& progress) override {
    JobHooks hooks;
    if (has_progress_) {
      hooks.progress = [&progress](double done, double total) {
        const Progress p{done, total};
        progress.Send(&p, 1);
      };
    }
    hooks.should_stop = [this] { return (cancel_ && cancel_->load()) || callback_failed_.load(); };
    // Nothing may escape the worker thread: every failure becomes the promise's rejection.
    try {
      hooks.check_stop();
      Run(hooks);
    } catch (const Cancelled&) {
      cancelled_ = true;
      SetError("cancelled");
    } catch (const std::bad_alloc&) {
      SetError(std::string("out of memory during ") + name_ + "; free other models or caches, or use a smaller one");
    } catch (const std::exception& e) {
      SetError(*e.what() ? e.what() : "native engine error");
    } catch (...) {
      SetError(std::string("unknown native error during ") + name_);
    }
  }

  void OnProgress(const Progress* data, size_t count) override {
    Napi::HandleScope scope(Env());
    for (size_t i = 0; i < count && !callback_failed_.load(); ++i) {
      try {
        on_progress_.Call({Napi::Number::New(Env(), data[i].done), Napi::Number::New(Env(), data[i].total)});
      } catch (const Napi::Error& e) {
        // A throwing callback stops the job, which then rejects with that exception.
        callback_error_ = Napi::Reference<Napi::Value>::New(e.Value(), 1);
        callback_failed_.store(true);
      }
    }
  }

  void OnOK() override {
    Napi::HandleScope scope(Env());
    if (callback_failed_.load()) {  // the job finished before it saw the flag
      Finish();
      deferred_.Reject(callback_error_.Value());
      return;
    }
    try {
      Napi::Value value = Result(Env());
      Finish();
      deferred_.Resolve(value);
    } catch (const Napi::Error& e) {
      Finish();
      deferred_.Reject(e.Value());
    } catch (const std::exception& e) {
      Finish();
      deferred_.Reject(Napi::Error::New(Env(), e.what()).Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    Napi::HandleScope scope(Env());
    Finish();
    if (callback_failed_.load()) {
      deferred_.Reject(callback_error_.Value());
    } else if (cancelled_) {
      Napi::Error err = Napi::Error::New(Env(), "cancelled");
      err.Set("code", Napi::String::New(Env(), "CANCELLED"));
      deferred_.Reject(err.Value());
    } else {
      deferred_.Reject(e.Value());
    }
  }

  Napi::Promise::Deferred deferred_;
  const bool has_progress_;
  Napi::FunctionReference on_progress_;
  CancelFlag cancel_;
  const char* name_;
  bool cancelled_ = false;
  std::atomic<bool> callback_failed_{false};
  Napi::Reference<Napi::Value> callback_error_;  // what the progress callback threw
};

Napi::Float32Array to_float32_array(Napi::Env env, const std::vector<float>& v) {
  Napi::Float32Array a = Napi::Float32Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(float));
  return a;
}

class LoadModelJob final : public Job {
 public:
  LoadModelJob(Napi::Env env, Config config, std::vector<TensorRef> tensors, Napi::Function on_progress,
               CancelFlag cancel)
      : Job(env, "loadModel", on_progress, std::move(cancel)),
        config_(config),
        tensors_(std::move(tensors)) {}

 private:
  void Run(const JobHooks& hooks) override { model_ = load_model(config_, tensors_, hooks); }
  Napi::Value Result(Napi::Env env) override { return ModelWrap::New(env, std::move(model_)); }

  Config config_;
  std::vector<TensorRef> tensors_;
  std::shared_ptr<Model> model_;
};

class LoadAdapterJob final : public Job {
 public:
  LoadAdapterJob(Napi::Env env, std::shared_ptr<Model> model, std::vector<LoraModuleSpec> modules,
                 Napi::Function on_progress, CancelFlag cancel)
      : Job(env, "loadAdapter", on_progress, std::move(cancel)),
        model_(std::move(model)),
        modules_(std::move(modules)) {}

 private:
  void Run(const JobHooks& hooks) override { adapter_ = load_adapter(*model_, modules_, hooks); }
  Napi::Value Result(Napi::Env env) override { return AdapterWrap::New(env, std::move(adapter_)); }

  std::shared_ptr<Model> model_;
  std::vector<LoraModuleSpec> modules_;
  std::shared_ptr<Adapter> adapter_;
};

class PrefillJob final : public Job {
 public:
  PrefillJob(Napi::Env env, PrefillRequest req, Napi::Function on_progress, CancelFlag cancel)
      : Job(env, "prefill", on_progress, std::move(cancel)), req_(std::move(req)) {}

 private:
  void Run(const JobHooks& hooks) override {
    const Model& m = *req_.model;
    const int n = static_cast<int>(req_.tokens.size());
    const int vocab = m.config.vocab_size;
    const int chunk = std::min(req_.chunk_size, n);
    // A GPU model keeps its own device scratch; the host RunState is for the CPU engine.
    std::unique_ptr<RunState> state;
    if (!m.gpu) state = std::make_unique<RunState>(m.config, chunk, req_.adapter ? req_.adapter->max_rank : 0);
    if (req_.logits == LogitsMode::All) logits_.resize(static_cast<size_t>(n) * vocab);
    if (req_.logits == LogitsMode::Last) logits_.resize(vocab);
    std::vector<Row> rows(chunk);

    for (int t0 = 0; t0 < n; t0 += chunk) {
      const int len = std::min(chunk, n - t0);
      for (int i = 0; i < len; ++i) {
        rows[i] = {req_.cache.get(), req_.start + t0 + i, req_.adapter.get(), req_.capture_lora_v};
      }
      float* out = nullptr;
      int from = len;
      if (req_.logits == LogitsMode::All) {
        out = logits_.data() + static_cast<size_t>(t0) * vocab;
        from = 0;
      } else if (req_.logits == LogitsMode::Last && t0 + len == n) {
        out = logits_.data();
        from = len - 1;
      }
      forward_any(m, state.get(), req_.tokens.data() + t0, rows.data(), len, out, from, nullptr, hooks);
      hooks.report(t0 + len, n);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    // Committed only now, on the JS thread: a failed or cancelled prefill leaves the
    // length as it was, and JS never sees a half-advanced cache.
    (*req_.cache).set_length(req_.start + static_cast<int>(req_.tokens.size()));
    if (req_.capture_lora_v) (*req_.cache).set_lora_v_length(req_.start + static_cast<int>(req_.tokens.size()));
    if (req_.logits == LogitsMode::None) return env.Null();
    return to_float32_array(env, logits_);
  }

  void Finish() override { req_.cache.release(); }

  PrefillRequest req_;
  std::vector<float> logits_;
};

class DecodeJob final : public Job {
 public:
  DecodeJob(Napi::Env env, DecodeRequest req) : Job(env, "decode", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks& hooks) override {
    const Model& m = *req_.model;
    const int batch = static_cast<int>(req_.items.size());
    const int vocab = m.config.vocab_size;
    int max_rank = 0;
    std::vector<Row> rows(batch);
    std::vector<int32_t> tokens(batch);
    for (int i = 0; i < batch; ++i) {
      const DecodeItem& it = req_.items[i];
      rows[i] = {it.cache.get(), it.start, it.adapter.get()};
      tokens[i] = it.token;
      if (it.adapter) max_rank = std::max(max_rank, it.adapter->max_rank);
    }
    std::unique_ptr<RunState> state;
    if (!m.gpu) state = std::make_unique<RunState>(m.config, batch, max_rank);
    // Greedy rows take their argmax where the logits are (on the GPU for a GPU model); the
    // logits come to the host only when asked for or when some row samples.
    bool all_greedy = true;
    for (const DecodeItem& it : req_.items) all_greedy = all_greedy && it.sampling.temperature == 0.0f;
    const bool host_logits = !m.gpu || req_.want_logits || !all_greedy;
    if (host_logits) logits_.resize(static_cast<size_t>(batch) * vocab);
    next_.resize(batch);
    forward_any(m, state.get(), tokens.data(), rows.data(), batch, host_logits ? logits_.data() : nullptr, 0,
                next_.data(), hooks);

    std::vector<double> probs;
    std::vector<int32_t> order;
    for (int i = 0; i < batch; ++i) {
      const DecodeItem& it = req_.items[i];
      if (it.sampling.temperature == 0.0f) continue;  // next_[i] is already the argmax
      next_[i] = sample_token(logits_.data() + static_cast<size_t>(i) * vocab, vocab, it.sampling,
                              static_cast<uint64_t>(it.start), probs, order);
    }
  }

  Napi::Value Result(Napi::Env env) override {
    for (DecodeItem& it : req_.items) (*it.cache).set_length(it.start + 1);
    Napi::Object out = Napi::Object::New(env);
    Napi::Int32Array tokens = Napi::Int32Array::New(env, next_.size());
    std::copy(next_.begin(), next_.end(), tokens.Data());
    out.Set("tokens", tokens);
    out.Set("logits", req_.want_logits ? to_float32_array(env, logits_) : env.Null());
    return out;
  }

  void Finish() override {
    for (DecodeItem& it : req_.items) it.cache.release();
  }

  DecodeRequest req_;
  std::vector<float> logits_;
  std::vector<int32_t> next_;
};

class EncodeStoreJob final : public Job {
 public:
  EncodeStoreJob(Napi::Env env, EncodeStoreRequest req)
      : Job(env, "encodeStore", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks&) override {
#ifdef AL_CUDA
    if (req_.model->gpu) {
      store_ = gpu::encode_store(*req_.model, req_.spec, *req_.base, *req_.exact, req_.adapter, req_.tokens);
      return;
    }
#endif
    store_ = encode_store(*req_.model->backend, req_.spec, *req_.base, *req_.exact, req_.adapter, req_.tokens);
  }
  Napi::Value Result(Napi::Env env) override { return StoreWrap::New(env, req_.model, std::move(store_)); }
  void Finish() override {
    req_.base.release();
    req_.exact.release();
  }

  EncodeStoreRequest req_;
  std::shared_ptr<const KvStore> store_;
};

class StoreDecodeJob final : public Job {
 public:
  StoreDecodeJob(Napi::Env env, StoreDecodeRequest req)
      : Job(env, "store decode", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks&) override {
    const KvStore& s = *req_.store;
#ifdef AL_CUDA
    // The store's model handle carries no weights (a store may outlive its model), so the
    // base cache says where the rebuilt one goes.
    if ((*req_.base).on_device()) {
      const Config& c = req_.model->config;
      out_ = std::make_shared<KvCache>(s.num_layers, s.num_kv_heads, s.head_dim, req_.capacity,
                                       gpu::new_kv(c.dtype, s.num_layers, s.num_kv_heads, s.head_dim, req_.capacity));
      return gpu::decode_store(*req_.model, s, *req_.base, *out_);
    }
#endif
    out_ = new_cache(*req_.model, req_.capacity);
    decode_store(*req_.model->backend, s, *req_.base, *out_);
  }
  Napi::Value Result(Napi::Env env) override { return CacheWrap::New(env, std::move(out_)); }
  void Finish() override { req_.base.release(); }

  StoreDecodeRequest req_;
  std::shared_ptr<KvCache> out_;
};

Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<double>& v) {
  Napi::Float64Array a = Napi::Float64Array::New(env, v.size());
  if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * sizeof(double));
  return a;
}

class CompareCachesJob final : public Job {
 public:
  CompareCachesJob(Napi::Env env, CompareRequest req)
      : Job(env, "compareCaches", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks&) override {
#ifdef AL_CUDA
    if ((*req_.exact).on_device()) {
      sums_ = gpu::compare_caches(*req_.rebuilt, *req_.exact, req_.tokens);
      return;
    }
#endif
    sums_ = compare_caches(*req_.rebuilt, *req_.exact, req_.tokens);
  }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("numLayers", sums_.num_layers);
    o.Set("numKvHeads", sums_.num_kv_heads);
    o.Set("tokens", sums_.tokens);
    o.Set("kDiffByHead", to_float64_array(env, sums_.k_diff_head));
    o.Set("kNormByHead", to_float64_array(env, sums_.k_norm_head));
    o.Set("vDiffByHead", to_float64_array(env, sums_.v_diff_head));
    o.Set("vNormByHead", to_float64_array(env, sums_.v_norm_head));
    o.Set("kDiffByToken", to_float64_array(env, sums_.k_diff_token));
    o.Set("kNormByToken", to_float64_array(env, sums_.k_norm_token));
    o.Set("vDiffByToken", to_float64_array(env, sums_.v_diff_token));
    o.Set("vNormByToken", to_float64_array(env, sums_.v_norm_token));
    return o;
  }
  void Finish() override {
    req_.rebuilt.release();
    req_.exact.release();
  }

  CompareRequest req_;
  ErrorSums sums_;
};

class OutsideSpanJob final : public Job {
 public:
  OutsideSpanJob(Napi::Env env, OutsideSpanRequest req)
      : Job(env, "outsideSpan", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks&) override {
#ifdef AL_CUDA
    if ((*req_.exact).on_device()) {
      out_ = gpu::outside_span(*req_.base, *req_.exact, *req_.adapter, req_.tokens);
      return;
    }
#endif
    out_ = outside_span(*req_.base, *req_.exact, *req_.adapter, req_.tokens);
  }
  Napi::Value Result(Napi::Env env) override { return to_float64_array(env, out_); }
  void Finish() override {
    req_.base.release();
    req_.exact.release();
  }

  OutsideSpanRequest req_;
  std::vector<double> out_;
};

template <typename J, typename... Args>
Napi::Promise start(Napi::Env env, Args&&... args) {
  J* job = new J(env, std::forward<Args>(args)...);  // deletes itself when it completes
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

}  // namespace

Napi::Promise start_load_model(Napi::Env env, Config config, std::vector<TensorRef> tensors,
                               Napi::Function on_progress, CancelFlag cancel) {
  return start<LoadModelJob>(env, config, std::move(tensors), on_progress, std::move(cancel));
}

Napi::Promise start_load_adapter(Napi::Env env, std::shared_ptr<Model> model, std::vector<LoraModuleSpec> modules,
                                 Napi::Function on_progress, CancelFlag cancel) {
  return start<LoadAdapterJob>(env, std::move(model), std::move(modules), on_progress, std::move(cancel));
}

Napi::Promise start_prefill(Napi::Env env, PrefillRequest request, Napi::Function on_progress, CancelFlag cancel) {
  return start<PrefillJob>(env, std::move(request), on_progress, std::move(cancel));
}

Napi::Promise start_decode(Napi::Env env, DecodeRequest request) {
  return start<DecodeJob>(env, std::move(request));
}

Napi::Promise start_encode_store(Napi::Env env, EncodeStoreRequest request) {
  return start<EncodeStoreJob>(env, std::move(request));
}

Napi::Promise start_store_decode(Napi::Env env, StoreDecodeRequest request) {
  return start<StoreDecodeJob>(env, std::move(request));
}

Napi::Promise start_compare_caches(Napi::Env env, CompareRequest request) {
  return start<CompareCachesJob>(env, std::move(request));
}

Napi::Promise start_outside_span(Napi::Env env, OutsideSpanRequest request) {
  return start<OutsideSpanJob>(env, std::move(request));
}

}  // namespace al::addon
