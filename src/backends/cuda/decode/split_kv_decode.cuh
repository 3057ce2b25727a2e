// Split-KV paged decode attention (flash-decoding over a paged cache).
//
// One CTA of kThreads threads handles (sequence b, kv head, tile of GT query
// heads that share it, split). It streams its split's K and V rows through a
// kStages-deep cp.async ring in shared memory, so every K/V byte is read once
// for all GT query heads (GQA). Thread mapping: a row of head_dim elements is
// RT 16-byte vectors; the CTA's threads form kThreads / RT groups of RT lanes,
// and each group owns kRowsPerThread rows of every tile. A thread consumes
// exactly the 16 bytes it copied, so the ring needs no CTA barrier: only
// cp.async.wait_group. Each group keeps its own online-softmax state for the
// GT heads; the groups are combined once, at the end, through shared memory.
//
// Logits are kept in log2 units (q pre-scaled by scale * log2(e)) so that the
// softmax uses ex2 directly.
#pragma once

#include <cstdint>

#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda::decode {

constexpr int kThreads = 128;
constexpr int kStages = 3;
constexpr int kRowsPerThread = 4;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int RT>
struct TileShape {
  static constexpr int kGroups = kThreads / RT;                 // rows per pass of the CTA
  static constexpr int kTokens = kGroups * kRowsPerThread;      // rows per tile
  static constexpr int kVecsPerPlane = kTokens * RT;            // 16-byte vectors per plane per tile
  static constexpr int kSmemVecs = kStages * 2 * kVecsPerPlane;  // 48 KB for every RT
};

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// Which pages of sequence b a decode query sees, and how they split.
// Visible pages are the sink pages [0, sink_pages) then the window pages
// [window_page, pages); "virtual" page v < sink_pages is page v, else page
// window_page + v - sink_pages.
struct SeqSchedule {
  int64_t len = 0;
  int64_t first_visible = 0;  // first position inside the window
  int64_t sink_pages = 0, window_page = 0, virt_pages = 0;
  int64_t chunk = 0;          // virtual pages per split
  int32_t splits = 1;
};

__device__ __forceinline__ SeqSchedule schedule_of(const DecodeLaunch& a, int64_t b) {
  SeqSchedule s;
  const int64_t T = a.table.block_tokens;
  s.len = a.table.seq_len(b);
  const int64_t pages = (s.len + T - 1) / T;
  if (a.window_left >= 0) {
    s.first_visible = max(int64_t{0}, s.len - 1 - a.window_left);
    s.window_page = s.first_visible / T;
    const int64_t sinks = min(a.sink_tokens, s.len);
    s.sink_pages = min((sinks + T - 1) / T, s.window_page);
  }
  s.virt_pages = s.sink_pages + pages - s.window_page;
  if (a.max_splits > 1) {
    const int64_t per = a.chunk_pages > 0 ? a.chunk_pages : a.min_chunk_pages;
    const int64_t want = (s.virt_pages + per - 1) / per;
    s.splits = static_cast<int32_t>(max(int64_t{1}, min(want, int64_t{a.max_splits})));
  }
  s.chunk = (s.virt_pages + s.splits - 1) / s.splits;
  return s;
}

// The tokens of one split, in 32-bit arithmetic (positions fit: seq_lens are
// int32) with a shift for power-of-two block sizes: a 64-bit division per row
// was the largest instruction cost of the loop (docs/perf-notes.md).
// Virtual tokens [begin, end) are the split's part of the visible pages.
struct SplitTokens {
  int32_t T = 1, t_shift = 0, begin = 0, end = 0, len = 0;
  int32_t first_visible = 0, sink_pages = 0, window_page = 0, sinks = 0;
  bool windowed = false;

  // Virtual token vt: its page of the sequence and offset in that page,
  // whether the token exists (valid) and whether the query sees it (visible).
  __device__ __forceinline__ void locate(int32_t vt, int32_t* page, int32_t* off, bool* valid, bool* visible) const {
    const int32_t vpage = t_shift >= 0 ? vt >> t_shift : vt / T;
    *off = vt - vpage * T;
    *page = vpage < sink_pages ? vpage : window_page + vpage - sink_pages;
    const int32_t pos = *page * T + *off;
    *valid = vt < end && pos < len;
    *visible = *valid && (!windowed || pos >= first_visible || pos < sinks);
  }
};

