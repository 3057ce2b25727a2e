// The second step of split-KV decode: merges the partial states of each
// (sequence, query head) row by their log-sum-exp.
//
// One CTA per row. The split weights exp(lse_i - max) are computed once (one
// thread per split) and kept in shared memory. Then the CTA's threads form
// groups that each own every G-th split, a thread of a group owns VEC columns
// of the output, and it issues its loads for up to 8 of its splits before it
// sums them (at d 128: 8 groups, so 64 splits take one round of loads; the old
// one-warp-per-row merge walked the splits one latency at a time: 46 us for
// 32 splits at 1 x 32k, docs/perf-notes.md); the first 6 go out before the
// weights are known, with the lse loads. The groups meet in shared memory.
//
// Launched as a programmatic dependent of the decode kernel (sm_90): its
// launch overlaps the decode grid's tail, and griddep_wait() holds it until
// the partials are written.
#pragma once

#include <cstdint>

#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda::decode {

constexpr int kMergeThreads = 256;
static_assert(kMaxSplits <= kMergeThreads, "one split weight a thread");

template <int VEC>
struct Floats;
template <>
struct Floats<4> {
  using Type = float4;
};
template <>
struct Floats<1> {
  using Type = float;
};
__device__ __forceinline__ void axpy(float w, const float4& x, float4& acc) {
  acc.x = fmaf(w, x.x, acc.x), acc.y = fmaf(w, x.y, acc.y), acc.z = fmaf(w, x.z, acc.z), acc.w = fmaf(w, x.w, acc.w);
}
__device__ __forceinline__ void axpy(float w, float x, float& acc) { acc = fmaf(w, x, acc); }
__device__ __forceinline__ void add_to(float4& acc, const float4& x) {
  acc.x += x.x, acc.y += x.y, acc.z += x.z, acc.w += x.w;
}
__device__ __forceinline__ void add_to(float& acc, float x) { acc += x; }
__device__ __forceinline__ float lane_of(const float4& v, int e) { return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w; }
__device__ __forceinline__ float lane_of(float v, int) { return v; }

// Block-wide reduction of one value per thread (max or sum); every thread gets the result.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float x, float* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const float y = __shfl_xor_sync(0xffffffffu, x, o);
    x = kMax ? fmaxf(x, y) : x + y;
  }
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = x;
  __syncthreads();
  float r = scratch[0];
#pragma unroll
  for (int w = 1; w < kMergeThreads / 32; ++w) r = kMax ? fmaxf(r, scratch[w]) : r + scratch[w];
  __syncthreads();  // scratch is reused by the next reduction
  return r;
}

// VEC 4: float4 loads (the launcher checks the partial outputs are 16-byte
// aligned); VEC 1: the general path.
template <int VEC>
__global__ void __launch_bounds__(kMergeThreads) merge_splits_kernel(const __grid_constant__ DecodeLaunch a) {
  using V = typename Floats<VEC>::Type;
  __shared__ float weight[kMaxSplits];
  __shared__ float scratch[kMergeThreads / 32];
  __shared__ V sums[kMergeThreads];

  const int num_q_heads = a.num_kv_heads * a.group;
  const int64_t b = blockIdx.x / num_q_heads;
  const int qh = static_cast<int>(blockIdx.x % num_q_heads);
  const int S = a.max_splits, tid = threadIdx.x;
  const int64_t dv = a.v.head_dim;
  const float* lse_part = a.partial + b * S * num_q_heads + qh;  // stride num_q_heads per split
  const float* o_part = partial_outputs(a) + (b * S * num_q_heads + qh) * dv;
  const int64_t split_stride = num_q_heads * dv;

  const int cols = static_cast<int>(dv / VEC);
  const int groups = cols >= kMergeThreads ? 1 : kMergeThreads / cols;
  const int g = tid / cols < groups ? tid / cols : groups;  // `groups`: idle thread
  const int lane_col = tid % (cols < kMergeThreads ? cols : kMergeThreads);  // < cols

  griddep_wait();  // the decode grid's partials are complete and visible

  // The first pass's outputs of this thread's first kPrefetch splits go out
  // with the lse loads: the weights only scale them, so one round trip to
  // the partials instead of two. (Read whatever they hold; an empty split's
  // are dropped below.)
  constexpr int kPrefetch = 6;  // 48 splits at d 128 in one round trip; 8 spilled
  V pre[kPrefetch];
#pragma unroll
  for (int k = 0; k < kPrefetch; ++k) {
    const int i = g + k * groups;
    pre[k] = g < groups && i < S ? reinterpret_cast<const V*>(o_part + i * split_stride)[lane_col] : V{};
  }
  const float lse = tid < S ? lse_part[tid * num_q_heads] : -INFINITY;
  const float mx = block_reduce<true>(lse, scratch);
  const float mu = mx == -INFINITY ? 0.0f : mx;
  const float w = __expf(lse - mu);  // 0 for an empty split (lse -inf) and past S
  if (tid < kMaxSplits) weight[tid] = w;
  const float wsum = block_reduce<false>(w, scratch);  // its barrier also publishes `weight`

  const float inv = wsum > 0.0f ? 1.0f / wsum : 0.0f;
  std::byte* orow = a.out.row(b, qh);
  const int eb = elem_bytes(a.out.dtype);
  for (int c0 = 0; c0 < cols; c0 += kMergeThreads) {  // one pass unless VEC 1 and dv > kMergeThreads
    const int c = c0 + lane_col;
    V acc{};
    if (g < groups && c < cols) {
      int i = g;
      if (c0 == 0) {
#pragma unroll
        for (int k = 0; k < kPrefetch; ++k, i += groups) {
          // An empty split's outputs were never written: skip them, whatever they hold.
          const float wi = i < S ? weight[i] : 0.0f;
          axpy(wi, wi > 0.0f ? pre[k] : V{}, acc);
        }
      }
#pragma unroll 8
      for (; i < S; i += groups) {
        const float wi = weight[i];
        const V x = wi > 0.0f ? reinterpret_cast<const V*>(o_part + i * split_stride)[c] : V{};
        axpy(wi, x, acc);
      }
    }
    sums[tid] = acc;
    __syncthreads();
    if (tid < cols && tid < kMergeThreads && g == 0 && c < cols) {
      for (int k = 1; k < groups; ++k) add_to(acc, sums[k * cols + tid]);
#pragma unroll
      for (int e = 0; e < VEC; ++e) store_elem(orow + (c * VEC + e) * eb, a.out.dtype, lane_of(acc, e) * inv);
    }
    __syncthreads();
  }
  if (tid == 0 && a.lse.data != nullptr)
    *reinterpret_cast<float*>(a.lse.row(b, qh)) = wsum > 0.0f ? mu + __logf(wsum) : -INFINITY;
}

}  // namespace kvx::cuda::decode
