#include "engine/attention_plan.h"

#include <algorithm>
#include <map>
#include <utility>

#include "engine/attention_tiles.h"
#include "engine/kv_store.h"

namespace al {


void AttnPlanner::build(const Model& m, const Row* rows, int n, bool by_capacity, size_t max_partial_floats) {
  const Config& c = m.config;
  const int L = c.num_layers, heads = c.num_heads, hd = c.head_dim;
  n_rows_ = n;
  group_ = heads / c.num_kv_heads;
  layers_.assign(L, Layer{});
  expansions_.clear();
  expanded_spans_.assign(L, {});
  int max_rv = 0;
  // Stores read from rebuilt layers: one expansion each, whatever number of rows read it.
  std::map<const KvStore*, int> expansion_of;
  for (int i = 0; i < n; ++i) {
    const KvCache& cache = *rows[i].cache;
    if (!cache.is_view() || cache.prefix_length() == 0 || !cache.store()) continue;
    const KvStore* st = cache.store();
    if (!store_rebuilds_layers(*st) || expansion_of.count(st)) continue;
    expansion_of.emplace(st, static_cast<int>(expansions_.size()));
    expansions_.push_back(Expansion{st, cache.prefix()});
  }

  for (int l = 0; l < L; ++l) {
    Layer& ly = layers_[l];
    std::map<std::pair<const void*, int>, int> span_of;  // (K address, first position) → span
    struct Tmp {
      int row, span, end, corr;
      int store_rank;  // 0 without a correction, else 1 + the store's order of first appearance
    };
    std::map<const KvStore*, int> store_rank;
    std::vector<Tmp> tmp;
    auto span_for = [&](const void* k, const void* v, int capacity, int begin, int extent) {
      auto [it, fresh] = span_of.emplace(std::make_pair(k, begin), static_cast<int>(ly.spans.size()));
      if (fresh) {
        ly.spans.push_back(AttnSpan{k, v, capacity, begin, extent, 1});
      } else {
        AttnSpan& s = ly.spans[it->second];
        s.extent = std::max(s.extent, extent);
      }
      return it->second;
    };
    for (int i = 0; i < n; ++i) {
      const KvCache& cache = *rows[i].cache;
      const int end = rows[i].pos + 1;
      if (cache.is_view() && cache.prefix_length() > 0) {
        // The document: the prefix cache's positions (or hybrid's own exact layer), read by
        // every row derived from it, each through its own correction.
        const int P = cache.prefix_length();
        const KvStore* st = cache.store();
        int span, corr = -1;
        if (st && store_rebuilds_layers(*st)) {
          // Bound to the expansion's slot by bind(); keyed by the store until then.
          const int e = expansion_of.at(st);
          span = span_for(st, st, st->tokens, 0, P);
          expanded_spans_[l].emplace_back(span, e);
        } else if (st && st->layers[l].exact) {
          const LayerStore& ls = st->layers[l];
          span = span_for(ls.k.get(), ls.v.get(), st->tokens, 0, P);
        } else {
          const KvCache& p = *cache.prefix();
          span = span_for(p.own_k(l), p.own_v(l), p.own_capacity(), 0, P);
          if (st) {
            const AttnCorrection cc = store_correction(*st, l);
            if (!correction_empty(cc)) {
              corr = static_cast<int>(ly.corrs.size());
              ly.corrs.push_back(cc);
              max_rv = std::max(max_rv, cc.rv);
            }
          }
        }
        int rank = 0;
        if (corr >= 0) rank = store_rank.emplace(st, static_cast<int>(store_rank.size()) + 1).first->second;
        tmp.push_back({i, span, P, corr, rank});
      }
      // The row's own positions (a plain cache: all of them), causal.
      const int begin = cache.own_begin();
      const int extent = by_capacity ? cache.own_capacity() : end - begin;
      const int span = span_for(cache.own_k(l), cache.own_v(l), cache.own_capacity(), begin, extent);
      tmp.push_back({i, span, end, -1, 0});
    }
    // Parts grouped by span (the cascade kernel's unit) and within a span by store (so that a
    // store's rows form one run of tiles), rows' parts indexed separately.
    std::stable_sort(tmp.begin(), tmp.end(), [](const Tmp& a, const Tmp& b) {
      return a.span != b.span ? a.span < b.span : a.store_rank < b.store_rank;
    });
    ly.parts.resize(tmp.size());
    ly.span_parts.assign(ly.spans.size() + 1, 0);
    for (size_t p = 0; p < tmp.size(); ++p) {
      ly.parts[p] = AttnPart{tmp[p].row, tmp[p].span, tmp[p].end, tmp[p].corr, 0};
      ly.span_parts[tmp[p].span + 1]++;
    }
    for (size_t s = 0; s < ly.spans.size(); ++s) ly.span_parts[s + 1] += ly.span_parts[s];
    ly.row_parts_begin.assign(n + 1, 0);
    for (const AttnPart& p : ly.parts) ly.row_parts_begin[p.row + 1]++;
    for (int r = 0; r < n; ++r) ly.row_parts_begin[r + 1] += ly.row_parts_begin[r];
    ly.row_parts.assign(ly.parts.size(), 0);
    std::vector<int> fill(ly.row_parts_begin.begin(), ly.row_parts_begin.end() - 1);
    for (size_t p = 0; p < ly.parts.size(); ++p) ly.row_parts[fill[ly.parts[p].row]++] = static_cast<int>(p);
    ly.tiles = attn_tiles(ly.parts, ly.span_parts, ly.corrs, group_);
  }

  // Chunking: the device's chunk, grown until the partial states fit the budget.
  stride_ = 2 + hd + max_rv;
  int longest = 1;
  for (const Layer& ly : layers_)
    for (const AttnSpan& s : ly.spans) longest = std::max(longest, s.extent);
  chunk_ = std::max(1, std::min(m.dev->attention_chunk(), longest));
  for (;;) {
    size_t worst = 0;
    for (Layer& ly : layers_) {
      for (AttnSpan& s : ly.spans) s.chunks = std::max(1, (s.extent + chunk_ - 1) / chunk_);
      size_t off = 0;
      for (AttnPart& p : ly.parts) {
        p.out = static_cast<int64_t>(off);
        off += static_cast<size_t>(heads) * ly.spans[p.span].chunks * stride_;
      }
      worst = std::max(worst, off);
    }
    partial_floats_ = worst;
    if (worst <= max_partial_floats || chunk_ >= longest) break;
    chunk_ = std::min(longest, chunk_ * 2);
  }
}

void AttnPlanner::bind(Device& dev, DT dt, Buffer& slots, Buffer& scratch) {
  if (expansions_.empty()) return;
  size_t total = 0, scratch_bytes = 4;
  std::vector<size_t> offs;
  for (const Expansion& e : expansions_) {
    offs.push_back(total);
    const size_t tensor = static_cast<size_t>(e.store->tokens) * e.store->num_kv_heads * e.store->head_dim * dt_size(dt);
    total += 2 * ((tensor + 255) / 256 * 256);
    scratch_bytes = std::max(scratch_bytes, decode_scratch_bytes(*e.store, e.store->tokens));
  }
  slots.ensure(dev, total, "rebuilt layers of pca stores");
  scratch.ensure(dev, scratch_bytes, "pca rebuild scratch");
  for (size_t i = 0; i < expansions_.size(); ++i) {
    Expansion& e = expansions_[i];
    const size_t tensor = static_cast<size_t>(e.store->tokens) * e.store->num_kv_heads * e.store->head_dim * dt_size(dt);
    e.k = slots.as<char>() + offs[i];
    e.v = slots.as<char>() + offs[i] + (tensor + 255) / 256 * 256;
  }
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (const auto& [span, ei] : expanded_spans_[l]) {
      layers_[l].spans[span].k = expansions_[ei].k;
      layers_[l].spans[span].v = expansions_[ei].v;
    }
  }
}

