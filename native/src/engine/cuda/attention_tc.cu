// Prefill attention on tensor cores (the CUDA device's attention_prefill for bf16/fp16; CPU
// reference: attention_prefill in device_cpu.cpp), FlashAttention-2 style:
// bf16/fp16 products with fp32 accumulation through mma.sync m16n8k16 (sm_80+), operands
// from shared memory through ldmatrix, tiles staged with cp.async. fp32 stays on the CUDA-core
// kernel (attention_prefill in attention.cu), whose semantics this one shares.
//
// Block: 4 warps and 64·MT query rows of one head; warp w owns rows 16·MT·w .. +16·MT as MT
// m16 row tiles (MT = 2 by default: each K or V fragment read from shared memory feeds two
// products, which halves the ldmatrix traffic per product, the limit at MT = 1: H200, 250
// causal TFLOP/s there; ADAPTERLENS_CUDA_PREFILL_MT=1 picks MT = 1 for comparison). Key and
// value tiles of 64 rows pass through shared memory, double-buffered: tile j+1 loads while tile
// j is used, one barrier a tile. Rows are padded by 16 bytes, so ldmatrix's eight row reads
// fall in distinct banks. Per key tile each warp computes S = Q·Kᵀ (fp32; Q's fragments
// re-read from shared memory, which leaves the registers to O), masks the causal diagonal,
// updates its rows' running max m and sum l (online softmax, fp32), rounds P to T and
// accumulates O += P·V in fp32 registers. Tiles wholly past a warp's last row are skipped.
// Output O/l is rounded to T once, staged through the warp's own rows of the Q tile for
// 16-byte stores.
//
// Shared memory per block: (64·MT + 4·64) rows × (HD + 8) × sizeof(T): 102 KiB at HD 128 and
// MT 2 (two blocks an SM), 54 KiB at HD 64.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/mma.cuh"

namespace al::cuda {

namespace {

constexpr int kTcWarps = 4;
constexpr int kTcThreads = kTcWarps * 32;
constexpr int kTcBK = 64;  // keys per tile

template <int HD, int MT>
struct TcTile {
  static constexpr int rows_per_warp = 16 * MT;
  static constexpr int BQ = rows_per_warp * kTcWarps;  // query rows per block
  static constexpr int stride = HD + 8;                // elements per shared row (16 bytes of padding)
  static constexpr int kv_elems = kTcBK * stride;      // one K or V tile
  // Q, then the two buffers of (K tile, V tile).
  static constexpr size_t smem_bytes = (size_t(BQ) * stride + 4 * size_t(kv_elems)) * sizeof(uint16_t);
};

// rows × HD of T from global (row r at src + r·src_stride) into a padded shared tile, rows
// ≥ valid zero-filled. All threads of the block take part.
template <typename T, int HD>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t src_stride, int rows, int valid) {
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < rows * CH; i += kTcThreads) {
    const int r = i / CH, c = i % CH;
    const bool in = r < valid;
    const T* s = in ? src + r * src_stride + c * 8 : src;
    cp_async16(smem_addr(dst + r * (HD + 8) + c * 8), s, in ? 16 : 0);
  }
}

