// attention_parts on tensor cores (bf16/fp16, head dims 64 and 128): the partial states of
// every part of a layer's plan, as parts_k (attention.cu) computes them on CUDA cores, for
// merge_k to join. CPU reference: attention_parts in device_cpu.cpp (part_state).
//
// Work item = one warp (a block of 32 threads): a kv head, a key chunk of a span, and 16 of
// the span's queries (its parts' rows × the kv head's query heads, in part order). The
// chunk's keys pass through shared memory in 32-key tiles, double-buffered with cp.async (the
// next tile loads while this one is used). Per tile:
//   S = Q·K_baseᵀ (mma m16n8k16, fp32 accumulation), then each correction the 16 rows carry
//   (rows of one store form a run) added to its own rows only:
//     quantized ΔK: S += sk(key) · (Q · qkᵀ)  — the int8/int4 values are exact in T;
//     low-rank ΔK:  S += Lq · ckᵀ, Lq = Q·bk (per row, its own basis; computed once);
//   keys past each row's end masked, online softmax in log2 units (P rounded to T once, the
//   row sums taking the rounded values, as in attention_tc.cu);
//   O += P·V_base, then per run: quantized ΔV O += (P·sv(key)) · qv, low-rank ΔV OC += P·cv
//   (r values per row, turned into dims by merge_k with bv).
// Every real row then writes (m, l, O, OC) for this chunk in the layout of attention_parts.cuh.
// No rebuilt K/V anywhere: the store's data are read as they are kept.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "engine/cuda/attention_parts.cuh"
#include "engine/cuda/common.cuh"
#include "engine/cuda/mma.cuh"