void AttnPlanner::expand(Device& dev, int layer, Buffer& scratch) const {
  for (const Expansion& e : expansions_) {
    decode_store_layer(*e.store, *e.prefix, layer, e.store->tokens, e.k, e.v, e.store->tokens, scratch);
  }
}

void AttnPlanner::add_to(TableUpload& up) {
  for (Layer& ly : layers_) {
    ly.off_spans = up.add(ly.spans);
    ly.off_parts = up.add(ly.parts);
    ly.off_corrs = up.add(ly.corrs);
    ly.off_span_parts = up.add(ly.span_parts);
    ly.off_row_parts = up.add(ly.row_parts);
    ly.off_row_begin = up.add(ly.row_parts_begin);
    ly.off_tiles = up.add(ly.tiles);
  }
}

AttnPlan AttnPlanner::plan(const TableUpload& up, int layer, float* partials) const {
  const Layer& ly = layers_[layer];
  AttnPlan p;
  p.spans = up.table<AttnSpan>(ly.off_spans, static_cast<int>(ly.spans.size()));
  p.parts = up.table<AttnPart>(ly.off_parts, static_cast<int>(ly.parts.size()));
  p.corrs = up.table<AttnCorrection>(ly.off_corrs, static_cast<int>(ly.corrs.size()));
  p.span_parts = up.table<int>(ly.off_span_parts, static_cast<int>(ly.span_parts.size()));
  p.row_parts = up.table<int>(ly.off_row_parts, static_cast<int>(ly.row_parts.size()));
  p.row_parts_begin = up.table<int>(ly.off_row_begin, static_cast<int>(ly.row_parts_begin.size()));
  p.tiles = up.table<AttnTile>(ly.off_tiles, static_cast<int>(ly.tiles.size()));
  p.chunk = chunk_;
  p.stride = stride_;
  p.partials = partials;
  return p;
}

