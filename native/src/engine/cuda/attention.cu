// Attention: attention_prefill's fp32 flash kernel (the tensor-core one for bf16/fp16 is in
// attention_tc.cu) and attention_parts, the shared-cache (cascade) attention of decode steps
// and multi-sequence prefills. CPU references: attention_prefill and attention_parts in
// device_cpu.cpp (part_state, merge_states).
//
// attention_parts runs in two kernels per layer:
//  1. parts_k (here: fp32, and head dims other than 64 / 128) or parts_tc_k (attention_parts_tc.cu:
//     the same partial states on tensor cores, for bf16/fp16) — parts_k: block (kv head, key chunk, span). A span is one stretch of K/V (a document's
//     base cache, an exact cache, a row's own positions); every query of every part that reads
//     the span — the span's rows times the kv head's query heads — is processed against the
//     chunk's keys, which pass through shared memory in 32-key tiles loaded once by the block,
//     so rows derived from one base cache read its K/V once per step. Each query keeps an
//     online softmax (running max m, sum l), the unnormalized P·V and, for a low-rank ΔV
//     correction, P·cv (r values); quantized ΔK/ΔV and low-rank ΔK enter the scores and values
//     per key.
//  2. merge_k — block (query head, row): the log-sum-exp merge of every partial state of the
//     row (each part, each chunk), then out += bv_h · (P·cv) / L for low-rank ΔV parts.
#include <algorithm>

#include "engine/cuda/attention_parts.cuh"
#include "engine/cuda/common.cuh"

