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
  void Run(const JobHooks& hooks) override { model_ = load_model(default_device(), config_, tensors_, hooks); }
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
    if (req_.logits == LogitsMode::All) logits_.resize(static_cast<size_t>(n) * vocab);
    if (req_.logits == LogitsMode::Last) logits_.resize(vocab);
    std::vector<Row> rows(chunk);

    for (int t0 = 0; t0 < n; t0 += chunk) {
      const int len = std::min(chunk, n - t0);
      for (int i = 0; i < len; ++i) {
        rows[i] = {req_.cache.get(), req_.start + t0 + i, req_.adapter.get(), req_.capture_lora_v};
      }
      ForwardOutputs out;
      out.logits_from = len;
      if (req_.logits == LogitsMode::All) {
        out.logits = logits_.data() + static_cast<size_t>(t0) * vocab;
        out.logits_from = 0;
      } else if (req_.logits == LogitsMode::Last && t0 + len == n) {
        out.logits = logits_.data();
        out.logits_from = len - 1;
      }
      forward(m, req_.tokens.data() + t0, rows.data(), len, out, hooks);
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

// Rows of several sequences, item-major, in passes of at most `window · items` rows where a
// pass holds the same window of positions of every item (so items stay in step and a pass
// never needs rows another pass has not written yet).
struct BatchRows {
  std::vector<Row> rows;
  std::vector<int32_t> tokens;
  std::vector<int> item_of, index_of;  // the row's item and its index in the item's tokens
};

BatchRows batch_rows(const std::vector<BatchItem*>& items, int j0, int j1) {
  BatchRows b;
  for (size_t it = 0; it < items.size(); ++it) {
    BatchItem& item = *items[it];
    const int count = static_cast<int>(item.tokens.size());
    for (int j = j0; j < std::min(j1, count); ++j) {
      b.rows.push_back(Row{item.cache.get(), item.start + j, item.adapter.get(), false});
      b.tokens.push_back(item.tokens[j]);
      b.item_of.push_back(static_cast<int>(it));
      b.index_of.push_back(j);
    }
  }
  return b;
}

int longest_item(const std::vector<BatchItem*>& items) {
  int longest = 0;
  for (const BatchItem* it : items) longest = std::max(longest, static_cast<int>(it->tokens.size()));
  return longest;
}

class PrefillBatchJob final : public Job {
 public:
  PrefillBatchJob(Napi::Env env, PrefillBatchRequest req, Napi::Function on_progress, CancelFlag cancel)
      : Job(env, "prefillBatch", on_progress, std::move(cancel)), req_(std::move(req)) {}

 private:
  void Run(const JobHooks& hooks) override {
    std::vector<BatchItem*> items;
    for (BatchItem& it : req_.items) items.push_back(&it);
    const int longest = longest_item(items);
    const int window = std::max(1, req_.max_rows / std::max<int>(1, static_cast<int>(items.size())));
    for (int j0 = 0; j0 < longest; j0 += window) {
      BatchRows b = batch_rows(items, j0, j0 + window);
      forward(*req_.model, b.tokens.data(), b.rows.data(), static_cast<int>(b.rows.size()), ForwardOutputs{}, hooks);
      hooks.report(std::min(longest, j0 + window), longest);
    }
  }
  Napi::Value Result(Napi::Env env) override {
    for (BatchItem& it : req_.items) (*it.cache).set_length(it.start + static_cast<int>(it.tokens.size()));
    return env.Undefined();
  }
  void Finish() override {
    for (BatchItem& it : req_.items) it.cache.release();
  }

  PrefillBatchRequest req_;
};

class DecodeJob final : public Job {
 public:
  DecodeJob(Napi::Env env, DecodeRequest req) : Job(env, "decode", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks& hooks) override {
    const Model& m = *req_.model;
    const int batch = static_cast<int>(req_.items.size());
    std::vector<Row> rows(batch);
    std::vector<int32_t> tokens(batch);
    std::vector<SampleRow> samples(batch);
    for (int i = 0; i < batch; ++i) {
      const DecodeItem& it = req_.items[i];
      rows[i] = {it.cache.get(), it.start, it.adapter.get()};
      tokens[i] = it.token;
      // The counter is the token's position: a sequence's samples do not depend on the batch.
      samples[i] = SampleRow{it.sampling.temperature, it.sampling.top_p, it.sampling.seed, static_cast<uint64_t>(it.start)};
    }
    next_.resize(batch);
    probs_.resize(batch);
    if (req_.want_logits) logits_.resize(static_cast<size_t>(batch) * m.config.vocab_size);
    ForwardOutputs out;
    out.logits_from = 0;
    out.sample = samples.data();
    out.tokens = next_.data();
    out.probs = probs_.data();
    out.logits = req_.want_logits ? logits_.data() : nullptr;
    forward(m, tokens.data(), rows.data(), batch, out, hooks);
  }

  Napi::Value Result(Napi::Env env) override {
    for (DecodeItem& it : req_.items) (*it.cache).set_length(it.start + 1);
    Napi::Object out = Napi::Object::New(env);
    Napi::Int32Array tokens = Napi::Int32Array::New(env, next_.size());
    std::copy(next_.begin(), next_.end(), tokens.Data());
    out.Set("tokens", tokens);
    out.Set("probs", to_float32_array(env, probs_));
    out.Set("logits", req_.want_logits ? to_float32_array(env, logits_) : env.Null());
    return out;
  }

  void Finish() override {
    for (DecodeItem& it : req_.items) it.cache.release();
  }

  DecodeRequest req_;
  std::vector<float> logits_, probs_;
  std::vector<int32_t> next_;
};

class ScoreJob final : public Job {
 public:
  ScoreJob(Napi::Env env, ScoreRequest req, CancelFlag cancel)
      : Job(env, "score", Napi::Function(), std::move(cancel)), req_(std::move(req)) {}

 private:
  void Run(const JobHooks& hooks) override {
    const Model& m = *req_.model;
    std::vector<BatchItem*> items;
    for (ScoreItem& it : req_.items) items.push_back(&it.batch);
    results_.resize(items.size());
    for (size_t i = 0; i < items.size(); ++i) results_[i].resize(items[i]->tokens.size());
    const int longest = longest_item(items);
    // Logits stay on the device: bound the rows of a pass by what their fp32 logits take.
    const size_t logit_rows = std::max<size_t>(1, (size_t(1) << 30) / (static_cast<size_t>(m.config.vocab_size) * 4));
    const int max_rows = static_cast<int>(std::min<size_t>(logit_rows, 4096));
    const int window = std::max(1, max_rows / std::max<int>(1, static_cast<int>(items.size())));
    for (int j0 = 0; j0 < longest; j0 += window) {
      BatchRows b = batch_rows(items, j0, j0 + window);
      const int n = static_cast<int>(b.rows.size());
      // Where each (item, index) row sits in this pass, for the reference rows.
      std::vector<int> first(items.size(), -1);
      for (int r = n - 1; r >= 0; --r) first[b.item_of[r]] = r;
      std::vector<ScoreRow> score(n);
      for (int r = 0; r < n; ++r) {
        const ScoreItem& it = req_.items[b.item_of[r]];
        const int ref_first = first[it.reference];
        score[r] = ScoreRow{ref_first + (b.index_of[r] - j0), it.targets[b.index_of[r]]};
      }
      std::vector<ScoreOut> outs(n);
      ForwardOutputs out;
      out.logits_from = 0;
      out.score = score.data();
      out.scores = outs.data();
      forward(m, b.tokens.data(), b.rows.data(), n, out, hooks);
      for (int r = 0; r < n; ++r) results_[b.item_of[r]][b.index_of[r]] = outs[r];
    }
  }
  Napi::Value Result(Napi::Env env) override {
    for (ScoreItem& it : req_.items) (*it.batch.cache).set_length(it.batch.start + static_cast<int>(it.batch.tokens.size()));
    Napi::Array arr = Napi::Array::New(env, results_.size());
    for (size_t i = 0; i < results_.size(); ++i) {
      const auto& r = results_[i];
      Napi::Float64Array kl = Napi::Float64Array::New(env, r.size()), nll = Napi::Float64Array::New(env, r.size()),
                         nll_ref = Napi::Float64Array::New(env, r.size());
      Napi::Uint8Array top1 = Napi::Uint8Array::New(env, r.size());
      for (size_t j = 0; j < r.size(); ++j) {
        kl[j] = r[j].kl;
        nll[j] = r[j].nll;
        nll_ref[j] = r[j].nll_ref;
        top1[j] = r[j].argmax == r[j].argmax_ref ? 1 : 0;
      }
      Napi::Object o = Napi::Object::New(env);
      o.Set("kl", kl);
      o.Set("top1", top1);
      o.Set("nll", nll);
      o.Set("nllReference", nll_ref);
      arr.Set(static_cast<uint32_t>(i), o);
    }
    return arr;
  }
  void Finish() override {
    for (ScoreItem& it : req_.items) it.batch.cache.release();
  }

  ScoreRequest req_;
  std::vector<std::vector<ScoreOut>> results_;
};

class EncodeStoreJob final : public Job {
 public:
  EncodeStoreJob(Napi::Env env, EncodeStoreRequest req)
      : Job(env, "encodeStore", Napi::Function(), nullptr), req_(std::move(req)) {}

 private:
  void Run(const JobHooks&) override {
    store_ = encode_store(req_.spec, *req_.base, *req_.exact, req_.adapter, req_.tokens);
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
    // The store's model handle carries no weights (a store may outlive its model): the
    // rebuilt cache goes on the store's device.
    out_ = std::make_shared<KvCache>(*s.dev, s.dt, s.num_layers, s.num_kv_heads, s.head_dim, req_.capacity);
    decode_store(s, *req_.base, *out_);
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
  void Run(const JobHooks&) override { sums_ = compare_caches(*req_.rebuilt, *req_.exact, req_.tokens, req_.token_bin); }
  Napi::Value Result(Napi::Env env) override {
    Napi::Object o = Napi::Object::New(env);
    o.Set("numLayers", sums_.num_layers);
    o.Set("numKvHeads", sums_.num_kv_heads);
    o.Set("tokens", sums_.tokens);
    o.Set("tokenBin", sums_.token_bin);
    o.Set("kDiffByHead", to_float64_array(env, sums_.k_diff_head));
    o.Set("kNormByHead", to_float64_array(env, sums_.k_norm_head));
    o.Set("vDiffByHead", to_float64_array(env, sums_.v_diff_head));
    o.Set("vNormByHead", to_float64_array(env, sums_.v_norm_head));
    o.Set("kDiffByToken", to_float64_array(env, sums_.k_diff_bin));
    o.Set("kNormByToken", to_float64_array(env, sums_.k_norm_bin));
    o.Set("vDiffByToken", to_float64_array(env, sums_.v_diff_bin));
    o.Set("vNormByToken", to_float64_array(env, sums_.v_norm_bin));
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
  void Run(const JobHooks&) override { out_ = outside_span(*req_.base, *req_.exact, *req_.adapter, req_.tokens); }
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

Napi::Promise start_prefill_batch(Napi::Env env, PrefillBatchRequest request, Napi::Function on_progress,
                                  CancelFlag cancel) {
  return start<PrefillBatchJob>(env, std::move(request), on_progress, std::move(cancel));
}

Napi::Promise start_decode(Napi::Env env, DecodeRequest request) {
  return start<DecodeJob>(env, std::move(request));
}

Napi::Promise start_score(Napi::Env env, ScoreRequest request, CancelFlag cancel) {
  return start<ScoreJob>(env, std::move(request), std::move(cancel));
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
