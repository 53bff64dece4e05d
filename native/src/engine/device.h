// The device interface: buffers plus the named ops that the one forward pass (model.cpp),
// every strategy's encode and decode (kv_store.cpp, lowrank.cpp) and every metric
// (metrics.cpp) are written against, in the shape of ggml's backend interface. Two devices
// implement it: the CPU device (device_cpu.cpp: fp32, OpenMP; the reference of every op)
// and the CUDA device (cuda/device_cuda.cu, with its kernels split by job under cuda/).
// An op has the same name and meaning on both; tests/cuda/backend_ops.cu runs a table of
// cases through both and compares them, and fails when an op listed in kDeviceOps has no case.
//
// Conventions:
// - All pointers are device memory of the device that runs the op (host memory for the CPU
//   device). "T" buffers hold the compute dtype `dt` (fp32, bf16 or fp16); every op
//   computes in fp32 (double where its CPU reference does) and rounds once to T on store.
// - Matrices are row-major. A KV layer is [kv_heads, capacity, head_dim] of T: position j of
//   head h at (h·capacity + j)·head_dim.
// - Ops are queued in order on the device's one stream; a download returns once its data is
//   on the host. Callers hold lock() around every use of a device.
#pragma once

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/config.h"

namespace al {

using DT = ComputeType;

inline size_t dt_size(DT dt) { return dt == DT::F32 ? 4 : 2; }

// A per-row table the host plans with and the device's kernels read: `host` always valid,
// `dev` the same entries in device memory (== host on the CPU device).
template <typename X>
struct Table {
  const X* host = nullptr;
  const X* dev = nullptr;
  int n = 0;
  const X& operator[](int i) const { return host[i]; }
};

// ---- op argument types ------------------------------------------------------------------

// Where one token row's new K/V go: its cache's own storage (layer 0 address, layer stride
// in elements) and the slot there (position − the storage's first position).
struct KvWrite {
  void* k;
  void* v;
  int64_t layer_stride;
  int capacity;  // slots per head
  int slot;
};

// One row's LoRA for one Linear: y += scale · B (A x). A null `a`: no LoRA on this row.
struct LoraRow {
  const void* a;  // T [rank, in]
  const void* b;  // T [out, rank]
  int rank;
  float scale;
  float* capture;  // fp32 [rank], or null: receives scale · (A x) (the lragent strategy's input)
};
// One Linear of a group that shares the input x (q/k/v, or gate/up): its output and rows.
struct LoraOutput {
  void* y;  // T [n, out], rows `ld` apart
  int out;
  Table<LoraRow> rows;  // [n]
  int ld = 0;           // elements from one row of y to the next; 0: out (a stacked projection's part: its width)
  int stride() const { return ld ? ld : out; }
};

// Attention over shared caches (decode, multi-sequence prefill): a "span" is a stretch of one
// layer's K/V that several query rows read; a "part" is one row's use of one span, with the
// store correction that row applies to it. Partial softmax states of the parts are merged per
// row by log-sum-exp. Rows derived from one base cache share its span, so its K/V are read
// once per step for all of them (cascade attention, as in Hydragen / FlashInfer).
struct AttnSpan {
  const void* k;  // T, this layer's [kv_heads, capacity, head_dim]
  const void* v;
  int capacity;   // slots per head
  int begin;      // the position slot 0 holds
  int extent;     // keys any part may read: positions [begin, begin + extent)
  int chunks;     // key chunks of `chunk` keys the span is split into (device-dependent)
};
// A strategy's store as attention applies it to keys [0, tokens) of a base span, without
// rebuilding K/V: K = K_base + ΔK, V = V_base + ΔV with
//   ΔK, ΔV quantized per (kv head, token): q [kv_heads, tokens, row_bytes], scale [kv_heads, tokens];
//   ΔK low-rank: ck [tokens, rk] · bkᵀ, bk [kv_dim, rk] (fp32);
//   ΔV low-rank: cv [tokens, rv] · bvᵀ, bv [kv_dim, rv] (fp32; seed-minikv and lragent: B_v).
// Scores use q·K_base + q·ΔK; outputs P·V_base + P·ΔV_quantized + bv_h (P·cv).
struct AttnCorrection {
  const uint8_t* qk = nullptr;
  const float* sk = nullptr;
  const uint8_t* qv = nullptr;
  const float* sv = nullptr;
  int bits = 0;  // 8 or 4 when quantized
  const float* ck = nullptr;
  const float* bk = nullptr;
  int rk = 0;
  const float* cv = nullptr;
  const float* bv = nullptr;
  int rv = 0;
  int tokens = 0;
};
struct AttnPart {
  int row;       // query row
  int span;      // index into the layer's spans
  int end;       // keys [span.begin, end)
  int corr;      // index into the layer's corrections, or -1
  int64_t out;   // offset (floats) of this part's partials: [num_heads][span.chunks][stride]
};
// Up to kAttnTileQueries queries of one span that all apply the same correction (or none):
// the tensor-core kernel's work item, so that one warp stages one store's data and no warp
// computes a correction for rows that do not use it. A span's queries are its parts × the
// query heads of a kv head, in part order: query i is part span_parts[span] + i / group, head
// kv_head · group + i % group (group = heads / kv_heads). The planner orders a span's parts
// so that those of one store are consecutive.
constexpr int kAttnTileQueries = 16;
struct AttnTile {
  int span;
  int q0;     // first query of the tile, among the span's queries
  int nrows;  // queries in the tile, 1..kAttnTileQueries
};
// The order the planner keeps a layer's tiles in (stable within a class): 0 without a
// correction, 1 low-rank only, 2 quantized to 8 bits, 3 quantized otherwise (4 bits). A kernel
// may launch each class on its own (CUDA: with the quantized values' width compiled in).
constexpr int kAttnTileClasses = 4;
inline int attn_tile_class(const AttnCorrection* c) {
  if (!c) return 0;
  if (c->qk || c->qv) return c->bits == 8 ? 2 : 3;
  return c->ck || c->cv ? 1 : 0;
}
// One layer's plan. parts are grouped by span (span s owns parts [span_parts[s], span_parts[s+1]));
// row_parts lists each row's parts (row r: row_parts[row_parts_begin[r] .. row_parts_begin[r+1])).
struct AttnPlan {
  Table<AttnSpan> spans;
  Table<AttnPart> parts;
  Table<AttnCorrection> corrs;
  Table<int> span_parts;       // [spans + 1]
  Table<int> row_parts;        // [parts]
  Table<int> row_parts_begin;  // [rows + 1]
  Table<AttnTile> tiles;       // every span's queries, split where the correction changes
  int chunk = 0;               // keys per chunk
  int stride = 0;              // floats per partial: 2 + head_dim + max rv
  float* partials = nullptr;   // scratch, AttnPlanner::partial_floats
};

// Sampling of one logits row: temperature 0 is greedy (argmax, lowest id on ties); otherwise
// softmax(logits / temperature) restricted to the nucleus (the smallest most-probable set
// with mass ≥ top_p, ties by lower id), sampled by inverse CDF in id order with
// counter_uniform(seed, counter).
struct SampleRow {
  float temperature;
  float top_p;
  uint64_t seed;
  uint64_t counter;
};

// Teacher-forced scoring of one logits row against a reference row (the exact cache's
// distribution at the same position): KL(p_ref ‖ p), both argmaxes, −log p(target) of both.
struct ScoreRow {
  int ref;     // reference row (itself for the exact cache's rows)
  int target;  // the continuation token this row predicts
};
struct ScoreOut {
  double kl;
  double nll;
  double nll_ref;
  int32_t argmax;
  int32_t argmax_ref;
};

struct DeviceMemory {
  size_t used = 0;        // bytes this process holds on the device (0 on the CPU device: not tracked)
  size_t peak = 0;        // largest `used` since start or reset_peak()
  size_t total = 0;       // device memory (0 on the CPU device)
  uint64_t d2h_bytes = 0; // bytes copied device → host since start (results only, never caches)
};

// A device holds memory and runs ops. Every op here is implemented by every device.
class Device {
 public:
  virtual ~Device() = default;

