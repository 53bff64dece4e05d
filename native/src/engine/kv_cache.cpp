#include "engine/kv_cache.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>

#include "engine/kv_store.h"
#include "engine/weights.h"

namespace al {

namespace {
// Guards every cache's pin bookkeeping (views come and go rarely).
std::mutex& pin_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace

size_t LoraVCapture::bytes() const {
  size_t n = 0;
  for (const Buffer& b : u) n += b.bytes();
  return n;
}

KvCache::KvCache(Device& dev, DT dt, int num_layers, int num_kv_heads, int head_dim, int capacity)
    : dev_(&dev),
      dt_(dt),
      num_layers_(num_layers),
      num_kv_heads_(num_kv_heads),
      head_dim_(head_dim),
      own_begin_(0),
      own_capacity_(capacity),
      lengths_(num_layers, 0) {
  const size_t bytes = static_cast<size_t>(layer_stride()) * num_layers * dt_size(dt);
  auto lock = dev.lock();
  k_ = Buffer(dev, bytes, "a KV cache (K)");
  v_ = Buffer(dev, bytes, "a KV cache (V)");
  dev.memset0(k_.get(), bytes);
  dev.memset0(v_.get(), bytes);
  dev.sync("clearing a KV cache");
}

std::shared_ptr<KvCache> KvCache::view(std::shared_ptr<KvCache> prefix, std::shared_ptr<const KvStore> store,
                                       int prefix_length, int capacity) {
  if (!prefix) throw std::invalid_argument("a view needs a prefix cache");
  if (prefix->is_view()) throw std::invalid_argument("a view's prefix must be a plain cache, not another view");
  if (prefix_length < 0 || prefix_length > prefix->length()) {
    throw std::out_of_range("a view of " + std::to_string(prefix_length) + " positions of a cache holding " +
                            std::to_string(prefix->length()));
  }
  if (capacity < prefix_length) {
    throw std::out_of_range("a view's capacity (" + std::to_string(capacity) + ") is less than its prefix (" +
                            std::to_string(prefix_length) + ")");
  }
  if (store) {
    if (store->tokens < prefix_length) {
      throw std::out_of_range("the store holds " + std::to_string(store->tokens) + " positions but the view reads " +
                              std::to_string(prefix_length));
    }
    if (store->num_layers != prefix->num_layers() || store->num_kv_heads != prefix->num_kv_heads() ||
        store->head_dim != prefix->head_dim()) {
      throw std::invalid_argument("the store was encoded for a different model shape than the prefix cache");
    }
  }
  auto v = std::make_shared<KvCache>(prefix->device(), prefix->dtype(), prefix->num_layers(), prefix->num_kv_heads(),
                                     prefix->head_dim(), capacity - prefix_length);
  v->own_begin_ = prefix_length;
  v->set_length(prefix_length);
  {
    std::lock_guard<std::mutex> g(pin_mutex());
    prefix->views_++;
    prefix->pinned_.store(std::max(prefix->pinned_.load(), prefix_length));
  }
  v->prefix_ = std::move(prefix);
  v->store_ = std::move(store);
  return v;
}

KvCache::~KvCache() {
  if (prefix_) {
    std::lock_guard<std::mutex> g(pin_mutex());
    if (--prefix_->views_ == 0) prefix_->pinned_.store(0);
  }
  // Buffers go back through the device without taking its lock (Device::release may defer).
}

size_t KvCache::bytes() const { return k_.bytes() + v_.bytes() + (lora_v_ ? lora_v_->bytes() : 0); }

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
  const size_t n = static_cast<size_t>(num_kv_heads_) * len * head_dim_;
  if (n == 0) return;
  auto lock = dev_->lock();
  Buffer kd(*dev_, n * dt_size(dt_), "reading a KV layer"), vd(*dev_, n * dt_size(dt_), "reading a KV layer");
  Buffer scratch;
  materialize_layer(*this, layer, len, kd.get(), vd.get(), len, scratch);
  if (dt_ == DT::F32) {
    dev_->download(k_out, kd.get(), n * 4);
    dev_->download(v_out, vd.get(), n * 4);
    return;
  }
  std::vector<uint16_t> raw(n);
  const DType stored = dt_ == DT::BF16 ? DType::BF16 : DType::F16;
  dev_->download(raw.data(), kd.get(), n * 2);
  convert_to_f32(reinterpret_cast<const uint8_t*>(raw.data()), stored, static_cast<int64_t>(n), k_out);
  dev_->download(raw.data(), vd.get(), n * 2);
  convert_to_f32(reinterpret_cast<const uint8_t*>(raw.data()), stored, static_cast<int64_t>(n), v_out);
}

void KvCache::write_layer(int layer, const float* k_in, const float* v_in, int tokens) {
  check_layer(layer);
  if (is_view()) throw std::runtime_error("a view's document positions are shared: write to its prefix cache instead");
  if (views_.load() > 0) {
    throw std::runtime_error("the KV cache is read by " + std::to_string(views_.load()) +
                             " view(s) (sequences sharing it); dispose them before rewriting it");
  }
  if (tokens < 0 || tokens > own_capacity_) {
    throw std::out_of_range("cannot write " + std::to_string(tokens) + " positions into a KV cache of capacity " +
                            std::to_string(own_capacity_));
  }
  auto lock = dev_->lock();
  const size_t row = static_cast<size_t>(tokens) * head_dim_;
  for (int h = 0; h < num_kv_heads_; ++h) {
    const size_t dst = (static_cast<size_t>(h) * own_capacity_) * head_dim_;
    dev_->load_values(dt_, static_cast<char*>(own_k(layer)) + dst * dt_size(dt_), k_in + h * row, 0,
                      static_cast<int64_t>(row));
    dev_->load_values(dt_, static_cast<char*>(own_v(layer)) + dst * dt_size(dt_), v_in + h * row, 0,
                      static_cast<int64_t>(row));
  }
  dev_->sync("writing a KV layer");
  lengths_[layer] = tokens;
}

std::shared_ptr<KvCache> KvCache::fork(int capacity) const {
  const int longest = *std::max_element(lengths_.begin(), lengths_.end());
  if (capacity < longest) {
    throw std::out_of_range("cannot fork a KV cache holding " + std::to_string(longest) + " positions into capacity " +
                            std::to_string(capacity));
  }
  std::shared_ptr<KvCache> copy = is_view() ? view(prefix_, store_, own_begin_, capacity)
                                            : std::make_shared<KvCache>(*dev_, dt_, num_layers_, num_kv_heads_,
                                                                        head_dim_, capacity);
  auto lock = dev_->lock();
  for (int l = 0; l < num_layers_; ++l) {
    const int own = lengths_[l] - own_begin_;
    dev_->copy_positions(dt_, copy->own_k(l), copy->own_capacity_, own_k(l), own_capacity_, num_kv_heads_, head_dim_,
                         own);
    dev_->copy_positions(dt_, copy->own_v(l), copy->own_capacity_, own_v(l), own_capacity_, num_kv_heads_, head_dim_,
                         own);
  }
  copy->lengths_ = lengths_;
  if (lora_v_) {
    copy->begin_lora_v_capture(lora_v_->adapter_id, lora_v_->ranks);
    for (int l = 0; l < num_layers_; ++l) {
      const size_t r = static_cast<size_t>(lora_v_->ranks[l]);
      dev_->copy(copy->lora_v_->u[l].get(), lora_v_->u[l].get(), static_cast<size_t>(lora_v_->length) * r * 4);
    }
    copy->lora_v_->length = lora_v_->length;
  }
  dev_->sync("forking a KV cache");
  return copy;
}

void KvCache::truncate(int length) {
  if (length < 0 || length > this->length()) {
    throw std::out_of_range("cannot truncate a KV cache holding " + std::to_string(this->length()) + " positions to " +
                            std::to_string(length));
  }
  if (length < own_begin_) {
    throw std::out_of_range("cannot truncate a view to " + std::to_string(length) + " positions: its first " +
                            std::to_string(own_begin_) + " are its shared prefix");
  }
  if (views_.load() > 0 && length < pinned_.load()) {
    throw std::runtime_error("cannot truncate the KV cache to " + std::to_string(length) + " positions: " +
                             std::to_string(views_.load()) + " view(s) read its first " +
                             std::to_string(pinned_.load()) + "; dispose them first");
  }
  for (int& l : lengths_) l = std::min(l, length);
  if (lora_v_) lora_v_->length = std::min(lora_v_->length, length);
}

void KvCache::begin_lora_v_capture(uint64_t adapter_id, const std::vector<int>& ranks) {
  if (is_view()) throw std::runtime_error("a view cannot capture LoRA-V inputs (prefill a plain cache)");
  auto c = std::make_unique<LoraVCapture>();
  c->adapter_id = adapter_id;
  c->ranks = ranks;
  c->u.resize(num_layers_);
  auto lock = dev_->lock();
  for (int l = 0; l < num_layers_; ++l) {
    const size_t bytes = static_cast<size_t>(own_capacity_) * ranks.at(l) * 4;
    c->u[l] = Buffer(*dev_, bytes, "a LoRA-V capture");
    dev_->memset0(c->u[l].get(), bytes);
  }
  lora_v_ = std::move(c);
}

float* KvCache::lora_v_row(int layer, int pos) const {
  return lora_v_->u[layer].as<float>() + static_cast<size_t>(pos) * lora_v_->ranks[layer];
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

void materialize_layer(const KvCache& c, int layer, int tokens, void* dk, void* dv, int dst_capacity, Buffer& scratch) {
  Device& dev = c.device();
  const DT dt = c.dtype();
  const int heads = c.num_kv_heads(), hd = c.head_dim();
  const size_t ds = dt_size(dt);
  const int prefix = std::min(tokens, c.prefix_length());
  if (c.is_view() && prefix > 0) {
    if (c.store()) {
      decode_store_layer(*c.store(), *c.prefix(), layer, prefix, dk, dv, dst_capacity, scratch);
    } else {
      dev.copy_positions(dt, dk, dst_capacity, c.prefix()->own_k(layer), c.prefix()->own_capacity(), heads, hd, prefix);
      dev.copy_positions(dt, dv, dst_capacity, c.prefix()->own_v(layer), c.prefix()->own_capacity(), heads, hd, prefix);
    }
  }
  const int own = tokens - prefix;
  if (own > 0) {
    // Own slot 0 holds position own_begin: copy into destination position `prefix` onward.
    dev.copy_positions(dt, static_cast<char*>(dk) + static_cast<size_t>(prefix) * hd * ds, dst_capacity, c.own_k(layer),
                       c.own_capacity(), heads, hd, own);
    dev.copy_positions(dt, static_cast<char*>(dv) + static_cast<size_t>(prefix) * hd * ds, dst_capacity, c.own_v(layer),
                       c.own_capacity(), heads, hd, own);
  }
}

}  // namespace al
