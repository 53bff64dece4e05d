#include "engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef AL_CUDA
#include "engine/gpu.h"
#endif

namespace al {

size_t LoraVCapture::bytes() const {
  size_t n = 0;
  for (const auto& layer : u) n += layer.size() * sizeof(float);
  return n;
}

KvCache::KvCache(int num_layers, int num_kv_heads, int head_dim, int capacity)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      capacity_(capacity),
      lengths_(num_layers, 0),
      k_(layer_stride() * num_layers),
      v_(layer_stride() * num_layers) {}

KvCache::KvCache(int num_layers, int num_kv_heads, int head_dim, int capacity, std::shared_ptr<gpu::DeviceKv> dev)
    : num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      capacity_(capacity),
      lengths_(num_layers, 0),
      dev_(std::move(dev)) {
#ifdef AL_CUDA
  dev_bytes_ = gpu::kv_bytes(*dev_);
#endif
}

int KvCache::length() const { return *std::min_element(lengths_.begin(), lengths_.end()); }

int KvCache::uniform_length() const {
  const int n = lengths_[0];
  for (int l = 1; l < num_layers_; ++l) {
    if (lengths_[l] != n) {
      throw std::runtime_error("KV cache layers hold different lengths (layer 0: " + std::to_string(n) + ", layer " +
                               std::to_string(l) + ": " + std::to_string(lengths_[l]) +
                               "); write every layer before running the model on it");
    }
  }
  return n;
}

void KvCache::set_length(int length) { std::fill(lengths_.begin(), lengths_.end(), length); }

void KvCache::check_layer(int layer) const {
  if (layer < 0 || layer >= num_layers_) {
    throw std::out_of_range("layer " + std::to_string(layer) + " is out of range: the cache has " +
                            std::to_string(num_layers_) + " layers");
  }
}

void KvCache::read_layer(int layer, float* k_out, float* v_out) const {
  check_layer(layer);
  const int len = lengths_[layer];
#ifdef AL_CUDA
  if (dev_) return gpu::kv_read_layer(*dev_, layer, len, k_out, v_out);
#endif
  const size_t row = static_cast<size_t>(len) * head_dim_;
  for (int h = 0; h < num_kv_heads_; ++h) {
    const size_t src = layer_stride() * layer + static_cast<size_t>(h) * capacity_ * head_dim_;
    std::memcpy(k_out + h * row, k_.data() + src, row * sizeof(float));
    std::memcpy(v_out + h * row, v_.data() + src, row * sizeof(float));
  }
}

void KvCache::write_layer(int layer, const float* k_in, const float* v_in, int tokens) {
  check_layer(layer);
  if (tokens < 0 || tokens > capacity_) {
    throw std::out_of_range("cannot write " + std::to_string(tokens) + " positions into a KV cache of capacity " +
                            std::to_string(capacity_));
  }
#ifdef AL_CUDA
  if (dev_) {
    gpu::kv_write_layer(*dev_, layer, k_in, v_in, tokens);
    lengths_[layer] = tokens;
    return;
  }
#endif
  const size_t row = static_cast<size_t>(tokens) * head_dim_;
  for (int h = 0; h < num_kv_heads_; ++h) {
    const size_t dst = layer_stride() * layer + static_cast<size_t>(h) * capacity_ * head_dim_;
    std::memcpy(k_.data() + dst, k_in + h * row, row * sizeof(float));
    std::memcpy(v_.data() + dst, v_in + h * row, row * sizeof(float));
  }
  lengths_[layer] = tokens;
}

std::unique_ptr<KvCache> KvCache::fork(int capacity) const {
  const int longest = *std::max_element(lengths_.begin(), lengths_.end());
  if (capacity < longest) {
    throw std::out_of_range("cannot fork a KV cache holding " + std::to_string(longest) +
                            " positions into capacity " + std::to_string(capacity));
  }
  std::unique_ptr<KvCache> copy;
#ifdef AL_CUDA
  if (dev_) copy = std::make_unique<KvCache>(num_layers_, num_kv_heads_, head_dim_, capacity,
                                             gpu::kv_fork(*dev_, capacity, lengths_));
#endif
  if (!copy) copy = std::make_unique<KvCache>(num_layers_, num_kv_heads_, head_dim_, capacity);
  for (int l = 0; l < num_layers_ && !dev_; ++l) {
    const size_t n = static_cast<size_t>(lengths_[l]) * head_dim_;
    for (int h = 0; h < num_kv_heads_; ++h) {
      const size_t src = layer_stride() * l + static_cast<size_t>(h) * capacity_ * head_dim_;
      const size_t dst = copy->layer_stride() * l + static_cast<size_t>(h) * capacity * head_dim_;
      std::memcpy(copy->k_.data() + dst, k_.data() + src, n * sizeof(float));
      std::memcpy(copy->v_.data() + dst, v_.data() + src, n * sizeof(float));
    }
  }
  copy->lengths_ = lengths_;
  if (lora_v_) {
    copy->lora_v_ = std::make_unique<LoraVCapture>();
    LoraVCapture& c = *copy->lora_v_;
    c.adapter_id = lora_v_->adapter_id;
    c.ranks = lora_v_->ranks;
    c.length = lora_v_->length;
    c.u.resize(num_layers_);
    for (int l = 0; l < num_layers_; ++l) {
      const size_t r = static_cast<size_t>(c.ranks[l]);
      c.u[l].resize(static_cast<size_t>(capacity) * r);
      std::copy_n(lora_v_->u[l].data(), static_cast<size_t>(c.length) * r, c.u[l].data());
    }
  }
  return copy;
}

void KvCache::truncate(int length) {
  if (length < 0 || length > this->length()) {
    throw std::out_of_range("cannot truncate a KV cache holding " + std::to_string(this->length()) +
                            " positions to " + std::to_string(length));
  }
  for (int& l : lengths_) l = std::min(l, length);
  if (lora_v_) lora_v_->length = std::min(lora_v_->length, length);
}

void KvCache::begin_lora_v_capture(uint64_t adapter_id, const std::vector<int>& ranks) {
  auto c = std::make_unique<LoraVCapture>();
  c->adapter_id = adapter_id;
  c->ranks = ranks;
  c->u.resize(num_layers_);
  for (int l = 0; l < num_layers_; ++l) c->u[l].resize(static_cast<size_t>(capacity_) * ranks.at(l));
  lora_v_ = std::move(c);
}

bool KvCache::try_acquire() {
  int idle = 0;
  return state_.compare_exchange_strong(idle, -1);
}

bool KvCache::try_acquire_shared() {
  int s = state_.load();
  while (s >= 0) {
    if (state_.compare_exchange_weak(s, s + 1)) return true;
  }
  return false;
}

void KvCache::release() {
  int s = state_.load();
  while (!state_.compare_exchange_weak(s, s < 0 ? 0 : s - 1)) {
  }
}

}  // namespace al