  virtual const char* name() const = 0;       // "cpu", "cuda"
  virtual std::string describe() const = 0;   // "x86_64 CPU, 16 threads", "NVIDIA H200 (139.8 GiB, sm_90), ..."
  virtual int threads() const = 0;            // host threads the device's host work uses
  virtual bool supports(DT dt) const = 0;     // compute dtypes it runs
  // Keys per attention chunk (parts are split into chunks that run in parallel); a device
  // that does not split returns a very large number.
  virtual int attention_chunk() const = 0;
  // Token rows a prefill chunk should hold on this device (progress and cancel between chunks).
  virtual int prefill_chunk() const = 0;
  // Whether y = x Wᵀ for n rows should run on the stacked q/k/v (gate/up) weights as one
  // product whose rows the next ops read as they are (qkv_rope_store, swiglu_stacked), rather
  // than one product per part straight into its output.
  virtual bool prefers_stacked(int n) const = 0;

  // Serializes every use of the device (stream, handles, a model's scratch).
  virtual std::unique_lock<std::recursive_mutex> lock() = 0;

  // ---- memory -----------------------------------------------------------------------------
  // Allocates `bytes` (contents undefined); throws std::runtime_error naming `what`, the size
  // and the free memory when it cannot. 0 bytes returns nullptr.
  virtual void* alloc(size_t bytes, const char* what) = 0;
  virtual void release(void* p) = 0;
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  // Counted in memory().d2h_bytes.
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void memset0(void* p, size_t bytes) = 0;
  // Waits for every queued op; throws naming `what` if one failed.
  virtual void sync(const char* what) = 0;
  virtual DeviceMemory memory() const = 0;
  virtual void reset_peak() = 0;

