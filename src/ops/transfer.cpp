// kvx_copy_blocks and kvx_copy_raw: validation of the whole argument struct,
// the engine choice (the AUTO plan), then dispatch. Nothing is copied until
// every check has passed.
#include "ops/transfer.hpp"

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "core/checked.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx {

// ---------------------------------------------------------------- geometry --

namespace {

// Whether a block's (token, head) rows of a plane fill one dense chunk, with
// tokens outermost (NHD) or heads outermost (HND).
bool dense_rows(const kvx_layout_t& l, const kvx_plane_t& p, int64_t row, bool tokens_outer) {
  const int64_t outer_n = tokens_outer ? l.block_tokens : l.num_kv_heads;
  const int64_t inner_n = tokens_outer ? l.num_kv_heads : l.block_tokens;
  const int64_t outer_s = tokens_outer ? p.token_stride_bytes : p.head_stride_bytes;
  const int64_t inner_s = tokens_outer ? p.head_stride_bytes : p.token_stride_bytes;
  return (inner_n == 1 || inner_s == row) && (outer_n == 1 || outer_s == inner_n * row);
}

}  // namespace

BlockGeometry block_geometry(const kvx_layout_t& s, const kvx_layout_t& d) {
  BlockGeometry g;
  g.num_kv = static_cast<int32_t>(s.num_kv);
  g.num_layers = s.num_layers;
  g.block_tokens = s.block_tokens;
  g.num_heads = s.num_kv_heads;
  g.elem_bytes = dtype_bytes(s.dtype);
  for (int kv = 0; kv < g.num_kv; ++kv) {
    const int64_t row = s.plane[kv].head_dim * dtype_bits(s.dtype) / 8;
    g.row_bytes[kv] = row;
    g.plane_bytes[kv] = row * s.block_tokens * s.num_kv_heads;
    const bool rows = plane_dim_contiguous(s, kv) && plane_dim_contiguous(d, kv);
    bool chunk = false;
    for (bool tokens_outer : {true, false})
      chunk = chunk || (dense_rows(s, s.plane[kv], row, tokens_outer) && dense_rows(d, d.plane[kv], row, tokens_outer));
    g.move[kv] = !rows ? PlaneMove::kElements : chunk ? PlaneMove::kChunk : PlaneMove::kRows;
  }
  return g;
}

int64_t BlockGeometry::block_bytes() const { return plane_bytes[0] + (num_kv == 2 ? plane_bytes[1] : 0); }

int64_t BlockGeometry::run_bytes(int kv) const {
  switch (move[kv]) {
    case PlaneMove::kChunk: return plane_bytes[kv];
    case PlaneMove::kRows: return row_bytes[kv];
    default: return elem_bytes;
  }
}

int64_t BlockGeometry::mean_run_bytes() const {
  int64_t runs = 0;
  for (int kv = 0; kv < num_kv; ++kv) runs += plane_bytes[kv] / run_bytes(kv);
  return block_bytes() / std::max<int64_t>(runs, 1);
}

bool BlockGeometry::rows_contiguous() const {
  for (int kv = 0; kv < num_kv; ++kv)
    if (move[kv] == PlaneMove::kElements) return false;
  return true;
}

void append_run(std::vector<CopyRun>* runs, const CopyRun& run) {
  if (!runs->empty()) {
    CopyRun& last = runs->back();
    if (last.src + last.bytes == run.src && last.dst + last.bytes == run.dst) {
      last.bytes += run.bytes;
      return;
    }
  }
  runs->push_back(run);
}

