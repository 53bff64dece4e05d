// Plans attention for a batch of rows of many sequences (decode steps, multi-sequence
// prefill, scoring): per layer, the spans of K/V the rows read (rows whose caches are views
// of one base cache share its span: cascade attention) and each row's parts with the store
// correction it applies (device.h, AttnPlan). Rows whose store attention cannot read in place
// (store_rebuilds_layers: pca) read a span rebuilt from it: one per store, in scratch the
// planner binds, rebuilt by expand(layer) just before that layer's attention and overwritten
// by the next layer's (one layer of K/V per such store while a pass runs, never a cache).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/device.h"
#include "engine/model.h"

namespace al {

class AttnPlanner {
 public:
  // rows: the pass's rows (positions and caches). by_capacity: size each span by the room
  // its caches have rather than by what they hold now, so that the plan's shape stays the
  // same while sequences grow (a captured decode graph replays it). Partial states are
  // bounded by `max_partial_floats` (chunks grow until they fit).
  void build(const Model& m, const Row* rows, int n, bool by_capacity, size_t max_partial_floats);

  // Points the rebuilt spans at `slots` (grown to two [tokens, kv_dim] tensors of the compute
  // dtype per rebuilt store) and grows `scratch` to what their rebuild needs. Before add_to.
  void bind(Device& dev, DT dt, Buffer& slots, Buffer& scratch);
  // Rebuilds every rebuilt store's layer into its slot (queued on the device).
  void expand(Device& dev, int layer, Buffer& scratch) const;
  bool has_expansions() const { return !expansions_.empty(); }

  // Adds every layer's tables to the pass's upload; then plan(layer) is valid after upload.
  void add_to(TableUpload& up);
  AttnPlan plan(const TableUpload& up, int layer, float* partials) const;

  size_t partial_floats() const { return partial_floats_; }
  // What the plan's shape is (counts, chunking, tiles, the corrections' kinds and alignment),
  // for a captured graph's key.
  void shape_key(std::vector<uint64_t>& key) const;

 private:
  struct Layer {
    std::vector<AttnSpan> spans;
    std::vector<AttnPart> parts;
    std::vector<AttnCorrection> corrs;
    std::vector<int> span_parts, row_parts, row_parts_begin;
    std::vector<AttnTile> tiles;
    size_t off_spans = 0, off_parts = 0, off_corrs = 0, off_span_parts = 0, off_row_parts = 0, off_row_begin = 0,
           off_tiles = 0;
  };
  struct Expansion {
    const KvStore* store;
    const KvCache* prefix;  // the base cache the store is decoded against
    void* k = nullptr;
    void* v = nullptr;
  };
  std::vector<Expansion> expansions_;
  std::vector<std::vector<std::pair<int, int>>> expanded_spans_;  // per layer: (span, expansion)
  std::vector<Layer> layers_;
  int n_rows_ = 0;
  int group_ = 1;  // query heads per kv head
  int chunk_ = 0;
  int stride_ = 0;
  size_t partial_floats_ = 0;
};

}  // namespace al