  // Runs `enqueue` (which only queues device work: no host reads of device data, no
  // allocation) either directly, or captured once as a graph under `key` and replayed while
  // the key stays the same (the CUDA device: a decode step as one CUDA graph).
  virtual void run_captured(const std::vector<uint64_t>& key, const std::function<void()>& enqueue) {
    (void)key;
    enqueue();
  }

  // ---- ops: loading -------------------------------------------------------------------------
  // dst (T [n]) = host_src converted; host_src holds n stored values of kind 0 F32, 1 F16, 2 BF16.
  virtual void load_values(DT dt, void* dst, const void* host_src, int src_kind, int64_t n) = 0;

  // ---- ops: dense ---------------------------------------------------------------------------
  // y[n, out] = alpha · x[n, in] · W[out, in]ᵀ + beta · y (T; fp32 accumulation, no TF32 in fp32).
  // Each output row is the same function of its own x row whatever n is (batch invariance).
  virtual void gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha,
                    float beta) = 0;
  // logits[n, out] (fp32) = x[n, in] · W[out, in]ᵀ from T inputs (the lm head: fp32 logits).
  virtual void gemm_out_f32(DT dt, float* y, const void* x, const void* w, int n, int in, int out) = 0;
  // fp32 Y[m, n] = alpha · op(A) · op(B) + beta · Y, op(A) [m, k] (A stored [k, m] when ta),
  // op(B) [k, n] (B stored [n, k] when tb). The strategies' and metrics' fp32 products.
  virtual void gemm_f32(float* y, const float* a, const float* b, int m, int n, int k, bool ta, bool tb,
                        float alpha, float beta) = 0;
  // gemm_f32 on `count` problems at once: Y_i = y + i·sy, A_i = a + i·sa, B_i = b + i·sb (in
  // floats), each Y_i what gemm_f32 gives it alone. One launch for a batch of small products
  // (lowrank's subspace iteration: each product alone is a launch of ~15 µs on the H200).
  virtual void gemm_f32_batched(int count, float* y, int64_t sy, const float* a, int64_t sa, const float* b,
                                int64_t sb, int m, int n, int k, bool ta, bool tb, float alpha, float beta) = 0;
  // Eigen-factors of `count` symmetric fp32 [n, n] matrices g (g + i·n·n), 0 < k ≤ n: per
  // matrix its eigenpairs (w_j, λ_j), λ descending, and for j < k column j of
  //   inv_scaled_i [n, k] = w_j / sqrt(λ_j)    scaled_i [n, k] = w_j · sqrt(λ_j) (if not null),
  // a column being zero where λ_j ≤ 1e-12·max(λ_0, 0) or λ_j ≤ 0 (gram_factors_host in
  // linalg.h is the reference). lowrank's orthonormalizations (k = n: X·inv_scaled spans X's
  // columns orthonormally) and its last step: on a GPU its subspace iteration then never waits
  // for the host. An eigenvector's sign (and the basis of a repeated eigenvalue) is the
  // device's own: callers use only products that do not depend on them (inv_scaled·scaledᵀ,
  // X·inv_scaled as a subspace), and so does the consistency test.
  virtual void gram_factors(int count, int n, int k, const float* g, float* inv_scaled, float* scaled) = 0;
  // y[n, out] += bias[out].
  virtual void add_bias(DT dt, void* y, const void* bias, int n, int out) = 0;
  // y[n, dim] = x / sqrt(mean(x²) + eps) · w, mean(x²) in double (HF's LlamaRMSNorm).
  virtual void rmsnorm(DT dt, void* y, const void* x, const void* w, int n, int dim, float eps) = 0;
  // x = T(x + delta) (stored), then y = rmsnorm(x): the residual add fused into the next norm.
  virtual void add_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps) = 0;
  // Rotate-half RoPE in place on q [n, heads·hd] and k [n, kv_heads·hd] at positions pos [n]
  // (device ints); inv_freq fp32 [hd/2].
  virtual void rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int heads, int kv_heads,
                    int hd) = 0;
  // A stacked q/k/v projection's rows qkv [n, (heads + 2·kv_heads)·hd] (q, then k, then v):
  // q with RoPE into q [n, heads·hd], k with RoPE and v into each row's cache slot at `layer`.
  // What rope then store_kv do to q/k/v split out of qkv, in one pass (a decode step's glue).
  virtual void qkv_rope_store(DT dt, void* q, const void* qkv, const int* pos, const float* inv_freq, Table<KvWrite> rows,
                              int layer, int n, int heads, int kv_heads, int hd) = 0;
  // gate = silu(gate) · up, count values.
  virtual void swiglu(DT dt, void* gate, const void* up, int64_t count) = 0;
  // out [n, inter] = silu(gate) · up from a stacked gate/up projection's rows gate_up
  // [n, 2·inter] (gate, then up): swiglu without splitting them first.
  virtual void swiglu_stacked(DT dt, void* out, const void* gate_up, int n, int inter) = 0;
  // x[n, dim] = table[tokens[i], :] (tokens: device int32 [n]).
  virtual void embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim) = 0;
  // Each row's new k/v (T [n, kv_heads·hd]) into its cache slot at `layer`.
  virtual void store_kv(DT dt, Table<KvWrite> rows, int layer, const void* k, const void* v, int n, int kv_heads,
                        int hd) = 0;
  // Every row's LoRA on the `count` Linears sharing input x (T [n, in]); scratch fp32
  // [count, n, max_rank]. Row tables may mix adapters (and rows without LoRA).
  virtual void lora(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
                    float* scratch) = 0;
  // Optional (default: nothing): the forward pass says, before the base product of these
  // Linears, that x is final, so a device may start the LoRA's first half (A·x, and the
  // captures) beside that product. The lora() that follows, with the same arguments, completes
  // it; lora() alone is always correct. Nothing may write x, the scratch or the captures in
  // between.
  virtual void lora_begin(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
                          float* scratch) {
    (void)dt, (void)x, (void)n, (void)in, (void)targets, (void)count, (void)max_rank, (void)scratch;
  }

  // ---- ops: attention -----------------------------------------------------------------------
  // n causal rows of one sequence at positions pos0.. over its own cache layer (k, v:
  // [kv_heads, capacity, hd], keys [0, pos0 + i] for row i). q, out: T [n, heads·hd].
  virtual void attention_prefill(DT dt, void* out, const void* q, const void* k, const void* v, int capacity,
                                 int pos0, int n, int heads, int kv_heads, int hd) = 0;
  // Rows over any mix of caches and shared spans (AttnPlan), corrections applied in place.
  virtual void attention_parts(DT dt, void* out, const void* q, const AttnPlan& plan, int n_rows, int heads,
                               int kv_heads, int hd) = 0;

  // ---- ops: logits --------------------------------------------------------------------------
  // out[i] = argmax of fp32 logits row i (lowest index on ties).
  virtual void argmax_rows(int32_t* out, const float* logits, int n, int vocab) = 0;
  // tokens[i] sampled per rows[i]; probs[i] = softmax(logits_i)[tokens[i]] at temperature 1.
  virtual void sample_rows(int32_t* tokens, float* probs, const float* logits, Table<SampleRow> rows, int n,
                           int vocab) = 0;
  // out[i] per rows[i] (device ScoreOut [n]).
  virtual void score_rows(ScoreOut* out, const float* logits, Table<ScoreRow> rows, int n, int vocab) = 0;

  // ---- ops: strategies (one layer of [heads, capacity, hd] T caches, positions [0, T)) ------
  // rows fp32 [T, heads·hd] = exact − base.
  virtual void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap,
                          int heads, int hd, int T) = 0;
  // out = T(base + rows); out may be base (same capacity).
  virtual void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads,
                        int hd, int T) = 0;
  virtual void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int hd,
                              int T) = 0;
  // exact − base quantized per (head, token): scale = max|Δ| / qmax (127 or 7), q = clamp(round-half-even(Δ/scale)).
  // q [heads, T, row_bytes] (int8, or two int4 per byte, low nibble first), scale fp32 [heads, T].
  virtual void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base,
                              int base_cap, int heads, int hd, int T, int bits) = 0;
  // out = T(base + dequantized delta); out may be base.
  virtual void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q,
                             const float* scale, int heads, int hd, int T, int bits) = 0;

  // Column-wise uniform quantization of an fp32 matrix x [rows, k] (the pca strategy's
  // coefficients and basis): column j has bits[j] in [1, 8] and step[j] > 0; its code is
  // q = clamp(floor(x / step) + 2^(b−1), 0, 2^b − 1) (a midrise quantizer: the value is
  // (q − 2^(b−1) + ½)·step, never 0, so one bit is a sign), written at bit offset offs[j] of
  // the row (least significant bit first; a code may straddle two bytes) into q [rows,
  // row_bytes]. bits, offs, step: device arrays [k]; offs[j] + bits[j] <= 8·row_bytes.
  virtual void quantize_columns(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs,
                                const float* step, int row_bytes) = 0;
  // x [rows, k] = the values of quantize_columns' codes.
  virtual void dequantize_columns(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                                  const float* step, int row_bytes) = 0;

  // ---- ops: metrics -------------------------------------------------------------------------
  // Σ(r − e)² and Σe² of K then V (4 doubles) per kv head (by_head [heads][4]) and per bin of
  // `bin` consecutive tokens (by_bin [ceil(T/bin)][4]), over positions [0, T).
  virtual void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap,
                          const void* ek, const void* ev, int e_cap, int heads, int hd, int T, int bin) = 0;
  // outsideSpan's two sums for one layer, in double: Σ‖ΔV_t − B (P ΔV_t)‖² and Σ‖ΔV_t‖² over
  // tokens t, ΔV = exact − base (subtracted in fp32), P = pinv(B) fp64 [r, D], B fp32 [D, r].
  virtual void outside_span_sums(DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v,
                                 int base_cap, const double* pinv, const float* b, int r, int heads, int hd,
                                 int T) = 0;
};

