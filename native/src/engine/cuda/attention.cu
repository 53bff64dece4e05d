// Attention: attention_prefill's fp32 flash kernel (the tensor-core one for bf16/fp16 is in
// attention_tc.cu) and attention_parts, the shared-cache (cascade) attention of decode steps
// and multi-sequence prefills. CPU references: attention_prefill and attention_parts in
// device_cpu.cpp (part_state, merge_states).
//
// attention_parts runs in two kernels per layer:
//  1. parts_k — block (kv head, key chunk, span). A span is one stretch of K/V (a document's
//     base cache, an exact cache, a row's own positions); every query of every part that reads
//     the span — the span's rows times the kv head's query heads — is processed by the block's
//     warps over the chunk's keys, so rows derived from one base cache read its K/V from memory
//     once per step (L1/L2 serve the other warps). Each query keeps an online softmax (running
//     max m, sum l), the unnormalized P·V and, for a low-rank ΔV correction, P·cv (r values);
//     quantized ΔK/ΔV and low-rank ΔK enter the scores and values per key. Lanes split the head
//     dimension; a warp takes 4 keys at a time (all loads first). When a span has fewer queries
//     than warps, warps split its keys further and merge in shared memory.
//  2. merge_k — block (query head, row): the log-sum-exp merge of every partial state of the
//     row (each part, each chunk), then out += bv_h · (P·cv) / L for low-rank ΔV parts.
#include <algorithm>

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
constexpr int kPartUnroll = 4;
constexpr int kMaxRvLanes = 4;  // low-rank ΔV corrections of rank up to 128
constexpr int kMaxRkLanes = 4;  // low-rank ΔK likewise

struct PlanArgs {
  const AttnSpan* spans;
  const AttnPart* parts;
  const AttnCorrection* corrs;
  const int* span_parts;
  const int* row_parts;
  const int* row_begin;
  int chunk;
  int stride;
  float* partials;
};

// EPL consecutive values at p as fp32 (zeros when !on); vector loads when `vec` (the lane's
// EPL values are all inside the row), otherwise the first `valid` values, zeros after.
template <typename T, int EPL>
__device__ __forceinline__ void load_part(float (&out)[EPL], const T* p, bool on, bool vec, int valid = EPL) {
  if (!on) {
#pragma unroll
    for (int e = 0; e < EPL; ++e) out[e] = 0.0f;
    return;
  }
  if constexpr (sizeof(T) * EPL == 16 || sizeof(T) * EPL == 8 || sizeof(T) * EPL == 4) {
    if (vec) {
      using V = std::conditional_t<sizeof(T) * EPL == 16, uint4, std::conditional_t<sizeof(T) * EPL == 8, uint2, uint32_t>>;
      const V raw = *reinterpret_cast<const V*>(p);
      const T* v = reinterpret_cast<const T*>(&raw);
#pragma unroll
      for (int e = 0; e < EPL; ++e) out[e] = to_f(v[e]);
      return;
    }
  }
#pragma unroll
  for (int e = 0; e < EPL; ++e) out[e] = e < valid ? to_f(p[e]) : 0.0f;
}