namespace al::cuda {

namespace {

constexpr int kRows = 16;          // queries of one work item: one mma row tile
constexpr int kTile = 32;          // keys per K/V tile
constexpr int kMaxLowRank = 128;   // low-rank ΔK / ΔV of rank up to this
constexpr float kLn2 = 0.69314718055994531f;

template <int HD>
struct PartsTcLayout {
  static constexpr int stride = HD + 8;  // T per shared row (16 bytes of padding: ldmatrix rows in distinct banks)
  static constexpr int kv_stage = 2 * kTile * stride;  // one tile's K rows then V rows
  static constexpr int q_elems = kRows * stride;
  static constexpr int lq_stride = kMaxLowRank + 8;
  static size_t bytes(bool lowrank_k) {
    return sizeof(uint16_t) * (static_cast<size_t>(2 * kv_stage + q_elems) + (lowrank_k ? kRows * lq_stride : 0));
  }
};

// Two quantized values at dims d, d+1 of a row (int8, or int4 low nibble first) as a packed
// pair of T: exact, |v| ≤ 127.
template <typename T>
__device__ __forceinline__ uint32_t quant_pair(const uint8_t* row, int d, int bits) {
  if (bits == 8) {
    const uint16_t w = *reinterpret_cast<const uint16_t*>(row + d);
    return pack2<T>(static_cast<float>(static_cast<int8_t>(w & 0xFF)), static_cast<float>(static_cast<int8_t>(w >> 8)));
  }
  const int b = row[d >> 1];  // d even: both nibbles of one byte
  return pack2<T>(static_cast<float>(((b & 0xF) ^ 8) - 8), static_cast<float>(((b >> 4) ^ 8) - 8));
}
__device__ __forceinline__ float quant_value(const uint8_t* row, int d, int bits) {
  if (bits == 8) return static_cast<float>(static_cast<int8_t>(row[d]));
  return static_cast<float>((((row[d >> 1] >> ((d & 1) * 4)) & 0xF) ^ 8) - 8);
}

// Whether two parts' corrections are the same store (then their rows form one run).
__device__ __forceinline__ bool same_correction(const AttnCorrection* corrs, int a, int b) {
  if (a == b) return true;
  if (a < 0 || b < 0) return false;
  const AttnCorrection &x = corrs[a], &y = corrs[b];
  return x.qk == y.qk && x.qv == y.qv && x.ck == y.ck && x.cv == y.cv;
}

template <typename T, int HD, int RV>
__global__ void __launch_bounds__(32) parts_tc_k(const T* __restrict__ q, PlanArgs plan, int heads, int kv_heads,
                                                 float scale_log2, int max_rg, int lowrank_k) {
  using L = PartsTcLayout<HD>;
  constexpr int S = L::stride;
  constexpr int KC = HD / 16;   // k-chunks of Q·Kᵀ
  constexpr int DB = HD / 8;    // n-blocks of O
  constexpr int NB = kTile / 8; // n-blocks of S
  constexpr int RB = RV / 8;    // n-blocks of OC
  constexpr int CH = HD / 8;    // 16-byte chunks per row
  extern __shared__ __align__(16) unsigned char parts_tc_smem[];
  T* skv = reinterpret_cast<T*>(parts_tc_smem);  // 2 stages × (K tile, V tile)
  T* sq = skv + 2 * L::kv_stage;
  T* slq = sq + L::q_elems;
  __shared__ int run_corr[kRows];
  __shared__ uint32_t run_rows[kRows];
  __shared__ int n_runs;

  const int g = blockIdx.x, c = blockIdx.y;
  const int sp = blockIdx.z / max_rg, rg = blockIdx.z % max_rg;
  const AttnSpan span = plan.spans[sp];
  if (c >= span.chunks) return;
  const int lane = threadIdx.x, gid = lane >> 2, tig = lane & 3;
  const int group = heads / kv_heads;
  const int p0 = plan.span_parts[sp], np = plan.span_parts[sp + 1] - p0;
  const int queries = np * group, q0 = rg * kRows;
  if (q0 >= queries) return;
  const int nrows = min(kRows, queries - q0);

  // The chunk's keys, up to the furthest any of these rows reads.
  const int k_lo = span.begin + c * plan.chunk;
  int k_hi = min(span.begin + span.extent, k_lo + plan.chunk);
  {
    int longest = span.begin;
    for (int r = 0; r < nrows; ++r) longest = max(longest, plan.parts[p0 + (q0 + r) / group].end);
    k_hi = min(k_hi, longest);
  }
  // This lane's two rows of every fragment: gid and gid + 8.
  const AttnPart* part_r[2];
  int head_r[2], end_r[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int row = gid + 8 * i, qi = q0 + row;
    part_r[i] = row < nrows ? &plan.parts[p0 + qi / group] : nullptr;
    head_r[i] = g * group + qi % group;
    end_r[i] = part_r[i] ? min(k_hi, part_r[i]->end) : k_lo;
  }
  // Runs: consecutive rows with the same correction.
  if (lane == 0) {
    int n = 0, prev = -2;
    for (int r = 0; r < nrows; ++r) {
      const int ci = plan.parts[p0 + (q0 + r) / group].corr;
      if (n > 0 && same_correction(plan.corrs, ci, prev)) {
        run_rows[n - 1] |= 1u << r;
      } else {
        run_corr[n] = ci;
        run_rows[n] = 1u << r;
        ++n;
      }
      prev = ci;
    }
    n_runs = n;
  }

  // The 16 query rows (zeros past the real ones), then the first K/V tile.
  for (int i = lane; i < kRows * CH; i += 32) {
    const int r = i / CH, ch = i % CH;
    const T* src = q;
    const bool in = r < nrows;
    if (in) {
      const int qi = q0 + r;
      const AttnPart& p = plan.parts[p0 + qi / group];
      src = q + (static_cast<int64_t>(p.row) * heads + g * group + qi % group) * HD + ch * 8;
    }
    cp_async16(smem_addr(sq + r * S + ch * 8), src, in ? 16 : 0);
  }
  cp_async_commit();
  const T* kh = static_cast<const T*>(span.k) + static_cast<int64_t>(g) * span.capacity * HD;
  const T* vh = static_cast<const T*>(span.v) + static_cast<int64_t>(g) * span.capacity * HD;
  auto load_kv = [&](int stage, int t0) {
    T* dk = skv + stage * L::kv_stage;
    T* dv = dk + kTile * S;
    for (int i = lane; i < kTile * CH; i += 32) {
      const int j = i / CH, ch = i % CH;
      const bool in = t0 + j < k_hi;
      const int64_t at = in ? static_cast<int64_t>(t0 + j - span.begin) * HD + ch * 8 : 0;
      cp_async16(smem_addr(dk + j * S + ch * 8), kh + at, in ? 16 : 0);
      cp_async16(smem_addr(dv + j * S + ch * 8), vh + at, in ? 16 : 0);
    }
  };
  if (k_lo < k_hi) load_kv(0, k_lo);
  cp_async_commit();
  cp_async_wait<1>();  // the queries are in
  __syncwarp();

  uint32_t qf[KC][4];
  {
    const int row = (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
    for (int kc = 0; kc < KC; ++kc) {
      const int col = kc * 16 + (lane >> 4) * 8;
      ldmatrix_x4(qf[kc][0], qf[kc][1], qf[kc][2], qf[kc][3], smem_addr(sq + row * S + col));
    }
  }
  if (lowrank_k) {
    // Lq = q · bk_g per row, through the row's own correction (zeros where it has no ΔK basis).
    for (int e = lane; e < kRows * kMaxLowRank; e += 32) {
      const int r = e / kMaxLowRank, j = e % kMaxLowRank;
      float dot = 0.0f;
      if (r < nrows) {
        const int ci = plan.parts[p0 + (q0 + r) / group].corr;
        if (ci >= 0) {
          const AttnCorrection& cr = plan.corrs[ci];
          if (cr.ck && j < cr.rk) {
            for (int d = 0; d < HD; ++d) dot += to_f(sq[r * S + d]) * cr.bk[(static_cast<int64_t>(g) * HD + d) * cr.rk + j];
          }
        }
      }
      slq[r * L::lq_stride + j] = from_f<T>(dot);
    }
  }
  __syncwarp();

  float o[DB][4], occ[RB > 0 ? RB : 1][4];
#pragma unroll
  for (int i = 0; i < DB; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
#pragma unroll
  for (int i = 0; i < (RB > 0 ? RB : 1); ++i) occ[i][0] = occ[i][1] = occ[i][2] = occ[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};  // this lane's share of its rows' sums (reduced at the end)
  const int runs = n_runs;

  int stage = 0;
  for (int t0 = k_lo; t0 < k_hi; t0 += kTile, stage ^= 1) {
    if (t0 + kTile < k_hi) load_kv(stage ^ 1, t0 + kTile);
    cp_async_commit();
    cp_async_wait<1>();  // this tile is in (the next may still be loading)
    __syncwarp();
    const T* tk = skv + stage * L::kv_stage;
    const T* tv = tk + kTile * S;

    // S = Q · K_baseᵀ.
    float s[NB][4];
#pragma unroll
    for (int i = 0; i < NB; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
    for (int nb = 0; nb < NB; nb += 2) {
      const int key = nb * 8 + (lane & 7) + (lane >> 4) * 8;
#pragma unroll
      for (int kc = 0; kc < KC; ++kc) {
        const int col = kc * 16 + ((lane >> 3) & 1) * 8;
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, smem_addr(tk + key * S + col));
        mma16816<T>(s[nb], qf[kc], b0, b1);
        mma16816<T>(s[nb + 1], qf[kc], b2, b3);
      }
    }

    // ΔK of each run, into its rows.
    for (int ri = 0; ri < runs; ++ri) {
      const int ci = run_corr[ri];
      if (ci < 0) continue;
      const AttnCorrection& cr = plan.corrs[ci];
      if (!cr.qk && !cr.ck) continue;
      const uint32_t rows = run_rows[ri];
      const bool in0 = (rows >> gid) & 1u, in1 = (rows >> (gid + 8)) & 1u;
      float sc[NB][4];
#pragma unroll
      for (int i = 0; i < NB; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
      if (cr.qk) {
        const int rb = cr.bits == 8 ? HD : (HD + 1) / 2;
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          const int key = t0 + nb * 8 + gid;
          const bool ok = key < k_hi && key < cr.tokens;
          const uint8_t* row = cr.qk + (static_cast<int64_t>(g) * cr.tokens + (ok ? key : 0)) * rb;
#pragma unroll
          for (int kc = 0; kc < KC; ++kc) {
            const int d0 = kc * 16 + tig * 2;
            const uint32_t b0 = ok ? quant_pair<T>(row, d0, cr.bits) : 0u;
            const uint32_t b1 = ok ? quant_pair<T>(row, d0 + 8, cr.bits) : 0u;
            mma16816<T>(sc[nb], qf[kc], b0, b1);
          }
        }
        // × each key's scale (per kv head and token).
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int key = t0 + nb * 8 + tig * 2 + (e & 1);
            const float sk = key < k_hi && key < cr.tokens ? cr.sk[static_cast<int64_t>(g) * cr.tokens + key] : 0.0f;
            sc[nb][e] *= sk;
          }
        }
      }
      if (cr.ck) {
        const int rk = cr.rk;
        for (int kc2 = 0; kc2 * 16 < rk; ++kc2) {
          uint32_t a[4];
          const int row = (lane & 7) + ((lane >> 3) & 1) * 8;
          ldmatrix_x4(a[0], a[1], a[2], a[3], smem_addr(slq + row * L::lq_stride + kc2 * 16 + (lane >> 4) * 8));
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) {
            const int key = t0 + nb * 8 + gid;
            const bool ok = key < k_hi && key < cr.tokens;
            const float* crow = cr.ck + static_cast<int64_t>(ok ? key : 0) * rk;
            const int r0 = kc2 * 16 + tig * 2;
            auto at = [&](int r) { return ok && r < rk ? crow[r] : 0.0f; };
            mma16816<T>(sc[nb], a, pack2<T>(at(r0), at(r0 + 1)), pack2<T>(at(r0 + 8), at(r0 + 9)));
          }
        }
      }
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        if (in0) {
          s[nb][0] += sc[nb][0];
          s[nb][1] += sc[nb][1];
        }
        if (in1) {
          s[nb][2] += sc[nb][2];
          s[nb][3] += sc[nb][3];
        }
      }
    }