template <typename T, int HD, int MT>
__global__ void __launch_bounds__(kTcThreads, 2) attention_prefill_tc_k(T* __restrict__ out, const T* __restrict__ q,
                                                                         const T* __restrict__ kc,
                                                                         const T* __restrict__ vc, int capacity,
                                                                         int pos0, int n, int num_heads,
                                                                         int num_kv_heads, float scale_log2) {
  using L = TcTile<HD, MT>;
  constexpr int S = L::stride;
  constexpr int KC = HD / 16;    // k-chunks of Q·Kᵀ
  constexpr int DB = HD / 8;     // n-blocks of O
  constexpr int NB = kTcBK / 8;  // n-blocks of S
  constexpr int WR = L::rows_per_warp;
  extern __shared__ __align__(16) unsigned char tc_smem[];
  T* sq = reinterpret_cast<T*>(tc_smem);
  T* skv = sq + L::BQ * S;  // buffer b: K tile at skv + 2b·kv_elems, its V tile after it

  const int h = blockIdx.x;
  const int g = h / (num_heads / num_kv_heads);
  const int tile = static_cast<int>(gridDim.y - 1 - blockIdx.y);  // the longest tiles first
  const int r0 = tile * L::BQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane >> 2, tig = lane & 3;

  const int last_row = min(n, r0 + L::BQ) - 1;
  const int kmax = pos0 + last_row;  // the last key any row of this block sees
  const int ntiles = kmax / kTcBK + 1;
  const T* kh = kc + static_cast<int64_t>(g) * capacity * HD;
  const T* vh = vc + static_cast<int64_t>(g) * capacity * HD;

  // This warp's rows: wr0.. (inactive rows, past n, are clamped to the last row for the mask).
  const int wr0 = r0 + warp * WR;
  const bool warp_active = wr0 < n;
  const int warp_kmax = pos0 + min(wr0 + WR - 1, n - 1);
  int lim[MT][2];
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    lim[t][0] = pos0 + min(wr0 + 16 * t + gid, n - 1);
    lim[t][1] = pos0 + min(wr0 + 16 * t + gid + 8, n - 1);
  }

  // Q tile, then K and V tile 0 into buffer 0.
  load_tile<T, HD>(sq, q + (static_cast<int64_t>(r0) * num_heads + h) * HD, static_cast<int64_t>(num_heads) * HD,
                   L::BQ, n - r0);
  load_tile<T, HD>(skv, kh, HD, kTcBK, kmax + 1);
  load_tile<T, HD>(skv + L::kv_elems, vh, HD, kTcBK, kmax + 1);
  cp_async_commit();

  float o[MT][DB][4];
#pragma unroll
  for (int t = 0; t < MT; ++t)
#pragma unroll
    for (int i = 0; i < DB; ++i) o[t][i][0] = o[t][i][1] = o[t][i][2] = o[t][i][3] = 0.0f;
  float m[MT][2], l[MT][2];  // l: this lane's share of the row sums (reduced at the end)
#pragma unroll
  for (int t = 0; t < MT; ++t) m[t][0] = m[t][1] = -INFINITY, l[t][0] = l[t][1] = 0.0f;

  for (int j = 0; j < ntiles; ++j) {
    const int k0 = j * kTcBK;
    cp_async_wait<0>();  // tile j (and Q) are in
    __syncthreads();     // ... for every thread, and every warp is done with tile j-1's buffer
    if (j + 1 < ntiles) {
      T* nk = skv + ((j + 1) & 1) * 2 * L::kv_elems;
      const int valid = kmax + 1 - (k0 + kTcBK);
      load_tile<T, HD>(nk, kh + static_cast<int64_t>(k0 + kTcBK) * HD, HD, kTcBK, valid);
      load_tile<T, HD>(nk + L::kv_elems, vh + static_cast<int64_t>(k0 + kTcBK) * HD, HD, kTcBK, valid);
      cp_async_commit();
    }
    if (!warp_active || k0 > warp_kmax) continue;  // still at every barrier above
    const T* sk = skv + (j & 1) * 2 * L::kv_elems;
    const T* sv = sk + L::kv_elems;

    // S = Q · Kᵀ: per 16-dim chunk, Q's fragments of every row tile, then per pair of 8-key blocks
    // one K fragment for every row tile.
    float s[MT][NB][4];
#pragma unroll
    for (int t = 0; t < MT; ++t)
#pragma unroll
      for (int i = 0; i < NB; ++i) s[t][i][0] = s[t][i][1] = s[t][i][2] = s[t][i][3] = 0.0f;
#pragma unroll
    for (int kc2 = 0; kc2 < KC; ++kc2) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int t = 0; t < MT; ++t) {
        const int row = warp * WR + 16 * t + (lane & 7) + ((lane >> 3) & 1) * 8;
        ldmatrix_x4(qa[t][0], qa[t][1], qa[t][2], qa[t][3], smem_addr(sq + row * S + kc2 * 16 + (lane >> 4) * 8));
      }