void AttnPlanner::shape_key(std::vector<uint64_t>& key) const {
  key.push_back(static_cast<uint64_t>(chunk_));
  key.push_back(static_cast<uint64_t>(stride_));
  key.push_back(partial_floats_);
  // A rebuild's ops name its store's buffers: a graph replays only for the same stores.
  for (const Expansion& e : expansions_) {
    key.push_back(reinterpret_cast<uintptr_t>(e.store));
    key.push_back(reinterpret_cast<uintptr_t>(e.prefix));
  }
  // What a device may shape its launches by when a graph is captured, beyond the counts: the
  // spans' chunks and parts (queries per span), the tiles and their classes, each correction's
  // kinds, ranks and bits, and the 16-byte alignment of the data it reads (a kernel picks its
  // variant, its shared memory and its fallback from these; a replay must not meet others).
  auto aligned16 = [](const void* p) { return static_cast<uint64_t>((reinterpret_cast<uintptr_t>(p) & 15u) == 0); };
  for (const Layer& ly : layers_) {
    for (size_t i = 0; i < ly.spans.size(); ++i) {
      const AttnSpan& sp = ly.spans[i];
      key.push_back(static_cast<uint64_t>(sp.chunks) << 32 | static_cast<uint32_t>(ly.span_parts[i + 1] - ly.span_parts[i]));
      key.push_back(aligned16(sp.k) | aligned16(sp.v) << 1);
    }
    for (const AttnTile& t : ly.tiles) {
      const int ci = ly.parts[ly.span_parts[t.span] + t.q0 / group_].corr;
      const uint64_t cls = static_cast<uint64_t>(attn_tile_class(ci >= 0 ? &ly.corrs[ci] : nullptr));
      key.push_back(static_cast<uint64_t>(t.span) << 40 | static_cast<uint64_t>(t.q0) << 10 | static_cast<uint64_t>(t.nrows) << 2 | cls);
    }
    for (const AttnCorrection& c : ly.corrs) {
      key.push_back(static_cast<uint64_t>(attn_tile_class(&c)) | static_cast<uint64_t>(c.ck != nullptr) << 2 |
                    static_cast<uint64_t>(c.cv != nullptr) << 3 | static_cast<uint64_t>(c.bits) << 4 |
                    aligned16(c.qk) << 12 | aligned16(c.qv) << 13 | aligned16(c.cv) << 14 |
                    static_cast<uint64_t>(c.rv) << 16 | static_cast<uint64_t>(c.rk) << 32);
    }
    key.push_back(ly.spans.size());
    key.push_back(ly.parts.size());
    key.push_back(ly.corrs.size());
    key.push_back(ly.tiles.size());
    int max_chunks = 0;
    for (const AttnSpan& s : ly.spans) max_chunks = std::max(max_chunks, s.chunks);
    key.push_back(static_cast<uint64_t>(max_chunks));
    key.push_back(ly.off_spans);
    key.push_back(ly.off_row_begin);
  }
}

}  // namespace al
