// Tensor-core paged decode for query heads that share a kv head (GQA).
//
// The CUDA-core kernel (split_kv_decode.cuh) does per-key dot products with
// shuffle reductions and a softmax replicated on every lane of a row: at a
// group of 4 it runs ~3,900 warp instructions per 16 KB of K/V and is
// issue-bound (docs/perf-notes.md). Here the group's query heads are the M
// rows of mma.sync m16n8k16 (padded to 16 with zero rows), so one K/V element
// costs a fraction of an instruction whatever the group size.
//
// One CTA of 4 warps = (sequence, kv head, tile of <= 16 query heads, split).
// Each warp owns 16 tokens of every 64-token CTA tile and streams them through
// its own kStages-deep cp.async ring; the ring needs only warp barriers, never
// a CTA barrier. A ring tile is [16 rows][D / 8 chunks of 16 bytes] with the
// chunk index XOR-ed by (row % 8), so the 8 row addresses of one ldmatrix fall
// in 8 different bank groups. Per 16 tokens:
//   S = Q K^T   Q from shared memory (A, ldmatrix), K rows as the col-major B
//               operand (ldmatrix), f32 accumulators;
//   softmax     per row on the accumulator fragment: a lane holds 4 keys of
//               rows lane/4 and lane/4 + 8; the row max needs 2 quad shuffles,
//               the row sum is kept per lane and reduced once at the end;
//   O += P V    the S fragment is already the A-operand layout: P is rounded
//               to the storage type in registers; V rows are the row-major B
//               operand (ldmatrix.trans).
// The warps' states are combined once, at the end, through shared memory.
// Head dims are padded to D (64, 128, 256) by zero-filled copies, so any
// multiple of 8 works. Logits are in log2 units (scale * log2(e) applied to S).
#pragma once

#include <cstdint>

#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/decode/split_kv_decode.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda::decode {

constexpr int kMmaWarps = 4;
constexpr int kMmaThreads = kMmaWarps * 32;
constexpr int kMmaRows = 16;                           // query heads per CTA (M)
constexpr int kWarpTokens = 16;                        // tokens per warp per tile
constexpr int kCtaTokens = kMmaWarps * kWarpTokens;  // tokens per CTA tile