#pragma unroll
      for (int nb = 0; nb < NB; nb += 2) {
        const int key = nb * 8 + (lane & 7) + (lane >> 4) * 8;
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4(b0, b1, b2, b3, smem_addr(sk + key * S + kc2 * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
        for (int t = 0; t < MT; ++t) {
          mma16816<T>(s[t][nb], qa[t], b0, b1);
          mma16816<T>(s[t][nb + 1], qa[t], b2, b3);
        }
      }
    }
    uint32_t pf[MT][kTcBK / 16][4];  // P as A fragments of P·V
#pragma unroll
    for (int t = 0; t < MT; ++t) {
      // Causal mask (also hides the zero-filled keys past kmax) where the tile reaches past
      // this row tile's first row.
      if (k0 + kTcBK - 1 > pos0 + wr0 + 16 * t) {
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          const int key = k0 + nb * 8 + tig * 2;
          if (key > lim[t][0]) s[t][nb][0] = -INFINITY;
          if (key + 1 > lim[t][0]) s[t][nb][1] = -INFINITY;
          if (key > lim[t][1]) s[t][nb][2] = -INFINITY;
          if (key + 1 > lim[t][1]) s[t][nb][3] = -INFINITY;
        }
      }
      // Online softmax in log2 units: m is max(s)·scale·log2(e).
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        mx[0] = fmaxf(mx[0], fmaxf(s[t][nb][0], s[t][nb][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[t][nb][2], s[t][nb][3]));
      }
      float corr[2], base[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float mnew = fmaxf(m[t][r], mx[r] * scale_log2);
        base[r] = mnew == -INFINITY ? 0.0f : mnew;  // a row with nothing seen yet stays at 0
        corr[r] = exp2f(m[t][r] - base[r]);         // 0 on a row's first keys (m = -inf)
        m[t][r] = mnew;
      }
      float rs[2] = {0.0f, 0.0f};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        // P rounded to T once; the row sum takes the rounded values, as P·V does.
        const uint32_t lo = pack2<T>(exp2f(fmaf(s[t][nb][0], scale_log2, -base[0])),
                                     exp2f(fmaf(s[t][nb][1], scale_log2, -base[0])));
        const uint32_t hi = pack2<T>(exp2f(fmaf(s[t][nb][2], scale_log2, -base[1])),
                                     exp2f(fmaf(s[t][nb][3], scale_log2, -base[1])));
        const float2 flo = unpack2<T>(lo), fhi = unpack2<T>(hi);
        rs[0] += flo.x + flo.y;
        rs[1] += fhi.x + fhi.y;
        // C of n-blocks 2c, 2c+1 → A of k-chunk c: a0 (row g, keys 0-7), a1 (row g+8), a2, a3 (keys 8-15).
        pf[t][nb / 2][(nb & 1) * 2 + 0] = lo;
        pf[t][nb / 2][(nb & 1) * 2 + 1] = hi;
      }
#pragma unroll
      for (int r = 0; r < 2; ++r) l[t][r] = l[t][r] * corr[r] + rs[r];
#pragma unroll
      for (int i = 0; i < DB; ++i) {
        o[t][i][0] *= corr[0];
        o[t][i][1] *= corr[0];
        o[t][i][2] *= corr[1];
        o[t][i][3] *= corr[1];
      }
    }
    // O += P · V: V [key][d] read transposed (ldmatrix.trans) as col-major B, each fragment for
    // every row tile.
#pragma unroll
    for (int kc2 = 0; kc2 < kTcBK / 16; ++kc2) {
      const int key = kc2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int db = 0; db < DB; db += 2) {
        uint32_t b0, b1, b2, b3;
        ldmatrix_x4_trans(b0, b1, b2, b3, smem_addr(sv + key * S + db * 8 + (lane >> 4) * 8));
#pragma unroll
        for (int t = 0; t < MT; ++t) {
          mma16816<T>(o[t][db], pf[t][kc2], b0, b1);
          mma16816<T>(o[t][db + 1], pf[t][kc2], b2, b3);
        }
      }
    }
  }

  if (!warp_active) return;
  // Row sums across the row's 4 lanes, then O / l rounded to T, staged in this warp's own
  // rows of the Q tile (only this warp read them), stored 16 bytes at a time.
  T* stage = sq + warp * WR * S;
