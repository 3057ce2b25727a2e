// Host side of the CUDA transfers: a validated block or raw copy becomes SM
// kernel launches (work lists in kernel parameters, copy_launch.hpp) or DMA
// calls (cudaMemcpyBatchAsync, or a cudaMemcpyAsync loop). Nothing here
// allocates device memory or synchronises.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "backends/cuda/copy/copy_launch.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/transfer.hpp"

namespace kvx::cuda {
namespace {

kvx_status_t cuda_fail(cudaError_t e, const char* what) {
  return fail(KVX_ERR_DEVICE, "{}: CUDA error {}: {}", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

// Runs the copy on the device that owns its device-side memory, then gives
// the caller back its current device.
class CurrentDevice {
 public:
  explicit CurrentDevice(int device) {
    if (cudaGetDevice(&saved_) != cudaSuccess || saved_ == device) saved_ = -1;
    else error_ = cudaSetDevice(device);
  }
  ~CurrentDevice() {
    if (saved_ >= 0) cudaSetDevice(saved_);
  }
  CurrentDevice(const CurrentDevice&) = delete;
  CurrentDevice& operator=(const CurrentDevice&) = delete;
  cudaError_t error() const { return error_; }

 private:
  int saved_ = -1;
  cudaError_t error_ = cudaSuccess;
};

// ------------------------------------------------------------------- DMA --

// Calls of the batch API carry at most this many copies (the API has no
// documented limit; some drivers of the same API fault past 8192).
constexpr size_t kMaxBatch = 8192;

kvx_status_t dma_runs(const std::vector<CopyRun>& runs, const TransferConfig& cfg, TransferStats* stats) {
  auto stream = static_cast<cudaStream_t>(cfg.exec.stream);
  stats->runs = static_cast<int64_t>(runs.size());
  for (const CopyRun& r : runs) stats->bytes += static_cast<int64_t>(r.bytes);
  // The batch API refuses the legacy default stream (validation already
  // refused BATCHED_ONLY there).
  bool batched = cfg.dma_mode != KVX_DMA_FALLBACK_ONLY && stream != nullptr;
  size_t done = 0;
  if (batched) {
    const bool small = std::all_of(runs.begin(), runs.end(), [](const CopyRun& r) { return r.bytes <= (128u << 10); });
    cudaMemcpyAttributes attr{};
    // Sources may be written by later work on the stream: stream order.
    attr.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    // Small copies overlap compute better with this hint (cuDF applies it
    // below 128 KiB per copy).
    attr.flags = small ? cudaMemcpyFlagPreferOverlapWithCompute : 0;
    std::vector<void*> dsts;
    std::vector<const void*> srcs;
    std::vector<size_t> sizes;
    while (done < runs.size()) {
      const size_t n = std::min(kMaxBatch, runs.size() - done);
      dsts.resize(n);
      srcs.resize(n);
      sizes.resize(n);
      for (size_t i = 0; i < n; ++i) {
        dsts[i] = runs[done + i].dst;
        srcs[i] = runs[done + i].src;
        sizes[i] = runs[done + i].bytes;
      }
      size_t attr_index = 0;
      const cudaError_t e = cudaMemcpyBatchAsync(dsts.data(), srcs.data(), sizes.data(), n, &attr, &attr_index, 1, stream);
      if (e != cudaSuccess) {
        if (cfg.dma_mode == KVX_DMA_BATCHED_ONLY) return cuda_fail(e, "cudaMemcpyBatchAsync");
        // Where the runtime or driver lacks the batch API, the loop takes
        // over (an error here enqueued nothing of this call).
        (void)cudaGetLastError();
        batched = false;
        break;
      }
      ++stats->launches;
      done += n;
    }
  }
  stats->dma_path = batched ? KVX_DMA_PATH_BATCHED : KVX_DMA_PATH_LOOP;
  for (; done < runs.size(); ++done) {
    const cudaError_t e = cudaMemcpyAsync(runs[done].dst, runs[done].src, runs[done].bytes, cudaMemcpyDefault, stream);
    if (e != cudaSuccess) return cuda_fail(e, "cudaMemcpyAsync");
    ++stats->launches;
  }
  return KVX_OK;
}

// ------------------------------------------------------------- SM kernel --

bool aligned(int64_t v, int64_t unit) { return v % unit == 0; }
bool aligned(const void* p, int64_t unit) { return reinterpret_cast<uintptr_t>(p) % unit == 0; }

// The strides of one side of a plane in bytes (INT4 rows as bytes: they are
// always packed).
struct PlaneSide {
  int64_t block, token, head, dim, outer, inner;
};

PlaneSide plane_side(const kvx_plane_t& p, kvx_dtype_t dtype) {
  const bool packed = dtype == KVX_DTYPE_INT4;
  return {p.block_stride_bytes, p.token_stride_bytes, p.head_stride_bytes, packed ? 1 : p.dim_stride_bytes,
          p.dim_outer_stride_bytes, packed ? 0 : p.head_dim_inner};
}

// Whether `unit` bytes at a time keep every access aligned and inside a
// contiguous run of a head row, on one side of one plane.
bool unit_fits_side(const PlaneSide& s, int64_t unit, int64_t elem, int64_t row_elems, bool chunk) {
  if (!aligned(s.block, unit)) return false;
  if (chunk) return true;
  const int64_t per = unit / elem;
  if (!aligned(s.token, unit) || !aligned(s.head, unit) || row_elems % per != 0) return false;
  if (per == 1) return true;
  if (s.dim != elem) return false;
  return s.inner == 0 || (s.inner % per == 0 && aligned(s.outer, unit));
}

// A side as the copy kernel walks it in `unit`-byte pieces (unit_fits_side).
CopySide copy_side(const PlaneSide& p, int64_t unit, int64_t elem) {
  const int64_t per = unit / elem;
  CopySide c;
  c.block_stride = p.block;
  c.token_stride = p.token;
  c.head_stride = p.head;
  c.unit_stride = per * p.dim;
  if (p.inner != 0) {
    c.group_units = static_cast<int32_t>(p.inner / per);
    c.div_group = fast_div(static_cast<uint32_t>(c.group_units));
    c.dim_outer_stride = p.outer;
  }
  return c;
}

std::byte* plane_base(const kvx_layout_t& l, int64_t layer, int kv) { return row_address(l, layer, kv, 0, 0, 0); }

// The widest unit every plane kind of `kinds` (and every plane base) allows.
int32_t choose_unit(const kvx_layout_t& s, const kvx_layout_t& d, const BlockGeometry& g, const int* kinds, int n) {
  const int64_t elem = g.elem_bytes;
  for (int32_t unit : {16, 8, 4, 2, 1}) {
    if (unit < elem || unit % elem != 0) continue;
    bool ok = true;
    for (int i = 0; i < n && ok; ++i) {
      const int kv = kinds[i];
      const bool chunk = g.move[kv] == PlaneMove::kChunk;
      const int64_t row_elems = g.row_bytes[kv] / elem;
      ok = (!chunk || aligned(g.plane_bytes[kv], unit)) &&
           unit_fits_side(plane_side(s.plane[kv], s.dtype), unit, elem, row_elems, chunk) &&
           unit_fits_side(plane_side(d.plane[kv], d.dtype), unit, elem, row_elems, chunk);
      for (int64_t layer = 0; layer < g.num_layers && ok; ++layer)
        ok = aligned(plane_base(s, layer, kv), unit) && aligned(plane_base(d, layer, kv), unit);
    }
    if (ok) return unit;
  }
  return 1;
}

// Writes pairs from `i0` on (at most `cap`) after the `np` plane bases of a
// launch payload; returns how many.
int64_t put_pairs(unsigned char* payload, int64_t np, const kvx_block_copy_args_t& args, int64_t i0, int64_t cap) {
  auto* pairs = reinterpret_cast<int32_t*>(payload + 2 * sizeof(void*) * np);
  const int64_t n = std::min(cap, args.num_blocks - i0);
  for (int64_t i = 0; i < n; ++i) {
    pairs[2 * i] = args.src_blocks[i0 + i];
    pairs[2 * i + 1] = args.dst_blocks[i0 + i];
  }
  return n;
}

// ----------------------------------------------------------- tiled copy --

// One side of plane `kv` as the tiled copy moves it, for tiles of `tc`
// tokens; false where neither the head dim nor the token axis is contiguous
// (the unit kernel serves those).
bool tile_side(const kvx_layout_t& l, int kv, const BlockGeometry& g, int64_t elem, int64_t tc, TileSide* out) {
  const kvx_plane_t& p = l.plane[kv];
  const bool packed = l.dtype == KVX_DTYPE_INT4;
  const int64_t row = g.row_bytes[kv], dims = row / elem;
  const int64_t ds = packed ? 1 : p.dim_stride_bytes, inner = packed ? 0 : p.head_dim_inner;
  TileSide s;
  s.block_stride = p.block_stride_bytes;
  s.token_stride = p.token_stride_bytes;
  s.head_stride = p.head_stride_bytes;
  s.dim_stride = ds;
  s.group_stride = p.dim_outer_stride_bytes;
  if (ds == elem || dims == 1) s.token_axis = 0;
  else if (p.token_stride_bytes == elem && g.block_tokens > 1) s.token_axis = 1;
  else return false;
  const int64_t run = s.token_axis ? tc * elem : row;  // contiguous bytes along the axis
  auto fits = [&](int64_t u) {
    if (u < elem || u % elem != 0 || run % u != 0) return false;
    if (!aligned(s.block_stride, u) || !aligned(s.head_stride, u)) return false;
    if (!s.token_axis) {
      if (!aligned(s.token_stride, u)) return false;
      if (inner != 0 && ((inner * elem) % u != 0 || !aligned(s.group_stride, u))) return false;
    } else {
      if (!aligned(ds, u) || (inner != 0 && !aligned(s.group_stride, u))) return false;
    }
    for (int64_t layer = 0; layer < g.num_layers; ++layer)
      if (!aligned(plane_base(l, layer, kv), u)) return false;
    return true;
  };
  int64_t u = 16;
  while (u > 1 && !fits(u)) u /= 2;
  if (!fits(u)) return false;
  s.unit = static_cast<int32_t>(u);
  if (s.token_axis) {
    s.group_units = static_cast<int32_t>(inner);  // in elements on this axis
    s.per_inner = static_cast<int32_t>(run / u);
    s.tile_units = static_cast<int32_t>(dims * s.per_inner);
  } else {
    s.group_units = inner != 0 ? static_cast<int32_t>(inner * elem / u) : 0;
    const int64_t next_unit = s.group_units == 1 ? s.group_stride : u;  // bytes between consecutive pieces of a row
    s.tokens_fast = tc > 1 && s.token_stride < next_unit ? 1 : 0;
    s.per_inner = static_cast<int32_t>(s.tokens_fast ? tc : row / u);
    s.tile_units = static_cast<int32_t>(tc * (row / u));
  }
  s.div_inner = fast_div(static_cast<uint32_t>(s.per_inner));
  s.div_tile = fast_div(static_cast<uint32_t>(s.tile_units));
  *out = s;
  return true;
}

// The launch shape of plane kind `kv` (payload and counts are the caller's).
bool tile_plan(const kvx_layout_t& s, const kvx_layout_t& d, int kv, const BlockGeometry& g, TileLaunch* a) {
  const int64_t elem = s.dtype == KVX_DTYPE_INT4 ? 1 : g.elem_bytes;
  const int64_t pitch = (g.row_bytes[kv] + 15) / 16 * 16 + 16;
  // The most tokens of a head that divide block_tokens and fit a tile.
  int64_t tc = 0;
  for (int64_t t = g.block_tokens; t >= 1 && tc == 0; --t)
    if (g.block_tokens % t == 0 && t * pitch <= kTileSharedBytes / 2) tc = t;
  if (tc == 0 || !tile_side(s, kv, g, elem, tc, &a->src) || !tile_side(d, kv, g, elem, tc, &a->dst)) return false;
  a->elem = static_cast<int32_t>(elem);
  a->pitch = static_cast<int32_t>(pitch);
  a->chunk_tokens = static_cast<int32_t>(tc);
  a->token_chunks = static_cast<int32_t>(g.block_tokens / tc);
  a->num_heads = static_cast<int32_t>(g.num_heads);
  a->tiles_per_cta = static_cast<int32_t>(std::clamp<int64_t>(kTileSharedBytes / (tc * pitch), 1, kMaxTilesPerCta));
  a->div_chunks = fast_div(static_cast<uint32_t>(a->token_chunks));
  a->div_heads = fast_div(static_cast<uint32_t>(a->num_heads));
  return true;
}

// Moves the plane kinds with a plan in `launch` through shared-memory tiles.
kvx_status_t tile_copy(const kvx_block_copy_args_t& args, const TransferConfig& cfg, const BlockGeometry& g,
                       const std::unique_ptr<TileLaunch>* launch, TransferStats* stats) {
  const kvx_layout_t& s = *args.src;
  const kvx_layout_t& d = *args.dst;
  auto stream = static_cast<cudaStream_t>(cfg.exec.stream);
  const int64_t plane_cap = kCopyPayloadBytes / 2 / 16;
  for (int kv = 0; kv < g.num_kv; ++kv) {
    if (!launch[kv]) continue;
    TileLaunch& a = *launch[kv];
    for (int64_t l0 = 0; l0 < g.num_layers; l0 += plane_cap) {
      const int64_t np = std::min(plane_cap, g.num_layers - l0);
      a.num_planes = static_cast<int32_t>(np);
      a.div_planes = fast_div(static_cast<uint32_t>(np));
      auto* src_base = reinterpret_cast<const std::byte**>(a.payload);
      auto* dst_base = reinterpret_cast<std::byte**>(a.payload + sizeof(void*) * np);
      for (int64_t p = 0; p < np; ++p) {
        src_base[p] = plane_base(s, l0 + p, kv);
        dst_base[p] = plane_base(d, l0 + p, kv);
      }
      const int64_t tiles_per_pair = np * a.num_heads * a.token_chunks;
      const int64_t pairs_per_launch =
          std::min<int64_t>((kCopyPayloadBytes - 16 * np) / 8, INT32_MAX / 2 / tiles_per_pair);
      for (int64_t i0 = 0; i0 < args.num_blocks; i0 += pairs_per_launch) {
        const int64_t n = put_pairs(a.payload, np, args, i0, pairs_per_launch);
        a.num_pairs = static_cast<int32_t>(n);
        a.num_tiles = static_cast<int32_t>(n * tiles_per_pair);
        const cudaError_t e = launch_tile_copy(a, cfg.max_ctas, stream);
        if (e != cudaSuccess) return cuda_fail(e, "tiled copy kernel launch");
        ++stats->launches;
        stats->runs += a.num_tiles;
      }
    }
  }
  return KVX_OK;
}

// Whether a side keeps consecutive tokens of a unit closer than the next
// unit of its row.
bool tokens_closer(const CopySide& c) {
  const int64_t next_unit = c.group_units == 1 ? c.dim_outer_stride : c.unit_stride;
  return c.token_stride < next_unit;
}

// Whether plane `kv` can move as squares (BlockCopyLaunch::transpose): 2- or
// 4-byte elements, one side along the tokens (token stride = one element,
// vLLM's legacy value), the other along the head dim, neither split in
// groups, whole squares in a block and a row, every unit 16-byte aligned.
// *src_tokens: the source is the side along the tokens.
bool squares_fit(const kvx_layout_t& s, const kvx_layout_t& d, int kv, const BlockGeometry& g, int32_t* src_tokens) {
  const int64_t elem = g.elem_bytes;
  if (s.dtype == KVX_DTYPE_INT4 || (elem != 2 && elem != 4)) return false;
  const int64_t n = 16 / elem;
  if (g.block_tokens % n != 0 || (g.row_bytes[kv] / elem) % n != 0) return false;
  const PlaneSide ps = plane_side(s.plane[kv], s.dtype), pd = plane_side(d.plane[kv], d.dtype);
  if (ps.inner != 0 || pd.inner != 0) return false;
  auto along_tokens = [&](const PlaneSide& p) { return p.token == elem && p.dim != elem; };
  if (along_tokens(ps) && pd.dim == elem) *src_tokens = 1;
  else if (ps.dim == elem && along_tokens(pd)) *src_tokens = 0;
  else return false;
  // The token side steps along the head dim between a square's units, the
  // other side along the tokens.
  for (const PlaneSide& p : {ps, pd})
    if (!aligned(p.block, 16) || !aligned(p.head, 16) || !aligned(p.token == elem ? p.dim : p.token, 16)) return false;
  for (int64_t layer = 0; layer < g.num_layers; ++layer)
    if (!aligned(plane_base(s, layer, kv), 16) || !aligned(plane_base(d, layer, kv), 16)) return false;
  return true;
}

// Moves plane kinds kinds[0..n) through registers, one CTA a plane of a
// block: whole chunks, unit by unit where rows or units lie apart, or as
// squares where squares[kv] (src_tokens[kv]: see squares_fit).
kvx_status_t register_copy(const kvx_block_copy_args_t& args, const TransferConfig& cfg, const BlockGeometry& g,
                           const int* kinds, int n_kinds, const int32_t* squares, const int32_t* src_tokens,
                           TransferStats* stats) {
  const kvx_layout_t& s = *args.src;
  const kvx_layout_t& d = *args.dst;
  auto launch = std::make_unique<BlockCopyFull>();
  BlockCopyLaunch& a = launch->h;
  unsigned char* payload = launch->payload;
  a.num_kv = n_kinds;
  a.block_tokens = static_cast<int32_t>(g.block_tokens);
  a.num_heads = static_cast<int32_t>(g.num_heads);
  a.div_heads = fast_div(static_cast<uint32_t>(g.num_heads));
  a.div_tokens = fast_div(static_cast<uint32_t>(g.block_tokens));
  a.elem_bytes = static_cast<int32_t>(g.elem_bytes);
  int plain[2], n_plain = 0;
  for (int i = 0; i < n_kinds; ++i)
    if (!squares[kinds[i]]) plain[n_plain++] = kinds[i];
  a.unit_bytes = choose_unit(s, d, g, plain, n_plain);  // 16 where every kind moves as squares
  if (n_plain < n_kinds) {
    a.token_groups = static_cast<int32_t>(g.block_tokens * g.elem_bytes / 16);
    a.div_token_groups = fast_div(static_cast<uint32_t>(a.token_groups));
  }
  a.pieces = 1;
  // Units one CTA moves per item decide its width: one round of eight loads
  // in flight per thread (the copy kernel's depth), 64 to 256 threads.
  // Measured (bench/copy/copy_variants.cu, H100): 16 KiB blocks at 128
  // threads 93% of the copy ceiling, at 256 threads (half a round) 80%.
  int64_t units = 0;
  for (int i = 0; i < n_kinds; ++i) {
    const int kv = kinds[i];
    const int64_t elem = g.elem_bytes;
    a.src[i] = copy_side(plane_side(s.plane[kv], s.dtype), a.unit_bytes, elem);
    a.dst[i] = copy_side(plane_side(d.plane[kv], d.dtype), a.unit_bytes, elem);
    a.plane_bytes[i] = g.plane_bytes[kv];
    a.chunk[i] = g.move[kv] == PlaneMove::kChunk ? 1 : 0;
    a.row_units[i] = static_cast<int32_t>(g.row_bytes[kv] / a.unit_bytes);
    a.div_row[i] = fast_div(static_cast<uint32_t>(a.row_units[i]));
    a.tokens_fast[i] = g.block_tokens > 1 && (tokens_closer(a.src[i]) || tokens_closer(a.dst[i])) ? 1 : 0;
    if (squares[kv]) {
      a.transpose[i] = 1;
      a.src_tokens[i] = src_tokens[kv];
      a.tokens_fast[i] = 0;
    }
    if (a.chunk[i])
      a.pieces = std::max<int32_t>(a.pieces, static_cast<int32_t>((g.plane_bytes[kv] + kCopyPieceBytes - 1) / kCopyPieceBytes));
    units = std::max(units, (a.chunk[i] ? std::min(g.plane_bytes[kv], kCopyPieceBytes) : g.plane_bytes[kv]) / a.unit_bytes);
  }
  const int32_t threads = static_cast<int32_t>(std::clamp<int64_t>((units / 8 + 31) / 32 * 32, 64, 256));

  // The planes and pairs of one launch fill its payload: all planes when
  // they take at most half of it, else whole layers' worth.
  const int64_t total_planes = g.num_layers * n_kinds;
  const int64_t plane_cap = std::max<int64_t>(n_kinds, (kCopyPayloadBytes / 2 / 16) / n_kinds * n_kinds);
  const int64_t planes_per_launch = std::min(total_planes, plane_cap);
  auto stream = static_cast<cudaStream_t>(cfg.exec.stream);
  for (int64_t p0 = 0; p0 < total_planes; p0 += planes_per_launch) {
    const int64_t np = std::min(planes_per_launch, total_planes - p0);
    a.num_planes = static_cast<int32_t>(np);
    auto* src_base = reinterpret_cast<const std::byte**>(payload);
    auto* dst_base = reinterpret_cast<std::byte**>(payload + sizeof(void*) * np);
    for (int64_t p = 0; p < np; ++p) {
      const int64_t layer = (p0 + p) / n_kinds;
      const int kv = kinds[(p0 + p) % n_kinds];
      src_base[p] = plane_base(s, layer, kv);
      dst_base[p] = plane_base(d, layer, kv);
    }
    const int64_t pairs_per_launch =
        std::max<int64_t>(1, std::min<int64_t>((kCopyPayloadBytes - 16 * np) / 8, INT32_MAX / (np * a.pieces)));
    a.div_per_pair = fast_div(static_cast<uint32_t>(np * a.pieces));
    a.div_pieces = fast_div(static_cast<uint32_t>(a.pieces));
    for (int64_t i0 = 0; i0 < args.num_blocks; i0 += pairs_per_launch) {
      const int64_t n = put_pairs(payload, np, args, i0, pairs_per_launch);
      a.num_pairs = static_cast<int32_t>(n);
      const cudaError_t e = launch_block_copy(*launch, 16 * np + 8 * n, cfg.max_ctas, threads, stream);
      if (e != cudaSuccess) return cuda_fail(e, "block copy kernel launch");
      ++stats->launches;
      stats->runs += n * np * a.pieces;
    }
  }
  return KVX_OK;
}

}  // namespace

FastDiv fast_div(uint32_t d) {
  FastDiv f;
  while ((uint64_t{1} << f.shift) < d) ++f.shift;
  f.mul = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << f.shift) - d)) / d + 1);
  return f;
}