template <int D>
struct MmaShape {
  static constexpr int kChunks = D / 8;                  // 16-byte chunks per row
  static constexpr int kStages = D <= 128 ? 3 : 2;       // d 256: 2 stages (128 KB) fit the SM
  static constexpr int kRowPhases = 32 / kChunks;        // rows a warp copies per pass
  static constexpr int kRowsPerLane = kWarpTokens / kRowPhases;
  static constexpr int kPlaneVecs = kWarpTokens * kChunks;               // one warp's K (or V) tile
  static constexpr int kStageVecs = kMmaWarps * 2 * kPlaneVecs;
  static constexpr int kRingVecs = kStages * kStageVecs;
  static constexpr int kQVecs = kMmaRows * kChunks;
  static constexpr int kSmemBytes = (kRingVecs + 2 * kQVecs) * 16;  // Q as hi and lo parts
  static_assert(kChunks >= 8 && kChunks <= 32, "the swizzle needs 8..32 chunks a row");
  static_assert(kMmaRows * kChunks % kMmaThreads == 0, "Q items split evenly over the threads");
  // The final combine reuses the ring: [warps][16][D] sums plus [warps][16] (m, l).
  static_assert(kMmaWarps * kMmaRows * (D + 2) * 4 <= kRingVecs * 16, "combine space");
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
// d += a * b, m16n8k16, f32 accumulators, A and B in the storage type
// (TYPE: the PTX name of the tag's element type).
#define KVX_MMA16816(TAG, TYPE)                                                                                  \
  __device__ __forceinline__ void mma16816(float(&d)[4], const uint32_t(&a)[4], uint32_t b0, uint32_t b1, TAG) { \
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." TYPE "." TYPE ".f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "   \
                 "{%8,%9}, {%0,%1,%2,%3};\n"                                                                     \
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])                                                 \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));                                 \
  }
KVX_MMA16816(BF16Tag, "bf16")
KVX_MMA16816(F16Tag, "f16")
#undef KVX_MMA16816

template <int kChunks>
__device__ __forceinline__ int swz(int row, int chunk) {
  return row * kChunks + (chunk ^ (row & 7));
}

template <typename KV, int D>
__global__ void __launch_bounds__(kMmaThreads) mma_decode_kernel(const __grid_constant__ DecodeLaunch a) {
  using Shape = MmaShape<D>;
  constexpr int CH = Shape::kChunks;
  extern __shared__ __align__(128) uint4 smem[];
  uint4* qs = smem + Shape::kRingVecs;
  uint4* qs_lo = qs + Shape::kQVecs;

  const DecodeUnit u = decode_unit(a, kMmaRows);
  const int64_t b = u.b;
  const int kvh = u.kvh, split = u.split, heads_here = u.heads_here, first_q_head = u.first_q_head;
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int64_t dk = a.k.head_dim, dv = a.v.head_dim;

  // The query's loads go out first, so that their latency overlaps the
  // schedule's and the page table's (they reach shared memory after the
  // prologue has issued its copies).
  const int qb = elem_bytes(a.q.dtype);
  constexpr int kQItems = kMmaRows * CH / kMmaThreads;  // (row, chunk) items per thread
  float qf[kQItems][8];
#pragma unroll
  for (int k = 0; k < kQItems; ++k) {
    const int i = tid + k * kMmaThreads, r = i / CH, c = i % CH;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      const int64_t d = c * 8 + e;
      qf[k][e] = r < heads_here && d < dk ? load_elem(a.q.row(b, first_q_head + r) + d * qb, a.q.dtype) : 0.0f;
    }
  }

  const SeqSchedule s = schedule_of(a, b);
  if (empty_split(a, u, s, tid)) return;

  const SplitTokens st = split_tokens(a, s, split);
  const int num_tiles = (st.end - st.begin + kCtaTokens - 1) / kCtaTokens;

  // This lane copies chunk `col` of rows row0 + kRowPhases * i of its warp's tiles.
  const int col = lane % CH, row0 = lane / CH;
  const std::byte* k_origin = a.k.base + kvh * a.k.head_stride + col * 16;
  const std::byte* v_origin = a.v.base + kvh * a.v.head_stride + col * 16;
  const bool k_live = col * 8 < dk, v_live = col * 8 < dv;

  // The page table is read once per row: lane r % 16 of the warp looks up row
  // r of a tile (TileIds), and the lanes that copy that row take the block id
  // by shuffle when the tile is issued. Ids are loaded one tile before their
  // cp.async (kStages tiles at once in the prologue), off the issue path.
  // Masks are warp-uniform: bit r = row r of the tile.
  struct TileIds {
    int32_t block, token;
    uint32_t valid, visible;
  };
  auto load_ids = [&](int t) {
    const int r = lane % kWarpTokens;
    int32_t page, off;
    bool valid, visible;
    st.locate(st.begin + t * kCtaTokens + warp * kWarpTokens + r, &page, &off, &valid, &visible);
    TileIds x;
    x.block = valid ? static_cast<int32_t>(a.table.block(b, page)) : 0;
    x.token = off;
    x.valid = __ballot_sync(0xffffffffu, valid) & 0xffffu;
    x.visible = __ballot_sync(0xffffffffu, visible) & 0xffffu;
    return x;
  };
  uint64_t visible_ring = 0;  // 16 visible bits per ring slot
  auto issue = [&](int t, const TileIds& x) {
    const int slot = t % Shape::kStages;
    if (t < num_tiles) {
      uint4* kbuf = smem + slot * Shape::kStageVecs + warp * 2 * Shape::kPlaneVecs;
      uint4* vbuf = kbuf + Shape::kPlaneVecs;
#pragma unroll
      for (int i = 0; i < Shape::kRowsPerLane; ++i) {
        const int r = row0 + Shape::kRowPhases * i;
        const bool valid = (x.valid >> r) & 1u;
        const int32_t block = __shfl_sync(0xffffffffu, x.block, r);
        const int32_t token = __shfl_sync(0xffffffffu, x.token, r);
        const std::byte* krow = k_origin + block * a.k.block_stride + token * a.k.token_stride;
        const std::byte* vrow = v_origin + block * a.v.block_stride + token * a.v.token_stride;
        cp_async16(&kbuf[swz<CH>(r, col)], valid ? krow : a.k.base, valid && k_live ? 16 : 0);
        cp_async16(&vbuf[swz<CH>(r, col)], valid ? vrow : a.v.base, valid && v_live ? 16 : 0);
      }
      visible_ring = (visible_ring & ~(uint64_t{0xffff} << (16 * slot))) | (uint64_t{x.visible} << (16 * slot));
    }
    cp_async_commit();  // an empty group past the end keeps the wait count uniform
  };

  // Prologue: the ids of tiles 0 .. kStages-1 in one round trip, tiles
  // 0 .. kStages-2 in flight; then Q goes to shared memory in the storage type
  // (zero rows past the tile's heads, zero columns past dk), swizzled like K.
  // A query of another dtype (f32) does not fit the storage type: it is kept
  // as hi + lo parts and S takes two MMAs, so the logits keep ~16 mantissa
  // bits (the lse is checked to 1e-4).
  TileIds first_ids[Shape::kStages];
#pragma unroll
  for (int t = 0; t < Shape::kStages; ++t) first_ids[t] = load_ids(t);
#pragma unroll
  for (int t = 0; t < Shape::kStages - 1; ++t) issue(t, first_ids[t]);
  TileIds pending = first_ids[Shape::kStages - 1];
  const bool q_split = a.q.dtype != KV::kElem;
#pragma unroll
  for (int k = 0; k < kQItems; ++k) {
    const int i = tid + k * kMmaThreads, r = i / CH, c = i % CH;
    uint32_t w[4], lo[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      w[e] = pack2(qf[k][2 * e], qf[k][2 * e + 1], KV{});
      const float2 back = unpack2(w[e], KV{});
      lo[e] = pack2(qf[k][2 * e] - back.x, qf[k][2 * e + 1] - back.y, KV{});
    }
    qs[swz<CH>(r, c)] = make_uint4(w[0], w[1], w[2], w[3]);
    qs_lo[swz<CH>(r, c)] = make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
  __syncthreads();  // Q is read by every warp
  griddep_launch_dependents();  // the merge kernel may be scheduled behind the last wave

  const bool softcap = a.softcap > 0.0f;
  const float s_scale = softcap ? a.scale : a.scale * kLog2e;
  const float cap_mul = a.softcap * kLog2e, cap_inv = softcap ? 1.0f / a.softcap : 0.0f;

  // Rows lane/4 (index 0) and lane/4 + 8 (index 1) of the accumulators.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[CH][4];
#pragma unroll
  for (int j = 0; j < CH; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  const int quad = lane % 4;

  for (int t = 0; t < num_tiles; ++t) {
    __syncwarp();  // every lane is done reading the slot refilled below
    issue(t + Shape::kStages - 1, pending);
    pending = load_ids(t + Shape::kStages);
    cp_async_wait<Shape::kStages - 1>();
    __syncwarp();  // the other lanes' copies of this tile are visible

    const int slot = t % Shape::kStages;
    const uint32_t visible = static_cast<uint32_t>(visible_ring >> (16 * slot)) & 0xffffu;
    if (visible == 0) continue;  // warp-uniform: nothing visible in these 16 tokens
    const uint4* kbuf = smem + slot * Shape::kStageVecs + warp * 2 * Shape::kPlaneVecs;
    const uint4* vbuf = kbuf + Shape::kPlaneVecs;

    // S = Q K^T over 16 tokens: sc[n][.] is key tile n (tokens 8n..8n+7).
    float sc[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4], kb[4];
      const int q_at = swz<CH>((lane % 8) + ((lane / 8) % 2) * 8, 2 * kk + lane / 16);
      ldsm_x4(qa, &qs[q_at]);
      ldsm_x4(kb, &kbuf[swz<CH>((lane % 8) + (lane / 16) * 8, 2 * kk + (lane / 8) % 2)]);
      mma16816(sc[0], qa, kb[0], kb[1], KV{});
      mma16816(sc[1], qa, kb[2], kb[3], KV{});
      if (q_split) {  // warp-uniform
        ldsm_x4(qa, &qs_lo[q_at]);
        mma16816(sc[0], qa, kb[0], kb[1], KV{});
        mma16816(sc[1], qa, kb[2], kb[3], KV{});
      }
    }

    // Online softmax on the fragment: sc[n][h] is row lane/4 + 8 * (h / 2),
    // key 8n + 2 * (lane % 4) + h % 2.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        float x = sc[n][h] * s_scale;
        if (softcap) x = cap_mul * tanhf(x * cap_inv);
        const int key = 8 * n + 2 * quad + (h % 2);
        x = ((visible >> key) & 1u) ? x : -INFINITY;
        sc[n][h] = x;
        mx[h / 2] = fmaxf(mx[h / 2], x);
      }
    float alpha[2], m_use[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 1));
      mx[i] = fmaxf(mx[i], __shfl_xor_sync(0xffffffffu, mx[i], 2));
      const float m_new = fmaxf(m[i], mx[i]);
      m_use[i] = m_new == -INFINITY ? 0.0f : m_new;  // no key yet: keep every exp() at 0
      alpha[i] = fast_exp2(m[i] - m_use[i]);
      m[i] = m_new;
      l[i] *= alpha[i];
    }
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        sc[n][h] = fast_exp2(sc[n][h] - m_use[h / 2]);
        l[h / 2] += sc[n][h];
      }
