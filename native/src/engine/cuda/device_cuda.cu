// The CUDA device (engine/device.h) on one GPU: one stream, one cuBLAS handle, stream-ordered
// allocation, device-to-host byte counting, a decode step captured as a CUDA graph, and a
// per-op event profile (ADAPTERLENS_CUDA_PROFILE=1). The ops dispatch to the kernel files:
// dense.cu, gemm.cu, lora.cu, attention.cu / attention_tc.cu, logits.cu, strategies.cu,
// metrics.cu. Each op's CPU reference is the op of the same name in device_cpu.cpp.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/cuda/common.cuh"
#include "engine/linalg.h"
#include "engine/cuda/upload_ring.h"

namespace al {

namespace cuda {

std::string err_str(cudaError_t e) { return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e); }

void check(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA error during ") + what + ": " + err_str(e));
}

}  // namespace cuda

namespace {

using cuda::err_str;

void ck(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return;
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    throw std::runtime_error("out of device memory during " + what + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                             std::to_string(total_b >> 20) + " MiB)");
  }
  throw std::runtime_error("CUDA error during " + what + ": " + err_str(e));
}

void ckb(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("cuBLAS error during ") + what + ": " + cublasGetStatusString(s));
  }
}

bool env_on(const char* name, bool dflt) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::string(v) != "0";
}