__device__ __forceinline__ SplitTokens split_tokens(const DecodeLaunch& a, const SeqSchedule& s, int split) {
  SplitTokens st;
  st.T = a.table.block_tokens;
  st.t_shift = (st.T & (st.T - 1)) == 0 ? __ffs(st.T) - 1 : -1;
  st.begin = static_cast<int32_t>(split * s.chunk * st.T);
  st.end = static_cast<int32_t>(min(s.virt_pages, (split + 1) * s.chunk) * st.T);
  st.len = static_cast<int32_t>(s.len);
  st.first_visible = static_cast<int32_t>(s.first_visible);
  st.sink_pages = static_cast<int32_t>(s.sink_pages);
  st.window_page = static_cast<int32_t>(s.window_page);
  st.sinks = static_cast<int32_t>(min(a.sink_tokens, s.len));
  st.windowed = a.window_left >= 0;
  return st;
}

// What one CTA of either decode kernel owns: sequence b, kv head kvh, the
// tile-th group of up to `tile_heads` of its query heads, and split `split`
// of the sequence's visible pages (grid: x = sequence x kv head x head
// tile, y = split).
struct DecodeUnit {
  int64_t b;
  int kvh, split, heads_here, first_q_head, num_q_heads;
};

__device__ __forceinline__ DecodeUnit decode_unit(const DecodeLaunch& a, int tile_heads) {
  const int head_tiles = (a.group + tile_heads - 1) / tile_heads;
  const int units = a.num_kv_heads * head_tiles;
  const int unit = static_cast<int>(blockIdx.x % units);
  const int tile = unit % head_tiles;
  DecodeUnit u;
  u.b = blockIdx.x / units;
  u.kvh = unit / head_tiles;
  u.split = blockIdx.y;
  u.heads_here = min(tile_heads, a.group - tile * tile_heads);
  u.first_q_head = u.kvh * a.group + tile * tile_heads;
  u.num_q_heads = a.num_kv_heads * a.group;
  return u;
}

// A split past the sequence's last marks its partials empty for the merge
// (lse -inf) and returns true: the CTA has nothing else to do.
__device__ __forceinline__ bool empty_split(const DecodeLaunch& a, const DecodeUnit& u, const SeqSchedule& s,
                                            int tid) {
  if (u.split < s.splits) return false;
  if (tid < u.heads_here)
    a.partial[((u.b * a.max_splits + u.split) * u.num_q_heads + u.first_q_head + tid)] = -INFINITY;
  return true;
}

// Columns [8c, 8c + 8) of query head qh's result (acc * inv) and, from
// column chunk 0, its lse (natural log): into the split's partials when the
// schedule splits (merge_splits.cuh combines them), else into out and lse.
__device__ __forceinline__ void store_result(const DecodeLaunch& a, int64_t b, int split, int qh, int c,
                                             const float (&acc)[8], float inv, float lse) {
  const int64_t dv = a.v.head_dim;
  if (a.max_splits > 1) {
    const int64_t part = (b * a.max_splits + split) * (int64_t{a.num_kv_heads} * a.group) + qh;
    float* po = partial_outputs(a) + part * dv + c * 8;
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (c * 8 + e < dv) po[e] = acc[e] * inv;
    if (c == 0) a.partial[part] = lse;
  } else {
    std::byte* orow = a.out.row(b, qh);
    const int eb = elem_bytes(a.out.dtype);
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (c * 8 + e < dv) store_elem(orow + (c * 8 + e) * eb, a.out.dtype, acc[e] * inv);
    if (c == 0 && a.lse.data != nullptr) *reinterpret_cast<float*>(a.lse.row(b, qh)) = lse;
  }
}