    // Keys past each row's end, then the online softmax (log2 units: m is max(s)·scale·log2 e).
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int key = t0 + nb * 8 + tig * 2 + (e & 1);
        if (key >= end_r[e >> 1]) s[nb][e] = -INFINITY;
        mx[e >> 1] = fmaxf(mx[e >> 1], s[nb][e]);
      }
    }
    float corr[2], base[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = fmaxf(m[r], mx[r] * scale_log2);
      base[r] = mnew == -INFINITY ? 0.0f : mnew;  // a row with nothing seen yet stays at 0
      corr[r] = exp2f(m[r] - base[r]);            // 0 on a row's first keys (m = -inf)
      m[r] = mnew;
    }
    float rs[2] = {0.0f, 0.0f};
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const float p = round_t<T>(exp2f(fmaf(s[nb][e], scale_log2, -base[e >> 1])));
        s[nb][e] = p;  // s holds P from here on
        rs[e >> 1] += p;
      }
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) l[r] = l[r] * corr[r] + rs[r];
#pragma unroll
    for (int i = 0; i < DB; ++i) {
      o[i][0] *= corr[0];
      o[i][1] *= corr[0];
      o[i][2] *= corr[1];
      o[i][3] *= corr[1];
    }
#pragma unroll
    for (int i = 0; i < RB; ++i) {
      occ[i][0] *= corr[0];
      occ[i][1] *= corr[0];
      occ[i][2] *= corr[1];
      occ[i][3] *= corr[1];
    }

    // O += P · V_base (V read transposed by ldmatrix as col-major B).
    uint32_t pf[kTile / 16][4];