class CudaDevice final : public Device {
 public:
  CudaDevice() {
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e == cudaErrorInsufficientDriver) {
      int drv = 0, rt = 0;
      cudaDriverGetVersion(&drv);
      cudaRuntimeGetVersion(&rt);
      if (drv == 0) throw std::runtime_error("no CUDA driver: none is installed (libcuda not found)");
      throw std::runtime_error("CUDA driver too old: the driver supports CUDA " + std::to_string(drv / 1000) + "." +
                               std::to_string(drv % 1000 / 10) + " but this build needs " + std::to_string(rt / 1000) +
                               "." + std::to_string(rt % 1000 / 10));
    }
    if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0)) throw std::runtime_error("no CUDA device: none visible");
    if (e != cudaSuccess) throw std::runtime_error("no CUDA driver: " + err_str(e));
    e = cudaSetDevice(0);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e == cudaErrorMemoryAllocation) throw std::runtime_error("out of device memory while creating the CUDA context");
    if (e != cudaSuccess) throw std::runtime_error("no CUDA device: cannot start it (" + err_str(e) + ")");
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) throw std::runtime_error("no CUDA device: cannot query it");
    name_ = prop.name;
    total_ = prop.totalGlobalMem;
    cc_major_ = prop.major;
    cc_minor_ = prop.minor;
    cudaDriverGetVersion(&driver_);
    cudaRuntimeGetVersion(&runtime_);
    const cublasStatus_t s = cublasCreate(&blas_);
    if (s != CUBLAS_STATUS_SUCCESS) throw std::runtime_error(std::string("cuBLAS unavailable: ") + cublasGetStatusString(s));
    ckb(cublasSetStream(blas_, stream_), "cublasSetStream");
    // fp32 stays fp32 (parity runs) through the gemms' CUBLAS_COMPUTE_32F_PEDANTIC compute
    // type, which never uses TF32. The handle-wide CUBLAS_PEDANTIC_MATH mode must NOT be set: it
    // also keeps bf16/fp16 products off cuBLAS's fast kernels (measured: the 7B prefill at
    // under a third of the GEMM rate). Reductions stay fp32 (no reduced-precision split-K).
    ckb(cublasSetMathMode(blas_, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)),
        "cublasSetMathMode");
    // A workspace of our own for the life of the process: cuBLAS then never allocates inside
    // a captured decode graph.
    constexpr size_t kBlasWorkspace = size_t(32) << 20;
    ck(cudaMalloc(&blas_ws_, kBlasWorkspace), "cuBLAS workspace");
    upload_ = std::make_unique<cuda::UploadRing>(stream_);
    // Parallel branches (cuda::Branches): the LoRA shrink beside the base product, and the
    // attention classes when asked for (ADAPTERLENS_CUDA_ATTN_BRANCHES=1).
    branches_.main = stream_;
    for (int i = 0; i < 2; ++i) {
      ck(cudaStreamCreateWithFlags(&branches_.side[i], cudaStreamNonBlocking), "creating a CUDA stream");
      ck(cudaEventCreateWithFlags(&branches_.joined[i], cudaEventDisableTiming), "creating a CUDA event");
    }
    ck(cudaEventCreateWithFlags(&branches_.forked, cudaEventDisableTiming), "creating a CUDA event");
    ck(cudaEventCreateWithFlags(&lora_shrunk_, cudaEventDisableTiming), "creating a CUDA event");
    lora_branch_ = env_on("ADAPTERLENS_CUDA_LORA_BRANCH", true);
    ckb(cublasSetWorkspace(blas_, blas_ws_, kBlasWorkspace), "cublasSetWorkspace");
    graphs_ = env_on("ADAPTERLENS_CUDA_GRAPH", true);
    if (const char* c = std::getenv("ADAPTERLENS_CUDA_ATTN_CHUNK"); c && std::atoi(c) >= 32) attention_chunk_ = std::atoi(c);
    profile_ = env_on("ADAPTERLENS_CUDA_PROFILE", false);
    if (const char* e = std::getenv("ADAPTERLENS_CUDA_EIGEN")) eigen_on_host_ = std::string(e) == "host";
  }

  const char* name() const override { return "cuda"; }

  std::string describe() const override {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s (%.1f GiB, sm_%d%d), CUDA runtime %d.%d, driver %d.%d", name_.c_str(),
                  total_ / double(1ull << 30), cc_major_, cc_minor_, runtime_ / 1000, runtime_ % 1000 / 10,
                  driver_ / 1000, driver_ % 1000 / 10);
    return buf;
  }

  int threads() const override { return 1; }
  bool supports(DT) const override { return true; }
  // Keys per attention_parts chunk: one warp's work item on the tensor-core kernel, so shorter
  // chunks mean more warps over a shared span (ADAPTERLENS_CUDA_ATTN_CHUNK overrides, for the
  // benchmark's sweep). The planner grows it where the partial states would not fit.
  int attention_chunk() const override { return attention_chunk_; }
  int prefill_chunk() const override { return 8192; }
  // Stacked outputs need the BGMV expand (it takes a row stride; lora.cu's GEMM segments do not).
  bool prefers_stacked(int n) const override { return cuda::lora_bgmv(n); }

  std::unique_lock<std::recursive_mutex> lock() override {
    std::unique_lock<std::recursive_mutex> l(mutex_);
    drain_releases();
    return l;
  }

  // ---- memory ----
  void* alloc(size_t bytes, const char* what) override {
    if (bytes == 0) return nullptr;
    drain_releases();
    void* p = nullptr;
    const cudaError_t e = cudaMallocAsync(&p, bytes, stream_);
    if (e != cudaSuccess) {
      cudaGetLastError();  // not sticky: clear it
      // What is free once pending frees and the pool's cached blocks are returned.
      cudaStreamSynchronize(stream_);
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      if (e == cudaErrorMemoryAllocation) {
        throw std::runtime_error(std::string("out of device memory allocating ") + std::to_string(bytes >> 20) +
                                 " MiB for " + what + " (" + std::to_string(free_b >> 20) + " MiB free of " +
                                 std::to_string(total_b >> 20) + " MiB)");
      }
      throw std::runtime_error(std::string("CUDA error allocating ") + what + ": " + err_str(e));
    }
    note_peak();
    return p;
  }

  // Called from any thread (a cache disposed on the JS thread while a job runs): queued, and
  // freed on the stream by whoever holds the device next (never inside a graph capture).
  void release(void* p) override {
    if (!p) return;
    {
      std::lock_guard<std::mutex> g(pending_mutex_);
      pending_.push_back(p);
    }
    std::unique_lock<std::recursive_mutex> l(mutex_, std::try_to_lock);
    if (l.owns_lock()) drain_releases();
  }

  void upload(void* dst, const void* src, size_t bytes) override {
    if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
    // Pageable source: the copy returns once staged, but the caller may reuse `src` at once.
    ck(cudaStreamSynchronize(stream_), "copy to device");
  }
  void download(void* dst, const void* src, size_t bytes) override {
    if (bytes) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "copy to host");
    ck(cudaStreamSynchronize(stream_), "copy to host");
    d2h_ += bytes;
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes && dst != src) ck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "device copy");
  }
  void memset0(void* p, size_t bytes) override {
    if (bytes) ck(cudaMemsetAsync(p, 0, bytes, stream_), "clearing device memory");
  }
  void sync(const char* what) override {
    join_begun_lora();
    ck(cudaGetLastError(), what);
    ck(cudaStreamSynchronize(stream_), what);
    if (profile_ && !marks_.empty()) profile_report(what);
  }
  DeviceMemory memory() const override {
    DeviceMemory m;
    m.used = used_bytes();
    m.peak = std::max(peak_.load(), m.used);
    m.total = total_;
    m.d2h_bytes = d2h_.load();
    return m;
  }
  void reset_peak() override { peak_.store(used_bytes()); }

  void run_captured(const std::vector<uint64_t>& key, const std::function<void()>& enqueue) override {
    if (!graphs_ || graph_broken_ || profile_) return enqueue();
    if (!graph_ || graph_key_ != key) {
      reset_graph();
      cudaGraph_t g = nullptr;
      cudaGraphExec_t exec = nullptr;
      cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal);
      std::string why;
      if (e == cudaSuccess) {
        capturing_ = true;
        try {
          enqueue();
          join_begun_lora();  // no branch left unjoined at the capture's end
        } catch (const std::exception& ex) {
          why = ex.what();
        }
        begun_ = {};
        capturing_ = false;
        e = cudaStreamEndCapture(stream_, &g);
        if (why.empty() && e == cudaSuccess) e = cudaGraphInstantiate(&exec, g, 0);
        if (g) cudaGraphDestroy(g);
      }
      if (!why.empty() || e != cudaSuccess || !exec) {
        if (why.empty()) why = err_str(e);
        cudaGetLastError();  // capture errors are not sticky; clear the last one
        graph_broken_ = true;
        std::fprintf(stderr, "adapterlens: CUDA graph capture failed (%s); plain launches from now on\n", why.c_str());
        return enqueue();
      }
      graph_ = exec;
      graph_key_ = key;
    }
    ck(cudaGraphLaunch(graph_, stream_), "CUDA graph launch");
  }

  // ---- ops ----
  void load_values(DT dt, void* dst, const void* src, int kind, int64_t n) override {
    if (n == 0) return;
    const size_t bytes = static_cast<size_t>(n) * (kind == 0 ? 4 : 2);
    mark("load");
    // Stored bytes go up through the upload ring (upload_ring.h) and nothing waits for them here:
    // the caller's sync (the end of a load) does. Values already in the compute dtype go straight
    // to their place; others through a staging buffer kept between calls, converted on the device.
    const bool as_stored = (kind == 0 && dt == DT::F32) || (kind == 1 && dt == DT::F16) || (kind == 2 && dt == DT::BF16);
    if (as_stored) {
      upload_->copy(dst, src, bytes);
      return;
    }
    if (staging_bytes_ < bytes) {
      if (staging_) cudaFreeAsync(staging_, stream_);
      staging_ = nullptr;
      ck(cudaMallocAsync(&staging_, bytes, stream_), "weight staging");
      staging_bytes_ = bytes;
    }
    upload_->copy(staging_, src, bytes);
    cuda::launch_convert(dt, dst, staging_, kind, n, stream_);
  }

  void gemm(DT dt, void* y, const void* x, const void* w, int n, int in, int out, float alpha, float beta) override {
    mark("gemm");
    cuda::gemm(blas_, dt, y, x, w, n, in, out, alpha, beta, stream_);
  }
  void gemm_out_f32(DT dt, float* y, const void* x, const void* w, int n, int in, int out) override {
    mark("lm head");
    cuda::gemm_out_f32(blas_, dt, y, x, w, n, in, out);
  }
  void gemm_f32(float* y, const float* a, const float* b, int m, int n, int k, bool ta, bool tb, float alpha,
                float beta) override {
    mark("gemm fp32");
    cuda::gemm_f32(blas_, y, a, b, m, n, k, ta, tb, alpha, beta);
  }
  void gemm_f32_batched(int count, float* y, int64_t sy, const float* a, int64_t sa, const float* b, int64_t sb, int m,
                        int n, int k, bool ta, bool tb, float alpha, float beta) override {
    mark("gemm fp32");
    cuda::gemm_f32_batched(blas_, count, y, sy, a, sa, b, sb, m, n, k, ta, tb, alpha, beta);
  }
  void gram_factors(int count, int n, int k, const float* g, float* inv_scaled, float* scaled) override {
    mark("strategies");
    if (count == 0 || k == 0) return;
    if (n > cuda::kBatchedEigenMax || eigen_on_host_) {
      // Beyond cuSOLVER's batched solver (or ADAPTERLENS_CUDA_EIGEN=host): the host reference,
      // at the cost of one wait for the device.
      const size_t nn = static_cast<size_t>(count) * n * n, nk = static_cast<size_t>(count) * n * k;
      std::vector<float> hg(nn), hi(nk), hs(scaled ? nk : 0);
      download(hg.data(), g, nn * sizeof(float));
      gram_factors_host(count, n, k, hg.data(), hi.data(), scaled ? hs.data() : nullptr);
      upload(inv_scaled, hi.data(), nk * sizeof(float));
      if (scaled) upload(scaled, hs.data(), nk * sizeof(float));
      return;
    }
    const size_t bytes = cuda::gram_factors_scratch(eigen_, stream_, count, n);
    void* scratch = alloc(bytes, "eigen-decompositions");
    try {
      cuda::gram_factors(eigen_, count, n, k, g, inv_scaled, scaled, scratch, bytes, stream_);
    } catch (...) {
      release(scratch);
      throw;
    }
    release(scratch);  // freed in stream order, after the kernels that use it
  }
  void add_bias(DT dt, void* y, const void* bias, int n, int out) override {
    mark("norms, rope, glue");
    cuda::launch_add_bias(dt, y, bias, n, out, stream_);
  }
  void rmsnorm(DT dt, void* y, const void* x, const void* w, int n, int dim, float eps) override {
    mark("norms, rope, glue");
    cuda::launch_rmsnorm(dt, y, const_cast<void*>(x), nullptr, w, n, dim, eps, stream_);
  }
  void add_rmsnorm(DT dt, void* y, void* x, const void* delta, const void* w, int n, int dim, float eps) override {
    mark("norms, rope, glue");
    cuda::launch_rmsnorm(dt, y, x, delta, w, n, dim, eps, stream_);
  }
  void rope(DT dt, void* q, void* k, const int* pos, const float* inv_freq, int n, int heads, int kv_heads,
            int hd) override {
    mark("norms, rope, glue");
    cuda::launch_rope(dt, q, k, pos, inv_freq, n, heads, kv_heads, hd, stream_);
  }
  void qkv_rope_store(DT dt, void* q, const void* qkv, const int* pos, const float* inv_freq, Table<KvWrite> rows,
                      int layer, int n, int heads, int kv_heads, int hd) override {
    mark("norms, rope, glue");
    cuda::launch_qkv_rope_store(dt, q, qkv, pos, inv_freq, rows.dev, layer, n, heads, kv_heads, hd, stream_);
  }
  void swiglu(DT dt, void* gate, const void* up, int64_t count) override {
    mark("norms, rope, glue");
    cuda::launch_swiglu(dt, gate, up, count, stream_);
  }
  void swiglu_stacked(DT dt, void* out, const void* gate_up, int n, int inter) override {
    mark("norms, rope, glue");
    cuda::launch_swiglu_stacked(dt, out, gate_up, n, inter, stream_);
  }
  void embedding(DT dt, void* x, const void* table, const int32_t* tokens, int n, int dim) override {
    mark("norms, rope, glue");
    cuda::launch_embedding(dt, x, table, tokens, n, dim, stream_);
  }
  void store_kv(DT dt, Table<KvWrite> rows, int layer, const void* k, const void* v, int n, int kv_heads,
                int hd) override {
    mark("norms, rope, glue");
    cuda::launch_store_kv(dt, rows.dev, layer, k, v, n, kv_heads, hd, stream_);
  }
  // A decode batch's LoRA shrink runs on a side branch beside the base product (lora_begin),
  // the expand after it (lora); ADAPTERLENS_CUDA_LORA_BRANCH=0 runs both in lora().
  void join_begun_lora() {
    if (!begun_.x) return;
    begun_ = {};
    ck(cudaStreamWaitEvent(stream_, lora_shrunk_, 0), "lora join");
  }
  void lora_begin(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
                  float* scratch) override {
    join_begun_lora();
    if (!lora_branch_ || !cuda::lora_bgmv(n) || n == 0 || count == 0 || max_rank == 0 || count > 3) return;
    mark("lora");
    ck(cudaEventRecord(branches_.forked, stream_), "lora fork");
    ck(cudaStreamWaitEvent(branches_.side[0], branches_.forked, 0), "lora fork");
    cuda::lora_shrink(dt, x, n, in, targets, count, max_rank, scratch, branches_.side[0]);
    ck(cudaEventRecord(lora_shrunk_, branches_.side[0]), "lora fork");
    begun_ = BegunLora{x, n, in, count, max_rank, scratch};
    for (int i = 0; i < count; ++i) begun_.targets[i] = targets[i];
  }
  void lora(DT dt, const void* x, int n, int in, const LoraOutput* targets, int count, int max_rank,
            float* scratch) override {
    mark("lora");
    const bool begun = begun_.matches(x, n, in, targets, count, max_rank, scratch);
    join_begun_lora();  // a begun shrink is joined even when these are other arguments
    if (begun) {
      cuda::lora_expand(dt, n, targets, count, max_rank, scratch, stream_);
      return;
    }
    cuda::lora(blas_, dt, x, n, in, targets, count, max_rank, scratch, stream_);
  }
  void attention_prefill(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                         int heads, int kv_heads, int hd) override {
    mark("attention");
    // bf16/fp16: tensor cores; fp32 (parity runs keep fp32 products) and other head dims: the
    // CUDA-core flash kernel.
    if (cuda::attention_prefill_tc(dt, out, q, k, v, capacity, pos0, n, heads, kv_heads, hd, stream_)) return;
    if (cuda::attention_prefill_flash(dt, out, q, k, v, capacity, pos0, n, heads, kv_heads, hd, stream_)) return;
    throw std::runtime_error("the CUDA attention supports head_dim up to 256 (this model has " + std::to_string(hd) + ")");
  }
  void attention_parts(DT dt, void* out, const void* q, const AttnPlan& plan, int n_rows, int heads, int kv_heads,
                       int hd) override {
    mark("attention");
    cuda::attention_parts(dt, out, q, plan, n_rows, heads, kv_heads, hd, branches_);
  }
  void argmax_rows(int32_t* out, const float* logits, int n, int vocab) override {
    mark("logits");
    cuda::argmax_rows(out, logits, n, vocab, stream_);
  }
  void sample_rows(int32_t* tokens, float* probs, const float* logits, Table<SampleRow> rows, int n,
                   int vocab) override {
    mark("logits");
    cuda::sample_rows(tokens, probs, logits, rows.dev, n, vocab, stream_);
  }
  void score_rows(ScoreOut* out, const float* logits, Table<ScoreRow> rows, int n, int vocab) override {
    mark("logits");
    cuda::score_rows(out, logits, rows.dev, n, vocab, stream_);
  }
  void delta_rows(DT dt, float* rows, const void* exact, int exact_cap, const void* base, int base_cap, int heads,
                  int hd, int T) override {
    mark("strategies");
    cuda::delta_rows(dt, rows, exact, exact_cap, base, base_cap, heads, hd, T, stream_);
  }
  void add_rows(DT dt, void* out, int out_cap, const void* base, int base_cap, const float* rows, int heads, int hd,
                int T) override {
    mark("strategies");
    cuda::add_rows(dt, out, out_cap, base, base_cap, rows, heads, hd, T, stream_);
  }
  void copy_positions(DT dt, void* dst, int dst_cap, const void* src, int src_cap, int heads, int hd,
                      int T) override {
    mark("strategies");
    cuda::copy_positions(dt, dst, dst_cap, src, src_cap, heads, hd, T, stream_);
  }
  void quantize_delta(DT dt, uint8_t* q, float* scale, const void* exact, int exact_cap, const void* base,
                      int base_cap, int heads, int hd, int T, int bits) override {
    mark("strategies");
    cuda::quantize_delta(dt, q, scale, exact, exact_cap, base, base_cap, heads, hd, T, bits, stream_);
  }
  void add_quantized(DT dt, void* out, int out_cap, const void* base, int base_cap, const uint8_t* q,
                     const float* scale, int heads, int hd, int T, int bits) override {
    mark("strategies");
    cuda::add_quantized(dt, out, out_cap, base, base_cap, q, scale, heads, hd, T, bits, stream_);
  }
  void quantize_columns(uint8_t* q, const float* x, int rows, int k, const uint8_t* bits, const int* offs,
                        const float* step, int row_bytes) override {
    mark("strategies");
    cuda::quantize_columns(q, x, rows, k, bits, offs, step, row_bytes, stream_);
  }
  void dequantize_columns(float* x, const uint8_t* q, int rows, int k, const uint8_t* bits, const int* offs,
                          const float* step, int row_bytes) override {
    mark("strategies");
    cuda::dequantize_columns(x, q, rows, k, bits, offs, step, row_bytes, stream_);
  }

  void error_sums(DT dt, double* by_head, double* by_bin, const void* rk, const void* rv, int r_cap, const void* ek,
                  const void* ev, int e_cap, int heads, int hd, int T, int bin) override {
    mark("metrics");
    double* scratch = metric_scratch(cuda::error_sums_scratch(heads, T));
    cuda::error_sums(dt, by_head, by_bin, rk, rv, r_cap, ek, ev, e_cap, heads, hd, T, bin, scratch, stream_);
  }
  void outside_span_sums(DT dt, double* out2, const void* exact_v, int exact_cap, const void* base_v, int base_cap,
                         const double* pinv, const float* b, int r, int heads, int hd, int T) override {
    mark("metrics");
    double* scratch = metric_scratch(cuda::outside_span_scratch(T, heads * hd, r));
    cuda::outside_span_sums(blas_, dt, out2, exact_v, exact_cap, base_v, base_cap, pinv, b, r, heads, hd, T, scratch, stream_);
  }

 private:
  size_t used_bytes() const {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
    return total_b - free_b;
  }
  void note_peak() {
    const size_t used = used_bytes();
    size_t p = peak_.load();
    while (used > p && !peak_.compare_exchange_weak(p, used)) {
    }
  }

  void drain_releases() {
    if (capturing_) return;
    std::vector<void*> todo;
    {
      std::lock_guard<std::mutex> g(pending_mutex_);
      todo.swap(pending_);
    }
    for (void* p : todo) cudaFreeAsync(p, stream_);
  }

  // Scratch for the metric reductions (doubles), kept between calls.
  double* metric_scratch(size_t doubles) {
    const size_t bytes = doubles * sizeof(double);
    if (metric_bytes_ < bytes) {
      if (metric_) cudaFreeAsync(metric_, stream_);
      metric_ = nullptr;
      ck(cudaMallocAsync(&metric_, bytes, stream_), "metric scratch");
      metric_bytes_ = bytes;
      note_peak();
    }
    return static_cast<double*>(metric_);
  }

  void reset_graph() {
    if (graph_) cudaGraphExecDestroy(graph_);
    graph_ = nullptr;
    graph_key_.clear();
  }

  // ---- profile: events between named marks; the time to the next mark belongs to the first ----
  struct Mark {
    const char* what;
    cudaEvent_t event;
  };
  void mark(const char* what) {
    if (!profile_ || capturing_) return;
    cudaEvent_t e;
    if (free_events_.empty()) {
      ck(cudaEventCreate(&e), "profile event");
    } else {
      e = free_events_.back();
      free_events_.pop_back();
    }
    ck(cudaEventRecord(e, stream_), "profile event");
    marks_.push_back({what, e});
  }
  void profile_report(const std::string& label) {
    cudaEvent_t end;
    ck(cudaEventCreate(&end), "profile event");
    ck(cudaEventRecord(end, stream_), "profile event");
    ck(cudaEventSynchronize(end), "profile");
    marks_.push_back({nullptr, end});
    std::vector<std::pair<std::string, float>> totals;  // first-seen order
    float all = 0.0f;
    for (size_t i = 0; i + 1 < marks_.size(); ++i) {
      float ms = 0.0f;
      cudaEventElapsedTime(&ms, marks_[i].event, marks_[i + 1].event);
      all += ms;
      auto it = std::find_if(totals.begin(), totals.end(), [&](const auto& t) { return t.first == marks_[i].what; });
      if (it == totals.end()) totals.emplace_back(marks_[i].what, ms);
      else it->second += ms;
    }
    std::string line = "[cuda profile] " + label + ":";
    char buf[96];
    for (const auto& [w, ms] : totals) {
      std::snprintf(buf, sizeof buf, " %s %.3f ms ·", w.c_str(), ms);
      line += buf;
    }
    std::snprintf(buf, sizeof buf, " total %.3f ms", all);
    std::fprintf(stderr, "%s%s\n", line.c_str(), buf);
    for (const auto& m : marks_) free_events_.push_back(m.event);
    marks_.clear();
  }

  std::recursive_mutex mutex_;
  std::mutex pending_mutex_;
  std::vector<void*> pending_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  void* blas_ws_ = nullptr;
  std::unique_ptr<cuda::UploadRing> upload_;
  void* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  void* metric_ = nullptr;
  size_t metric_bytes_ = 0;
  std::string name_;
  size_t total_ = 0;
  int cc_major_ = 0, cc_minor_ = 0, driver_ = 0, runtime_ = 0;
  std::atomic<size_t> peak_{0};
  cuda::EigenSolver eigen_;        // gram_factors' cuSOLVER handle, made at first use
  bool eigen_on_host_ = false;     // ADAPTERLENS_CUDA_EIGEN=host: gram_factors on the host
  std::atomic<uint64_t> d2h_{0};
  bool graphs_ = true, graph_broken_ = false, capturing_ = false, profile_ = false;
  // Measured fastest of 64, 128, 256 on the H200 with one K/V buffer a warp (bench: sweep; the
  // decode step 115 µs a layer at 128 against 127 at 64 and 147 at 256).
  int attention_chunk_ = 128;
  cuda::Branches branches_;
  // The LoRA whose shrink lora_begin started on branches_.side[0] (finished at lora_shrunk_).
  struct BegunLora {
    const void* x = nullptr;
    int n = 0, in = 0, count = 0, max_rank = 0;
    float* scratch = nullptr;
    LoraOutput targets[3] = {};
    bool matches(const void* x2, int n2, int in2, const LoraOutput* t2, int count2, int rank2, float* scratch2) const {
      if (!x || x != x2 || n != n2 || in != in2 || count != count2 || max_rank != rank2 || scratch != scratch2) return false;
      for (int i = 0; i < count; ++i) {
        if (targets[i].y != t2[i].y || targets[i].out != t2[i].out || targets[i].ld != t2[i].ld ||
            targets[i].rows.dev != t2[i].rows.dev) {
          return false;
        }
      }
      return true;
    }
  } begun_;
  cudaEvent_t lora_shrunk_ = nullptr;
  bool lora_branch_ = true;
  cudaGraphExec_t graph_ = nullptr;
  std::vector<uint64_t> graph_key_;
  std::vector<Mark> marks_;
  std::vector<cudaEvent_t> free_events_;
};

}  // namespace

Device& cuda_device() {
  static CudaDevice device;  // a throwing constructor leaves it unconstructed: the next call retries
  return device;
}

}  // namespace al