template <typename KV, int RT, int GT>
__global__ void __launch_bounds__(kThreads) split_kv_decode_kernel(const __grid_constant__ DecodeLaunch a) {
  using Tile = TileShape<RT>;
  __shared__ __align__(16) uint4 smem[Tile::kSmemVecs];

  const DecodeUnit u = decode_unit(a, GT);
  const int64_t b = u.b;
  const int kvh = u.kvh, split = u.split, heads_here = u.heads_here, first_q_head = u.first_q_head;
  const int tid = threadIdx.x, col = tid % RT, grp = tid / RT;
  const int64_t dk = a.k.head_dim, dv = a.v.head_dim;

  const SeqSchedule s = schedule_of(a, b);
  if (empty_split(a, u, s, tid)) return;

  // The query rows, pre-scaled.
  const bool softcap = a.softcap > 0.0f;
  const float q_scale = softcap ? a.scale : a.scale * kLog2e;
  float q[GT][8];
#pragma unroll
  for (int g = 0; g < GT; ++g) {
    const bool live = g < heads_here && col * 8 < dk;
    const std::byte* qrow = a.q.row(b, first_q_head + g) + static_cast<int64_t>(col) * 8 * elem_bytes(a.q.dtype);
#pragma unroll
    for (int e = 0; e < 8; ++e) q[g][e] = live ? load_elem(qrow + e * elem_bytes(a.q.dtype), a.q.dtype) * q_scale : 0.0f;
  }

  const SplitTokens st = split_tokens(a, s, split);
  const int num_tiles = (st.end - st.begin + Tile::kTokens - 1) / Tile::kTokens;
  // Row origins of this CTA's kv head and 16-byte column.
  const std::byte* k_origin = a.k.base + kvh * a.k.head_stride + col * 16;
  const std::byte* v_origin = a.v.base + kvh * a.v.head_stride + col * 16;

  // Per-thread row bookkeeping for the tile to be issued next: block ids are
  // loaded one tile before their cp.async so that the page-table read is off
  // the issue path.
  int32_t next_block[kRowsPerThread];
  int32_t next_token[kRowsPerThread];
  uint32_t next_bits = 0;  // bit k: row k valid; bit 4 + k: row k visible
  auto prefetch_rows = [&](int t) {
    next_bits = 0;
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k) {
      int32_t page, off;
      bool valid, visible;
      st.locate(st.begin + t * Tile::kTokens + grp + k * Tile::kGroups, &page, &off, &valid, &visible);
      next_block[k] = valid ? static_cast<int32_t>(a.table.block(b, page)) : 0;
      next_token[k] = off;
      next_bits |= (valid ? 1u : 0u) << k;
      next_bits |= (visible ? 1u : 0u) << (4 + k);
    }
  };
  uint32_t visible_ring = 0;  // 4 visible bits per ring slot
  auto issue = [&](int t) {
    const int slot = t % kStages;
    if (t < num_tiles) {
      uint4* kbuf = smem + (slot * 2) * Tile::kVecsPerPlane;
      uint4* vbuf = kbuf + Tile::kVecsPerPlane;
#pragma unroll
      for (int k = 0; k < kRowsPerThread; ++k) {
        const int r = grp + k * Tile::kGroups;
        const bool valid = (next_bits >> k) & 1u;
        const std::byte* krow = k_origin + next_block[k] * a.k.block_stride + next_token[k] * a.k.token_stride;
        const std::byte* vrow = v_origin + next_block[k] * a.v.block_stride + next_token[k] * a.v.token_stride;
        cp_async16(&kbuf[r * RT + col], valid ? krow : a.k.base, valid && col * 8 < dk ? 16 : 0);
        cp_async16(&vbuf[r * RT + col], valid ? vrow : a.v.base, valid && col * 8 < dv ? 16 : 0);
      }
      visible_ring = (visible_ring & ~(0xfu << (4 * slot))) | ((next_bits >> 4) << (4 * slot));
    }
    cp_async_commit();  // an empty group past the end keeps the wait count uniform
  };

  // Prologue: tiles 0 .. kStages-2 in flight, ids of tile kStages-1 loaded.
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    prefetch_rows(t);
    issue(t);
  }
  prefetch_rows(kStages - 1);
  griddep_launch_dependents();  // the merge kernel may be scheduled behind the last wave

  float m[GT], l[GT], o[GT][8];
#pragma unroll
  for (int g = 0; g < GT; ++g) {
    m[g] = -INFINITY;
    l[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; ++e) o[g][e] = 0.0f;
  }

  for (int t = 0; t < num_tiles; ++t) {
    issue(t + kStages - 1);
    prefetch_rows(t + kStages);
    cp_async_wait<kStages - 1>();

    const int slot = t % kStages;
    const uint4* kbuf = smem + (slot * 2) * Tile::kVecsPerPlane;
    const uint4* vbuf = kbuf + Tile::kVecsPerPlane;
    const uint32_t visible = (visible_ring >> (4 * slot)) & 0xfu;

    float sc[GT][kRowsPerThread];
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k) {
      float kf[8];
      unpack8(kbuf[(grp + k * Tile::kGroups) * RT + col], kf, KV{});
#pragma unroll
      for (int g = 0; g < GT; ++g) {
        float acc = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc = fmaf(q[g][e], kf[e], acc);
        sc[g][k] = acc;
      }
    }
    // Sum each dot product over the RT lanes of the row's group.
