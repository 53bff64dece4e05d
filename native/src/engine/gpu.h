// The CUDA engine as the rest of the engine sees it. Compiled into the CUDA addon only
// (AL_CUDA defined); nothing here needs CUDA headers, so model.cpp, kv_cache.cpp, ... can
// call it behind #ifdef AL_CUDA and the CPU addon never links CUDA.
//
// In the CUDA addon every model, adapter, KV cache and strategy store lives on the GPU:
// weights, activations and caches in the compute dtype (Config::dtype), GEMMs through
// cuBLAS, the rest through the kernels in cuda/kernels.cu. Host copies exist only where
// a host algorithm needs them (an adapter's fp32 matrices for pinv, a LoRA-V capture).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/config.h"
#include "engine/tensor.h"

namespace al {

struct Model;
struct Adapter;
class KvCache;
struct KvStore;
struct StrategySpec;
struct ErrorSums;
struct Row;
struct JobHooks;
struct TensorRef;

namespace gpu {

struct DeviceInfo {
  std::string name;         // e.g. "NVIDIA H200"
  size_t total_bytes = 0;   // device memory
  int cc_major = 0, cc_minor = 0;
  int driver_version = 0;   // e.g. 13000
  int runtime_version = 0;
  std::string describe() const;  // "NVIDIA H200 (139.8 GiB, sm_90), CUDA runtime 13.0, driver 13.0"
};

// Initializes CUDA, cuBLAS and the stream once per process. Throws std::runtime_error whose
// message starts with a reason the loader classifies: "no CUDA driver", "no CUDA device",
// "CUDA driver too old", "out of device memory", "cuBLAS unavailable".
const DeviceInfo& init();
// Device memory in use by this process (for benchmarks and reports): total − free.
size_t used_bytes();
size_t peak_used_bytes();  // the largest used_bytes() seen at any allocation
void reset_peak();

struct DeviceModel;
struct DeviceAdapter;
struct DeviceKv;
struct DeviceStore;

// Which slot of the model a tensor fills.
enum class Slot { Embed, FinalNorm, LmHead, InputNorm, Wq, Bq, Wk, Bk, Wv, Bv, Wo, PostNorm, Gate, Up, Down };
struct WeightLoad {
  const TensorRef* ref;
  Shape shape;
  Slot slot;
  int layer;  // -1 for model-level slots
};

// Uploads every tensor (stored F32/F16/BF16, converted on the device to config.dtype).
std::shared_ptr<DeviceModel> load_model(const Config& c, const std::vector<WeightLoad>& loads,
                                        const std::vector<float>& inv_freq, const JobHooks& hooks);
size_t model_bytes(const DeviceModel& m);

// Copies an adapter's (host, fp32) A and B matrices to the device in the model's dtype.
std::shared_ptr<DeviceAdapter> upload_adapter(const DeviceModel& m, const Adapter& a);

// A zero-filled K/V store for one sequence, [num_layers][num_kv_heads, capacity, head_dim] each.
std::shared_ptr<DeviceKv> new_kv(ComputeType dt, int num_layers, int num_kv_heads, int head_dim, int capacity);
size_t kv_bytes(const DeviceKv& kv);
// Host fp32 views of one layer: [num_kv_heads, tokens, head_dim].
void kv_read_layer(const DeviceKv& kv, int layer, int tokens, float* k, float* v);
void kv_write_layer(DeviceKv& kv, int layer, const float* k, const float* v, int tokens);
// A copy of positions [0, lengths[l]) of each layer into a new store of `capacity`.
std::shared_ptr<DeviceKv> kv_fork(const DeviceKv& kv, int capacity, const std::vector<int>& lengths);

// The forward pass on the device (same contract as al::forward). When greedy is non-null it
// receives the argmax of each logits row (computed on the device), and `logits` may be null.
void forward(const Model& m, const int32_t* tokens, const Row* rows, int n, float* logits, int logits_from,
             int32_t* greedy, const JobHooks& hooks);

// KV strategies and metrics on device caches. base, seed-minikv, delta-int8/int4 encode and
// decode on the GPU; lragent, lowrank and hybrid take a host round trip (the caches are
// copied to host fp32, the CPU code runs, a rebuilt cache is copied back). compare_caches
// reduces each (layer, head, token) row on the GPU and sums the rows on the host (in the
// CPU's order); outside_span is a host round trip.
std::shared_ptr<KvStore> encode_store(const Model& m, const StrategySpec& spec, const KvCache& base,
                                      const KvCache& exact, std::shared_ptr<const Adapter> adapter, int tokens);
void decode_store(const Model& m, const KvStore& store, const KvCache& base, KvCache& out);
ErrorSums compare_caches(const KvCache& rebuilt, const KvCache& exact, int tokens);
std::vector<double> outside_span(const KvCache& base, const KvCache& exact, const Adapter& adapter, int tokens);

}  // namespace gpu
}  // namespace al
