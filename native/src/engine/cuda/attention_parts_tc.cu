// attention_parts on tensor cores (bf16/fp16, head dims 64 and 128): the partial states of
// every part of a layer's plan, as parts_k (attention.cu) computes them on CUDA cores, for
// merge_k to join. CPU reference: attention_parts in device_cpu.cpp (part_state).
//
// Work item = one warp (a block of 32 threads): a kv head, a key chunk of a span, and one of
// the plan's tiles (device.h, AttnTile): up to 16 of the span's queries that all apply the
// same correction, so a warp reads one store's data and computes it only for its own rows.
// The chunk's keys pass through shared memory in 32-key tiles by cp.async, K and V in groups of
// their own (the next tile's K loads during this one's softmax and P·V, its V during the next
// S: one buffer of each, so that as many warps fit on an SM); a quantized store's ΔK/ΔV rows and scales,
// or a low-rank ΔV's coefficients, for the same keys are staged beside them, so the
// corrections read shared memory too. The tiles of each class (plain, low-rank, quantized;
// device.h, attn_tile_class) launch on their own, each with only the shared memory it stages.
// Per tile:
//   S = Q·K_baseᵀ (mma m16n8k16, fp32 accumulation), then the tile's correction:
//     quantized ΔK: S += sk(key) · (Q · qkᵀ)  — the int8/int4 values are exact in T; int8 ΔK
//       multiplies in fp16 (Q in fp16 is exact to its 8 bits, and a byte becomes an fp16 value
//       in 2 instructions per pair against 5 for bf16: s8x2_flipped_to_h2);
//     low-rank ΔK:  S += Lq · ckᵀ, Lq = Q·bk (its basis; computed once);
//   keys past each row's end masked, online softmax in log2 units (P rounded to T once, the
//   row sums taking the rounded values, as in attention_tc.cu);
//   O += P·V_base, then quantized ΔV O += (P·sv(key)) · qv, low-rank ΔV OC += P·cv (r values
//   per row, turned into dims by merge_k with bv).
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

constexpr int kRows = kAttnTileQueries;  // queries of one work item: one mma row tile
static_assert(kRows == 16, "a tile is one m16 row block");
constexpr int kTile = 32;          // keys per K/V tile
constexpr int kMaxLowRank = 128;   // low-rank ΔK / ΔV of rank up to this
constexpr float kLn2 = 0.69314718055994531f;

template <int HD>
struct PartsTcLayout {
  static constexpr int stride = HD + 8;  // T per shared row (16 bytes of padding: ldmatrix rows in distinct banks)
  static constexpr int kv_stage = 2 * kTile * stride;  // one tile's K rows then V rows
  static constexpr int q_elems = kRows * stride;
  static constexpr int lq_stride = kMaxLowRank + 8;
  // A quantized store's part (bytes): the tile's ΔK rows, its ΔV rows (HD bytes for int8, HD/2
  // for int4, padded by 16 so that 8 rows fall in distinct banks), then the keys' ΔK scales and
  // ΔV scales. One buffer of each kind: a second K/V buffer per warp (ADAPTERLENS_CUDA_ATTN_STAGES=2
  // in earlier versions) fit fewer warps on an SM and was slower at every chunk size (H200, the
  // sweep of bench/run-on-device.sh: 103.3 against 94.2 µs a layer at 128 keys a chunk).
  static constexpr int qrow = HD + 16;
  static constexpr int quant_stage = 2 * kTile * qrow + 2 * kTile * 4;
  __host__ __device__ static size_t quant_offset(bool lowrank_k) {
    return sizeof(uint16_t) * (static_cast<size_t>(kv_stage + q_elems) + (lowrank_k ? kRows * lq_stride : 0));
  }
  // A low-rank ΔV's coefficients of the tile's keys (fp32 rows of up to RV values, padded by 4
  // so that a fragment's 4 keys × 8 ranks fall in distinct banks), after the quantized part.
  __host__ __device__ static size_t cv_offset(bool lowrank_k, bool quant) {
    return quant_offset(lowrank_k) + (quant ? static_cast<size_t>(quant_stage) : 0);
  }
  // The int8 launch's Q in fp16 as ready A fragments (HD / 16 chunks × 32 lanes × 16 bytes),
  // after the rest: read back per tile rather than held in 32 more registers.
  __host__ __device__ static size_t qh_offset(bool lowrank_k, bool quant, int cv_rv) {
    return cv_offset(lowrank_k, quant) + (cv_rv > 0 ? sizeof(float) * kTile * (cv_rv + 4) : 0);
  }
  static constexpr int qh_bytes = HD / 16 * 32 * 16;
  static size_t bytes(bool lowrank_k, int qbits, int cv_rv) {
    return qh_offset(lowrank_k, qbits != 0, cv_rv) + (qbits == 8 ? qh_bytes : 0);
  }
};