std::vector<CopyRun> block_copy_runs(const kvx_block_copy_args_t& a, const BlockGeometry& g) {
  const kvx_layout_t& s = *a.src;
  const kvx_layout_t& d = *a.dst;
  std::vector<CopyRun> runs;
  for (int64_t i = 0; i < a.num_blocks; ++i)
    for (int64_t layer = 0; layer < g.num_layers; ++layer)
      for (int kv = 0; kv < g.num_kv; ++kv) {
        if (g.move[kv] == PlaneMove::kChunk) {
          append_run(&runs, {row_address(d, layer, kv, a.dst_blocks[i], 0, 0),
                             row_address(s, layer, kv, a.src_blocks[i], 0, 0),
                             static_cast<uint64_t>(g.plane_bytes[kv])});
          continue;
        }
        for (int64_t t = 0; t < g.block_tokens; ++t)
          for (int64_t h = 0; h < g.num_heads; ++h)
            append_run(&runs, {row_address(d, layer, kv, a.dst_blocks[i], t, h),
                               row_address(s, layer, kv, a.src_blocks[i], t, h),
                               static_cast<uint64_t>(g.row_bytes[kv])});
      }
  return runs;
}

namespace ops {
namespace {

// ------------------------------------------------------------ shared checks --

bool device_side(kvx_memory_t m) { return m == KVX_MEMORY_CUDA_DEVICE || m == KVX_MEMORY_CUDA_MANAGED; }

kvx_transfer_direction_t direction_of(kvx_memory_t src, kvx_memory_t dst) {
  if (device_side(src)) return device_side(dst) ? KVX_TRANSFER_D2D : KVX_TRANSFER_D2H;
  return device_side(dst) ? KVX_TRANSFER_H2D : KVX_TRANSFER_H2H;
}

const char* direction_name(kvx_transfer_direction_t d) {
  static const char* const names[] = {"D2D", "H2D", "D2H", "H2H"};
  return names[d];
}

kvx_status_t check_plan(const kvx_transfer_plan_t* plan, const char* name) {
  if (plan == nullptr) return KVX_OK;
  KVX_TRY(check_abi_header(plan->struct_size, plan->version, sizeof(kvx_transfer_plan_t), name));
  KVX_TRY(check_reserved(plan->reserved, 4, fmt::format("{}.reserved", name).c_str()));
  for (int i = 0; i < KVX_TRANSFER_NUM_DIRECTIONS; ++i)
    if (plan->dma_min_run_bytes[i] < 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}.dma_min_run_bytes[{}]: {} < 0", name, i, plan->dma_min_run_bytes[i]);
  return KVX_OK;
}

kvx_status_t check_report(const kvx_transfer_report_t* report) {
  if (report == nullptr) return KVX_OK;
  return check_abi_header(report->struct_size, report->version, sizeof(kvx_transfer_report_t), "args.report");
}

void write_report(kvx_transfer_report_t* report, const TransferConfig& cfg, const TransferStats& stats) {
  if (report == nullptr) return;
  const uint32_t size = report->struct_size, version = report->version;
  *report = kvx_transfer_report_t{};
  report->struct_size = size;
  report->version = version;
  report->engine = cfg.engine;
  report->dma_path = stats.dma_path;
  report->direction = cfg.direction;
  report->bytes = stats.bytes;
  report->runs = stats.runs;
  report->launches = stats.launches;
}

// The engine-independent options of both args structs.
struct EngineRequest {
  kvx_copy_engine_t engine;
  kvx_dma_mode_t dma_mode;
  int32_t max_ctas;
  const kvx_transfer_plan_t* plan;
};

kvx_status_t check_request(const EngineRequest& r) {
  if (r.engine < KVX_COPY_ENGINE_AUTO || r.engine > KVX_COPY_ENGINE_DMA)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.engine: unknown value {}", static_cast<int>(r.engine));
  if (r.dma_mode < KVX_DMA_BATCHED_WITH_FALLBACK || r.dma_mode > KVX_DMA_BATCHED_ONLY)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.dma_mode: unknown value {}", static_cast<int>(r.dma_mode));
  if (r.max_ctas < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.max_ctas: {} < 0", r.max_ctas);
  return check_plan(r.plan, "args.plan");
}

// Picks the engine for memory kinds `src`/`dst` (device ids already checked
// to agree), the mean contiguous run, and whether the DMA engine can serve
// the copy at all.
kvx_status_t resolve_engine(const EngineRequest& r, const kvx_exec_t* exec, kvx_memory_t src, kvx_memory_t dst,
                            int32_t device_id, int64_t mean_run, bool dma_possible, TransferConfig* out) {
  TransferConfig cfg;
  cfg.direction = direction_of(src, dst);
  cfg.dma_mode = r.dma_mode;
  cfg.max_ctas = r.max_ctas;
  cfg.device_id = device_id;
  kvx_copy_engine_t engine = r.engine;
  // resolve_exec chooses a backend by one memory kind: the one that most
  // constrains it (device memory needs CUDA, pageable memory the CPU).
  kvx_memory_t decisive = KVX_MEMORY_CUDA_HOST_PINNED;
  if (engine == KVX_COPY_ENGINE_CPU || src == KVX_MEMORY_HOST || dst == KVX_MEMORY_HOST) decisive = KVX_MEMORY_HOST;
  if (engine == KVX_COPY_ENGINE_SM_KERNEL || engine == KVX_COPY_ENGINE_DMA || device_side(src) || device_side(dst))
    decisive = KVX_MEMORY_CUDA_DEVICE;
  if (engine == KVX_COPY_ENGINE_CPU && decisive == KVX_MEMORY_CUDA_DEVICE)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.engine: the CPU engine cannot reach CUDA device memory ({} copy)",
                direction_name(cfg.direction));
  if (decisive == KVX_MEMORY_CUDA_DEVICE && (src == KVX_MEMORY_HOST || dst == KVX_MEMORY_HOST))
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.{}.memory: pageable host memory cannot take part in a GPU copy (use pinned memory)",
                src == KVX_MEMORY_HOST ? "src" : "dst");
  KVX_TRY(resolve_exec(exec, decisive, &cfg.exec));
  if (engine == KVX_COPY_ENGINE_AUTO) {
    if (cfg.exec.backend == KVX_BACKEND_CPU) {
      engine = KVX_COPY_ENGINE_CPU;
    } else {
      kvx_transfer_plan_t plan = KVX_TRANSFER_PLAN_INIT;
      KVX_TRY(transfer_plan_default(&plan));
      if (r.plan != nullptr) plan = *r.plan;
      engine = dma_possible && mean_run >= plan.dma_min_run_bytes[cfg.direction] ? KVX_COPY_ENGINE_DMA
                                                                                : KVX_COPY_ENGINE_SM_KERNEL;
    }
  }
  if (engine == KVX_COPY_ENGINE_CPU && cfg.exec.backend != KVX_BACKEND_CPU)
    return fail(KVX_ERR_INVALID_ARGUMENT, "exec.backend: CUDA with args.engine CPU");
  if (engine != KVX_COPY_ENGINE_CPU && cfg.exec.backend != KVX_BACKEND_CUDA)
    return fail(KVX_ERR_INVALID_ARGUMENT, "exec.backend: CPU with a GPU args.engine");
  if (engine == KVX_COPY_ENGINE_DMA) {
    if (!dma_possible)
      return fail(KVX_ERR_UNSUPPORTED,
                  "args.engine: the DMA engine copies contiguous rows; a head dim that is split or strided on "
                  "either side (vLLM's legacy layout) needs the SM kernel");
    if (r.dma_mode == KVX_DMA_BATCHED_ONLY && cfg.exec.stream == nullptr)
      return fail(KVX_ERR_UNSUPPORTED,
                  "exec.stream: cudaMemcpyBatchAsync refuses the legacy default stream; pass a stream or a "
                  "mode with fallback");
  }
  cfg.engine = engine;
  *out = cfg;
  return KVX_OK;
}

// ------------------------------------------------------------ block copies --

kvx_status_t check_same_geometry(const kvx_layout_t& s, const kvx_layout_t& d) {
  if (s.dtype != d.dtype)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst.dtype: {} (args.src.dtype is {}; a copy moves bits)",
                dtype_name(d.dtype), dtype_name(s.dtype));
  const int64_t sv[] = {s.num_layers, s.num_kv, s.block_tokens, s.num_kv_heads, s.plane[0].head_dim,
                        s.num_kv == 2 ? s.plane[1].head_dim : 0};
  const int64_t dv[] = {d.num_layers, d.num_kv, d.block_tokens, d.num_kv_heads, d.plane[0].head_dim,
                        d.num_kv == 2 ? d.plane[1].head_dim : 0};
  static const char* const fields[] = {"num_layers",        "num_kv",           "block_tokens",
                                       "num_kv_heads",      "plane[0].head_dim", "plane[1].head_dim"};
  for (int i = 0; i < 6; ++i)
    if (sv[i] != dv[i])
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst.{}: {} (args.src has {})", fields[i], dv[i], sv[i]);
  return KVX_OK;
}