kvx_status_t copy_blocks(const kvx_block_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats) {
  CurrentDevice device(cfg.device_id);
  if (device.error() != cudaSuccess) return cuda_fail(device.error(), "cudaSetDevice");
  const kvx_layout_t& s = *args.src;
  const kvx_layout_t& d = *args.dst;
  const BlockGeometry g = block_geometry(s, d);
  if (cfg.engine == KVX_COPY_ENGINE_DMA) return dma_runs(block_copy_runs(args, g), cfg, stats);
  // Planes go through registers with no barrier where each side can take
  // pieces of at least 8 bytes along its head dim: whole chunks, head rows
  // contiguous on both sides (NHD <-> HND), vLLM's legacy key (16-byte
  // groups); a piece then goes straight from its load to its store. A
  // plane that must be transposed finer (vLLM's legacy value: tokens
  // contiguous) moves as squares transposed in registers where its 2- or
  // 4-byte elements and 16-byte alignment allow, in the same launch as the
  // other plane kind; otherwise through shared-memory tiles, read and
  // written along each side's contiguous axis.
  bool narrow[2] = {false, false};
  int32_t squares[2] = {0, 0}, src_tokens[2] = {0, 0};
  int wide[2], n_wide = 0;
  for (int kv = 0; kv < g.num_kv; ++kv) {
    narrow[kv] = g.move[kv] == PlaneMove::kElements && choose_unit(s, d, g, &kv, 1) < 8;
    if (narrow[kv]) squares[kv] = squares_fit(s, d, kv, g, &src_tokens[kv]) ? 1 : 0;
    else wide[n_wide++] = kv;
  }
  // Squares take 16-byte units, which the other kind's launch then shares.
  if (n_wide > 0 && choose_unit(s, d, g, wide, n_wide) < 16) squares[0] = squares[1] = 0;
  std::unique_ptr<TileLaunch> tiles[2];
  int kinds[2], n_kinds = 0;
  for (int kv = 0; kv < g.num_kv; ++kv) {
    if (narrow[kv] && !squares[kv]) {
      tiles[kv] = std::make_unique<TileLaunch>();
      if (!tile_plan(s, d, kv, g, tiles[kv].get())) tiles[kv].reset();  // the unit kernel serves it
    }
    if (!tiles[kv]) kinds[n_kinds++] = kv;
  }
  KVX_TRY(tile_copy(args, cfg, g, tiles, stats));
  if (n_kinds > 0) KVX_TRY(register_copy(args, cfg, g, kinds, n_kinds, squares, src_tokens, stats));
  stats->bytes = args.num_blocks * g.num_layers * g.block_bytes();
  return KVX_OK;
}

