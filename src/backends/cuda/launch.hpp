// Kernel launchers of the CUDA backend, one per op family (append/, gather/,
// decode/, merge/). backend.cpp resolves a validated kvx_*_args_t into these
// plain structs and calls them; each launcher enqueues its kernels on
// `stream` and returns the launch error, never synchronising and never
// allocating (so every launcher is safe inside CUDA-graph capture).
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/cuda/common/args.hpp"

namespace kvx::cuda {

// ----------------------------------------------------------------- append --
struct AppendLaunch {
  PlaneArg plane[2];
  int32_t num_kv = 2;
  Elem cache_dtype = Elem::kBF16;
  TensorArg src[2];                     // new K, new V: [num_rows, num_heads, head_dim]
  int64_t num_rows = 0;
  int64_t num_heads = 0;
  const int64_t* slot_mapping = nullptr;  // placement by slot, or else:
  PageTableArg table;                     // by page table + (batch index, position)
  const int32_t* batch_indices = nullptr;
  const int32_t* positions = nullptr;
  bool vectorized = false;  // same dtype everywhere, 16-byte runs: rows move as 16-byte vectors
};
cudaError_t launch_append(const AppendLaunch& a, cudaStream_t stream);

// ----------------------------------------------------------------- gather --
struct GatherLaunch {
  PlaneArg plane[2];
  int32_t num_kv = 2;
  Elem cache_dtype = Elem::kBF16;
  TensorArg dst[2];  // [sum of lengths, num_heads, head_dim]
  int64_t num_heads = 0;
  PageTableArg table;
  int32_t token_ctas = 1;  // CTAs per sequence along its tokens
  bool vectorized = false;
};
cudaError_t launch_gather(const GatherLaunch& a, cudaStream_t stream);

// ------------------------------------------------------------ merge states --
struct MergeLaunch {
  TensorArg out_a, lse_a, out_b, lse_b, out, lse;  // lse.data may be null
};
cudaError_t launch_merge_states(const MergeLaunch& a, cudaStream_t stream);

// ----------------------------------------------------------------- decode --
// Split-KV paged decode attention. A CTA handles one (sequence, kv head, tile
// of query heads sharing it, split); splits of a sequence are merged by a
// second kernel when max_splits > 1.
struct DecodeLaunch {
  PlaneArg k, v;
  PageTableArg table;
  TensorArg q, out, lse;  // lse.data may be null
  Elem cache_dtype = Elem::kBF16;
  int32_t num_kv_heads = 0;
  int32_t group = 1;      // query heads per kv head
  float scale = 1.0f;     // resolved (never 0)
  float softcap = 0.0f;   // 0: none
  int64_t window_left = -1;
  int64_t sink_tokens = 0;
  // The schedule. A sequence of n visible pages gets s = clamp(ceil(n / per), 1,
  // max_splits) splits of ceil(n / s) pages, per = chunk_pages when a plan set
  // it, else min_chunk_pages; the sequence's actual length decides on the
  // device, so a plan stays correct when lengths change after it was made.
  int32_t max_splits = 1;
  int64_t chunk_pages = 0;
  int64_t min_chunk_pages = 1;
  float* partial = nullptr;  // workspace when max_splits > 1 (decode_workspace_bytes)
};

// Splits per sequence at most: the merge kernel keeps one weight per split in
// shared memory.
inline constexpr int32_t kMaxSplits = 128;

// The split workspace: the partial lse of every (sequence, split, query head),
// padded to a multiple of 4 floats so that the partial outputs after it start
// 16-byte aligned (given an aligned workspace), then the partial outputs.
KVX_HD int64_t partial_lse_floats(int64_t num_seqs, int64_t max_splits, int64_t num_q_heads) {
  return (num_seqs * max_splits * num_q_heads + 3) / 4 * 4;
}
KVX_HD float* partial_outputs(const DecodeLaunch& a) {
  return a.partial + partial_lse_floats(a.table.num_seqs, a.max_splits, int64_t{a.num_kv_heads} * a.group);
}
cudaError_t launch_decode(const DecodeLaunch& a, cudaStream_t stream);

// Bytes of workspace a schedule with `max_splits` needs (0 when 1).
uint64_t decode_workspace_bytes(int64_t num_seqs, int64_t num_q_heads, int64_t head_dim_v, int32_t max_splits);

// The decode kernel variant for a shape: CTAs per kv head (query-head tiles)
// and CTAs resident per SM (for the plan's slot count).
struct DecodeVariantInfo {
  int32_t head_tiles = 1;
  int32_t ctas_per_sm = 1;
  bool tensor_cores = false;  // the tensor-core (grouped heads) kernel, not the CUDA-core one
};
cudaError_t decode_variant_info(Elem cache_dtype, int64_t head_dim_k, int64_t head_dim_v, int32_t group,
                                DecodeVariantInfo* out);

}  // namespace kvx::cuda