namespace al::cuda {

namespace {

// ---- fp32 flash prefill ---------------------------------------------------------------------
// Block (query tile of 32 rows, head), 4 threads per query, each holding DPT interleaved dims
// of q and of the output. Key/value tiles pass through shared memory (fp32); online softmax,
// no score matrix anywhere. Any head_dim up to 4·DPT.
constexpr int kBQ = 32;
template <typename T, int DPT>
__global__ void __launch_bounds__(kBQ * 4) flash_prefill_k(T* out, const T* q, const T* kc, const T* vc, int capacity,
                                                             int pos0, int n, int num_heads, int num_kv_heads, int hd,
                                                             float scale) {
  constexpr int HDMAX = 4 * DPT;
  constexpr int BK = 4096 / HDMAX;
  __shared__ float ks[BK * HDMAX];
  __shared__ float vs[BK * HDMAX];
  const int h = blockIdx.y;
  const int g = h / (num_heads / num_kv_heads);
  const int qi = threadIdx.x / 4, part = threadIdx.x % 4;
  const int row = blockIdx.x * kBQ + qi;
  const bool active = row < n;
  const int qpos = pos0 + (active ? row : n - 1);
  const T* kh = kc + static_cast<int64_t>(g) * capacity * hd;
  const T* vh = vc + static_cast<int64_t>(g) * capacity * hd;

  float qr[DPT], o[DPT];
  const T* qrow = q + (static_cast<int64_t>(active ? row : 0) * num_heads + h) * hd;
#pragma unroll
  for (int i = 0; i < DPT; ++i) {
    const int d = i * 4 + part;
    qr[i] = d < hd ? to_f(qrow[d]) : 0.0f;
    o[i] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const int last_row = min(n, static_cast<int>(blockIdx.x + 1) * kBQ) - 1;
  const int kmax = pos0 + last_row;  // the last key any query of this tile sees

  for (int k0 = 0; k0 <= kmax; k0 += BK) {
    __syncthreads();
    for (int e = threadIdx.x; e < BK * HDMAX; e += blockDim.x) {
      const int key = k0 + e / HDMAX, d = e % HDMAX;
      const bool in = key <= kmax && d < hd;
      ks[e] = in ? to_f(kh[static_cast<int64_t>(key) * hd + d]) : 0.0f;
      vs[e] = in ? to_f(vh[static_cast<int64_t>(key) * hd + d]) : 0.0f;
    }
    __syncthreads();
    const int jn = min(BK, kmax - k0 + 1);
    for (int j = 0; j < jn; ++j) {
      float s = 0.0f;
#pragma unroll
      for (int i = 0; i < DPT; ++i) s += qr[i] * ks[j * HDMAX + i * 4 + part];
      s += __shfl_xor_sync(0xffffffffu, s, 1);
      s += __shfl_xor_sync(0xffffffffu, s, 2);
      s *= scale;
      if (k0 + j <= qpos) {
        if (s > m) {
          const float corr = expf(m - s);  // 0 on the first key (m = -inf)
          l = l * corr + 1.0f;
#pragma unroll
          for (int i = 0; i < DPT; ++i) o[i] = o[i] * corr + vs[j * HDMAX + i * 4 + part];
          m = s;
        } else {
          const float pj = expf(s - m);
          l += pj;
#pragma unroll
          for (int i = 0; i < DPT; ++i) o[i] += pj * vs[j * HDMAX + i * 4 + part];
        }
      }
    }
  }
  if (active) {
    T* orow = out + (static_cast<int64_t>(row) * num_heads + h) * hd;
#pragma unroll
    for (int i = 0; i < DPT; ++i) {
      const int d = i * 4 + part;
      if (d < hd) orow[d] = from_f<T>(o[i] / l);
    }
  }
}

// ---- attention_parts ------------------------------------------------------------------------

constexpr int kPartWarps = 4;
constexpr int kTileKeys = 32;    // keys per shared-memory tile: one per lane
constexpr int kWarpQueries = 4;  // queries a warp carries through the tiles at once
constexpr int kRoundQueries = kPartWarps * kWarpQueries;
constexpr int kMaxRv = 128;      // low-rank ΔV corrections of rank up to 128 (RVL = 4 lanes' worth)
constexpr int kMaxRk = 128;      // low-rank ΔK likewise
constexpr int kBatch = 4;        // keys whose ΔV data are loaded together

// The correction of a part that has none (all null) in device memory.
__device__ const AttnCorrection kNoCorrection{};


__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

__device__ __forceinline__ int quant_at(const uint8_t* row, int d, int bits) {
  if (bits == 8) return static_cast<int8_t>(row[d]);
  const int nib = (row[d >> 1] >> ((d & 1) * 4)) & 0xF;
  return (nib ^ 8) - 8;
}

// q · (a quantized row), 16 bytes at a time where the row allows it.
__device__ __forceinline__ float quant_dot(const float* qs, const uint8_t* row, int hd, int bits) {
  float dot = 0.0f;
  const bool vec = (reinterpret_cast<uintptr_t>(row) & 15u) == 0 && hd % (bits == 8 ? 16 : 32) == 0;
  if (vec && bits == 8) {
    for (int d = 0; d < hd; d += 16) {
      const uint4 w = *reinterpret_cast<const uint4*>(row + d);
      const int8_t* b = reinterpret_cast<const int8_t*>(&w);
#pragma unroll
      for (int i = 0; i < 16; ++i) dot += qs[d + i] * static_cast<float>(b[i]);
    }
  } else if (vec) {
    for (int d = 0; d < hd; d += 32) {
      const uint4 w = *reinterpret_cast<const uint4*>(row + d / 2);
      const uint8_t* b = reinterpret_cast<const uint8_t*>(&w);
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        dot += qs[d + 2 * i] * static_cast<float>(((b[i] & 0xF) ^ 8) - 8);
        dot += qs[d + 2 * i + 1] * static_cast<float>(((b[i] >> 4) ^ 8) - 8);
      }
    }
  } else {
    for (int d = 0; d < hd; ++d) dot += qs[d] * static_cast<float>(quant_at(row, d, bits));
  }
  return dot;
}

// A quantized row's EPL values at dims d0.. as one word where they fit (int8: EPL ≤ 4 bytes,
// int4: EPL ≤ 8 nibbles), for the batched ΔV loads.
template <int EPL>
__device__ __forceinline__ uint32_t quant_word(const uint8_t* row, int d0, int bits, bool on) {
  if (!on) return 0;
  if (bits == 8) {
    if constexpr (EPL == 4) return *reinterpret_cast<const uint32_t*>(row + d0);
    if constexpr (EPL == 2) return *reinterpret_cast<const uint16_t*>(row + d0);
    if constexpr (EPL == 1) return row[d0];
  } else {
    if constexpr (EPL == 8) return *reinterpret_cast<const uint32_t*>(row + d0 / 2);
    if constexpr (EPL == 4) return *reinterpret_cast<const uint16_t*>(row + d0 / 2);
    if constexpr (EPL == 2) return row[d0 / 2];
  }
  return 0;
}
template <int EPL>
__device__ __forceinline__ float word_value(uint32_t w, int e, int bits) {
  if (bits == 8) return static_cast<float>(static_cast<int8_t>((w >> (8 * e)) & 0xFF));
  return static_cast<float>(static_cast<int>(((w >> (4 * e)) & 0xF) ^ 8) - 8);
}
// Whether quant_word covers this lane's dims (else the per-element path).
template <int EPL>
__device__ __forceinline__ bool word_fits(int bits) {
  return bits == 8 ? EPL <= 4 : EPL >= 2;
}

// Shared memory of parts_k: the K and V tile (fp32, K rows padded by one so that lanes reading
// different keys hit different banks), the round's queries and their low-rank ΔK projections.
size_t parts_smem(int hd, int round_queries, bool low_rank_k) {
  return sizeof(float) * (static_cast<size_t>(kTileKeys) * (hd + 1) + static_cast<size_t>(kTileKeys) * hd +
                          static_cast<size_t>(round_queries) * hd + (low_rank_k ? static_cast<size_t>(round_queries) * kMaxRk : 0));
}

// Block (kv head, key chunk, span), 4 warps. The chunk's keys pass through shared memory in
// tiles of 32, loaded once by the block for every query of every part reading the span (its
// rows × the kv head's query heads), in rounds of up to 16 queries, up to 4 per warp; the next
// tile is fetched into registers while the current one is computed. Per tile and query: lane j
// scores key j (q·k_base + its row's ΔK correction), the warp updates the online softmax, and
// lanes, now over head dims, accumulate P·V (+ the row's quantized ΔV) and P·cv (low-rank ΔV),
// their ΔV data loaded 8 keys at a time. Each query's partial state for the chunk goes to the
// plan's partials; merge_k joins them.
template <typename T, int EPL, int RVL>
__global__ void __launch_bounds__(kPartWarps * 32, 3)
    parts_k(const T* q, PlanArgs plan, int heads, int kv_heads, int hd, float scale, int round_queries, int low_rank_k) {
  constexpr int kRvLanes = RVL;  // low-rank ΔV coefficients per lane (rank up to 32·RVL)
  // 16-byte vectors of K (and of V) a thread prefetches per tile: a 32-key tile of head dim
  // 32·EPL over the block's threads.
  constexpr int kPrefetch = (8 * EPL * static_cast<int>(sizeof(T)) + 15) / 16 > 0 ? (8 * EPL * static_cast<int>(sizeof(T)) + 15) / 16 : 1;
  extern __shared__ float sm[];
  const int ks = hd + 1;
  float* Ks = sm;
  float* Vs = Ks + kTileKeys * ks;
  float* Qs = Vs + kTileKeys * hd;
  float* Lk = Qs + round_queries * hd;
  const int g = blockIdx.x, c = blockIdx.y, sp = blockIdx.z;
  const AttnSpan span = plan.spans[sp];
  if (c >= span.chunks) return;  // uniform over the block
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int group = heads / kv_heads;
  const int p0 = plan.span_parts[sp], np = plan.span_parts[sp + 1] - p0;
  const int queries = np * group;
  const int k_lo = span.begin + c * plan.chunk;
  int k_hi = min(span.begin + span.extent, k_lo + plan.chunk);
  {
    int longest = span.begin;  // the furthest any part reads
    for (int i = 0; i < np; ++i) longest = max(longest, plan.parts[p0 + i].end);
    k_hi = min(k_hi, longest);
  }
  const T* kh = static_cast<const T*>(span.k) + static_cast<int64_t>(g) * span.capacity * hd;
  const T* vh = static_cast<const T*>(span.v) + static_cast<int64_t>(g) * span.capacity * hd;
  constexpr int VEC = 16 / sizeof(T);
  const int vecs = kTileKeys * hd / VEC;  // 16-byte vectors of K (and V) per tile
  const bool pipelined = hd % VEC == 0 && vecs <= kPrefetch * static_cast<int>(blockDim.x);
  const int per_warp = round_queries / kPartWarps + (round_queries % kPartWarps ? 1 : 0);

  uint4 kreg[kPrefetch], vreg[kPrefetch];
  auto prefetch = [&](int t0) {
#pragma unroll
    for (int i = 0; i < kPrefetch; ++i) {
      const int e = threadIdx.x + i * blockDim.x;
      const int j = e / (hd / VEC), d = (e % (hd / VEC)) * VEC;
      const bool in = e < vecs && t0 + j < k_hi;
      const int64_t at = static_cast<int64_t>(t0 + j - span.begin) * hd + d;
      kreg[i] = in ? *reinterpret_cast<const uint4*>(kh + at) : make_uint4(0, 0, 0, 0);
      vreg[i] = in ? *reinterpret_cast<const uint4*>(vh + at) : make_uint4(0, 0, 0, 0);
    }
  };
  auto store_tile = [&](int t0) {
    if (pipelined) {
#pragma unroll
      for (int i = 0; i < kPrefetch; ++i) {
        const int e = threadIdx.x + i * blockDim.x;
        if (e >= vecs) break;
        const int j = e / (hd / VEC), d = (e % (hd / VEC)) * VEC;
        const T* kt = reinterpret_cast<const T*>(&kreg[i]);
        const T* vt = reinterpret_cast<const T*>(&vreg[i]);
#pragma unroll
        for (int u = 0; u < VEC; ++u) {
          Ks[j * ks + d + u] = to_f(kt[u]);
          Vs[j * hd + d + u] = to_f(vt[u]);
        }
      }
    } else {
      const int tn = min(kTileKeys, k_hi - t0);
      for (int e = threadIdx.x; e < kTileKeys * hd; e += blockDim.x) {
        const int j = e / hd, d = e % hd;
        const int64_t at = static_cast<int64_t>(t0 + j - span.begin) * hd + d;
        Ks[j * ks + d] = j < tn ? to_f(kh[at]) : 0.0f;
        Vs[j * hd + d] = j < tn ? to_f(vh[at]) : 0.0f;
      }
    }
  };

  for (int round = 0; round < queries; round += round_queries) {
    // This warp's queries of the round: round + warp + 4·r, the first `mine` of them real.
    const AttnPart* part[kWarpQueries];
    const AttnCorrection* corr[kWarpQueries];  // read through L1 when used
    int head[kWarpQueries], end[kWarpQueries];
    float m[kWarpQueries], l[kWarpQueries], acc[kWarpQueries][EPL], accc[kWarpQueries][kRvLanes];
    int mine = 0;
#pragma unroll
    for (int r = 0; r < kWarpQueries; ++r) {
      const int qi = round + warp + kPartWarps * r;
      const bool on = r < per_warp && qi < queries && qi < round + round_queries;
      mine += on;
      part[r] = on ? &plan.parts[p0 + qi / group] : nullptr;
      head[r] = g * group + (on ? qi % group : 0);
      end[r] = on ? min(k_hi, part[r]->end) : k_lo;
      corr[r] = on && part[r]->corr >= 0 ? &plan.corrs[part[r]->corr] : &kNoCorrection;
      m[r] = -INFINITY;
      l[r] = 0.0f;
#pragma unroll
      for (int e = 0; e < EPL; ++e) acc[r][e] = 0.0f;
#pragma unroll
      for (int i = 0; i < kRvLanes; ++i) accc[r][i] = 0.0f;
      if (!on) continue;
      // The query into shared memory; its low-rank ΔK projection (bk_gᵀ q, r values) too.
      const int slot = warp + kPartWarps * r;
      float* qs = Qs + slot * hd;
      const T* qrow = q + (static_cast<int64_t>(part[r]->row) * heads + head[r]) * hd;
      for (int d = lane; d < hd; d += 32) qs[d] = to_f(qrow[d]);
      __syncwarp();
      if (low_rank_k && corr[r]->ck) {
        const int rk = corr[r]->rk;
        const float* bk = corr[r]->bk;
        for (int rr = lane; rr < rk; rr += 32) {
          float dot = 0.0f;
          for (int d = 0; d < hd; ++d) dot += qs[d] * bk[(static_cast<int64_t>(g) * hd + d) * rk + rr];
          Lk[slot * kMaxRk + rr] = dot;
        }
      }
    }
    __syncwarp();

    if (pipelined) prefetch(k_lo);
    for (int t0 = k_lo; t0 < k_hi; t0 += kTileKeys) {
      __syncthreads();  // every warp is done with the previous tile
      store_tile(t0);
      __syncthreads();
      if (pipelined && t0 + kTileKeys < k_hi) prefetch(t0 + kTileKeys);  // in flight while this tile is used

      const int key = t0 + lane;  // this lane's key while scoring
      // Scores of the tile for each of the warp's real queries (lane j: key t0 + j).
      float sc[kWarpQueries] = {0.0f, 0.0f, 0.0f, 0.0f};
      const float* krow = Ks + lane * ks;
      if (mine == 1) {
        const float* q0 = Qs + warp * hd;
        for (int d = 0; d < hd; ++d) sc[0] += q0[d] * krow[d];
      } else if (mine > 1) {
        // Only the real queries' slots: Qs holds round_queries of them, which may be fewer
        // than kRoundQueries (reading past them would leave shared memory).
        for (int d = 0; d < hd; ++d) {
          const float kv = krow[d];
#pragma unroll
          for (int r = 0; r < kWarpQueries; ++r) {
            if (r < mine) sc[r] += Qs[(warp + kPartWarps * r) * hd + d] * kv;
          }
        }
      }
#pragma unroll
      for (int r = 0; r < kWarpQueries; ++r) {
        if (r >= mine || t0 >= end[r]) continue;  // uniform over the warp
        const bool valid = key < end[r];
        const AttnCorrection& cr = *corr[r];
        const int slot = warp + kPartWarps * r;
        float s = sc[r];
        float sv_lane = 0.0f;  // this lane's key's ΔV scale, broadcast in the P·V loop
        if (cr.qk) {
          const int rb = cr.bits == 8 ? hd : (hd + 1) / 2;
          const int64_t row = static_cast<int64_t>(g) * cr.tokens + (valid ? key : t0);
          if (valid) s += cr.sk[row] * quant_dot(Qs + slot * hd, cr.qk + row * rb, hd, cr.bits);
          sv_lane = valid ? cr.sv[row] : 0.0f;
        }
        if (valid && cr.ck) {
          const float* crow = cr.ck + static_cast<int64_t>(key) * cr.rk;
          const float* lk = Lk + slot * kMaxRk;
          float lo = 0.0f;
          for (int rr = 0; rr < cr.rk; ++rr) lo += lk[rr] * crow[rr];
          s += lo;
        }
        s = valid ? s * scale : -INFINITY;
        const float mt = warp_max(s);
        const float mn = fmaxf(m[r], mt);
        const float cf = expf(m[r] - mn);  // 0 on the first tile (m = -inf)
        const float p = valid ? expf(s - mn) : 0.0f;
        l[r] = l[r] * cf + warp_sum(p);
        m[r] = mn;
#pragma unroll
        for (int e = 0; e < EPL; ++e) acc[r][e] *= cf;
#pragma unroll
        for (int i = 0; i < kRvLanes; ++i) accc[r][i] *= cf;
        // P·V with lanes over head dims, 8 keys at a time: their ΔV words and low-rank ΔV
        // coefficients are loaded together, then used.
        const int jn = min(kTileKeys, end[r] - t0);
        const int d0 = lane * EPL;
        const int rb = cr.qv ? (cr.bits == 8 ? hd : (hd + 1) / 2) : 0;
        const bool words = cr.qv && word_fits<EPL>(cr.bits) && d0 < hd && hd % EPL == 0;
        for (int jb = 0; jb < jn; jb += kBatch) {
          uint32_t w[kBatch];
          float cvv[kBatch][kRvLanes];
#pragma unroll
          for (int u = 0; u < kBatch; ++u) {
            const int jj = jb + u;
            const bool in = jj < jn;
            w[u] = words ? quant_word<EPL>(cr.qv + (static_cast<int64_t>(g) * cr.tokens + t0 + jj) * rb, d0, cr.bits, in) : 0u;
#pragma unroll
            for (int i = 0; i < kRvLanes; ++i) {
              const int rr = lane + 32 * i;
              cvv[u][i] = cr.cv && in && rr < cr.rv ? cr.cv[static_cast<int64_t>(t0 + jj) * cr.rv + rr] : 0.0f;
            }
          }
#pragma unroll
          for (int u = 0; u < kBatch; ++u) {
            const int jj = jb + u;
            if (jj >= jn) break;  // uniform over the warp
            const float pj = __shfl_sync(0xffffffffu, p, jj);
            const float ps = pj * __shfl_sync(0xffffffffu, sv_lane, jj);
#pragma unroll
            for (int e = 0; e < EPL; ++e) {
              const int d = d0 + e;
              if (d >= hd) continue;
              float v = Vs[jj * hd + d];
              acc[r][e] += pj * v;
              if (words) {
                acc[r][e] += ps * word_value<EPL>(w[u], e, cr.bits);
              } else if (cr.qv) {
                acc[r][e] += ps * static_cast<float>(quant_at(cr.qv + (static_cast<int64_t>(g) * cr.tokens + t0 + jj) * rb, d, cr.bits));
              }
            }
#pragma unroll
            for (int i = 0; i < kRvLanes; ++i) accc[r][i] += pj * cvv[u][i];
          }
        }
      }
    }

    // Each query's partial state (m, l, P·V, P·cv) for this chunk.
#pragma unroll
    for (int r = 0; r < kWarpQueries; ++r) {
      if (r >= mine) continue;
      float* out = plan.partials + part[r]->out + (static_cast<int64_t>(head[r]) * span.chunks + c) * plan.stride;
      if (lane == 0) {
        out[0] = m[r];
        out[1] = l[r];  // 0 when no key of the chunk was the part's
      }
#pragma unroll
      for (int e = 0; e < EPL; ++e) {
        const int d = lane * EPL + e;
        if (d < hd) out[2 + d] = acc[r][e];
      }
      const int rv = corr[r]->cv ? corr[r]->rv : 0;
#pragma unroll
      for (int i = 0; i < kRvLanes; ++i) {
        const int rr = lane + 32 * i;
        if (rr < rv) out[2 + hd + rr] = accc[r][i];
      }
    }
    __syncthreads();  // the next round rewrites Qs and Lk
  }
}

// Block (query head, row): merges the row's partial states; out rounded to T.
// A block's reduction of one value per thread (blockDim.x a multiple of 32, ≤ 1024), in a
// fixed order; every thread gets the result. `red` holds 32 floats.
template <typename Op>
__device__ __forceinline__ float block_reduce(float v, float* red, Op op) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // red is free (an earlier reduction's readers are done)
  if (lane == 0) red[warp] = v;
  __syncthreads();
  v = red[0];
  for (int w = 1; w < warps; ++w) v = op(v, red[w]);
  return v;
}

// Chunks whose weights pass through shared memory at once.
constexpr int kMergeBatch = 256;

// Block (query head, row): the log-sum-exp merge of the row's partial states (every part,
// every chunk; device_cpu.cpp, merge_states). The threads share each pass over the states: the
// largest m, then per part its chunks' weights exp(m − max) into shared memory, the sum l and
// the weighted outputs (thread: dims threadIdx.x + k·blockDim.x), and a low-rank ΔV part's P·cv
// (thread: ranks threadIdx.x + k·blockDim.x), turned into dims through the kv head's bv rows.
// (One thread used to walk the states alone, twice: 16 µs a layer for a decode step's 12 rows,
// 384 dependent loads, on an H200.)
template <typename T>
__global__ void merge_k(T* out, PlanArgs plan, int heads, int kv_heads, int hd) {
  extern __shared__ float corr_sum[];  // [max rv]: a low-rank part's Σ w·(P·cv)
  __shared__ float w_s[kMergeBatch];
  __shared__ float red[32];
  const int h = blockIdx.x, r = blockIdx.y;
  const int g = h / (heads / kv_heads);
  const int b = plan.row_begin[r], e = plan.row_begin[r + 1];
  const int tid = threadIdx.x, bd = blockDim.x;
  auto states_of = [&](const AttnPart& p, int chunks) {
    return plan.partials + p.out + static_cast<int64_t>(h) * chunks * plan.stride;
  };

  float mx = -INFINITY;
  for (int i = b; i < e; ++i) {
    const AttnPart& p = plan.parts[plan.row_parts[i]];
    const int chunks = plan.spans[p.span].chunks;
    const float* st0 = states_of(p, chunks);
    for (int c = tid; c < chunks; c += bd) {
      const float* st = st0 + static_cast<int64_t>(c) * plan.stride;
      if (st[1] > 0.0f) mx = fmaxf(mx, st[0]);
    }
  }
  mx = block_reduce(mx, red, [](float a, float v) { return fmaxf(a, v); });

  float l = 0.0f;       // this thread's share of Σ l·w
  float acc[8];         // dims tid + k·bd (head_dim ≤ 8·bd)
#pragma unroll
  for (int k = 0; k < 8; ++k) acc[k] = 0.0f;
  for (int i = b; i < e; ++i) {
    const AttnPart& p = plan.parts[plan.row_parts[i]];
    const int chunks = plan.spans[p.span].chunks;
    const float* st0 = states_of(p, chunks);
    const AttnCorrection* c = p.corr >= 0 ? &plan.corrs[p.corr] : nullptr;
    const int rv = c && c->cv ? c->rv : 0;
    for (int q2 = tid; q2 < rv; q2 += bd) corr_sum[q2] = 0.0f;  // each rank stays with its thread
    for (int c0 = 0; c0 < chunks; c0 += kMergeBatch) {
      const int nb = min(kMergeBatch, chunks - c0);
      __syncthreads();  // the last batch's weights are read
      for (int j = tid; j < nb; j += bd) {
        const float* st = st0 + static_cast<int64_t>(c0 + j) * plan.stride;
        float w = 0.0f;  // empty states weigh nothing
        if (st[1] > 0.0f) {
          w = expf(st[0] - mx);
          l += st[1] * w;
        }
        w_s[j] = w;
      }
      __syncthreads();
      const float* sb = st0 + static_cast<int64_t>(c0) * plan.stride;
#pragma unroll 4
      for (int j = 0; j < nb; ++j) {
        const float w = w_s[j];
        if (w == 0.0f) continue;  // the same for every thread
        const float* st = sb + static_cast<int64_t>(j) * plan.stride + 2;
#pragma unroll
        for (int k = 0; k < 8; ++k) {
          const int d = tid + k * bd;
          if (d < hd) acc[k] += w * st[d];
        }
      }
      for (int q2 = tid; q2 < rv; q2 += bd) {
        float s = 0.0f;
        for (int j = 0; j < nb; ++j) s += w_s[j] * sb[static_cast<int64_t>(j) * plan.stride + 2 + hd + q2];
        corr_sum[q2] += s;
      }
    }
    if (rv) {
      __syncthreads();  // every rank's sum is in
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int d = tid + k * bd;
        if (d >= hd) continue;
        const float* brow = c->bv + (static_cast<int64_t>(g) * hd + d) * rv;
        float s = 0.0f;
        for (int q2 = 0; q2 < rv; ++q2) s += brow[q2] * corr_sum[q2];
        acc[k] += s;
      }
      __syncthreads();  // corr_sum is read before the next part zeroes it
    }
  }
  l = block_reduce(l, red, [](float a, float v) { return a + v; });
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const int d = tid + k * bd;
    if (d < hd) out[(static_cast<int64_t>(r) * heads + h) * hd + d] = from_f<T>(acc[k] * inv);
  }
}

