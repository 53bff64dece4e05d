// Prefill attention on tensor cores (the CUDA device's attention_prefill for bf16/fp16; CPU
// reference: attention_prefill in device_cpu.cpp), FlashAttention-2 style:
// bf16/fp16 products with fp32 accumulation through mma.sync m16n8k16 (sm_80+), operands
// from shared memory through ldmatrix, tiles staged with cp.async. fp32 stays on the CUDA-core
// kernel (attention_prefill in kernels.cu), whose semantics this one shares.
//
// Block: 4 warps, a tile of 64 query rows of one head; warp w owns rows 16w..16w+15. Key and
// value tiles of 64 rows pass through shared memory (rows padded by 16 bytes, so ldmatrix's
// eight row reads fall in distinct banks). Per key tile each warp computes S = Q·Kᵀ (fp32),
// masks the causal diagonal, updates its rows' running max m and sum l (online softmax,
// fp32), rounds P to T and accumulates O += P·V in fp32 registers. Tiles wholly past a warp's
// last row are skipped. Loads overlap compute: V_j loads while S_j is computed, K_{j+1} while
// P_j·V_j is. Output O/l is rounded to T once, staged through shared memory for 16-byte stores.
//
// Shared memory per block: 3 tiles × 64 × (HD + 8) × sizeof(T) = 27 KiB (HD 64), 51 KiB (HD 128).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "engine/cuda/common.cuh"
#include "engine/cuda/mma.cuh"

namespace al::cuda {

namespace {

constexpr int kTcBQ = 64;           // query rows per block
constexpr int kTcBK = 64;           // keys per tile
constexpr int kTcWarps = kTcBQ / 16;
constexpr int kTcThreads = kTcWarps * 32;

template <int HD>
struct TcTile {
  static constexpr int stride = HD + 8;  // elements per shared row (16 bytes of padding)
  static constexpr size_t smem_bytes = size_t(3) * kTcBQ * stride * sizeof(uint16_t);
};

// rows × HD of T from global (row r at src + r·src_stride) into a padded shared tile, rows
// ≥ valid zero-filled. All threads of the block take part.
template <typename T, int HD>
__device__ __forceinline__ void load_tile(T* dst, const T* src, int64_t src_stride, int valid) {
  constexpr int CH = HD / 8;  // 16-byte chunks per row
  for (int i = threadIdx.x; i < kTcBQ * CH; i += kTcThreads) {
    const int r = i / CH, c = i % CH;
    const bool in = r < valid;
    const T* s = in ? src + r * src_stride + c * 8 : src;
    cp_async16(smem_addr(dst + r * TcTile<HD>::stride + c * 8), s, in ? 16 : 0);
  }
}

template <typename T, int HD>
__global__ void __launch_bounds__(kTcThreads) attention_prefill_tc_k(T* __restrict__ out, const T* __restrict__ q,
                                                                      const T* __restrict__ kc,
                                                                      const T* __restrict__ vc, int capacity,
                                                                      int pos0, int n, int num_heads,
                                                                      int num_kv_heads, float scale_log2) {
  constexpr int S = TcTile<HD>::stride;
  constexpr int KC = HD / 16;  // k-chunks of Q·Kᵀ
  constexpr int DB = HD / 8;   // n-blocks of O
  constexpr int NB = kTcBK / 8;  // n-blocks of S
  extern __shared__ __align__(16) unsigned char tc_smem[];
  T* sq = reinterpret_cast<T*>(tc_smem);
  T* sk = sq + kTcBQ * S;
  T* sv = sk + kTcBK * S;

  const int h = blockIdx.x;
  const int g = h / (num_heads / num_kv_heads);
  const int tile = static_cast<int>(gridDim.y - 1 - blockIdx.y);  // the longest tiles first
  const int r0 = tile * kTcBQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane >> 2, tig = lane & 3;

  const int last_row = min(n, r0 + kTcBQ) - 1;
  const int kmax = pos0 + last_row;  // the last key any row of this block sees
  const int ntiles = kmax / kTcBK + 1;
  const T* kh = kc + static_cast<int64_t>(g) * capacity * HD;
  const T* vh = vc + static_cast<int64_t>(g) * capacity * HD;

  // This warp's rows: wr0.. (inactive rows, past n, are clamped to the last row for the mask).
  const int wr0 = r0 + warp * 16;
  const bool warp_active = wr0 < n;
  const int warp_kmax = pos0 + min(wr0 + 15, n - 1);
  int lim[2];
  lim[0] = pos0 + min(wr0 + gid, n - 1);
  lim[1] = pos0 + min(wr0 + gid + 8, n - 1);

  // Q tile, K tile 0 (group), V tile 0 (group).
  load_tile<T, HD>(sq, q + (static_cast<int64_t>(r0) * num_heads + h) * HD, static_cast<int64_t>(num_heads) * HD,
                   n - r0);
  load_tile<T, HD>(sk, kh, HD, kmax + 1);
  cp_async_commit();
  load_tile<T, HD>(sv, vh, HD, kmax + 1);
  cp_async_commit();

  uint32_t qf[KC][4];
  float o[DB][4];
#pragma unroll
  for (int i = 0; i < DB; ++i) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};
  float l[2] = {0.0f, 0.0f};  // this lane's share of the row sums (reduced at the end)

