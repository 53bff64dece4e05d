#include "engine/attention_tiles.h"

#include <algorithm>

namespace al {

bool same_attn_correction(const std::vector<AttnCorrection>& corrs, int a, int b) {
  if (a == b) return true;
  if (a < 0 || b < 0) return false;
  const AttnCorrection &x = corrs[a], &y = corrs[b];
  return x.qk == y.qk && x.qv == y.qv && x.ck == y.ck && x.cv == y.cv;
}

std::vector<AttnTile> attn_tiles(const std::vector<AttnPart>& parts, const std::vector<int>& span_parts,
                                 const std::vector<AttnCorrection>& corrs, int group) {
  std::vector<AttnTile> tiles;
  const int spans = static_cast<int>(span_parts.size()) - 1;
  for (int s = 0; s < spans; ++s) {
    const int p0 = span_parts[s], p1 = span_parts[s + 1];
    for (int a = p0; a < p1;) {
      int b = a + 1;
      while (b < p1 && same_attn_correction(corrs, parts[a].corr, parts[b].corr)) ++b;
      for (int q = (a - p0) * group; q < (b - p0) * group; q += kAttnTileQueries) {
        tiles.push_back(AttnTile{s, q, std::min(kAttnTileQueries, (b - p0) * group - q)});
      }
      a = b;
    }
  }
  auto cls = [&](const AttnTile& t) {
    const int ci = parts[span_parts[t.span] + t.q0 / group].corr;
    return attn_tile_class(ci >= 0 ? &corrs[ci] : nullptr);
  };
  std::stable_sort(tiles.begin(), tiles.end(), [&](const AttnTile& x, const AttnTile& y) { return cls(x) < cls(y); });
  return tiles;
}

}  // namespace al