int64_t base_count(const kvx_layout_t& l) {
  return l.base_kind == KVX_BASE_STRIDED ? 1 : l.base_kind == KVX_BASE_LAYER_PTRS ? l.num_layers : l.num_layers * l.num_kv;
}

const void* base_at(const kvx_layout_t& l, int64_t i) { return l.base_kind == KVX_BASE_STRIDED ? l.base : l.ptrs[i]; }

kvx_status_t check_bases(const kvx_layout_t& l, const char* name) {
  if (l.base_kind != KVX_BASE_STRIDED && l.ptrs == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.ptrs: null", name);
  for (int64_t i = 0; i < base_count(l); ++i)
    if (base_at(l, i) == nullptr)
      return l.base_kind == KVX_BASE_STRIDED ? fail(KVX_ERR_INVALID_ARGUMENT, "{}.base: null", name)
                                             : fail(KVX_ERR_INVALID_ARGUMENT, "{}.ptrs[{}]: null", name, i);
  return KVX_OK;
}

// Two descriptors of one pool: equal fields and equal base pointers.
bool same_pool(const kvx_layout_t& s, const kvx_layout_t& d) {
  kvx_layout_t a = s, b = d;
  a.ptrs = b.ptrs = nullptr;
  if (std::memcmp(&a, &b, sizeof a) != 0) return false;
  for (int64_t i = 0; i < base_count(s); ++i)
    if (base_at(s, i) != base_at(d, i)) return false;
  return true;
}

// Whether any byte range behind `s` meets one behind `d` (spans are
// supersets of what the layouts address, which is all this needs).
bool pools_meet(const kvx_layout_t& s, const kvx_layout_t& d) {
  const auto ss = static_cast<uintptr_t>(layout_span_bytes(s)), ds = static_cast<uintptr_t>(layout_span_bytes(d));
  for (int64_t i = 0; i < base_count(s); ++i)
    for (int64_t j = 0; j < base_count(d); ++j) {
      const auto a = reinterpret_cast<uintptr_t>(base_at(s, i)), b = reinterpret_cast<uintptr_t>(base_at(d, j));
      if (a < b + ds && b < a + ss) return true;
    }
  return false;
}

// Block ids in [0, num_blocks) and not the null block: one pass without
// branches (the compiler vectorises it), the offending index looked up only
// after a failure.
kvx_status_t check_blocks(const int32_t* blocks, int64_t n, const kvx_layout_t& l, const char* name) {
  // Negative ids wrap past 2^31, above every valid id; a null block outside
  // [0, 2^31) equals no id that passes the range test.
  const auto limit = static_cast<uint32_t>(std::min<int64_t>(l.num_blocks, int64_t{1} << 31));
  const auto null = static_cast<uint32_t>(l.null_block >= 0 && l.null_block < limit ? l.null_block : limit);
  const auto* ids = reinterpret_cast<const uint32_t*>(blocks);
  auto is_bad = [limit, null](uint32_t id) { return static_cast<uint32_t>(id >= limit) | static_cast<uint32_t>(id == null); };
  uint32_t bad = 0;
  // Fixed-length chunks: -O2's cheap vectoriser takes only known trip counts.
  constexpr int64_t kChunk = 64;
  int64_t i = 0;
  for (; i + kChunk <= n; i += kChunk)
    for (int64_t j = 0; j < kChunk; ++j) bad |= is_bad(ids[i + j]);
  for (; i < n; ++i) bad |= is_bad(ids[i]);
  if (bad == 0) return KVX_OK;
  for (i = 0; i < n; ++i) {
    if (blocks[i] < 0 || blocks[i] >= l.num_blocks)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: block {} is outside [0, {})", name, i, blocks[i], l.num_blocks);
    if (blocks[i] == l.null_block)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: block {} is the null block", name, i, blocks[i]);
  }
  return KVX_OK;
}

// Whether the pairs are free of hazards: destinations distinct and, within
// one pool, no source among them. Ids are checked (in [0, 2^31)) before.
// Two ways, both one pass over the pairs with no sort (the sort of 16k pairs
// took longer than their copy), scratch kept per thread between calls:
// - a byte per block of the destination pool while the pool has at most
//   16 blocks a pair (plus 64k): clearing the map costs less than hashing,
//   and the scratch stays within twice the pair lists' own bytes; bytes
//   rather than bits, as a bit's read-modify-write doubled the cost of a
//   pair (bench/copy/host_cost.cpp);
// - else a hash set of the destinations, 2-4 slots a pair (a large host
//   tier and a short list).
bool hazard_free_marked(const int32_t* src, const int32_t* dst, int64_t n, bool one_pool, int64_t num_blocks) {
  thread_local std::vector<uint8_t> written;
  written.assign(static_cast<size_t>(num_blocks), 0);
  uint32_t seen = 0;
  for (int64_t i = 0; i < n; ++i) {
    seen |= written[static_cast<size_t>(dst[i])];
    written[static_cast<size_t>(dst[i])] = 1;
  }
  if (one_pool)
    for (int64_t i = 0; i < n; ++i) seen |= written[static_cast<size_t>(src[i])];
  return seen == 0;
}

bool hazard_free_hashed(const int32_t* src, const int32_t* dst, int64_t n, bool one_pool) {
  constexpr uint32_t kEmpty = ~0u;
  thread_local std::vector<uint32_t> slots;
  int shift = 6;
  while ((int64_t{1} << shift) < 2 * n) ++shift;
  const uint32_t mask = (uint32_t{1} << shift) - 1;
  slots.assign(size_t{1} << shift, kEmpty);
  // Fibonacci hashing: the top bits of id * 2^64 / phi spread runs of ids.
  auto home = [shift](uint32_t id) { return static_cast<uint32_t>((id * 0x9E3779B97F4A7C15ull) >> (64 - shift)); };
  for (int64_t i = 0; i < n; ++i) {
    const auto id = static_cast<uint32_t>(dst[i]);
    uint32_t k = home(id);
    while (slots[k] != kEmpty) {
      if (slots[k] == id) return false;
      k = (k + 1) & mask;
    }
    slots[k] = id;
  }
  if (one_pool)
    for (int64_t i = 0; i < n; ++i) {
      const auto id = static_cast<uint32_t>(src[i]);
      for (uint32_t k = home(id); slots[k] != kEmpty; k = (k + 1) & mask)
        if (slots[k] == id) return false;
    }
  return true;
}

bool hazard_free(const int32_t* src, const int32_t* dst, int64_t n, bool one_pool, int64_t num_blocks) {
  return num_blocks <= 16 * n + 65536 ? hazard_free_marked(src, dst, n, one_pool, num_blocks)
                                     : hazard_free_hashed(src, dst, n, one_pool);
}

// Destinations distinct; within one pool, no block both read and written
// (the pairs run in parallel, so either order could win).
kvx_status_t check_block_hazards(const int32_t* src, const int32_t* dst, int64_t n, bool one_pool, int64_t num_blocks) {
  if (hazard_free(src, dst, n, one_pool, num_blocks)) return KVX_OK;
  // A hazard: the sort finds the pair to name.
  std::vector<std::pair<int32_t, int64_t>> seen;  // (block, index << 1 | is_src)
  seen.reserve(static_cast<size_t>(n) * (one_pool ? 2 : 1));
  for (int64_t i = 0; i < n; ++i) {
    seen.push_back({dst[i], i << 1});
    if (one_pool) seen.push_back({src[i], i << 1 | 1});
  }
  std::sort(seen.begin(), seen.end());
  for (size_t k = 1; k < seen.size(); ++k) {
    const auto& [block, tag] = seen[k];
    const auto& [prev_block, prev_tag] = seen[k - 1];
    if (block != prev_block || ((tag & 1) && (prev_tag & 1))) continue;  // two reads are fine
    if (!(tag & 1) && !(prev_tag & 1))
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks[{}]: block {} is also args.dst_blocks[{}]", tag >> 1,
                  block, prev_tag >> 1);
    const int64_t d = (tag & 1) ? prev_tag >> 1 : tag >> 1, s = (tag & 1) ? tag >> 1 : prev_tag >> 1;
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.dst_blocks[{}]: block {} is also read (args.src_blocks[{}]) in the same pool", d, block, s);
  }
  return KVX_OK;
}