  for (int j = 0; j < ntiles; ++j) {
    const int k0 = j * kTcBK;
    cp_async_wait<1>();  // Q and K_j are in
    __syncthreads();
    if (j == 0) {
      // A fragments of this warp's 16 rows, all of HD.
      const int row = warp * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
      for (int kc2 = 0; kc2 < KC; ++kc2) {
        const int col = kc2 * 16 + (lane >> 4) * 8;
        ldmatrix_x4(qf[kc2][0], qf[kc2][1], qf[kc2][2], qf[kc2][3], smem_addr(sq + row * S + col));
      }
    }
    const bool compute = warp_active && k0 <= warp_kmax;
    uint32_t pf[kTcBK / 16][4];  // P as A fragments of P·V
    if (compute) {
      float s[NB][4];
#pragma unroll
      for (int i = 0; i < NB; ++i) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
      // S = Q · Kᵀ: per pair of 8-key blocks, per 16-dim chunk.
#pragma unroll
      for (int nb = 0; nb < NB; nb += 2) {
        const int key = nb * 8 + (lane & 7) + (lane >> 4) * 8;
#pragma unroll
        for (int kc2 = 0; kc2 < KC; ++kc2) {
          const int col = kc2 * 16 + ((lane >> 3) & 1) * 8;
          uint32_t b0, b1, b2, b3;
          ldmatrix_x4(b0, b1, b2, b3, smem_addr(sk + key * S + col));
          mma16816<T>(s[nb], qf[kc2], b0, b1);
          mma16816<T>(s[nb + 1], qf[kc2], b2, b3);
        }
      }
      // Causal mask (also hides the zero-filled keys past kmax) where the tile reaches past
      // this warp's first row.
      if (k0 + kTcBK - 1 > pos0 + wr0) {
#pragma unroll
        for (int nb = 0; nb < NB; ++nb) {
          const int key = k0 + nb * 8 + tig * 2;
          if (key > lim[0]) s[nb][0] = -INFINITY;
          if (key + 1 > lim[0]) s[nb][1] = -INFINITY;
          if (key > lim[1]) s[nb][2] = -INFINITY;
          if (key + 1 > lim[1]) s[nb][3] = -INFINITY;
        }
      }
      // Online softmax in log2 units: m is max(s)·scale·log2(e).
      float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        mx[0] = fmaxf(mx[0], fmaxf(s[nb][0], s[nb][1]));
        mx[1] = fmaxf(mx[1], fmaxf(s[nb][2], s[nb][3]));
      }
      float corr[2], base[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float mnew = fmaxf(m[r], mx[r] * scale_log2);
        base[r] = mnew == -INFINITY ? 0.0f : mnew;  // a row with nothing seen yet stays at 0
        corr[r] = exp2f(m[r] - base[r]);            // 0 on the first tile (m = -inf)
        m[r] = mnew;
      }
      float rs[2] = {0.0f, 0.0f};
#pragma unroll
      for (int nb = 0; nb < NB; ++nb) {
        // P rounded to T once; the row sum takes the rounded values, as P·V does.
        const uint32_t lo = pack2<T>(exp2f(fmaf(s[nb][0], scale_log2, -base[0])),
                                     exp2f(fmaf(s[nb][1], scale_log2, -base[0])));
        const uint32_t hi = pack2<T>(exp2f(fmaf(s[nb][2], scale_log2, -base[1])),
                                     exp2f(fmaf(s[nb][3], scale_log2, -base[1])));
        const float2 flo = unpack2<T>(lo), fhi = unpack2<T>(hi);
        rs[0] += flo.x + flo.y;
        rs[1] += fhi.x + fhi.y;
        // C of n-blocks 2c, 2c+1 → A of k-chunk c: a0 (row g, keys 0-7), a1 (row g+8), a2, a3 (keys 8-15).
        pf[nb / 2][(nb & 1) * 2 + 0] = lo;
        pf[nb / 2][(nb & 1) * 2 + 1] = hi;
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
    }
    cp_async_wait<0>();  // V_j is in
    __syncthreads();     // every warp is done with K_j
    if (j + 1 < ntiles) {
      load_tile<T, HD>(sk, kh + static_cast<int64_t>(k0 + kTcBK) * HD, HD, kmax + 1 - (k0 + kTcBK));
      cp_async_commit();
    }
    if (compute) {
      // O += P · V: V [key][d] read transposed (ldmatrix.trans) as col-major B.
#pragma unroll
      for (int kc2 = 0; kc2 < kTcBK / 16; ++kc2) {
        const int key = kc2 * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
#pragma unroll
        for (int db = 0; db < DB; db += 2) {
          const int col = db * 8 + (lane >> 4) * 8;
          uint32_t b0, b1, b2, b3;
          ldmatrix_x4_trans(b0, b1, b2, b3, smem_addr(sv + key * S + col));
          mma16816<T>(o[db], pf[kc2], b0, b1);
          mma16816<T>(o[db + 1], pf[kc2], b2, b3);
        }
      }
    }
    __syncthreads();  // every warp is done with V_j
    if (j + 1 < ntiles) {
      load_tile<T, HD>(sv, vh + static_cast<int64_t>(k0 + kTcBK) * HD, HD, kmax + 1 - (k0 + kTcBK));
      cp_async_commit();
    }
  }

