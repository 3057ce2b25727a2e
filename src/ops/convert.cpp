// kvx_convert_blocks: validation of the whole argument struct, then dispatch.
#include "ops/convert.hpp"

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

// The logical dims and dtype that must agree for a bit-for-bit copy.
kvx_status_t check_same_dims(const kvx_layout_t& s, const kvx_layout_t& d) {
  if (d.dtype != s.dtype)
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.dst.dtype: {} differs from args.src.dtype {} (convert copies bits)",
                dtype_name(d.dtype), dtype_name(s.dtype));
  const struct {
    const char* field;
    int64_t src, dst;
  } dims[] = {{"num_layers", s.num_layers, d.num_layers},
              {"num_kv", s.num_kv, d.num_kv},
              {"block_tokens", s.block_tokens, d.block_tokens},
              {"num_kv_heads", s.num_kv_heads, d.num_kv_heads}};
  for (const auto& dim : dims)
    if (dim.src != dim.dst)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst.{}: {} differs from args.src.{} {}",
                  dim.field, dim.dst, dim.field, dim.src);
  for (int kv = 0; kv < s.num_kv; ++kv)
    if (s.plane[kv].head_dim != d.plane[kv].head_dim)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "args.dst.plane[{}].head_dim: {} differs from args.src.plane[{}].head_dim {}", kv,
                  d.plane[kv].head_dim, kv, s.plane[kv].head_dim);
  return KVX_OK;
}

// The memory both layouts live in, as one kind for resolve_exec: pageable
// and pinned host memory mix (the CPU reads both); anything else must match.
kvx_status_t common_memory(const kvx_layout_t& s, const kvx_layout_t& d, kvx_memory_t* out) {
  auto on_host = [](kvx_memory_t m) {
    return m == KVX_MEMORY_HOST || m == KVX_MEMORY_CUDA_HOST_PINNED;
  };
  if (on_host(s.memory) && on_host(d.memory)) {
    *out = s.memory == d.memory ? s.memory : KVX_MEMORY_HOST;
    return KVX_OK;
  }
  if (s.memory != d.memory)
    return fail(KVX_ERR_UNSUPPORTED,
                "args.dst.memory: {} differs from args.src.memory {}; convert does not move data "
                "between memory "
                "kinds (copy the blocks across first)",
                static_cast<int>(d.memory), static_cast<int>(s.memory));
  if (s.device_id != d.device_id)
    return fail(KVX_ERR_UNSUPPORTED, "args.dst.device_id: {} differs from args.src.device_id {}",
                d.device_id, s.device_id);
  *out = s.memory;
  return KVX_OK;
}

kvx_status_t check_pointers_present(const kvx_layout_t& l, const char* name) {
  if (l.base_kind == KVX_BASE_STRIDED) {
    if (l.base == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.base: null", name);
    return KVX_OK;
  }
  if (l.ptrs == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.ptrs: null", name);
  for (int64_t i = 0; i < num_bases(l); ++i)
    if (l.ptrs[i] == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.ptrs[{}]: null", name, i);
  return KVX_OK;
}

// The byte range behind each base pointer of a layout.
struct Range {
  uintptr_t begin, end;
  bool is_dst;
};

void add_ranges(const kvx_layout_t& l, bool is_dst, std::vector<Range>* out) {
  for (int64_t i = 0; i < num_bases(l); ++i) {
    const auto p =
        reinterpret_cast<uintptr_t>(l.base_kind == KVX_BASE_STRIDED ? l.base : l.ptrs[i]);
    out->push_back({p, p + static_cast<uintptr_t>(base_span_bytes(l, i)), is_dst});
  }
}

// Converting in place would read bytes already overwritten, so source and
// destination memory must not meet at all (a sweep over sorted ranges).
kvx_status_t check_no_shared_memory(const kvx_layout_t& s, const kvx_layout_t& d) {
  std::vector<Range> ranges;
  add_ranges(s, false, &ranges);
  add_ranges(d, true, &ranges);
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  uintptr_t src_end = 0, dst_end = 0;
  for (const Range& r : ranges) {
    uintptr_t& own_end = r.is_dst ? dst_end : src_end;
    const uintptr_t other_end = r.is_dst ? src_end : dst_end;
    if (r.begin < other_end)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "args.dst: its memory overlaps args.src (in-place conversion is not supported: "
                  "the two layouts' "
                  "base pointers must address disjoint buffers)");
    own_end = std::max(own_end, r.end);
  }
  return KVX_OK;
}

kvx_status_t check_block_list(const int32_t* blocks, int64_t n, const kvx_layout_t& l,
                              const char* name) {
  for (int64_t i = 0; i < n; ++i) {
    if (blocks[i] < 0 || blocks[i] >= l.num_blocks)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: block {} not in [0, num_blocks = {})", name, i,
                  blocks[i], l.num_blocks);
    if (blocks[i] == l.null_block)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: block {} is the layout's null block", name, i,
                  blocks[i]);
  }
  return KVX_OK;
}

// Two copies into one destination block would race and leave either.
kvx_status_t check_distinct(const int32_t* blocks, int64_t n) {
  std::vector<std::pair<int32_t, int64_t>> sorted(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sorted[static_cast<size_t>(i)] = {blocks[i], i};
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 1; i < sorted.size(); ++i)
    if (sorted[i].first == sorted[i - 1].first)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "args.dst_blocks[{}]: block {} also appears at args.dst_blocks[{}]",
                  sorted[i].second, sorted[i].first, sorted[i - 1].second);
  return KVX_OK;
}

kvx_status_t validate(const kvx_convert_args_t* args, const kvx_exec_t* exec, ExecConfig* cfg) {
  KVX_TRY(check_args_header(args));
  KVX_TRY(validate_layout(args->src, "args.src"));
  KVX_TRY(validate_layout(args->dst, "args.dst"));
  const kvx_layout_t& s = *args->src;
  const kvx_layout_t& d = *args->dst;
  KVX_TRY(check_same_dims(s, d));
  kvx_memory_t memory{};
  KVX_TRY(common_memory(s, d, &memory));
  KVX_TRY(check_pointers_present(s, "args.src"));
  KVX_TRY(check_pointers_present(d, "args.dst"));
  KVX_TRY(check_no_shared_memory(s, d));

  const int64_t n = args->num_blocks;
  if (n < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.num_blocks: {} < 0", n);
  if (n > 0 && args->src_blocks == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.src_blocks: null with num_blocks {}", n);
  if (n > 0 && args->dst_blocks == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks: null with num_blocks {}", n);
  KVX_TRY(check_block_list(args->src_blocks, n, s, "args.src_blocks"));
  KVX_TRY(check_block_list(args->dst_blocks, n, d, "args.dst_blocks"));
  KVX_TRY(check_distinct(args->dst_blocks, n));
  return resolve_exec(exec, memory, cfg);
}

}  // namespace

kvx_status_t convert_blocks_supports(const kvx_convert_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  return validate(args, exec, &cfg);
}

kvx_status_t convert_blocks(const kvx_convert_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  KVX_TRY(validate(args, exec, &cfg));
  if (args->num_blocks == 0) return KVX_OK;
  return cfg.backend == KVX_BACKEND_CUDA ? cuda::convert_blocks(*args, cfg)
                                         : cpu::convert_blocks(*args, cfg);
}

}  // namespace kvx::ops