kvx_status_t copy_raw(const kvx_raw_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats) {
  CurrentDevice device(cfg.device_id);
  if (device.error() != cudaSuccess) return cuda_fail(device.error(), "cudaSetDevice");
  if (cfg.engine == KVX_COPY_ENGINE_DMA) {
    std::vector<CopyRun> runs;
    runs.reserve(static_cast<size_t>(args.num_copies));
    for (int64_t i = 0; i < args.num_copies; ++i) {
      const kvx_raw_copy_t& c = args.copies[i];
      if (c.bytes > 0)
        append_run(&runs, {static_cast<std::byte*>(c.dst), static_cast<const std::byte*>(c.src), c.bytes});
    }
    return dma_runs(runs, cfg, stats);
  }
  auto launch = std::make_unique<RawCopyLaunch>();
  RawCopyLaunch& a = *launch;
  auto stream = static_cast<cudaStream_t>(cfg.exec.stream);
  auto flush = [&]() -> kvx_status_t {
    if (a.num_runs == 0) return KVX_OK;
    const cudaError_t e = launch_raw_copy(a, cfg.max_ctas, stream);
    if (e != cudaSuccess) return cuda_fail(e, "raw copy kernel launch");
    ++stats->launches;
    stats->runs += a.num_runs;
    a.num_runs = 0;
    return KVX_OK;
  };
  for (int64_t i = 0; i < args.num_copies; ++i) {
    const kvx_raw_copy_t& c = args.copies[i];
    stats->bytes += static_cast<int64_t>(c.bytes);
    // Long copies are cut into pieces at multiples of kCopyPieceBytes, which
    // keeps each piece as aligned as the whole.
    for (uint64_t off = 0; off < c.bytes; off += kCopyPieceBytes) {
      if (a.num_runs == kRawRunsPerLaunch) KVX_TRY(flush());
      a.runs[a.num_runs++] = {static_cast<std::byte*>(c.dst) + off, static_cast<const std::byte*>(c.src) + off,
                              std::min<uint64_t>(kCopyPieceBytes, c.bytes - off)};
    }
  }
  return flush();
}