// Quantized values to floats without I2F (a conversion the SM runs at an eighth of the FADD
// rate, and the quantized tiles convert 4 values per mma): the value, offset to unsigned, goes
// into the low mantissa bits of 2^23, and subtracting 2^23 + the offset is exact.
// Byte k of x (x holds the bytes with their sign bits flipped: x = raw ^ 0x80808080).
__device__ __forceinline__ float s8_flipped_to_f(uint32_t x, int k) {
  return __uint_as_float(__byte_perm(x, 0x4B000000u, 0x7650u + k)) - 8388736.0f;  // 2^23 + 128
}
// A nibble whose sign bit is flipped (n = raw ^ 8, in the low 4 bits).
__device__ __forceinline__ float s4_flipped_to_f(uint32_t n) {
  return __uint_as_float(0x4B000000u | (n & 0xFu)) - 8388616.0f;  // 2^23 + 8
}

// Two quantized values at dims d, d+1 of a row (int8, or int4 low nibble first) as a packed
// pair of T: exact, |v| ≤ 127.
template <typename T>
__device__ __forceinline__ uint32_t quant_pair(const uint8_t* row, int d, int bits) {
  if (bits == 8) {
    const uint32_t x = *reinterpret_cast<const uint16_t*>(row + d) ^ 0x8080u;
    return pack2<T>(s8_flipped_to_f(x, 0), s8_flipped_to_f(x, 1));
  }
  const uint32_t x = row[d >> 1] ^ 0x88u;  // d even: both nibbles of one byte
  return pack2<T>(s4_flipped_to_f(x), s4_flipped_to_f(x >> 4));
}
__device__ __forceinline__ float quant_value(const uint8_t* row, int d, int bits) {
  if (bits == 8) return s8_flipped_to_f(row[d] ^ 0x80u, 0);
  return s4_flipped_to_f((row[d >> 1] >> ((d & 1) * 4)) ^ 8u);
}
// Bytes k, k + 1 (k = 0 or 2) of x (sign bits flipped: raw ^ 0x80808080) as a packed pair of
// fp16: the byte u goes under the exponent of 1024 (0x64uu = 1024 + u, exact), then 1024 + 128
// is subtracted from both halves at once.
__device__ __forceinline__ uint32_t s8x2_flipped_to_h2(uint32_t x, int k) {
  uint32_t u = __byte_perm(x, 0x64646464u, k == 0 ? 0x4140 : 0x4342);
  const __half2 h = __hsub2(*reinterpret_cast<__half2*>(&u), __half2(__ushort_as_half(0x6480), __ushort_as_half(0x6480)));
  return *reinterpret_cast<const uint32_t*>(&h);
}
// A value of T as fp16, clamped to fp16's range (fp16 holds T's 8 bits exactly in between).
template <typename T>
__device__ __forceinline__ float to_f16_range(T v) {
  return fminf(fmaxf(to_f(v), -65504.0f), 65504.0f);
}

// Rows [0, ROWS) of up to CHUNKS 16-byte chunks each, global → shared; rows from `valid` on
// and chunks from `chunks` on are not read (the rows zero-filled, the chunks left alone).
// Lane l copies chunk l % CHUNKS of rows l / CHUNKS + k·(32 / CHUNKS), so its addresses move by
// fixed strides and the unrolled copies need no index arithmetic (the per-copy divisions and
// 64-bit products of a flat loop were half of this kernel's instructions: H200, Nsight
// Compute, the decode step's kernels).
template <int CHUNKS, int ROWS>
__device__ __forceinline__ void copy_rows16(uint32_t dst, int dst_stride, const char* src, int64_t src_stride, int valid,
                                            int chunks, const void* fallback, int lane) {
  static_assert(CHUNKS >= 1 && CHUNKS <= 32 && 32 % CHUNKS == 0 && ROWS % (32 / CHUNKS) == 0, "lanes tile the rows");
  constexpr int RPI = 32 / CHUNKS;  // rows per round of the warp
  const int r0 = lane / CHUNKS, c = lane % CHUNKS;
  if (c >= chunks) return;
  dst += r0 * dst_stride + c * 16;
  src += r0 * src_stride + c * 16;
  valid -= r0;
#pragma unroll
  for (int k = 0; k < ROWS / RPI; ++k) {
    const bool in = k * RPI < valid;
    cp_async16(dst + k * RPI * dst_stride, in ? static_cast<const void*>(src + k * RPI * src_stride) : fallback, in ? 16 : 0);
  }
}