#pragma unroll
    for (int nb = 0; nb < NB; ++nb) {
      pf[nb / 2][(nb & 1) * 2 + 0] = pack2<T>(s[nb][0], s[nb][1]);
      pf[nb / 2][(nb & 1) * 2 + 1] = pack2<T>(s[nb][2], s[nb][3]);
    }
#pragma unroll
    for (int kc2 = 0; kc2 < kTile / 16; ++kc2) {
      const int key = kc2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int db = 0; db < DB; db += 2) {
        const int col = db * 8 + (lane >> 4) * 8;
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, smem_addr(tv + key * S + col));
        mma16816<T>(o[db], pf[kc2], b0, b1);
        mma16816<T>(o[db + 1], pf[kc2], b2, b3);
      }
    }

    // ΔV of each run, from its rows' P only.
    for (int ri = 0; ri < runs; ++ri) {
      const int ci = run_corr[ri];
      if (ci < 0) continue;
      const AttnCorrection& cr = plan.corrs[ci];
      if (!cr.qv && !cr.cv) continue;
      const uint32_t rows = run_rows[ri];
      const bool in0 = (rows >> gid) & 1u, in1 = (rows >> (gid + 8)) & 1u;
#pragma unroll
      for (int kc2 = 0; kc2 < kTile / 16; ++kc2) {
        // This lane's keys in the A fragment: kb, kb+1 (a0, a1) and kb+8, kb+9 (a2, a3).
        const int kb = t0 + kc2 * 16 + tig * 2;
        const float* p_lo = s[2 * kc2];
        const float* p_hi = s[2 * kc2 + 1];
        if (cr.qv) {
          float sv[4];
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            const int key = kb + (u & 1) + (u >> 1) * 8;
            sv[u] = key < k_hi && key < cr.tokens ? cr.sv[static_cast<int64_t>(g) * cr.tokens + key] : 0.0f;
          }
          uint32_t a[4];
          a[0] = pack2<T>(in0 ? p_lo[0] * sv[0] : 0.0f, in0 ? p_lo[1] * sv[1] : 0.0f);
          a[1] = pack2<T>(in1 ? p_lo[2] * sv[0] : 0.0f, in1 ? p_lo[3] * sv[1] : 0.0f);
          a[2] = pack2<T>(in0 ? p_hi[0] * sv[2] : 0.0f, in0 ? p_hi[1] * sv[3] : 0.0f);
          a[3] = pack2<T>(in1 ? p_hi[2] * sv[2] : 0.0f, in1 ? p_hi[3] * sv[3] : 0.0f);
          const int rb = cr.bits == 8 ? HD : (HD + 1) / 2;
          const uint8_t* rows4[4];
          bool ok4[4];
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            const int key = kb + (u & 1) + (u >> 1) * 8;
            ok4[u] = key < k_hi && key < cr.tokens;
            rows4[u] = cr.qv + (static_cast<int64_t>(g) * cr.tokens + (ok4[u] ? key : 0)) * rb;
          }
#pragma unroll
          for (int db = 0; db < DB; ++db) {
            const int d = db * 8 + gid;
            auto v = [&](int u) { return ok4[u] ? quant_value(rows4[u], d, cr.bits) : 0.0f; };
            mma16816<T>(o[db], a, pack2<T>(v(0), v(1)), pack2<T>(v(2), v(3)));
          }
        }
        if (RB > 0 && cr.cv) {
          uint32_t a[4];
          a[0] = pack2<T>(in0 ? p_lo[0] : 0.0f, in0 ? p_lo[1] : 0.0f);
          a[1] = pack2<T>(in1 ? p_lo[2] : 0.0f, in1 ? p_lo[3] : 0.0f);
          a[2] = pack2<T>(in0 ? p_hi[0] : 0.0f, in0 ? p_hi[1] : 0.0f);
          a[3] = pack2<T>(in1 ? p_hi[2] : 0.0f, in1 ? p_hi[3] : 0.0f);
          const int rv = cr.rv;
#pragma unroll
          for (int rbk = 0; rbk < RB; ++rbk) {
            if (rbk * 8 >= rv) break;  // uniform over the warp
            const int r = rbk * 8 + gid;
            auto v = [&](int u) {
              const int key = kb + (u & 1) + (u >> 1) * 8;
              return key < k_hi && key < cr.tokens && r < rv ? cr.cv[static_cast<int64_t>(key) * rv + r] : 0.0f;
            };
            mma16816<T>(occ[rbk], a, pack2<T>(v(0), v(1)), pack2<T>(v(2), v(3)));
          }
        }
      }
    }
    __syncwarp();  // every lane is done with this stage before the next load overwrites it
  }
  cp_async_wait<0>();

  // Row sums across the row's 4 lanes; each real row's partial state for this chunk.
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const AttnPart* p = part_r[i];
    if (!p) continue;
    float* out = plan.partials + p->out + (static_cast<int64_t>(head_r[i]) * span.chunks + c) * plan.stride;
    if (tig == 0) {
      out[0] = m[i] == -INFINITY ? -INFINITY : m[i] * kLn2;  // back to natural units of the scaled score
      out[1] = l[i];
    }
