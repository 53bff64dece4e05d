// The work items of the tensor-core attention_parts kernel (device.h, AttnTile), cut from a
// layer's plan. Apart from the planner so that the rules the kernel relies on (every query in
// exactly one tile, one correction per tile, tiles in class order) are testable on their own:
// tests/native/attention_tiles_test.cpp.
#pragma once

#include <vector>

#include "engine/device.h"

namespace al {

// Whether two parts apply the same store's data (corrections by index, −1: none).
bool same_attn_correction(const std::vector<AttnCorrection>& corrs, int a, int b);

// Each span's queries (parts [span_parts[s], span_parts[s+1]) × group query heads, in part
// order) cut where the correction changes and every kAttnTileQueries; then ordered by
// attn_tile_class (stable), so that a kernel can launch each class with only what it stages.
std::vector<AttnTile> attn_tiles(const std::vector<AttnPart>& parts, const std::vector<int>& span_parts,
                                 const std::vector<AttnCorrection>& corrs, int group);

}  // namespace al