// Every op of the interface, by name: the backend-consistency test checks that each has a case.
inline const std::vector<std::string>& device_op_names() {
  static const std::vector<std::string> names = {
      "load_values", "gemm", "gemm_out_f32", "gemm_f32", "gemm_f32_batched", "gram_factors", "add_bias", "rmsnorm", "add_rmsnorm", "rope",
      "qkv_rope_store", "swiglu", "swiglu_stacked", "embedding", "store_kv", "lora", "lora_begin", "attention_prefill", "attention_parts",
      "argmax_rows", "sample_rows", "score_rows", "delta_rows", "add_rows", "copy_positions", "quantize_delta",
      "add_quantized", "quantize_columns", "dequantize_columns", "error_sums", "outside_span_sums"};
  return names;
}

// The CPU device (always built) and the device this build runs on: the CUDA device in the
// CUDA addon, the CPU device otherwise (device_select_*.cpp decides; no #ifdef).
Device& cpu_device();
Device& default_device();

// Device memory owned by one object: freed through its device when the object goes.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Device& dev, size_t bytes, const char* what) : dev_(&dev), p_(dev.alloc(bytes, what)), bytes_(bytes) {}
  ~Buffer() { reset(); }
  Buffer(Buffer&& o) noexcept : dev_(o.dev_), p_(o.p_), bytes_(o.bytes_) { o.p_ = nullptr, o.bytes_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      reset();
      dev_ = o.dev_, p_ = o.p_, bytes_ = o.bytes_;
      o.p_ = nullptr, o.bytes_ = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void reset() {
    if (p_) dev_->release(p_);
    p_ = nullptr;
    bytes_ = 0;
  }
  // Grows (never shrinks) to at least `bytes`; old contents are dropped.
  void ensure(Device& dev, size_t bytes, const char* what) {
    if (bytes > bytes_ || dev_ != &dev) *this = Buffer(dev, bytes, what);
  }
  void* get() const { return p_; }
  template <typename X>
  X* as() const { return static_cast<X*>(p_); }
  // Address `elems` elements of `elem_bytes` into the buffer.
  void* at(size_t elems, size_t elem_bytes) const { return static_cast<char*>(p_) + elems * elem_bytes; }
  size_t bytes() const { return bytes_; }
  explicit operator bool() const { return p_ != nullptr; }

 private:
  Device* dev_ = nullptr;
  void* p_ = nullptr;
  size_t bytes_ = 0;
};