template <typename F>
bool with_epl(int hd, F&& f) {
  if (hd <= 32) return f(std::integral_constant<int, 1>{}), true;
  if (hd <= 64) return f(std::integral_constant<int, 2>{}), true;
  if (hd <= 128) return f(std::integral_constant<int, 4>{}), true;
  if (hd <= 256) return f(std::integral_constant<int, 8>{}), true;
  return false;
}

}  // namespace

bool attention_prefill_flash(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0,
                             int n, int heads, int kv_heads, int hd, cudaStream_t s) {
  if (n <= 0) return true;
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const dim3 grid((n + kBQ - 1) / kBQ, heads);
  bool ok = true;
  auto launch = [&](auto dpt) {
    constexpr int DPT = decltype(dpt)::value;
    AL_DISPATCH(dt, flash_prefill_k<T, DPT><<<grid, kBQ * 4, 0, s>>>(static_cast<T*>(out), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), capacity, pos0, n, heads, kv_heads, hd, scale));
  };
  if (hd <= 32) launch(std::integral_constant<int, 8>{});
  else if (hd <= 64) launch(std::integral_constant<int, 16>{});
  else if (hd <= 128) launch(std::integral_constant<int, 32>{});
  else if (hd <= 256) launch(std::integral_constant<int, 64>{});
  else ok = false;
  if (ok) check("attention (prefill)");
  return ok;
}