kvx_status_t check_devices(kvx_memory_t sm, int32_t sdev, kvx_memory_t dm, int32_t ddev, int32_t* out) {
  if (device_side(sm) && device_side(dm) && sdev != ddev)
    return fail(KVX_ERR_UNSUPPORTED, "args.dst.device_id: {} differs from args.src.device_id {} (peer copies)", ddev,
                sdev);
  *out = device_side(sm) ? sdev : device_side(dm) ? ddev : 0;
  return KVX_OK;
}

}  // namespace

kvx_status_t transfer_plan_default(kvx_transfer_plan_t* out) {
  if (out == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
  KVX_TRY(check_abi_header(out->struct_size, out->version, sizeof(kvx_transfer_plan_t), "out"));
  const uint32_t size = out->struct_size, version = out->version;
  *out = kvx_transfer_plan_t{};
  out->struct_size = size;
  out->version = version;
  // Measured on the H100 (docs/perf-notes.md, "Transfers"): device-to-device
  // copy engines stay under 15 GB/s on scattered blocks while the SM kernel
  // runs near the memory ceiling, so D2D never takes them; across PCIe the
  // SM kernel holds ~50 GB/s at every block size and the copy engines only
  // pass it on long contiguous runs (and then leave the SMs to compute).
  out->dma_min_run_bytes[KVX_TRANSFER_D2D] = INT64_MAX;
  out->dma_min_run_bytes[KVX_TRANSFER_H2D] = int64_t{2} << 20;
  out->dma_min_run_bytes[KVX_TRANSFER_D2H] = int64_t{2} << 20;
  out->dma_min_run_bytes[KVX_TRANSFER_H2H] = INT64_MAX;
  return KVX_OK;
}

kvx_status_t validate_block_copy(const kvx_block_copy_args_t* args, const kvx_exec_t* exec, TransferConfig* cfg) {
  KVX_TRY(check_args_header(args));
  if (args->reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.reserved0: must be zero");
  KVX_TRY(check_report(args->report));
  if (args->src == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.src: null");
  if (args->dst == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst: null");
  KVX_TRY(validate_layout(args->src, "args.src"));
  KVX_TRY(validate_layout(args->dst, "args.dst"));
  const kvx_layout_t& s = *args->src;
  const kvx_layout_t& d = *args->dst;
  KVX_TRY(check_same_geometry(s, d));
  KVX_TRY(check_bases(s, "args.src"));
  KVX_TRY(check_bases(d, "args.dst"));
  const int64_t n = args->num_blocks;
  if (n < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.num_blocks: {} < 0", n);
  if (n > 0 && args->src_blocks == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.src_blocks: null");
  if (n > 0 && args->dst_blocks == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks: null");
  KVX_TRY(check_blocks(args->src_blocks, n, s, "args.src_blocks"));
  KVX_TRY(check_blocks(args->dst_blocks, n, d, "args.dst_blocks"));
  const bool one_pool = same_pool(s, d);
  if (!one_pool && pools_meet(s, d))
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.dst: its memory overlaps args.src's, and the two are not one pool (a copy within a pool "
                "passes the same descriptor twice)");
  KVX_TRY(check_block_hazards(args->src_blocks, args->dst_blocks, n, one_pool, d.num_blocks));
  int32_t device = 0;
  KVX_TRY(check_devices(s.memory, s.device_id, d.memory, d.device_id, &device));
  KVX_TRY(check_request({args->engine, args->dma_mode, args->max_ctas, args->plan}));
  const BlockGeometry g = block_geometry(s, d);
  return resolve_engine({args->engine, args->dma_mode, args->max_ctas, args->plan}, exec, s.memory, d.memory, device,
                        g.mean_run_bytes(), g.rows_contiguous(), cfg);
}

kvx_status_t run_block_copy(const kvx_block_copy_args_t& args, const TransferConfig& cfg) {
  TransferStats stats;
  if (args.num_blocks > 0) {
    switch (cfg.engine) {
      case KVX_COPY_ENGINE_CPU: KVX_TRY(cpu::copy_blocks(args, cfg, &stats)); break;
      default: KVX_TRY(cuda::copy_blocks(args, cfg, &stats)); break;
    }
  }
  write_report(args.report, cfg, stats);
  return KVX_OK;
}

kvx_status_t copy_blocks(const kvx_block_copy_args_t* args, const kvx_exec_t* exec, bool run) {
  TransferConfig cfg;
  KVX_TRY(validate_block_copy(args, exec, &cfg));
  if (!run) {
    write_report(args->report, cfg, {});
    return KVX_OK;
  }
  return run_block_copy(*args, cfg);
}

// -------------------------------------------------------------- raw copies --

namespace {

kvx_status_t check_region(const kvx_region_t& r, const char* name) {
  if (r.memory < KVX_MEMORY_HOST || r.memory > KVX_MEMORY_CUDA_MANAGED)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.memory: unknown value {}", name, static_cast<int>(r.memory));
  if (r.device_id < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.device_id: {} < 0", name, r.device_id);
  if (r.bytes > 0 && r.base == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.base: null with {} bytes", name, r.bytes);
  if (reinterpret_cast<uintptr_t>(r.base) > UINTPTR_MAX - r.bytes)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.bytes: {} runs past the end of the address space", name, r.bytes);
  return KVX_OK;
}

bool inside(const void* p, uint64_t bytes, const kvx_region_t& r) {
  const auto a = reinterpret_cast<uintptr_t>(p), base = reinterpret_cast<uintptr_t>(r.base);
  return a >= base && a - base <= r.bytes && bytes <= r.bytes - (a - base);
}

struct Span {
  uintptr_t begin, end;
  int64_t index;
  bool is_dst;
};

// Destinations meet neither one another nor any source: a sweep over the
// spans sorted by start, tracking the furthest end of each kind seen so far.
kvx_status_t check_raw_overlaps(const kvx_raw_copy_t* c, int64_t n, bool same_region_kind) {
  std::vector<Span> spans;
  spans.reserve(static_cast<size_t>(n) * 2);
  for (int64_t i = 0; i < n; ++i) {
    if (c[i].bytes == 0) continue;
    const auto d = reinterpret_cast<uintptr_t>(c[i].dst), s = reinterpret_cast<uintptr_t>(c[i].src);
    spans.push_back({d, d + c[i].bytes, i, true});
    if (same_region_kind) spans.push_back({s, s + c[i].bytes, i, false});
  }
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin; });
  Span last_dst{0, 0, -1, true}, last_any{0, 0, -1, false};
  for (const Span& sp : spans) {
    if (sp.is_dst && sp.begin < last_dst.end)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].dst: overlaps the destination of args.copies[{}]", sp.index,
                  last_dst.index);
    if (sp.is_dst && sp.begin < last_any.end && !last_any.is_dst)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].dst: overlaps the source of args.copies[{}]", sp.index,
                  last_any.index);
    if (!sp.is_dst && sp.begin < last_dst.end)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].dst: overlaps the source of args.copies[{}]",
                  last_dst.index, sp.index);
    if (sp.is_dst && sp.end > last_dst.end) last_dst = sp;
    if (!sp.is_dst && sp.end > last_any.end) last_any = sp;
  }
  return KVX_OK;
}

kvx_status_t validate_raw(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec, TransferConfig* cfg) {
  KVX_TRY(check_args_header(args));
  KVX_TRY(check_report(args->report));
  KVX_TRY(check_region(args->src_pool, "args.src_pool"));
  KVX_TRY(check_region(args->dst_pool, "args.dst_pool"));
  const uint32_t e = args->elem_bytes;
  if (e != 1 && e != 2 && e != 4 && e != 8 && e != 16)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.elem_bytes: {} (1, 2, 4, 8 or 16)", e);
  const int64_t n = args->num_copies;
  if (n < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.num_copies: {} < 0", n);
  if (n > 0 && args->copies == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies: null");
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    const kvx_raw_copy_t& c = args->copies[i];
    if (c.bytes % e != 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].bytes: {} is not a multiple of elem_bytes {}", i, c.bytes, e);
    if (c.bytes == 0) continue;
    if (c.src == nullptr || c.dst == nullptr)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].{}: null", i, c.src == nullptr ? "src" : "dst");
    if (reinterpret_cast<uintptr_t>(c.src) % e != 0 || reinterpret_cast<uintptr_t>(c.dst) % e != 0)
      return fail(KVX_ERR_MISALIGNED, "args.copies[{}].{}: not aligned to elem_bytes {}", i,
                  reinterpret_cast<uintptr_t>(c.src) % e != 0 ? "src" : "dst", e);
    if (!inside(c.src, c.bytes, args->src_pool))
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].src: [{}, +{}) is outside args.src_pool", i, c.src, c.bytes);
    if (!inside(c.dst, c.bytes, args->dst_pool))
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.copies[{}].dst: [{}, +{}) is outside args.dst_pool", i, c.dst, c.bytes);
    total += static_cast<int64_t>(c.bytes);
  }
  // Sources can meet destinations only if the two regions meet.
  const kvx_region_t& sr = args->src_pool;
  const kvx_region_t& dr = args->dst_pool;
  const auto sb = reinterpret_cast<uintptr_t>(sr.base), db = reinterpret_cast<uintptr_t>(dr.base);
  KVX_TRY(check_raw_overlaps(args->copies, n, sb < db + dr.bytes && db < sb + sr.bytes));
  int32_t device = 0;
  KVX_TRY(check_devices(sr.memory, sr.device_id, dr.memory, dr.device_id, &device));
  const EngineRequest req{args->engine, args->dma_mode, args->max_ctas, args->plan};
  KVX_TRY(check_request(req));
  return resolve_engine(req, exec, sr.memory, dr.memory, device, n > 0 ? total / n : 0, true, cfg);
}

}  // namespace

kvx_status_t copy_raw(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec, bool run) {
  TransferConfig cfg;
  KVX_TRY(validate_raw(args, exec, &cfg));
  TransferStats stats;
  if (run && args->num_copies > 0) {
    switch (cfg.engine) {
      case KVX_COPY_ENGINE_CPU: KVX_TRY(cpu::copy_raw(*args, cfg, &stats)); break;
      default: KVX_TRY(cuda::copy_raw(*args, cfg, &stats)); break;
    }
  }
  write_report(args->report, cfg, stats);
  return KVX_OK;
}

}  // namespace ops
}  // namespace kvx
