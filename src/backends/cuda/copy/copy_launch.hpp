// Plain launch structs of the SM copy kernels (copy_kernels.cu), filled on
// the host by copy/transfer.cpp. Each launch carries its whole work list in
// its kernel parameters (__grid_constant__, under the 32,764-byte limit of
// CUDA 12.1+ on Volta and newer), so a copy needs no device allocation, no
// staging copy of its block list and no synchronisation: it can be captured
// in a CUDA graph and never waits behind other work on the stream.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace kvx::cuda {

// Bytes of work list per launch (the parameter limit less the fixed fields).
constexpr int kCopyPayloadBytes = 31 * 1024;
// Contiguous runs longer than this are cut into pieces, one per CTA.
constexpr int64_t kCopyPieceBytes = int64_t{64} << 10;

// Strides (bytes) of one plane on one side.
struct CopySide {
  int64_t block_stride = 0, token_stride = 0, head_stride = 0;
  int64_t dim_stride = 0, dim_outer_stride = 0, head_dim_inner = 0;
};

// A launch of block copies: `num_planes` (layer, kv) planes, plane p of kv
// p % num_kv, for `num_pairs` (src block, dst block) pairs. A plane of a
// block moves either as one contiguous run (chunk[kv], cut into `pieces`
// pieces of kCopyPieceBytes) or unit by unit: `unit_bytes` bytes (16, 8, 4,
// 2 or 1: the widest that every address of the launch is aligned to and
// that stays inside one contiguous run of a head row on both sides).
struct BlockCopyLaunch {
  CopySide src[2], dst[2];
  int64_t plane_bytes[2] = {0, 0};
  int32_t chunk[2] = {0, 0};
  int32_t row_units[2] = {0, 0};  // units per head row
  int32_t num_kv = 2;
  int32_t block_tokens = 0;
  int32_t num_heads = 0;
  int32_t unit_bytes = 1;
  int32_t elem_per_unit = 1;
  int32_t pieces = 1;
  int32_t num_planes = 0;
  int32_t num_pairs = 0;
  // payload: const std::byte* src_base[num_planes]; std::byte* dst_base[num_planes];
  //          int32_t pairs[num_pairs][2] (src block, dst block)
  alignas(16) unsigned char payload[kCopyPayloadBytes];
};

// Raw runs: any alignment, chosen per run at run time.
struct RawRun {
  std::byte* dst;
  const std::byte* src;
  uint64_t bytes;
};
constexpr int kRawRunsPerLaunch = kCopyPayloadBytes / static_cast<int>(sizeof(RawRun));
struct RawCopyLaunch {
  int32_t num_runs = 0;
  int32_t reserved = 0;
  RawRun runs[kRawRunsPerLaunch];
};

cudaError_t launch_block_copy(const BlockCopyLaunch& a, int32_t max_ctas, int32_t threads, cudaStream_t stream);
cudaError_t launch_raw_copy(const RawCopyLaunch& a, int32_t max_ctas, cudaStream_t stream);

}  // namespace kvx::cuda