#pragma unroll
  for (int t = 0; t < MT; ++t) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      l[t][r] += __shfl_xor_sync(0xffffffffu, l[t][r], 1);
      l[t][r] += __shfl_xor_sync(0xffffffffu, l[t][r], 2);
      inv[r] = 1.0f / l[t][r];
    }
#pragma unroll
    for (int db = 0; db < DB; ++db) {
      const int col = db * 8 + tig * 2;
      *reinterpret_cast<uint32_t*>(stage + (16 * t + gid) * S + col) = pack2<T>(o[t][db][0] * inv[0], o[t][db][1] * inv[0]);
      *reinterpret_cast<uint32_t*>(stage + (16 * t + gid + 8) * S + col) = pack2<T>(o[t][db][2] * inv[1], o[t][db][3] * inv[1]);
    }
  }
  __syncwarp();
  constexpr int CH = HD / 8;
  for (int i = lane; i < WR * CH; i += 32) {
    const int r = i / CH, c = i % CH;
    const int row = wr0 + r;
    if (row < n) {
      *reinterpret_cast<uint4*>(out + (static_cast<int64_t>(row) * num_heads + h) * HD + c * 8) =
          *reinterpret_cast<const uint4*>(stage + r * S + c * 8);
    }
  }
}

// Row tiles per warp: 2, or ADAPTERLENS_CUDA_PREFILL_MT=1 (the benchmark's comparison).
int prefill_row_tiles() {
  static const int mt = [] {
    const char* v = std::getenv("ADAPTERLENS_CUDA_PREFILL_MT");
    return v && std::string(v) == "1" ? 1 : 2;
  }();
  return mt;
}

template <typename T, int HD, int MT>
void launch_prefill_tc(void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                       int num_heads, int num_kv_heads, cudaStream_t s) {
  constexpr size_t smem = TcTile<HD, MT>::smem_bytes;
  static bool attr_set = false;  // callers hold the device lock
  if (!attr_set) {
    cudaFuncSetAttribute(attention_prefill_tc_k<T, HD, MT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(smem));
    check("attention (prefill, tensor cores): shared memory attribute");
    attr_set = true;
  }
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(HD));  // log2(e) / sqrt(head_dim)
  dim3 grid(num_heads, (n + TcTile<HD, MT>::BQ - 1) / TcTile<HD, MT>::BQ);
  attention_prefill_tc_k<T, HD, MT><<<grid, kTcThreads, smem, s>>>(
      static_cast<T*>(out), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), capacity,
      pos0, n, num_heads, num_kv_heads, scale_log2);
}

template <typename T, int HD>
void launch_prefill_tc(void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                       int num_heads, int num_kv_heads, cudaStream_t s) {
  if (prefill_row_tiles() == 1) launch_prefill_tc<T, HD, 1>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
  else launch_prefill_tc<T, HD, 2>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
}

bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

}  // namespace

bool attention_prefill_tc(DT dt, void* out, const void* q, const void* k, const void* v, int capacity, int pos0,
                          int n, int num_heads, int num_kv_heads, int head_dim, cudaStream_t s) {
  if (dt == DT::F32 || (head_dim != 64 && head_dim != 128)) return false;
  // 16-byte cp.async / vector stores: every row start is a multiple of head_dim elements from
  // the base pointers, so aligned bases suffice.
  if (!aligned16(out) || !aligned16(q) || !aligned16(k) || !aligned16(v)) return false;
  if (n <= 0) return true;
  if (dt == DT::BF16) {
    if (head_dim == 64) launch_prefill_tc<__nv_bfloat16, 64>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
    else launch_prefill_tc<__nv_bfloat16, 128>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
  } else {
    if (head_dim == 64) launch_prefill_tc<__half, 64>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
    else launch_prefill_tc<__half, 128>(out, q, k, v, capacity, pos0, n, num_heads, num_kv_heads, s);
  }
  check("attention (prefill, tensor cores)");
  return true;
}

}  // namespace al::cuda
