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
// its own kStages-deep ring; the ring needs only warp-level ordering, never a
// CTA barrier. A ring tile is [16 rows][D elements], rows kPitch = 2 D + 16
// bytes apart: the 8 row addresses of one ldmatrix then fall in 8 different
// 16-byte bank groups, with no swizzle to compute.
//   sm_90: each lane moves one whole row (lanes 0-15 the K rows, 16-31 the V
//          rows) with one bulk copy (cp.async.bulk) that completes on the
//          warp's mbarrier for the slot: one instruction and one address per
//          row, where per-lane 16-byte copies took 16 of each (the integer
//          work that held the warp back, docs/perf-notes.md round 6).
//   older: per-lane 16-byte cp.async into the same layout.
// Per 16 tokens:
//   S = Q K^T   Q (A, kept in registers for D <= 128), K rows as the col-major
//               B operand (ldmatrix), f32 accumulators, two independent
//               chains per key tile;
//   softmax     per row on the accumulator fragment: a lane holds 4 keys of
//               rows lane/4 and lane/4 + 8; the row max needs 2 quad shuffles,
//               the row sum is kept per lane and reduced once at the end;
//   O += P V    the S fragment is already the A-operand layout: P is rounded
//               to the storage type in registers; V rows are the row-major B
//               operand (ldmatrix.trans).
// The warps' states are combined once, at the end, through shared memory.
// Head dims are padded to D (64, 128, 256) with zero columns, so any multiple
// of 8 works. Logits are in log2 units (scale * log2(e) applied to S).
#pragma once

#include <cstddef>
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
  static constexpr int kChunks = D / 8;             // 16-byte chunks per row
  static constexpr int kStages = D <= 128 ? 3 : 2;  // d 256: 2 stages (135 KB) fit the SM
  static constexpr int kPitch = 2 * D + 16;         // bytes per shared-memory row
  static constexpr int kPlaneBytes = kWarpTokens * kPitch;        // one warp's K (or V) tile
  static constexpr int kStageBytes = kMmaWarps * 2 * kPlaneBytes;
  static constexpr int kRingBytes = kStages * kStageBytes;
  static constexpr int kQBytes = kMmaRows * kPitch;
  static constexpr int kBarOffset = kRingBytes + 2 * kQBytes;  // Q as hi and lo parts, then the mbarriers
  static constexpr int kSmemBytes = kBarOffset + kStages * kMmaWarps * 8;
  static constexpr bool kQInRegisters = D <= 128;   // 32 registers at D 128
  // Per-lane 16-byte copies (below sm_90): rows a warp copies per pass.
  static constexpr int kRowPhases = 32 / kChunks;
  static constexpr int kRowsPerLane = kWarpTokens / kRowPhases;
  static_assert(kChunks >= 8 && kChunks <= 32, "8..32 chunks a row");
  static_assert(kPitch % 128 == 16, "row addresses of an ldmatrix in distinct bank groups");
  static_assert(kMmaRows * kChunks % kMmaThreads == 0, "Q items split evenly over the threads");
  // The final combine reuses the ring: [warps][16][D] sums plus [warps][16] (m, l).
  static_assert(kMmaWarps * kMmaRows * (D + 2) * 4 <= kRingBytes, "combine space");
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
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

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
// mbarrier and bulk-copy primitives (sm_90). A slot's barrier counts one
// arrival (lane 0, which also declares the slot's bytes) plus the bytes the
// bulk copies deliver; its phase completes when both are in.
__device__ __forceinline__ void mbar_init(uint32_t bar) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(bar) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}
__device__ __forceinline__ void bulk_copy(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar) {
  asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(dst),
               "l"(src), "r"(bytes), "r"(bar)
               : "memory");
}
// Orders this thread's ordinary shared-memory accesses before later bulk copies.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
#define KVX_BULK_RING 1
#else
#define KVX_BULK_RING 0
#endif