// A quantized row's values at dims d0..d0+EPL (int8, or int4 two per byte, low nibble first).
template <int EPL>
__device__ __forceinline__ void load_quant(float (&out)[EPL], const uint8_t* row, int d0, int bits, int hd) {
#pragma unroll
  for (int e = 0; e < EPL; ++e) {
    const int d = d0 + e;
    if (d >= hd) {
      out[e] = 0.0f;
      continue;
    }
    int v;
    if (bits == 8) {
      v = static_cast<int8_t>(row[d]);
    } else {
      const int nib = (row[d / 2] >> ((d & 1) * 4)) & 0xF;
      v = (nib ^ 8) - 8;
    }
    out[e] = static_cast<float>(v);
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// One query's softmax state over keys [k_lo, k_hi) taken `step` keys apart in groups of
// kPartUnroll (this warp's slice), lanes over head dims.
template <typename T, int EPL>
struct QueryState {
  float m, l;
  float acc[EPL];
  float accc[kMaxRvLanes];
};

template <typename T, int EPL>
__device__ void run_query(QueryState<T, EPL>& st, const T* qrow, const AttnSpan& span, const AttnCorrection* cp, int g,
                          int hd, int k_lo, int k_hi, int first_group, int group_step, float scale) {
  const int lane = threadIdx.x % 32;
  const int d0 = lane * EPL;
  const bool lane_on = d0 < hd;
  const bool vec = hd % EPL == 0;
  const int valid = min(EPL, hd - d0);
  AttnCorrection cc;  // the row's correction in registers (none: all null)
  if (cp) cc = *cp;
  const AttnCorrection* c = cp ? &cc : nullptr;
  float qv[EPL];
  load_part<T, EPL>(qv, qrow + d0, lane_on, vec, valid);
#pragma unroll
  for (int e = 0; e < EPL; ++e) st.acc[e] = 0.0f;
#pragma unroll
  for (int i = 0; i < kMaxRvLanes; ++i) st.accc[i] = 0.0f;
  st.m = -INFINITY;
  st.l = 0.0f;

  // Low-rank ΔK: q·(bk_g ck_j) = (bk_gᵀ q)·ck_j; lane r % 32 keeps (bk_gᵀ q)[r].
  float qk_low[kMaxRkLanes] = {0.0f, 0.0f, 0.0f, 0.0f};
  const int rk = c && c->ck ? c->rk : 0;
  for (int r = 0; r < rk; ++r) {
    float part = 0.0f;
#pragma unroll
    for (int e = 0; e < EPL; ++e) {
      if (lane_on && d0 + e < hd) part += qv[e] * c->bk[(static_cast<int64_t>(g) * hd + d0 + e) * rk + r];
    }
    part = warp_sum(part);
    if (lane == r % 32) qk_low[r / 32] = part;
  }
  const int rv = c && c->cv ? c->rv : 0;
  const bool quant = c && c->qk;
  const int row_bytes = quant ? (c->bits == 8 ? hd : (hd + 1) / 2) : 0;
  const T* kh = static_cast<const T*>(span.k) + static_cast<int64_t>(g) * span.capacity * hd;
  const T* vh = static_cast<const T*>(span.v) + static_cast<int64_t>(g) * span.capacity * hd;

  for (int jb = k_lo + first_group * kPartUnroll; jb < k_hi; jb += group_step * kPartUnroll) {
    float kr[kPartUnroll][EPL], vr[kPartUnroll][EPL];
#pragma unroll
    for (int u = 0; u < kPartUnroll; ++u) {
      const bool in = lane_on && jb + u < k_hi;
      const int64_t slot = jb + u - span.begin;
      load_part<T, EPL>(kr[u], kh + slot * hd + d0, in, vec, valid);
      load_part<T, EPL>(vr[u], vh + slot * hd + d0, in, vec, valid);
    }
#pragma unroll
    for (int u = 0; u < kPartUnroll; ++u) {
      const int key = jb + u;
      if (key >= k_hi) break;  // uniform over the warp
      float s = 0.0f;
#pragma unroll
      for (int e = 0; e < EPL; ++e) s += qv[e] * kr[u][e];
      float qscale = 0.0f;
      if (quant) {
        float dq[EPL];
        load_quant<EPL>(dq, c->qk + (static_cast<int64_t>(g) * c->tokens + key) * row_bytes, d0, c->bits, hd);
        float qd = 0.0f;
#pragma unroll
        for (int e = 0; e < EPL; ++e) qd += qv[e] * dq[e];
        s += c->sk[static_cast<int64_t>(g) * c->tokens + key] * qd;
        qscale = c->sv[static_cast<int64_t>(g) * c->tokens + key];
      }
      if (rk) {
#pragma unroll
        for (int i = 0; i < kMaxRkLanes; ++i) {
          const int r = lane + 32 * i;
          if (r < rk) s += qk_low[i] * c->ck[static_cast<int64_t>(key) * rk + r];
        }
      }
      s = warp_sum(s) * scale;
      const float mn = fmaxf(st.m, s);
      const float corr = expf(st.m - mn);  // 0 on the first key (m = -inf)
      const float p = expf(s - mn);
      st.l = st.l * corr + p;
      if (quant) {
        float dq[EPL];
        load_quant<EPL>(dq, c->qv + (static_cast<int64_t>(g) * c->tokens + key) * row_bytes, d0, c->bits, hd);
#pragma unroll
        for (int e = 0; e < EPL; ++e) st.acc[e] = st.acc[e] * corr + p * (vr[u][e] + qscale * dq[e]);
      } else {
#pragma unroll
        for (int e = 0; e < EPL; ++e) st.acc[e] = st.acc[e] * corr + p * vr[u][e];
      }
      if (rv) {
#pragma unroll
        for (int i = 0; i < kMaxRvLanes; ++i) {
          const int r = lane + 32 * i;
          st.accc[i] = st.accc[i] * corr + (r < rv ? p * c->cv[static_cast<int64_t>(key) * rv + r] : 0.0f);
        }
      }
      st.m = mn;
    }
  }
}

template <typename T, int EPL>
__device__ void write_state(float* out, const QueryState<T, EPL>& st, int hd, int rv) {
  const int lane = threadIdx.x % 32;
  if (lane == 0) {
    out[0] = st.m;
    out[1] = st.l;
  }
#pragma unroll
  for (int e = 0; e < EPL; ++e) {
    const int d = lane * EPL + e;
    if (d < hd) out[2 + d] = st.acc[e];
  }
#pragma unroll
  for (int i = 0; i < kMaxRvLanes; ++i) {
    const int r = lane + 32 * i;
    if (r < rv) out[2 + hd + r] = st.accc[i];
  }
}

template <typename T, int EPL>
__global__ void __launch_bounds__(kPartWarps * 32)
    parts_k(const T* q, PlanArgs plan, int heads, int kv_heads, int hd, float scale) {
  constexpr int kStashMax = 2 + 256 + 32 * kMaxRvLanes;
  __shared__ float stash[kPartWarps][kStashMax];
  const int g = blockIdx.x, c = blockIdx.y, sp = blockIdx.z;
  const AttnSpan span = plan.spans[sp];
  if (c >= span.chunks) return;  // uniform over the block
  const int warp = threadIdx.x / 32;
  const int group = heads / kv_heads;
  const int p0 = plan.span_parts[sp], np = plan.span_parts[sp + 1] - p0;
  const int queries = np * group;
  const int slices = queries >= kPartWarps ? 1 : kPartWarps / queries;
  const int items = queries * slices;
  const int k_lo = span.begin + c * plan.chunk;
  const int k_chunk_hi = min(span.begin + span.extent, k_lo + plan.chunk);

  auto item_state = [&](int item, QueryState<T, EPL>& st, const AttnPart*& part, int& h) {
    const int qi = item / slices, sl = item % slices;
    part = &plan.parts[p0 + qi / group];
    h = g * group + qi % group;
    const AttnCorrection* corr = part->corr >= 0 ? &plan.corrs[part->corr] : nullptr;
    run_query<T, EPL>(st, q + (static_cast<int64_t>(part->row) * heads + h) * hd, span, corr, g, hd, k_lo,
                      min(k_chunk_hi, part->end), sl, slices, scale);
  };
  auto out_of = [&](const AttnPart& part, int h) {
    return plan.partials + part.out + (static_cast<int64_t>(h) * span.chunks + c) * plan.stride;
  };
  auto rv_of = [&](const AttnPart& part) { return part.corr >= 0 && plan.corrs[part.corr].cv ? plan.corrs[part.corr].rv : 0; };

  if (slices == 1) {
    for (int item = warp; item < items; item += kPartWarps) {
      QueryState<T, EPL> st;
      const AttnPart* part;
      int h;
      item_state(item, st, part, h);
      write_state<T, EPL>(out_of(*part, h), st, hd, rv_of(*part));
    }
    return;
  }
  // Few queries: each warp takes one slice of one query's keys; the slices merge here.
  const AttnPart* part = nullptr;
  int h = 0;
  if (warp < items) {
    QueryState<T, EPL> st;
    item_state(warp, st, part, h);
    write_state<T, EPL>(stash[warp], st, hd, rv_of(*part));
  }
  __syncthreads();
  if (warp >= items || warp % slices != 0) return;
  const int lane = threadIdx.x % 32;
  const int rv = rv_of(*part);
  float mx = -INFINITY;
  for (int s = 0; s < slices; ++s) mx = stash[warp + s][1] > 0.0f ? fmaxf(mx, stash[warp + s][0]) : mx;
  float* out = out_of(*part, h);
  float l = 0.0f;
  for (int s = 0; s < slices; ++s) l += stash[warp + s][1] > 0.0f ? stash[warp + s][1] * expf(stash[warp + s][0] - mx) : 0.0f;
  for (int d = lane; d < hd + rv; d += 32) {
    float a = 0.0f;
    for (int s = 0; s < slices; ++s) a += stash[warp + s][1] > 0.0f ? stash[warp + s][2 + d] * expf(stash[warp + s][0] - mx) : 0.0f;
    out[2 + d] = a;
  }
  if (lane == 0) {
    out[0] = mx;
    out[1] = l;  // 0 when no slice saw a key
  }
}

// Block (query head, row): merges the row's partial states; out rounded to T.
template <typename T>
__global__ void merge_k(T* out, PlanArgs plan, int heads, int kv_heads, int hd) {
  extern __shared__ float corr_sum[];  // [max rv]
  __shared__ float s_mx, s_l;
  const int h = blockIdx.x, r = blockIdx.y;
  const int g = h / (heads / kv_heads);
  const int b = plan.row_begin[r], e = plan.row_begin[r + 1];
  if (threadIdx.x == 0) {
    float mx = -INFINITY;
    for (int i = b; i < e; ++i) {
      const AttnPart& p = plan.parts[plan.row_parts[i]];
      const int chunks = plan.spans[p.span].chunks;
      for (int c = 0; c < chunks; ++c) {
        const float* st = plan.partials + p.out + (static_cast<int64_t>(h) * chunks + c) * plan.stride;
        if (st[1] > 0.0f) mx = fmaxf(mx, st[0]);
      }
    }
    float l = 0.0f;
    for (int i = b; i < e; ++i) {
      const AttnPart& p = plan.parts[plan.row_parts[i]];
      const int chunks = plan.spans[p.span].chunks;
      for (int c = 0; c < chunks; ++c) {
        const float* st = plan.partials + p.out + (static_cast<int64_t>(h) * chunks + c) * plan.stride;
        if (st[1] > 0.0f) l += st[1] * expf(st[0] - mx);
      }
    }
    s_mx = mx;
    s_l = l;
  }
  __syncthreads();
  const float mx = s_mx, inv = s_l > 0.0f ? 1.0f / s_l : 0.0f;
  float acc[8];  // dims threadIdx.x + k·blockDim.x (head_dim ≤ 8·blockDim.x)
#pragma unroll
  for (int k = 0; k < 8; ++k) acc[k] = 0.0f;
  for (int i = b; i < e; ++i) {
    const AttnPart& p = plan.parts[plan.row_parts[i]];
    const int chunks = plan.spans[p.span].chunks;
    const AttnCorrection* c = p.corr >= 0 ? &plan.corrs[p.corr] : nullptr;
    const int rv = c && c->cv ? c->rv : 0;
    for (int ch = 0; ch < chunks; ++ch) {
      const float* st = plan.partials + p.out + (static_cast<int64_t>(h) * chunks + ch) * plan.stride;
      if (!(st[1] > 0.0f)) continue;
      const float w = expf(st[0] - mx);
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int d = threadIdx.x + k * blockDim.x;
        if (d < hd) acc[k] += w * st[2 + d];
      }
    }
    if (rv) {
      // P·cv over the part's chunks, normalized, then the basis rows of this kv head.
      __syncthreads();
      for (int q2 = threadIdx.x; q2 < rv; q2 += blockDim.x) {
        float s = 0.0f;
        for (int ch = 0; ch < chunks; ++ch) {
          const float* st = plan.partials + p.out + (static_cast<int64_t>(h) * chunks + ch) * plan.stride;
          if (st[1] > 0.0f) s += expf(st[0] - mx) * st[2 + hd + q2];
        }
        corr_sum[q2] = s;
      }
      __syncthreads();
#pragma unroll
      for (int k = 0; k < 8; ++k) {
        const int d = threadIdx.x + k * blockDim.x;
        if (d >= hd) continue;
        const float* brow = c->bv + (static_cast<int64_t>(g) * hd + d) * rv;
        float s = 0.0f;
        for (int q2 = 0; q2 < rv; ++q2) s += brow[q2] * corr_sum[q2];
        acc[k] += s;
      }
    }
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const int d = threadIdx.x + k * blockDim.x;
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
                     cudaStream_t s) {
  if (n_rows == 0) return;
  if (hd > 256) throw std::runtime_error("the CUDA attention supports head_dim up to 256");
  int max_chunks = 1, max_rv = 0;
  for (int i = 0; i < plan.spans.n; ++i) max_chunks = std::max(max_chunks, plan.spans[i].chunks);
  for (int i = 0; i < plan.corrs.n; ++i) {
    if (plan.corrs[i].cv) max_rv = std::max(max_rv, plan.corrs[i].rv);
    if ((plan.corrs[i].cv && plan.corrs[i].rv > 32 * kMaxRvLanes) || (plan.corrs[i].ck && plan.corrs[i].rk > 32 * kMaxRkLanes)) {
      throw std::runtime_error("the CUDA attention applies low-rank corrections of rank up to 128");
    }
  }
  const PlanArgs args{plan.spans.dev, plan.parts.dev, plan.corrs.dev, plan.span_parts.dev, plan.row_parts.dev,
                      plan.row_parts_begin.dev, plan.chunk, plan.stride, plan.partials};
  const float scale = 1.0f / sqrtf(static_cast<float>(hd));
  const dim3 grid(kv_heads, max_chunks, plan.spans.n);
  with_epl(hd, [&](auto epl) {
    constexpr int EPL = decltype(epl)::value;
    AL_DISPATCH(dt, parts_k<T, EPL><<<grid, kPartWarps * 32, 0, s>>>(static_cast<const T*>(q), args, heads, kv_heads, hd, scale));
  });
  check("attention (parts)");
  const int threads = std::max(32, std::min(128, (hd + 31) / 32 * 32));
  AL_DISPATCH(dt, merge_k<T><<<dim3(heads, n_rows), threads, static_cast<size_t>(std::max(max_rv, 1)) * sizeof(float), s>>>(static_cast<T*>(out), args, heads, kv_heads, hd));
  check("attention (merge)");
}

}  // namespace al::cuda
