// What the two attention_parts kernels (attention.cu: CUDA cores, any dtype and head dim;
// attention_parts_tc.cu: tensor cores, bf16/fp16, head dims 64 and 128) share: the layer's
// plan as device pointers, and the partial states they write for merge_k (attention.cu).
//
// Partial state of (part, query head, chunk), `stride` floats at
//   partials + part.out + (head · span.chunks + chunk) · stride:
//   [0] m, the largest scaled score (score / sqrt(head_dim)) of the part's keys in the chunk
//       (−inf when none); [1] l = Σ exp(s − m) (0 when none); [2, 2 + hd) Σ exp(s − m)·v;
//   [2 + hd, 2 + hd + rv) Σ exp(s − m)·cv for a low-rank ΔV correction of rank rv.
#pragma once

#include <cuda_runtime.h>

#include "engine/cuda/common.cuh"
#include "engine/device.h"

namespace al::cuda {

struct PlanArgs {
  const AttnSpan* spans;
  const AttnPart* parts;
  const AttnCorrection* corrs;
  const int* span_parts;
  const int* row_parts;
  const int* row_begin;
  const AttnTile* tiles;
  int chunk;
  int stride;
  float* partials;
};

// The partial states of every part on tensor cores, where it applies (bf16/fp16, head_dim 64
// or 128, 16-byte aligned K/V/q, low-rank corrections of rank ≤ 128); false (nothing
// launched) otherwise, for the CUDA-core kernel to run instead.
// The plan's tile classes may launch on separate branches (b.side; ADAPTERLENS_CUDA_ATTN_BRANCHES=1), joined to b.main
// before this returns.
bool attention_parts_tc(DT dt, const void* q, const PlanArgs& args, const AttnPlan& plan, int heads, int kv_heads,
                        int hd, const Branches& b);

}  // namespace al::cuda
