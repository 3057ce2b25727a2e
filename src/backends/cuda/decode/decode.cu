// The decode variants and their launcher. Variants are the template
// parameters of split_kv_decode_kernel, instantiated from one bounded list:
//   storage   f16, bf16
//   RT        8, 16, 32 lanes per row (head_dim up to 64, 128, 256)
//   GT        1, 2, 4 query heads per kv head in one CTA
// A group of more than 4 query heads per kv head runs as several tiles of 4
// in adjacent CTAs: each K/V byte comes from DRAM about once and from L2 for
// the other tiles. A tile of 8 in one CTA needed 255 registers and ran at a
// third of the bandwidth (docs/perf-notes.md).
#include <algorithm>
#include <atomic>

#include "backends/cuda/decode/split_kv_decode.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda {
namespace {

using decode::kThreads;

int row_threads_for(int64_t head_dim) { return head_dim <= 64 ? 8 : head_dim <= 128 ? 16 : 32; }
int head_tile_for(int32_t group) { return group <= 1 ? 1 : group <= 2 ? 2 : 4; }

using KernelFn = void (*)(DecodeLaunch);

template <typename KV, int RT>
KernelFn pick_gt(int gt) {
  switch (gt) {
    case 1: return decode::split_kv_decode_kernel<KV, RT, 1>;
    case 2: return decode::split_kv_decode_kernel<KV, RT, 2>;
    default: return decode::split_kv_decode_kernel<KV, RT, 4>;
  }
}
template <typename KV>
KernelFn pick_rt(int rt, int gt) {
  switch (rt) {
    case 8: return pick_gt<KV, 8>(gt);
    case 16: return pick_gt<KV, 16>(gt);
    default: return pick_gt<KV, 32>(gt);
  }
}
KernelFn pick_kernel(Elem dtype, int64_t dk, int64_t dv, int32_t group) {
  const int rt = row_threads_for(std::max(dk, dv));
  const int gt = head_tile_for(group);
  return dtype == Elem::kF16 ? pick_rt<F16Tag>(rt, gt) : pick_rt<BF16Tag>(rt, gt);
}
// A variant's index in the list above, for the occupancy cache.
int variant_index(Elem dtype, int64_t dk, int64_t dv, int32_t group) {
  const int rt = row_threads_for(std::max(dk, dv));
  const int gt = head_tile_for(group);
  const int rt_i = rt == 8 ? 0 : rt == 16 ? 1 : 2;
  const int gt_i = gt == 1 ? 0 : gt == 2 ? 1 : 2;
  return ((dtype == Elem::kF16 ? 0 : 1) * 3 + rt_i) * 3 + gt_i;
}
std::atomic<int> g_ctas_per_sm[18];  // 0: not yet asked

}  // namespace

uint64_t decode_workspace_bytes(int64_t num_seqs, int64_t num_q_heads, int64_t head_dim_v, int32_t max_splits) {
  if (max_splits <= 1) return 0;
  return static_cast<uint64_t>(num_seqs) * static_cast<uint64_t>(max_splits) * static_cast<uint64_t>(num_q_heads) *
         static_cast<uint64_t>(head_dim_v + 1) * sizeof(float);
}

cudaError_t decode_variant_info(Elem cache_dtype, int64_t head_dim_k, int64_t head_dim_v, int32_t group,
                                DecodeVariantInfo* out) {
  const int gt = head_tile_for(group);
  out->head_tiles = (group + gt - 1) / gt;
  const int index = variant_index(cache_dtype, head_dim_k, head_dim_v, group);
  int ctas = g_ctas_per_sm[index].load(std::memory_order_relaxed);
  if (ctas == 0) {
    // Host-side arithmetic of the runtime: no device work, safe during capture.
    const cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
        &ctas, pick_kernel(cache_dtype, head_dim_k, head_dim_v, group), kThreads, 0);
    if (e != cudaSuccess) return e;
    ctas = std::max(ctas, 1);
    g_ctas_per_sm[index].store(ctas, std::memory_order_relaxed);
  }
  out->ctas_per_sm = ctas;
  return cudaSuccess;
}

cudaError_t launch_decode(const DecodeLaunch& a, cudaStream_t stream) {
  const int gt = head_tile_for(a.group);
  const int64_t head_tiles = (a.group + gt - 1) / gt;
  const dim3 grid(static_cast<unsigned>(a.table.num_seqs * a.num_kv_heads * head_tiles),
                  static_cast<unsigned>(a.max_splits));
  pick_kernel(a.cache_dtype, a.k.head_dim, a.v.head_dim, a.group)<<<grid, kThreads, 0, stream>>>(a);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess || a.max_splits <= 1) return e;
  const int64_t rows = a.table.num_seqs * a.num_kv_heads * a.group;
  const int warps_per_cta = 4;
  decode::merge_splits_kernel<<<static_cast<unsigned>((rows + warps_per_cta - 1) / warps_per_cta), 32 * warps_per_cta,
                                0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
