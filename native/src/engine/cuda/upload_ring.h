// Host-to-device copies of weights for the CUDA device's load_values: the host bytes (pages of a
// memory-mapped checkpoint) are copied by several host threads into pinned slots, and each full
// slot goes up by DMA while the threads fill the next. Why: a copy from pageable memory goes at
// the rate one thread takes the mapping's page faults and copies into the driver's own staging,
// and the old path also waited for every tensor (H200, Llama-2-7B shape: 4.4 s for 13.5 GB,
// where transformers took 4.1 s). A ring of kSlots slots with an event each: a slot is refilled
// only once its last copy is done. copy() returns once the host bytes have been read, so the
// caller may unmap them; the device copies are ordered on the stream like every other op.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace al::cuda {

// A fixed set of host threads that split one memcpy between them (the caller's thread takes a
// share too). One job at a time; copy() returns when every share is copied.
class CopyThreads {
 public:
  explicit CopyThreads(int helpers) {
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this, i] { serve(i); });
  }
  ~CopyThreads() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  CopyThreads(const CopyThreads&) = delete;
  CopyThreads& operator=(const CopyThreads&) = delete;

  void copy(void* dst, const void* src, size_t bytes) {
    const size_t parts = threads_.size() + 1;
    // Under 2 MiB one thread copies it (the hand-off would cost more than it saves); shares are
    // 4 KiB aligned.
    if (threads_.empty() || bytes < (size_t(2) << 20)) {
      std::memcpy(dst, src, bytes);
      return;
    }
    const size_t share = ((bytes + parts - 1) / parts + 4095) & ~size_t(4095);
    {
      std::lock_guard<std::mutex> g(mu_);
      dst_ = static_cast<char*>(dst);
      src_ = static_cast<const char*>(src);
      bytes_ = bytes;
      share_ = share;
      pending_ = threads_.size();
      ++job_;
    }
    wake_.notify_all();
    copy_share(0);
    std::unique_lock<std::mutex> l(mu_);
    done_.wait(l, [&] { return pending_ == 0; });
  }

 private:
  void copy_share(size_t part) {
    const size_t lo = std::min(bytes_, part * share_), hi = std::min(bytes_, lo + share_);
    if (hi > lo) std::memcpy(dst_ + lo, src_ + lo, hi - lo);
  }
  void serve(int index) {
    uint64_t seen = 0;
    for (;;) {
      {
        std::unique_lock<std::mutex> l(mu_);
        wake_.wait(l, [&] { return stop_ || job_ != seen; });
        if (stop_) return;
        seen = job_;
      }
      copy_share(static_cast<size_t>(index) + 1);
      std::lock_guard<std::mutex> g(mu_);
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  bool stop_ = false;
  uint64_t job_ = 0;
  size_t pending_ = 0;
  char* dst_ = nullptr;
  const char* src_ = nullptr;
  size_t bytes_ = 0, share_ = 0;
};

class UploadRing {
 public:
  static constexpr size_t kSlotBytes = size_t(32) << 20;
  static constexpr int kSlots = 4;

  explicit UploadRing(cudaStream_t stream) : stream_(stream) {}
  ~UploadRing() {
    for (cudaEvent_t e : done_) cudaEventDestroy(e);
    if (pinned_) cudaFreeHost(pinned_);
  }
  UploadRing(const UploadRing&) = delete;
  UploadRing& operator=(const UploadRing&) = delete;

  // dst (device) ← bytes of host src, on the stream. Throws std::runtime_error on a CUDA error.
  void copy(void* dst, const void* src, size_t bytes) {
    if (bytes == 0) return;
    if (!ready()) {
      // No pinned memory to be had: the driver's pageable copy (slower, still correct; it has
      // read src when it returns).
      check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "copy to device");
      return;
    }
    for (size_t at = 0; at < bytes; at += kSlotBytes) {
      const size_t n = std::min(kSlotBytes, bytes - at);
      const int s = next_;
      next_ = (next_ + 1) % kSlots;
      check(cudaEventSynchronize(done_[s]), "waiting for an upload slot");  // its last copy is done
      char* slot = pinned_ + static_cast<size_t>(s) * kSlotBytes;
      threads_->copy(slot, static_cast<const char*>(src) + at, n);
      check(cudaMemcpyAsync(static_cast<char*>(dst) + at, slot, n, cudaMemcpyHostToDevice, stream_), "copy to device");
      check(cudaEventRecord(done_[s], stream_), "upload slot event");
    }
  }

 private:
  static void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
      throw std::runtime_error(std::string("CUDA error during ") + what + ": " + cudaGetErrorName(e) + ": " +
                               cudaGetErrorString(e));
    }
  }
  // The slots, their events and the copy threads, made at the first copy (a process that
  // never loads a model from files holds none of them).
  bool ready() {
    if (tried_) return pinned_ != nullptr;
    tried_ = true;
    void* p = nullptr;
    if (cudaHostAlloc(&p, kSlots * kSlotBytes, cudaHostAllocDefault) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    for (int s = 0; s < kSlots; ++s) {
      cudaEvent_t e = nullptr;
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) {
        cudaGetLastError();
        for (cudaEvent_t x : done_) cudaEventDestroy(x);
        done_.clear();
        cudaFreeHost(p);
        return false;
      }
      cudaEventRecord(e, stream_);  // "done": nothing in it yet
      done_.push_back(e);
    }
    pinned_ = static_cast<char*>(p);
    // Page faults of a mapped file scale with threads until memory bandwidth: 8 in all.
    const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
    threads_ = std::make_unique<CopyThreads>(static_cast<int>(std::min(hw, 8u)) - 1);
    return true;
  }

  cudaStream_t stream_;
  bool tried_ = false;
  char* pinned_ = nullptr;
  std::vector<cudaEvent_t> done_;
  std::unique_ptr<CopyThreads> threads_;
  int next_ = 0;
};

}  // namespace al::cuda