#pragma unroll
    for (int j = 0; j < CH; ++j) {
      o[j][0] *= alpha[0], o[j][1] *= alpha[0];
      o[j][2] *= alpha[1], o[j][3] *= alpha[1];
    }
    const uint32_t pa[4] = {pack2(sc[0][0], sc[0][1], KV{}), pack2(sc[0][2], sc[0][3], KV{}),
                            pack2(sc[1][0], sc[1][1], KV{}), pack2(sc[1][2], sc[1][3], KV{})};
    // O += P V: V tile pairs of 8 columns (chunks j, j + 1).
#pragma unroll
    for (int j = 0; j < CH; j += 2) {
      uint32_t vb[4];
      ldsm_x4_trans(vb, &vbuf[swz<CH>((lane % 8) + ((lane / 8) % 2) * 8, j + lane / 16)]);
      mma16816(o[j], pa, vb[0], vb[1], KV{});
      mma16816(o[j + 1], pa, vb[2], vb[3], KV{});
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is reused for the combine below

  // Row sums: the 4 lanes of a quad hold different keys of the same rows.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  float* red_o = reinterpret_cast<float*>(smem);  // [warp][row][D]
  float* red_ml = red_o + kMmaWarps * kMmaRows * D;  // [warp][row][2]
  {
    const int r0 = lane / 4;
#pragma unroll
    for (int j = 0; j < CH; ++j) {
      const int c = 8 * j + 2 * quad;
      *reinterpret_cast<float2*>(&red_o[(warp * kMmaRows + r0) * D + c]) = make_float2(o[j][0], o[j][1]);
      *reinterpret_cast<float2*>(&red_o[(warp * kMmaRows + r0 + 8) * D + c]) = make_float2(o[j][2], o[j][3]);
    }
    if (quad == 0) {
      red_ml[(warp * kMmaRows + r0) * 2] = m[0];
      red_ml[(warp * kMmaRows + r0) * 2 + 1] = l[0];
      red_ml[(warp * kMmaRows + r0 + 8) * 2] = m[1];
      red_ml[(warp * kMmaRows + r0 + 8) * 2 + 1] = l[1];
    }
  }
  __syncthreads();

  for (int item = tid; item < kMmaRows * CH; item += kMmaThreads) {
    const int g = item / CH, c = item % CH;
    if (g >= heads_here || c * 8 >= dv) continue;
    float mmax = -INFINITY;
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) mmax = fmaxf(mmax, red_ml[(w * kMmaRows + g) * 2]);
    const float mu = mmax == -INFINITY ? 0.0f : mmax;
    float lsum = 0.0f, acc[8] = {};
#pragma unroll
    for (int w = 0; w < kMmaWarps; ++w) {
      const float wt = fast_exp2(red_ml[(w * kMmaRows + g) * 2] - mu);
      lsum += wt * red_ml[(w * kMmaRows + g) * 2 + 1];
      const float* src = red_o + (w * kMmaRows + g) * D + c * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] = fmaf(wt, src[e], acc[e]);
    }
    const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
    const float lse = lsum > 0.0f ? (mmax + __log2f(lsum)) * kLn2 : -INFINITY;
    store_result(a, b, split, first_q_head + g, c, acc, inv, lse);
  }
}

}  // namespace kvx::cuda::decode