template <typename KV, int D>
__global__ void __launch_bounds__(kMmaThreads) mma_decode_kernel(const __grid_constant__ DecodeLaunch a) {
  using Shape = MmaShape<D>;
  constexpr int CH = Shape::kChunks, P = Shape::kPitch, kStages = Shape::kStages;
  extern __shared__ __align__(128) std::byte smem[];
  std::byte* qs = smem + Shape::kRingBytes;
  std::byte* qs_lo = qs + Shape::kQBytes;
  const uint32_t ring_s = smem_addr(smem), qs_s = smem_addr(qs), qs_lo_s = smem_addr(qs_lo);

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

  // Key columns past dk multiply the query's zero columns: they must be
  // finite, so a padded ring starts zeroed where no copy will write. (Value
  // columns past dv only reach output columns that are never stored.)
  if (dk < D) {
    for (int i = tid; i < kStages * kMmaWarps * kWarpTokens; i += kMmaThreads) {
      std::byte* row = smem + (i / kWarpTokens) * 2 * Shape::kPlaneBytes + (i % kWarpTokens) * P;
      for (int c = static_cast<int>(dk / 8); c < CH; ++c) *reinterpret_cast<uint4*>(row + c * 16) = uint4{};
    }
  }

  // The page table is read once per row: lane r % 16 of the warp looks up row
  // r of a tile (TileIds). Ids are loaded one tile before their copies
  // (kStages tiles at once in the prologue), off the issue path. Masks are
  // warp-uniform: bit r = row r of the tile.
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
  const uint32_t warp_ring_s = ring_s + warp * 2 * Shape::kPlaneBytes;  // + slot * kStageBytes

#if KVX_BULK_RING
  // Lane l moves row l % 16 of the K (l < 16) or V plane: its plane's
  // constants are loop invariants.
  const bool is_v = lane >= kWarpTokens;
  const int my_row = lane % kWarpTokens;
  const PlaneArg& pl = is_v ? a.v : a.k;
  const std::byte* origin = pl.base + kvh * pl.head_stride;
  const int64_t block_stride = pl.block_stride, token_stride = pl.token_stride;
  const uint32_t row_bytes = static_cast<uint32_t>((is_v ? dv : dk) * 2);
  const uint32_t tile_row_bytes = static_cast<uint32_t>((dk + dv) * 2);
  const uint32_t my_dst = warp_ring_s + (is_v ? Shape::kPlaneBytes : 0) + my_row * P;
  const uint32_t bars_s = ring_s + Shape::kBarOffset + warp * kStages * 8;  // + slot * 8
  if (lane < kStages) mbar_init(bars_s + lane * 8);
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  __syncwarp();
  auto issue = [&](int t, int slot, const TileIds& x) {
    if (t >= num_tiles) return;
    const uint32_t bar = bars_s + slot * 8;
    if (lane == 0) mbar_arrive_expect(bar, __popc(x.valid) * tile_row_bytes);
    const uint32_t dst = my_dst + slot * Shape::kStageBytes;
    if ((x.valid >> my_row) & 1u) {
      bulk_copy(dst, origin + x.block * block_stride + x.token * token_stride, row_bytes, bar);
    } else if (is_v) {
      // P is 0 on this row, and 0 x NaN is NaN: a value row no copy fills
      // holds zeros (rare: the tiles at a split's end).
      std::byte* row = smem + (dst - ring_s);
      for (int c = 0; c < CH; ++c) *reinterpret_cast<uint4*>(row + c * 16) = uint4{};
      fence_proxy_async();
    }
    visible_ring = (visible_ring & ~(uint64_t{0xffff} << (16 * slot))) | (uint64_t{x.visible} << (16 * slot));
  };
  uint32_t phases = 0;  // bit s: the parity of slot s's next phase
  auto wait_tile = [&](int slot) {
    mbar_wait(bars_s + slot * 8, (phases >> slot) & 1u);
    phases ^= 1u << slot;
  };
#else
  // This lane copies chunk `col` of rows row0 + kRowPhases * i of its warp's tiles.
  const int col = lane % CH, row0 = lane / CH;
  const std::byte* k_origin = a.k.base + kvh * a.k.head_stride + col * 16;
  const std::byte* v_origin = a.v.base + kvh * a.v.head_stride + col * 16;
  const bool k_live = col * 8 < dk, v_live = col * 8 < dv;
  auto issue = [&](int t, int slot, const TileIds& x) {
    if (t < num_tiles) {
      std::byte* kbuf = smem + slot * Shape::kStageBytes + warp * 2 * Shape::kPlaneBytes;
      std::byte* vbuf = kbuf + Shape::kPlaneBytes;
#pragma unroll
      for (int i = 0; i < Shape::kRowsPerLane; ++i) {
        const int r = row0 + Shape::kRowPhases * i;
        const bool valid = (x.valid >> r) & 1u;
        const int32_t block = __shfl_sync(0xffffffffu, x.block, r);
        const int32_t token = __shfl_sync(0xffffffffu, x.token, r);
        const std::byte* krow = k_origin + block * a.k.block_stride + token * a.k.token_stride;
        const std::byte* vrow = v_origin + block * a.v.block_stride + token * a.v.token_stride;
        cp_async16(kbuf + r * P + col * 16, valid ? krow : a.k.base, valid && k_live ? 16 : 0);
        cp_async16(vbuf + r * P + col * 16, valid ? vrow : a.v.base, valid && v_live ? 16 : 0);
      }
      visible_ring = (visible_ring & ~(uint64_t{0xffff} << (16 * slot))) | (uint64_t{x.visible} << (16 * slot));
    }
    cp_async_commit();  // an empty group past the end keeps the wait count uniform
  };
  auto wait_tile = [&](int) {
    cp_async_wait<kStages - 1>();
    __syncwarp();  // the other lanes' copies of this tile are visible
  };
#endif

  // Prologue: the ids of tiles 0 .. kStages-1 in one round trip, tiles
  // 0 .. kStages-2 in flight; then Q goes to shared memory in the storage type
  // (zero rows past the tile's heads, zero columns past dk).
  // A query of another dtype (f32) does not fit the storage type: it is kept
  // as hi + lo parts and S takes two MMAs, so the logits keep ~16 mantissa
  // bits (the lse is checked to 1e-4).
  TileIds first_ids[kStages];
#pragma unroll
  for (int t = 0; t < kStages; ++t) first_ids[t] = load_ids(t);
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) issue(t, t, first_ids[t]);
  TileIds pending = first_ids[kStages - 1];
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
    *reinterpret_cast<uint4*>(qs + r * P + c * 16) = make_uint4(w[0], w[1], w[2], w[3]);
    *reinterpret_cast<uint4*>(qs_lo + r * P + c * 16) = make_uint4(lo[0], lo[1], lo[2], lo[3]);
  }
  __syncthreads();  // Q (and the zeroed key columns) are read by every warp
  griddep_launch_dependents();  // the merge kernel may be scheduled behind the last wave

  // Per-lane ldmatrix offsets: A (Q) and the transposed V use rows
  // lane % 16 in two 8-row halves by lane / 8, chunk lane / 16; K (B, col-major)
  // uses rows lane % 8 + 8 (lane / 16), chunk (lane / 8) % 2.
  const uint32_t a_off = ((lane % 8) + ((lane / 8) % 2) * 8) * P + (lane / 16) * 16;
  const uint32_t k_off = ((lane % 8) + (lane / 16) * 8) * P + ((lane / 8) % 2) * 16;
  uint32_t q_frag[Shape::kQInRegisters ? D / 16 : 1][4];
  if constexpr (Shape::kQInRegisters) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) ldsm_x4(q_frag[kk], qs_s + a_off + kk * 32);
  }

  const bool softcap = a.softcap > 0.0f;
  const float s_scale = softcap ? a.scale : a.scale * kLog2e;
  const float cap_mul = a.softcap * kLog2e, cap_inv = softcap ? 1.0f / a.softcap : 0.0f;

  // Rows lane/4 (index 0) and lane/4 + 8 (index 1) of the accumulators.
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float o[CH][4];
#pragma unroll
  for (int j = 0; j < CH; ++j) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
  const int quad = lane % 4;

  int slot = 0, prev_slot = kStages - 1;
  for (int t = 0; t < num_tiles; ++t) {
    __syncwarp();  // every lane is done reading the slot refilled below
    issue(t + kStages - 1, prev_slot, pending);
    pending = load_ids(t + kStages);
    wait_tile(slot);

    const uint32_t visible = static_cast<uint32_t>(visible_ring >> (16 * slot)) & 0xffffu;
    const uint32_t kbuf = warp_ring_s + slot * Shape::kStageBytes;
    const uint32_t vbuf = kbuf + Shape::kPlaneBytes;
    prev_slot = slot;
    slot = slot + 1 == kStages ? 0 : slot + 1;
    if (visible == 0) continue;  // warp-uniform: nothing visible in these 16 tokens

    // S = Q K^T over 16 tokens: key tile n (tokens 8n..8n+7), two chains
    // (even and odd kk) per tile so that the MMAs overlap.
    float sc[2][4] = {}, sd[2][4] = {};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t qa[4], kb[4];
      if constexpr (Shape::kQInRegisters) {
#pragma unroll
        for (int e = 0; e < 4; ++e) qa[e] = q_frag[kk][e];
      } else {
        ldsm_x4(qa, qs_s + a_off + kk * 32);
      }
      ldsm_x4(kb, kbuf + k_off + kk * 32);
      float(&acc)[2][4] = kk % 2 == 0 ? sc : sd;
      mma16816(acc[0], qa, kb[0], kb[1], KV{});
      mma16816(acc[1], qa, kb[2], kb[3], KV{});
      if (q_split) {  // warp-uniform
        ldsm_x4(qa, qs_lo_s + a_off + kk * 32);
        mma16816(acc[0], qa, kb[0], kb[1], KV{});
        mma16816(acc[1], qa, kb[2], kb[3], KV{});
      }
    }

    // Online softmax on the fragment: sc[n][h] is row lane/4 + 8 * (h / 2),
    // key 8n + 2 * (lane % 4) + h % 2.
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int h = 0; h < 4; ++h) {
        float x = (sc[n][h] + sd[n][h]) * s_scale;
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
      ldsm_x4_trans(vb, vbuf + a_off + j * 16);
      mma16816(o[j], pa, vb[0], vb[1], KV{});
      mma16816(o[j + 1], pa, vb[2], vb[3], KV{});
    }
  }
#if !KVX_BULK_RING
  cp_async_wait<0>();
#endif
  __syncthreads();  // the ring is reused for the combine below

  // Row sums: the 4 lanes of a quad hold different keys of the same rows.
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 1);
    l[i] += __shfl_xor_sync(0xffffffffu, l[i], 2);
  }
  float* red_o = reinterpret_cast<float*>(smem);     // [warp][row][D]
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