// QBITS: the launch of tiles quantized to 8 or 4 bits (their staging compiled in only there, so
// the other launches keep fewer registers); 0 for the others.
template <typename T, int HD, int RV, int QBITS>
__global__ void __launch_bounds__(32) parts_tc_k(const T* __restrict__ q, PlanArgs plan, int heads, int kv_heads,
                                                 float scale_log2, int lowrank_k, int stage_cv, int tile0) {
  using L = PartsTcLayout<HD>;
  constexpr int S = L::stride;
  constexpr int KC = HD / 16;   // k-chunks of Q·Kᵀ
  constexpr int DB = HD / 8;    // n-blocks of O
  constexpr int NB = kTile / 8; // n-blocks of S
  constexpr int RB = RV / 8;    // n-blocks of OC
  constexpr int CH = HD / 8;    // 16-byte chunks per row
  constexpr bool QUANT = QBITS != 0;
  extern __shared__ __align__(16) unsigned char parts_tc_smem[];
  T* skv = reinterpret_cast<T*>(parts_tc_smem);  // K tile, V tile
  T* sq = skv + L::kv_stage;
  T* slq = sq + L::q_elems;
  uint8_t* squant = parts_tc_smem + L::quant_offset(lowrank_k != 0);  // L::quant_stage bytes (QUANT)
  constexpr int CVS = RV + 4;  // floats per staged cv row
  float* scv = reinterpret_cast<float*>(parts_tc_smem + L::cv_offset(lowrank_k != 0, QUANT));  // kTile × CVS
  uint4* sqh = reinterpret_cast<uint4*>(parts_tc_smem + L::qh_offset(lowrank_k != 0, QUANT, RV > 0 && stage_cv ? RV : 0));  // [HD/16][32] (QBITS 8)

  // Tiles vary fastest over the grid, so the tiles that read one (kv head, chunk) of a span
  // (the base cache's, for every store's rows) run together and share it in L2.
  const int g = blockIdx.z, c = blockIdx.y;
  const AttnTile tile = plan.tiles[tile0 + blockIdx.x];
  const int sp = tile.span;
  const AttnSpan span = plan.spans[sp];
  if (c >= span.chunks) return;
  const int lane = threadIdx.x, gid = lane >> 2, tig = lane & 3;
  const int group = heads / kv_heads;
  const int p0 = plan.span_parts[sp];
  const int q0 = tile.q0, nrows = tile.nrows;

  // The chunk's keys, up to the furthest any of these rows reads.
  const int k_lo = span.begin + c * plan.chunk;
  int k_hi = min(span.begin + span.extent, k_lo + plan.chunk);
  {
    // Lane r looks up query r's part (kRows ≤ 32): its row of q and how far it reads.
    static_assert(kRows <= 32, "one lane per query");
    int longest = span.begin;
    if (lane < nrows) longest = max(longest, plan.parts[p0 + (q0 + lane) / group].end);
    k_hi = min(k_hi, __reduce_max_sync(0xffffffffu, longest));
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
  // The tile's one correction (the planner cuts tiles where it changes).
  const int ci = plan.parts[p0 + q0 / group].corr;
  const AttnCorrection* cr = ci >= 0 ? &plan.corrs[ci] : nullptr;
  const uint8_t* qk = QUANT && cr ? cr->qk : nullptr;
  const uint8_t* qv = QUANT && cr ? cr->qv : nullptr;
  const float* ck = cr ? cr->ck : nullptr;
  const float* cv = cr ? cr->cv : nullptr;
  constexpr int bits = QBITS;  // the launch's tiles all have it (attn_tile_class)
  const int tokens = cr ? cr->tokens : 0;
  constexpr int rb = bits == 8 ? HD : HD / 2;  // bytes of a quantized row
  const bool staged = QUANT && (qk || qv);  // always, in the launch of quantized tiles
  const int rv = cv ? cr->rv : 0;
  const bool cv_staged = RV > 0 && stage_cv && cv;  // else read from global memory below

  // The 16 query rows (zeros past the real ones), then the first K/V tile. Lane r < nrows
  // finds query r's row of q; each copy takes its row's address from that lane.
  const T* q_row = q;
  if (lane < nrows) {
    const int qi = q0 + lane;
    q_row = q + (static_cast<int64_t>(plan.parts[p0 + qi / group].row) * heads + g * group + qi % group) * HD;
  }
#pragma unroll
  for (int k = 0; k < kRows * CH / 32; ++k) {
    const int i = lane + 32 * k, r = i / CH, ch = i % CH;
    const T* src = reinterpret_cast<const T*>(__shfl_sync(0xffffffffu, reinterpret_cast<unsigned long long>(q_row), r));
    cp_async16(smem_addr(sq + r * S + ch * 8), r < nrows ? src + ch * 8 : q, r < nrows ? 16 : 0);
  }
  cp_async_commit();
  const T* kh = static_cast<const T*>(span.k) + static_cast<int64_t>(g) * span.capacity * HD;
  const T* vh = static_cast<const T*>(span.v) + static_cast<int64_t>(g) * span.capacity * HD;
  // A tile's keys come in two groups of copies, so that the next tile's K loads while this
  // one's softmax and P·V run, and its V while the next S does (one buffer of each, so as many
  // warps fit on an SM as before): K rows with the store's ΔK rows and scales, then V rows with
  // its ΔV rows and scales and the low-rank ΔV's coefficients.
  const int64_t row0_base = static_cast<int64_t>(g) * tokens;  // the store's rows of this kv head
  auto load_k = [&](int t0) {
    const int64_t at = static_cast<int64_t>(t0 - span.begin) * HD;
    copy_rows16<CH, kTile>(smem_addr(skv), S * sizeof(T), reinterpret_cast<const char*>(kh + at), HD * sizeof(T), k_hi - t0, CH, kh, lane);
    if (staged && qk) {
      // The store's rows for these keys (zeros past its tokens or the chunk), and scales.
      constexpr int C = bits == 8 ? HD / 16 : HD / 32;
      copy_rows16<C, kTile>(smem_addr(squant), L::qrow, reinterpret_cast<const char*>(qk + (row0_base + t0) * rb), rb,
                            min(k_hi, tokens) - t0, C, qk, lane);
      const int key = t0 + lane;  // kTile == 32: one key per lane
      const bool in = key < k_hi && key < tokens;
      float* dsk = reinterpret_cast<float*>(squant + 2 * kTile * L::qrow);
      cp_async4(smem_addr(dsk + lane), cr->sk + row0_base + (in ? key : 0), in ? 4 : 0);
    }
  };
  auto load_v = [&](int t0) {
    const int64_t at = static_cast<int64_t>(t0 - span.begin) * HD;
    copy_rows16<CH, kTile>(smem_addr(skv + kTile * S), S * sizeof(T), reinterpret_cast<const char*>(vh + at), HD * sizeof(T), k_hi - t0, CH, vh, lane);
    if (staged && qv) {
      constexpr int C = bits == 8 ? HD / 16 : HD / 32;
      copy_rows16<C, kTile>(smem_addr(squant + kTile * L::qrow), L::qrow, reinterpret_cast<const char*>(qv + (row0_base + t0) * rb), rb,
                            min(k_hi, tokens) - t0, C, qv, lane);
      const int key = t0 + lane;
      const bool in = key < k_hi && key < tokens;
      float* dsv = reinterpret_cast<float*>(squant + 2 * kTile * L::qrow) + kTile;
      cp_async4(smem_addr(dsv + lane), cr->sv + row0_base + (in ? key : 0), in ? 4 : 0);
    }
    if constexpr (RV > 0) {
      if (cv_staged) {
        // The low-rank ΔV's coefficient rows for these keys (zeros past its tokens or the
        // chunk): rv / 4 chunks of each row's RV / 4.
        copy_rows16<RV / 4, kTile>(smem_addr(scv), CVS * sizeof(float),
                                   reinterpret_cast<const char*>(cv + static_cast<int64_t>(t0) * rv), static_cast<int64_t>(rv) * sizeof(float),
                                   min(k_hi, tokens) - t0, rv / 4, cv, lane);
      }
    }
  };
  if (k_lo < k_hi) load_k(k_lo);
  cp_async_commit();
  if (k_lo < k_hi) load_v(k_lo);
  cp_async_commit();
  cp_async_wait<2>();  // the queries are in
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
  if constexpr (QBITS == 8) {
    // Q in fp16 as the A fragments of the int8 ΔK product, in its order of dims: chunk
    // kc = 4·G + c (G a 64-dim group) takes, at this lane's k slots 2·tig, 2·tig + 1 and
    // 2·tig + 8, 2·tig + 9, dims b, b + 1 and b + 2, b + 3 with b = 64·G + 16·tig + 4·c, so that
    // the ΔK rows' fragments are 4 consecutive bytes (one 16-byte read serves 4 chunks).
#pragma unroll
    for (int kc = 0; kc < KC; ++kc) {
      const int b = 64 * (kc / 4) + 16 * tig + 4 * (kc % 4);
      const T* r0 = sq + gid * S + b;
      const T* r1 = sq + (gid + 8) * S + b;
      const __half2 a0 = __floats2half2_rn(to_f16_range(r0[0]), to_f16_range(r0[1]));
      const __half2 a1 = __floats2half2_rn(to_f16_range(r1[0]), to_f16_range(r1[1]));
      const __half2 a2 = __floats2half2_rn(to_f16_range(r0[2]), to_f16_range(r0[3]));
      const __half2 a3 = __floats2half2_rn(to_f16_range(r1[2]), to_f16_range(r1[3]));
      sqh[kc * 32 + lane] = make_uint4(*reinterpret_cast<const uint32_t*>(&a0), *reinterpret_cast<const uint32_t*>(&a1),
                                       *reinterpret_cast<const uint32_t*>(&a2), *reinterpret_cast<const uint32_t*>(&a3));
    }
  }
  if (lowrank_k) {
    // Lq = q · bk_g per row (zeros where the tile has no ΔK basis).
    const int rk = ck ? cr->rk : 0;
    for (int e = lane; e < kRows * kMaxLowRank; e += 32) {
      const int r = e / kMaxLowRank, j = e % kMaxLowRank;
      float dot = 0.0f;
      if (r < nrows && j < rk) {
        for (int d = 0; d < HD; ++d) dot += to_f(sq[r * S + d]) * cr->bk[(static_cast<int64_t>(g) * HD + d) * rk + j];
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

  for (int t0 = k_lo; t0 < k_hi; t0 += kTile) {
    const bool more = t0 + kTile < k_hi;
    // In flight: this tile's K group, then its V group. Wait for the K group.
    cp_async_wait<1>();
    __syncwarp();
    const T* tk = skv;
    const T* tv = tk + kTile * S;
    const uint8_t* tqk = squant;  // staged ΔK rows, ΔV rows, scales
    const uint8_t* tqv = tqk + kTile * L::qrow;
    const float* tsk = reinterpret_cast<const float*>(tqk + 2 * kTile * L::qrow);
    const float* tsv = tsk + kTile;

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

    // ΔK: quantized from the staged rows (zeros past the store's tokens), then low-rank.
    if (qk) {
      float sc[NB][4];
#pragma unroll
      for (int i = 0; i < NB; ++i) sc[i][0] = sc[i][1] = sc[i][2] = sc[i][3] = 0.0f;
      if constexpr (QBITS == 8) {
        // fp16: 16 bytes of each key row (this lane's 4 chunks of a 64-dim group, see sqh).
#pragma unroll
        for (int G = 0; G < HD / 64; ++G) {
          uint4 w[NB];
#pragma unroll
          for (int nb = 0; nb < NB; ++nb) w[nb] = *reinterpret_cast<const uint4*>(tqk + (nb * 8 + gid) * L::qrow + 64 * G + 16 * tig);
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const uint4 a4 = sqh[(G * 4 + c) * 32 + lane];
            const uint32_t a[4] = {a4.x, a4.y, a4.z, a4.w};
#pragma unroll
            for (int nb = 0; nb < NB; ++nb) {
              const uint32_t x = (c == 0 ? w[nb].x : c == 1 ? w[nb].y : c == 2 ? w[nb].z : w[nb].w) ^ 0x80808080u;
              mma16816<__half>(sc[nb], a, s8x2_flipped_to_h2(x, 0), s8x2_flipped_to_h2(x, 2));
            }
          }
        }
      } else {
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          const uint8_t* row = tqk + (nb * 8 + gid) * L::qrow;
#pragma unroll
          for (int kc = 0; kc < KC; ++kc) {
            const int d0 = kc * 16 + tig * 2;
            mma16816<T>(sc[nb], qf[kc], quant_pair<T>(row, d0, bits), quant_pair<T>(row, d0 + 8, bits));
          }
        }
      }
      // × each key's scale (per kv head and token).
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[nb][e] += sc[nb][e] * tsk[nb * 8 + tig * 2 + (e & 1)];
      }
    }
    if (ck) {
      const int rk = cr->rk;
      for (int kc2 = 0; kc2 * 16 < rk; ++kc2) {
        uint32_t a[4];
        const int row = (lane & 7) + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(a[0], a[1], a[2], a[3], smem_addr(slq + row * L::lq_stride + kc2 * 16 + (lane >> 4) * 8));
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          const int key = t0 + nb * 8 + gid;
          const bool ok = key < k_hi && key < tokens;
          const float* crow = ck + static_cast<int64_t>(ok ? key : 0) * rk;
          const int r0 = kc2 * 16 + tig * 2;
          auto at = [&](int r) { return ok && r < rk ? crow[r] : 0.0f; };
          mma16816<T>(s[nb], a, pack2<T>(at(r0), at(r0 + 1)), pack2<T>(at(r0 + 8), at(r0 + 9)));
        }
      }
    }

    // Every lane is done with the K group's buffers: the next tile's K loads from here on.
    __syncwarp();
    if (more) load_k(t0 + kTile);
    cp_async_commit();

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
    bool same = true;  // this lane's rows keep their max (or have seen nothing: O is still 0)
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
      const float mnew = fmaxf(m[r], mx[r] * scale_log2);
      base[r] = mnew == -INFINITY ? 0.0f : mnew;  // a row with nothing seen yet stays at 0
      corr[r] = exp2f(m[r] - base[r]);            // 0 on a row's first keys (m = -inf)
      same = same && (corr[r] == 1.0f || m[r] == -INFINITY);
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
    // Rescale the accumulators only when some row's max moved: past a chunk's first tiles it
    // rarely does, and skipping a multiply by exactly 1 (or of a row's accumulators that are
    // still 0) changes nothing, so this is bit-exact. The vote makes the branch warp-uniform.
    if (!__all_sync(0xffffffffu, same)) {
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
    }

    // The V group of this tile (the next tile's K group may still be loading).
    cp_async_wait<1>();
    __syncwarp();

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

    // ΔV: quantized from the staged rows, then low-rank (its r coefficients per row).
    if (qv || (RB > 0 && cv)) {
#pragma unroll
      for (int kc2 = 0; kc2 < kTile / 16; ++kc2) {
        // This lane's keys in the A fragment: kb, kb+1 (a0, a1) and kb+8, kb+9 (a2, a3).
        const int kl = kc2 * 16 + tig * 2;  // within the tile
        const float* p_lo = s[2 * kc2];
        const float* p_hi = s[2 * kc2 + 1];
        if (qv) {
          float sv[4];
          const uint8_t* rows4[4];
#pragma unroll
          for (int u = 0; u < 4; ++u) {
            const int k = kl + (u & 1) + (u >> 1) * 8;
            sv[u] = tsv[k];
            rows4[u] = tqv + k * L::qrow;
          }
          uint32_t a[4];
          a[0] = pack2<T>(p_lo[0] * sv[0], p_lo[1] * sv[1]);
          a[1] = pack2<T>(p_lo[2] * sv[0], p_lo[3] * sv[1]);
          a[2] = pack2<T>(p_hi[0] * sv[2], p_hi[1] * sv[3]);
          a[3] = pack2<T>(p_hi[2] * sv[2], p_hi[3] * sv[3]);
#pragma unroll
          for (int db = 0; db < DB; ++db) {
            const int d = db * 8 + gid;
            auto v = [&](int u) { return quant_value(rows4[u], d, bits); };
            mma16816<T>(o[db], a, pack2<T>(v(0), v(1)), pack2<T>(v(2), v(3)));
          }
        }
        if (RB > 0 && cv) {
          uint32_t a[4];
          a[0] = pack2<T>(p_lo[0], p_lo[1]);
          a[1] = pack2<T>(p_lo[2], p_lo[3]);
          a[2] = pack2<T>(p_hi[0], p_hi[1]);
          a[3] = pack2<T>(p_hi[2], p_hi[3]);
          const int kb = t0 + kl;
          const float* tcv = scv;
#pragma unroll
          for (int rbk = 0; rbk < RB; ++rbk) {
            if (rbk * 8 >= rv) break;  // uniform over the warp
            const int r = rbk * 8 + gid;
            auto v = [&](int u) {
              const int k = kl + (u & 1) + (u >> 1) * 8;  // within the tile
              if (r >= rv) return 0.0f;
              if (cv_staged) return tcv[k * CVS + r];
              const int key = kb + (u & 1) + (u >> 1) * 8;
              return key < k_hi && key < tokens ? cv[static_cast<int64_t>(key) * rv + r] : 0.0f;
            };
            mma16816<T>(occ[rbk], a, pack2<T>(v(0), v(1)), pack2<T>(v(2), v(3)));
          }
        }
      }
    }
    __syncwarp();  // every lane is done with the V group's buffers before the next tile's V loads
    if (more) load_v(t0 + kTile);
    cp_async_commit();
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
    if (RB > 0 && cv) {
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
void launch(int rv_bound, dim3 grid, const T* q, const PlanArgs& args, int heads, int kv_heads, bool lowrank_k,
            int qbits, bool stage_cv, int tile0, cudaStream_t s) {
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(HD));
  auto go = [&](auto rv, auto qt) {
    constexpr int RV = decltype(rv)::value;
    constexpr int QBITS = decltype(qt)::value;
    const size_t smem = PartsTcLayout<HD>::bytes(lowrank_k, QBITS, RV > 0 && stage_cv ? RV : 0);
    // Above the default 48 KiB per block (staged store data): raised once per instantiation
    // (not a stream op, so also fine during a graph capture).
    static size_t raised = 0;
    if (smem > 48 * 1024 && raised < smem) {
      cudaFuncSetAttribute(parts_tc_k<T, HD, RV, QBITS>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
      raised = smem;
    }
    parts_tc_k<T, HD, RV, QBITS><<<grid, 32, smem, s>>>(q, args, heads, kv_heads, scale_log2, lowrank_k ? 1 : 0,
                                                         stage_cv ? 1 : 0, tile0);
  };
  auto with_rv = [&](auto qt) {
    if (rv_bound == 0) go(std::integral_constant<int, 0>{}, qt);
    else if (rv_bound <= 32) go(std::integral_constant<int, 32>{}, qt);
    else if (rv_bound <= 64) go(std::integral_constant<int, 64>{}, qt);
    else go(std::integral_constant<int, 128>{}, qt);
  };
  if (qbits == 8) with_rv(std::integral_constant<int, 8>{});
  else if (qbits == 4) with_rv(std::integral_constant<int, 4>{});
  else with_rv(std::integral_constant<int, 0>{});
}

}  // namespace

bool attention_parts_tc(DT dt, const void* q, const PlanArgs& args, const AttnPlan& plan, int heads, int kv_heads,
                        int hd, const Branches& b) {
  // ADAPTERLENS_CUDA_ATTN_TC=0: the CUDA-core kernel everywhere (for comparing the two).
  static const bool enabled = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_ATTN_TC");
    return !(v && std::string(v) == "0");
  }();
  if (!enabled || dt == DT::F32 || (hd != 64 && hd != 128) || !aligned16(q)) return false;
  int max_chunks = 1;
  for (int i = 0; i < plan.spans.n; ++i) {
    const AttnSpan& sp = plan.spans[i];
    if (!aligned16(sp.k) || !aligned16(sp.v)) return false;
    max_chunks = std::max(max_chunks, sp.chunks);
  }
  for (int i = 0; i < plan.corrs.n; ++i) {
    const AttnCorrection& c = plan.corrs[i];
    if ((c.cv && c.rv > kMaxLowRank) || (c.ck && c.rk > kMaxLowRank)) return false;
    // Staged with 16-byte copies: the rows must be whole 16-byte chunks, 16-byte aligned.
    if ((c.qk || c.qv) && ((c.bits != 8 && c.bits != 4) || (c.qk && !aligned16(c.qk)) || (c.qv && !aligned16(c.qv)))) return false;
  }
  if (kv_heads > 65535 || max_chunks > 65535) return false;
  // The planner orders the tiles plain, low-rank, quantized (attn_tile_class): each class launches
  // with only the shared memory and registers it needs (more warps of the plain class, the
  // exact caches' and the base rows', fit on an SM).
  const int group = heads / kv_heads;
  struct Launch {
    int first = 0, count = 0, max_rv = 0;
    bool lowrank_k = false, stage_cv = true;
  } cls[kAttnTileClasses];
  int last = -1;
  for (int i = 0; i < plan.tiles.n; ++i) {
    const AttnTile& t = plan.tiles[i];
    const int ci = plan.parts[plan.span_parts[t.span] + t.q0 / group].corr;
    const AttnCorrection* c = ci >= 0 ? &plan.corrs[ci] : nullptr;
    const int k = attn_tile_class(c);
    Launch& l = cls[k];
    if (k != last && l.count > 0) return false;  // not in class order: not a plan of AttnPlanner
    last = k;
    if (l.count == 0) l.first = i;
    ++l.count;
    if (c && c->cv) {
      l.max_rv = std::max(l.max_rv, c->rv);
      l.stage_cv = l.stage_cv && c->rv % 4 == 0 && aligned16(c->cv);
    }
    l.lowrank_k = l.lowrank_k || (c && c->ck);
  }
  // ADAPTERLENS_CUDA_ATTN_BRANCHES=1 launches each class on a branch of its own (they write
  // disjoint partials). Not the default: measured on an H200 (bench/research/ab-session.sh),
  // launched alone one layer's attention went from 110.5 to 107.9 µs, but inside the decode
  // step's graph the step went from 9.96 to 10.59 ms. One stream, one class after another.
  static const bool branch = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_ATTN_BRANCHES");
    return v && std::string(v) == "1";
  }();
  int classes = 0;
  for (const Launch& l : cls) classes += l.count > 0 ? 1 : 0;
  // (Two side streams: at most three classes fork; a plan with all four runs on one stream.)
  const bool fork = branch && classes > 1 && classes <= 3 && b.side[0] && b.side[1];
  if (fork) cudaEventRecord(b.forked, b.main);
  int used = 0;  // classes launched so far: the first on main, the others on the side streams
  for (int k = 0; k < kAttnTileClasses; ++k) {
    const Launch& l = cls[k];
    if (l.count == 0) continue;
    cudaStream_t s = b.main;
    if (fork && used > 0) {
      s = b.side[used - 1];
      cudaStreamWaitEvent(s, b.forked, 0);
    }
    ++used;
    const dim3 grid(l.count, max_chunks, kv_heads);
    const int qbits = k == 2 ? 8 : k == 3 ? 4 : 0;
    if (dt == DT::BF16) {
      const auto* qt = static_cast<const __nv_bfloat16*>(q);
      if (hd == 64) launch<__nv_bfloat16, 64>(l.max_rv, grid, qt, args, heads, kv_heads, l.lowrank_k, qbits, l.stage_cv, l.first, s);
      else launch<__nv_bfloat16, 128>(l.max_rv, grid, qt, args, heads, kv_heads, l.lowrank_k, qbits, l.stage_cv, l.first, s);
    } else {
      const auto* qt = static_cast<const __half*>(q);
      if (hd == 64) launch<__half, 64>(l.max_rv, grid, qt, args, heads, kv_heads, l.lowrank_k, qbits, l.stage_cv, l.first, s);
      else launch<__half, 128>(l.max_rv, grid, qt, args, heads, kv_heads, l.lowrank_k, qbits, l.stage_cv, l.first, s);
    }
  }
  check("attention (parts, tensor cores)");
  if (fork) {
    for (int i = 0; i + 1 < used; ++i) {
      cudaEventRecord(b.joined[i], b.side[i]);
      cudaStreamWaitEvent(b.main, b.joined[i], 0);
    }
    check("attention (joining the branches)");
  }
  return true;
}

}  // namespace al::cuda