#pragma unroll
    for (int off = RT / 2; off > 0; off /= 2)
#pragma unroll
      for (int g = 0; g < GT; ++g)
#pragma unroll
        for (int k = 0; k < kRowsPerThread; ++k) sc[g][k] += __shfl_xor_sync(0xffffffffu, sc[g][k], off);

#pragma unroll
    for (int g = 0; g < GT; ++g) {
      float mx = -INFINITY;
#pragma unroll
      for (int k = 0; k < kRowsPerThread; ++k) {
        float x = sc[g][k];
        if (softcap) x = a.softcap * kLog2e * tanhf(x / a.softcap);
        x = ((visible >> k) & 1u) ? x : -INFINITY;
        sc[g][k] = x;
        mx = fmaxf(mx, x);
      }
      const float m_new = fmaxf(m[g], mx);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // no key yet: keep every exp() at 0
      const float alpha = fast_exp2(m[g] - m_use);
      float sum = 0.0f;
#pragma unroll
      for (int k = 0; k < kRowsPerThread; ++k) {
        sc[g][k] = fast_exp2(sc[g][k] - m_use);
        sum += sc[g][k];
      }
      l[g] = l[g] * alpha + sum;
      m[g] = m_new;
#pragma unroll
      for (int e = 0; e < 8; ++e) o[g][e] *= alpha;
    }
#pragma unroll
    for (int k = 0; k < kRowsPerThread; ++k) {
      float vf[8];
      unpack8(vbuf[(grp + k * Tile::kGroups) * RT + col], vf, KV{});
#pragma unroll
      for (int g = 0; g < GT; ++g)
#pragma unroll
        for (int e = 0; e < 8; ++e) o[g][e] = fmaf(sc[g][k], vf[e], o[g][e]);
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the ring is reused for the combine below

  // Combine the groups' states: [GT][kGroups][RT * 8] sums, then [GT][kGroups] (m, l).
  float* red_o = reinterpret_cast<float*>(smem);
  float* red_ml = red_o + GT * Tile::kGroups * RT * 8;
#pragma unroll
  for (int g = 0; g < GT; ++g) {
    float4* dst = reinterpret_cast<float4*>(red_o + ((g * Tile::kGroups + grp) * RT + col) * 8);
    dst[0] = make_float4(o[g][0], o[g][1], o[g][2], o[g][3]);
    dst[1] = make_float4(o[g][4], o[g][5], o[g][6], o[g][7]);
    if (col == 0) {
      red_ml[(g * Tile::kGroups + grp) * 2] = m[g];
      red_ml[(g * Tile::kGroups + grp) * 2 + 1] = l[g];
    }
  }
  __syncthreads();

  for (int item = tid; item < GT * RT; item += kThreads) {
    const int g = item / RT, c = item % RT;
    if (g >= heads_here) continue;
    float mmax = -INFINITY;
    for (int i = 0; i < Tile::kGroups; ++i) mmax = fmaxf(mmax, red_ml[(g * Tile::kGroups + i) * 2]);
    const float m_use = mmax == -INFINITY ? 0.0f : mmax;
    float lsum = 0.0f, acc[8] = {};
    for (int i = 0; i < Tile::kGroups; ++i) {
      const float w = fast_exp2(red_ml[(g * Tile::kGroups + i) * 2] - m_use);
      lsum += w * red_ml[(g * Tile::kGroups + i) * 2 + 1];
      const float* src = red_o + ((g * Tile::kGroups + i) * RT + c) * 8;
#pragma unroll
      for (int e = 0; e < 8; ++e) acc[e] = fmaf(w, src[e], acc[e]);
    }
    const float inv = lsum > 0.0f ? 1.0f / lsum : 0.0f;
    const float lse = lsum > 0.0f ? (mmax + __log2f(lsum)) * kLn2 : -INFINITY;
    store_result(a, b, split, first_q_head + g, c, acc, inv, lse);
  }
}

}  // namespace kvx::cuda::decode
