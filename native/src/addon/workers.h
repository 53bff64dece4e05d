// The heavy calls (loadModel, loadAdapter, prefill, prefillBatch, decode, score, and the
// strategy jobs: encodeStore, a store's decode, compareCaches, outsideSpan) as
// Promise-returning workers. Arguments are parsed and checked on the JS thread by the
// wraps; a job then runs the engine on a libuv worker thread, reports progress through its
// ThreadSafeFunction, and settles its promise on the JS thread.
#pragma once

#include <napi.h>

#include <memory>
#include <vector>

#include "addon/cancel_token.h"
#include "engine/config.h"
#include "engine/kv_cache.h"
#include "engine/kv_store.h"
#include "engine/lora.h"
#include "engine/model.h"
#include "engine/sampling.h"
#include "engine/weights.h"

namespace al::addon {

// Use of a cache by one job, from submission until its promise settles: exclusive for
// jobs that write it (prefill, decode, score), shared for jobs that only read it
// (encodeStore, a store's decode, compareCaches, outsideSpan).
class CacheLease {
 public:
  enum Mode { Exclusive, Shared };
  // Throws when a conflicting job holds the cache.
  explicit CacheLease(std::shared_ptr<KvCache> cache, Mode mode = Exclusive);
  CacheLease(CacheLease&& other) noexcept = default;
  CacheLease& operator=(CacheLease&&) = delete;
  CacheLease(const CacheLease&) = delete;
  ~CacheLease() { release(); }

  KvCache& operator*() const { return *cache_; }
  KvCache* get() const { return cache_.get(); }
  void release();

 private:
  std::shared_ptr<KvCache> cache_;
};

enum class LogitsMode { None, Last, All };

struct PrefillRequest {
  std::shared_ptr<Model> model;
  CacheLease cache;
  std::shared_ptr<Adapter> adapter;  // may be null
  std::vector<int32_t> tokens;       // copied: JS may reuse its array meanwhile
  int start = 0;                     // cache length at submission
  int chunk_size = 1;
  LogitsMode logits = LogitsMode::None;
  bool capture_lora_v = false;       // the cache's LoRA-V capture is set up for this prefill
};

// Tokens of several sequences (each its own cache and adapter) run as rows of shared passes.
struct BatchItem {
  CacheLease cache;
  std::shared_ptr<Adapter> adapter;  // may be null
  std::vector<int32_t> tokens;
  int start = 0;                     // cache length at submission
};
struct PrefillBatchRequest {
  std::shared_ptr<Model> model;
  std::vector<BatchItem> items;
  int max_rows = 1;  // rows per pass
};

struct DecodeItem {
  CacheLease cache;
  std::shared_ptr<Adapter> adapter;  // may be null
  int32_t token = 0;
  SamplingParams sampling;
  int start = 0;                     // cache length at submission: the token's position
};

struct DecodeRequest {
  std::shared_ptr<Model> model;
  std::vector<DecodeItem> items;
  bool want_logits = false;
};

// Teacher-forced scoring: each item's tokens run as rows (appended to its cache); row j of
// item i predicts targets[j] and is scored against row j of item `reference` (its own
// distribution for the reference item itself).
struct ScoreItem {
  BatchItem batch;
  std::vector<int32_t> targets;  // [tokens.size()]
  int reference = 0;             // index of the item whose distribution is the reference
};
struct ScoreRequest {
  std::shared_ptr<Model> model;
  std::vector<ScoreItem> items;
};

// Each returns the job's promise. on_progress may be empty, cancel may be null.
Napi::Promise start_load_model(Napi::Env env, Config config, std::vector<TensorRef> tensors,
                               Napi::Function on_progress, CancelFlag cancel);
Napi::Promise start_load_adapter(Napi::Env env, std::shared_ptr<Model> model, std::vector<LoraModuleSpec> modules,
                                 Napi::Function on_progress, CancelFlag cancel);
Napi::Promise start_prefill(Napi::Env env, PrefillRequest request, Napi::Function on_progress, CancelFlag cancel);
Napi::Promise start_prefill_batch(Napi::Env env, PrefillBatchRequest request, Napi::Function on_progress,
                                  CancelFlag cancel);
Napi::Promise start_decode(Napi::Env env, DecodeRequest request);
Napi::Promise start_score(Napi::Env env, ScoreRequest request, CancelFlag cancel);

// The KV strategies and metrics (engine/kv_store.h, engine/metrics.h). `tokens` is the
// length checked on the JS thread at submission.
struct EncodeStoreRequest {
  std::shared_ptr<Model> model;
  StrategySpec spec;
  CacheLease base, exact;  // shared
  std::shared_ptr<Adapter> adapter;
  int tokens = 0;
};
Napi::Promise start_encode_store(Napi::Env env, EncodeStoreRequest request);

struct StoreDecodeRequest {
  std::shared_ptr<Model> model;
  std::shared_ptr<const KvStore> store;
  CacheLease base;  // shared
  int capacity = 0;
};
Napi::Promise start_store_decode(Napi::Env env, StoreDecodeRequest request);

struct CompareRequest {
  CacheLease rebuilt, exact;  // shared
  int tokens = 0;
  int token_bin = 1;
};
Napi::Promise start_compare_caches(Napi::Env env, CompareRequest request);

struct OutsideSpanRequest {
  CacheLease base, exact;  // shared
  std::shared_ptr<Adapter> adapter;
  int tokens = 0;
};
Napi::Promise start_outside_span(Napi::Env env, OutsideSpanRequest request);

}  // namespace al::addon