#pragma unroll
    for (int db = 0; db < DB; ++db) {
      const int d = db * 8 + tig * 2;
      out[2 + d] = o[db][2 * i];
      out[2 + d + 1] = o[db][2 * i + 1];
    }
    if (RB > 0 && p->corr >= 0) {
      const AttnCorrection& cr = plan.corrs[p->corr];
      const int rv = cr.cv ? cr.rv : 0;
#pragma unroll
      for (int rbk = 0; rbk < RB; ++rbk) {
        const int r = rbk * 8 + tig * 2;
        if (r < rv) out[2 + HD + r] = occ[rbk][2 * i];
        if (r + 1 < rv) out[2 + HD + r + 1] = occ[rbk][2 * i + 1];
      }
    }
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

template <typename T, int HD>
void launch(int rv_bound, dim3 grid, size_t smem, const T* q, const PlanArgs& args, int heads, int kv_heads,
            int max_rg, bool lowrank_k, cudaStream_t s) {
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(HD));
  auto go = [&](auto rv) {
    constexpr int RV = decltype(rv)::value;
    parts_tc_k<T, HD, RV><<<grid, 32, smem, s>>>(q, args, heads, kv_heads, scale_log2, max_rg, lowrank_k ? 1 : 0);
  };
  if (rv_bound == 0) go(std::integral_constant<int, 0>{});
  else if (rv_bound <= 32) go(std::integral_constant<int, 32>{});
  else if (rv_bound <= 64) go(std::integral_constant<int, 64>{});
  else go(std::integral_constant<int, 128>{});
}

}  // namespace

