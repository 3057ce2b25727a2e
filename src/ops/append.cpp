// kvx_append: validation of the whole argument struct, then dispatch.
#include <algorithm>
#include <utility>
#include <vector>

#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

// Two rows aimed at one slot would race (and the result would depend on the
// backend's order), so they are refused. `targets` holds (slot, row).
kvx_status_t check_distinct_slots(std::vector<std::pair<int64_t, int64_t>>& targets, const char* field) {
  std::sort(targets.begin(), targets.end());
  for (size_t i = 1; i < targets.size(); ++i)
    if (targets[i].first == targets[i - 1].first)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: slot {} is also the target of row {}", field,
                  targets[i].second, targets[i].first, targets[i - 1].second);
  return KVX_OK;
}

kvx_status_t check_slot_mapping(const kvx_append_args_t& a, int64_t n) {
  const kvx_layout_t& c = *a.cache;
  if (!host_checkable(c.memory)) return KVX_OK;  // device slots are the caller's promise
  const int64_t capacity = c.num_blocks * c.block_tokens;  // cannot overflow: validate_layout bounds it
  std::vector<std::pair<int64_t, int64_t>> targets;
  targets.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = a.slot_mapping[i];
    if (slot < 0) continue;
    if (slot >= capacity)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.slot_mapping[{}]: slot {} is outside the cache ({} slots)", i,
                  slot, capacity);
    if (slot / c.block_tokens == c.null_block)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.slot_mapping[{}]: slot {} lies in the null block {}", i, slot,
                  c.null_block);
    targets.emplace_back(slot, i);
  }
  return check_distinct_slots(targets, "args.slot_mapping");
}

kvx_status_t check_positions(const kvx_append_args_t& a, int64_t n) {
  const kvx_layout_t& c = *a.cache;
  KVX_TRY(validate_page_table(a.page_table, c, "args.page_table"));
  if (!host_checkable(a.page_table->memory)) return KVX_OK;
  const PageTableView table(*a.page_table, c.block_tokens);
  std::vector<std::pair<int64_t, int64_t>> targets;
  targets.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t b = a.batch_indices[i];
    if (b < 0 || b >= table.num_seqs())
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.batch_indices[{}]: {} is outside [0, {})", i, b,
                  table.num_seqs());
    const int64_t pos = a.positions[i];
    if (pos < 0 || pos >= table.seq_len(b))
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.positions[{}]: {} is outside sequence {} of length {}", i, pos,
                  b, table.seq_len(b));
    const int64_t block = table.block(b, pos / c.block_tokens);
    targets.emplace_back(block * c.block_tokens + pos % c.block_tokens, i);
  }
  return check_distinct_slots(targets, "args.positions");
}

kvx_status_t validate(const kvx_append_args_t* args, const kvx_exec_t* exec, ExecConfig* cfg) {
  KVX_TRY(check_args_header(args));
  KVX_TRY(check_cache(args->cache, args->layer));
  const kvx_layout_t& c = *args->cache;
  KVX_TRY(check_tensor(args->k, {.num_heads = c.num_kv_heads, .head_dim = c.plane[0].head_dim}, "args.k"));
  const int64_t n = args->k.num_tokens;
  if (c.num_kv == 2)
    KVX_TRY(check_tensor(args->v, {.num_tokens = n, .num_heads = c.num_kv_heads, .head_dim = c.plane[1].head_dim},
                         "args.v"));

  const bool by_slot = args->slot_mapping != nullptr;
  const bool by_table = args->page_table != nullptr || args->batch_indices != nullptr || args->positions != nullptr;
  if (by_slot && by_table)
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.slot_mapping: given together with args.page_table/batch_indices/positions (exactly one "
                "placement form)");
  kvx_memory_t index_memory = c.memory;
  if (by_slot) {
    KVX_TRY(check_slot_mapping(*args, n));
  } else if (by_table) {
    if (args->page_table == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.page_table: null");
    if (n > 0 && args->batch_indices == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.batch_indices: null");
    if (n > 0 && args->positions == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.positions: null");
    index_memory = args->page_table->memory;
    KVX_TRY(check_positions(*args, n));
  } else if (n > 0) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.slot_mapping: null, and no page table either (one is required)");
  }

  KVX_TRY(resolve_exec(exec, c.memory, cfg));
  KVX_TRY(check_backend_memory(cfg->backend, args->k.memory, "args.k"));
  if (c.num_kv == 2) KVX_TRY(check_backend_memory(cfg->backend, args->v.memory, "args.v"));
  KVX_TRY(check_backend_memory(cfg->backend, index_memory, by_slot ? "args.cache" : "args.page_table"));
  return KVX_OK;
}

}  // namespace

kvx_status_t append_supports(const kvx_append_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  return validate(args, exec, &cfg);
}

kvx_status_t append(const kvx_append_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  KVX_TRY(validate(args, exec, &cfg));
  if (args->k.num_tokens == 0) return KVX_OK;
  return cfg.backend == KVX_BACKEND_CUDA ? cuda::append(*args, cfg) : cpu::append(*args, cfg);
}

}  // namespace kvx::ops