// ---------------------------------------------------------------- events --

kvx_status_t event_record(int32_t device_id, void* stream, void** out_event) {
  CurrentDevice device(device_id);
  if (device.error() != cudaSuccess) return cuda_fail(device.error(), "cudaSetDevice");
  cudaEvent_t e = nullptr;
  cudaError_t err = cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
  if (err != cudaSuccess) return cuda_fail(err, "cudaEventCreateWithFlags");
  err = cudaEventRecord(e, static_cast<cudaStream_t>(stream));
  if (err != cudaSuccess) {
    cudaEventDestroy(e);
    return cuda_fail(err, "cudaEventRecord");
  }
  *out_event = e;
  return KVX_OK;
}

kvx_status_t event_query(void* event, bool* out_done) {
  const cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (e == cudaErrorNotReady) {
    *out_done = false;
    return KVX_OK;
  }
  if (e != cudaSuccess) return cuda_fail(e, "cudaEventQuery");
  *out_done = true;
  return KVX_OK;
}

kvx_status_t event_synchronize(void* event) {
  const cudaError_t e = cudaEventSynchronize(static_cast<cudaEvent_t>(event));
  return e == cudaSuccess ? KVX_OK : cuda_fail(e, "cudaEventSynchronize");
}

kvx_status_t stream_wait_event(void* stream, void* event) {
  const cudaError_t e = cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0);
  return e == cudaSuccess ? KVX_OK : cuda_fail(e, "cudaStreamWaitEvent");
}

void event_destroy(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

}  // namespace kvx::cuda