bool attention_parts_tc(DT dt, const void* q, const PlanArgs& args, const AttnPlan& plan, int heads, int kv_heads,
                        int hd, cudaStream_t s) {
  // ADAPTERLENS_CUDA_ATTN_TC=0: the CUDA-core kernel everywhere (for comparing the two).
  static const bool enabled = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_ATTN_TC");
    return !(v && std::string(v) == "0");
  }();
  if (!enabled || dt == DT::F32 || (hd != 64 && hd != 128) || !aligned16(q)) return false;
  const int group = heads / kv_heads;
  int max_chunks = 1, max_rg = 1, max_rv = 0;
  bool lowrank_k = false;
  for (int i = 0; i < plan.spans.n; ++i) {
    const AttnSpan& sp = plan.spans[i];
    if (!aligned16(sp.k) || !aligned16(sp.v)) return false;
    max_chunks = std::max(max_chunks, sp.chunks);
    const int queries = (plan.span_parts[i + 1] - plan.span_parts[i]) * group;
    max_rg = std::max(max_rg, (queries + kRows - 1) / kRows);
  }
  for (int i = 0; i < plan.corrs.n; ++i) {
    const AttnCorrection& c = plan.corrs[i];
    if (c.cv) {
      if (c.rv > kMaxLowRank) return false;
      max_rv = std::max(max_rv, c.rv);
    }
    if (c.ck) {
      if (c.rk > kMaxLowRank) return false;
      lowrank_k = true;
    }
  }
  if (static_cast<int64_t>(plan.spans.n) * max_rg > 65535 || max_chunks > 65535) return false;
  const dim3 grid(kv_heads, max_chunks, plan.spans.n * max_rg);
  if (dt == DT::BF16) {
    const auto* qt = static_cast<const __nv_bfloat16*>(q);
    if (hd == 64) launch<__nv_bfloat16, 64>(max_rv, grid, PartsTcLayout<64>::bytes(lowrank_k), qt, args, heads, kv_heads, max_rg, lowrank_k, s);
    else launch<__nv_bfloat16, 128>(max_rv, grid, PartsTcLayout<128>::bytes(lowrank_k), qt, args, heads, kv_heads, max_rg, lowrank_k, s);
  } else {
    const auto* qt = static_cast<const __half*>(q);
    if (hd == 64) launch<__half, 64>(max_rv, grid, PartsTcLayout<64>::bytes(lowrank_k), qt, args, heads, kv_heads, max_rg, lowrank_k, s);
    else launch<__half, 128>(max_rv, grid, PartsTcLayout<128>::bytes(lowrank_k), qt, args, heads, kv_heads, max_rg, lowrank_k, s);
  }
  check("attention (parts, tensor cores)");
  return true;
}

}  // namespace al::cuda
