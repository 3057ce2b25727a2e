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

// Division by a launch-constant d (1 <= d, n < 2^31) as a multiply and a
// shift: q = (umulhi(n, mul) + n) >> shift.
struct FastDiv {
  uint32_t mul = 1, shift = 0;
};
FastDiv fast_div(uint32_t d);
#ifdef __CUDACC__
__device__ __forceinline__ uint32_t fdiv(const FastDiv& f, uint32_t n) { return (__umulhi(n, f.mul) + n) >> f.shift; }
#endif

// Strides (bytes) of one plane on one side, and where the units of a head
// row lie: unit j at (j / group_units) * dim_outer_stride + (j %
// group_units) * unit_stride, or j * unit_stride where the head dim is not
// split in groups (group_units 0).
struct CopySide {
  int64_t block_stride = 0, token_stride = 0, head_stride = 0;
  int64_t unit_stride = 0, dim_outer_stride = 0;
  int32_t group_units = 0;
  FastDiv div_group;
};

// A launch of block copies: `num_planes` (layer, kind) planes, plane p of
// kind p % num_kv (K and V, or only one of them), for `num_pairs` (src
// block, dst block) pairs. A plane of a
// block moves either as one contiguous run (chunk[kv], cut into `pieces`
// pieces of kCopyPieceBytes) or unit by unit: `unit_bytes` bytes (16, 8, 4,
// 2 or 1: the widest that every address of the launch is aligned to and
// that stays inside one contiguous run of a head row on both sides).
struct BlockCopyLaunch {
  CopySide src[2], dst[2];
  int64_t plane_bytes[2] = {0, 0};
  int32_t chunk[2] = {0, 0};
  int32_t row_units[2] = {0, 0};  // units per head row
  // Units walk (token, head, row unit) with row units fastest, or (head,
  // row unit, token) with tokens fastest where a side keeps a unit's tokens
  // closer than its row's next unit (vLLM's legacy key: 16-byte groups of
  // consecutive tokens), so that a warp's accesses fill whole sectors on
  // both sides.
  int32_t tokens_fast[2] = {0, 0};
  // Planes moved as squares (transpose[kv] = 1): one side runs along the
  // tokens (vLLM's legacy value), the other along the head dim; a thread
  // loads kN 16-byte units of kN = 16 / elem_bytes elements along one side's
  // axis, transposes the kN x kN square in registers and stores kN units
  // along the other's. Units then walk (head, dim group of row_units[kv],
  // token group of token_groups) with token groups fastest; src_tokens[kv]
  // says which side runs along the tokens.
  int32_t transpose[2] = {0, 0};
  int32_t src_tokens[2] = {0, 0};
  int32_t token_groups = 1;  // block_tokens / kN
  int32_t elem_bytes = 1;
  FastDiv div_row[2], div_heads, div_tokens, div_token_groups;  // by row_units[kv], num_heads, block_tokens, token_groups
  FastDiv div_per_pair, div_pieces;  // by num_planes * pieces (items of a pair), pieces
  int32_t num_kv = 2;
  int32_t block_tokens = 0;
  int32_t num_heads = 0;
  int32_t unit_bytes = 1;
  int32_t pieces = 1;
  int32_t num_planes = 0;  // (layer, kind) planes, kinds alternating where num_kv is 2
  int32_t num_pairs = 0;   // num_pairs * num_planes * pieces < 2^31
};

// A block copy's kernel parameters: the launch and its work list, `kCap`
// bytes of payload: const std::byte* src_base[num_planes]; std::byte*
// dst_base[num_planes]; int32_t pairs[num_pairs][2] (src block, dst block).
// The device copies the whole parameter block at each launch (measured on
// the H100, bench/copy/d2d_tail.cu: an empty launch of 2,048 CTAs 4.4 us
// with no parameters, 4.8 us with 8 KiB, 6.5 us with 31 KiB), so each
// launch takes the smallest of kCopyPayloadCaps that holds its work list;
// the payload begins at the same offset in every size, so the host fills
// the largest and launches a prefix of it.
template <int kCap>
struct BlockCopyParams {
  BlockCopyLaunch h;
  alignas(16) unsigned char payload[kCap];
};
constexpr int kCopyPayloadCaps[] = {2048, 8448, kCopyPayloadBytes};  // 8448: 1,024 pairs and 16 planes
using BlockCopyFull = BlockCopyParams<kCopyPayloadBytes>;

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


// One side of a tiled copy (tile_kernels.cu): a (token, dim) tile of one
// head of one plane, moved in `unit`-byte pieces along the side's
// contiguous axis: the tokens (token_axis) or the head dim. A head dim split
// in groups (vLLM's legacy key) has `group_units` pieces a group, groups
// `group_stride` bytes apart; otherwise group_units is 0.
struct TileSide {
  int64_t block_stride = 0, token_stride = 0, head_stride = 0;
  int64_t dim_stride = 0, group_stride = 0;
  int32_t group_units = 0;
  int32_t unit = 1;
  int32_t token_axis = 0;
  int32_t tokens_fast = 0;  // head-dim units: consecutive pieces walk the tokens first
  int32_t per_inner = 1;    // pieces of the fastest axis (the divisor of div_inner)
  int32_t tile_units = 0;   // pieces of a tile
  FastDiv div_inner, div_tile;
};

constexpr int kTileThreads = 256;
// Shared memory a CTA of the tiled copy fills with tiles.
constexpr int kTileSharedBytes = 32 * 1024;
// Tiles a CTA holds at once at most (their origins sit in shared memory).
constexpr int kMaxTilesPerCta = 64;

// A tiled launch: one plane kind (K or V) of `num_planes` planes for
// `num_pairs` pairs; tile = (pair, plane, head, chunk of chunk_tokens).
struct TileLaunch {
  TileSide src, dst;
  int32_t elem = 1;          // bytes of an element (packed int4 moves as bytes)
  int32_t pitch = 0;         // bytes of a token row in the shared tile
  int32_t chunk_tokens = 1;  // tokens of a tile
  int32_t token_chunks = 1;  // tiles a head
  int32_t num_heads = 0;
  int32_t tiles_per_cta = 1;
  int32_t num_tiles = 0;
  int32_t num_planes = 0;
  int32_t num_pairs = 0;
  FastDiv div_chunks, div_heads, div_planes;
  // payload as BlockCopyLaunch's
  alignas(16) unsigned char payload[kCopyPayloadBytes];
};

// Kernel parameters are limited to 32,764 bytes.
static_assert(sizeof(BlockCopyFull) <= 32764 && sizeof(TileLaunch) <= 32764 && sizeof(RawCopyLaunch) <= 32764);
static_assert(offsetof(BlockCopyParams<kCopyPayloadCaps[0]>, payload) == offsetof(BlockCopyFull, payload) &&
              offsetof(BlockCopyParams<kCopyPayloadCaps[1]>, payload) == offsetof(BlockCopyFull, payload));

cudaError_t launch_tile_copy(const TileLaunch& a, int32_t max_ctas, cudaStream_t stream);
// `payload_bytes`: the bytes of p.payload the launch uses.
cudaError_t launch_block_copy(const BlockCopyFull& p, int64_t payload_bytes, int32_t max_ctas, int32_t threads,
                              cudaStream_t stream);
cudaError_t launch_raw_copy(const RawCopyLaunch& a, int32_t max_ctas, cudaStream_t stream);

}  // namespace kvx::cuda