// Host vectors mirrored to device memory in one upload: what the per-row tables of a forward
// pass are built in. On the CPU device, `dev` points at the host copy itself.
class TableUpload {
 public:
  // Reserves `count` entries of X; returns the entry offset (bytes) into the blob.
  template <typename X>
  size_t add(const std::vector<X>& v) {
    const size_t off = (blob_.size() + 15) / 16 * 16;
    blob_.resize(off + v.size() * sizeof(X));
    if (!v.empty()) std::memcpy(blob_.data() + off, v.data(), v.size() * sizeof(X));
    return off;
  }
  // Uploads the blob into `buf` (grown as needed). After this, table<X>(off, n) is valid.
  void upload(Device& dev, Buffer& buf, bool host_is_device) {
    host_is_device_ = host_is_device;
    if (!host_is_device) {
      buf.ensure(dev, std::max<size_t>(blob_.size(), 16), "per-row tables");
      dev.upload(buf.get(), blob_.data(), blob_.size());
      dev_base_ = buf.as<char>();
    }
  }
  template <typename X>
  Table<X> table(size_t off, int n) const {
    Table<X> t;
    t.host = reinterpret_cast<const X*>(blob_.data() + off);
    t.dev = host_is_device_ ? t.host : reinterpret_cast<const X*>(dev_base_ + off);
    t.n = n;
    return t;
  }
  size_t size() const { return blob_.size(); }

 private:
  std::vector<char> blob_;
  const char* dev_base_ = nullptr;
  bool host_is_device_ = true;
};

}  // namespace al