void attention_parts(DT dt, void* out, const void* q, const AttnPlan& plan, int n_rows, int heads, int kv_heads, int hd,
                     const Branches& b) {
  cudaStream_t s = b.main;
  if (n_rows == 0) return;
  if (hd > 256) throw std::runtime_error("the CUDA attention supports head_dim up to 256");
  int max_chunks = 1, max_rv = 0;
  for (int i = 0; i < plan.spans.n; ++i) max_chunks = std::max(max_chunks, plan.spans[i].chunks);
  for (int i = 0; i < plan.corrs.n; ++i) {
    if (plan.corrs[i].cv) max_rv = std::max(max_rv, plan.corrs[i].rv);
    if ((plan.corrs[i].cv && plan.corrs[i].rv > kMaxRv) || (plan.corrs[i].ck && plan.corrs[i].rk > kMaxRk)) {
      throw std::runtime_error("the CUDA attention applies low-rank corrections of rank up to 128");
    }
  }
  const PlanArgs args{plan.spans.dev, plan.parts.dev, plan.corrs.dev, plan.span_parts.dev, plan.row_parts.dev,
                      plan.row_parts_begin.dev, plan.tiles.dev, plan.chunk, plan.stride, plan.partials};
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const dim3 grid(kv_heads, max_chunks, plan.spans.n);
  // Queries per round: the most any span has, up to 16 (4 warps × 4); ΔK projections only when
  // some part has a low-rank ΔK.
  int most = 1;
  bool low_rank_k = false;
  const int group = heads / kv_heads;
  for (int i = 0; i < plan.spans.n; ++i) most = std::max(most, (plan.span_parts[i + 1] - plan.span_parts[i]) * group);
  for (int i = 0; i < plan.corrs.n; ++i) low_rank_k = low_rank_k || plan.corrs[i].ck;
  const int round_queries = std::min(most, kRoundQueries);
  const size_t smem = parts_smem(hd, round_queries, low_rank_k);
  auto launch = [&](auto epl, auto rvl) {
    constexpr int EPL = decltype(epl)::value, RVL = decltype(rvl)::value;
    AL_DISPATCH(dt, {
      // Above the default 48 KiB per block: raised once per instantiation (not a stream op, so
      // also fine during a graph capture).
      static size_t raised = 0;
      if (smem > 48 * 1024 && raised < smem) {
        cudaFuncSetAttribute(parts_k<T, EPL, RVL>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
        raised = smem;
      }
      parts_k<T, EPL, RVL><<<grid, kPartWarps * 32, smem, s>>>(static_cast<const T*>(q), args, heads, kv_heads, hd, scale,
                                                               round_queries, low_rank_k ? 1 : 0);
    });
  };
  // Tensor cores where they apply (bf16/fp16, head_dim 64 or 128); CUDA cores otherwise.
  if (!attention_parts_tc(dt, q, args, plan, heads, kv_heads, hd, b)) {
    with_epl(hd, [&](auto epl) {
      if (max_rv <= 64) launch(epl, std::integral_constant<int, 2>{});
      else launch(epl, std::integral_constant<int, 4>{});
    });
    check("attention (parts)");
  }
  const int threads = std::max(32, std::min(128, (hd + 31) / 32 * 32));
  AL_DISPATCH(dt, merge_k<T><<<dim3(heads, n_rows), threads, static_cast<size_t>(std::max(max_rv, 1)) * sizeof(float), s>>>(static_cast<T*>(out), args, heads, kv_heads, hd));
  check("attention (merge)");
}

}  // namespace al::cuda