  if (!warp_active) return;
  // Row sums across the row's 4 lanes, then O / l rounded to T, staged in this warp's own
  // rows of the Q tile (only this warp read them), stored 16 bytes at a time.
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
    inv[r] = 1.0f / l[r];
  }
  T* stage = sq + warp * 16 * S;
#pragma unroll
  for (int db = 0; db < DB; ++db) {
    const int col = db * 8 + tig * 2;
    *reinterpret_cast<uint32_t*>(stage + gid * S + col) = pack2<T>(o[db][0] * inv[0], o[db][1] * inv[0]);
    *reinterpret_cast<uint32_t*>(stage + (gid + 8) * S + col) = pack2<T>(o[db][2] * inv[1], o[db][3] * inv[1]);
  }
  __syncwarp();
  constexpr int CH = HD / 8;
  for (int i = lane; i < 16 * CH; i += 32) {
    const int r = i / CH, c = i % CH;
    const int row = wr0 + r;
    if (row < n) {
      *reinterpret_cast<uint4*>(out + (static_cast<int64_t>(row) * num_heads + h) * HD + c * 8) =
          *reinterpret_cast<const uint4*>(stage + r * S + c * 8);
    }
  }
}

template <typename T, int HD>
void launch_prefill_tc(void* out, const void* q, const void* k, const void* v, int capacity, int pos0, int n,
                       int num_heads, int num_kv_heads, cudaStream_t s) {
  constexpr size_t smem = TcTile<HD>::smem_bytes;
  static bool attr_set = false;  // callers hold the device lock
  if (!attr_set) {
    cudaFuncSetAttribute(attention_prefill_tc_k<T, HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(smem));
    check("attention (prefill, tensor cores): shared memory attribute");
    attr_set = true;
  }
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(HD));  // log2(e) / sqrt(head_dim)
  dim3 grid(num_heads, (n + kTcBQ - 1) / kTcBQ);
  attention_prefill_tc_k<T, HD><<<grid, kTcThreads, smem, s>>>(
      static_cast<T*>(out), static_cast<const T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), capacity,
      pos0, n, num_heads, num_kv_heads, scale_log2);
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
