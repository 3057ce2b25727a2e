// kvx_attention_decode / kvx_attention_prefill: validation of the whole
// argument struct, then dispatch. The CPU backend ignores args.plan (a CUDA
// schedule); it is accepted, never read.
#include <cmath>

#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

// Query rows per sequence: one for decode; q_indptr for prefill, whose
// consistency with q and with the lengths is checked when it is host-readable.
// Returns the number of query rows, or -1 when it cannot be known here.
kvx_status_t check_query_rows(const kvx_attention_args_t& a, AttentionMode mode, int64_t* rows) {
  const kvx_layout_t& c = *a.cache;
  const kvx_page_table_t& t = *a.page_table;
  const bool readable = host_checkable(t.memory);
  const PageTableView table(t, c.block_tokens);
  if (mode == AttentionMode::kDecode) {
    if (a.q_indptr != nullptr)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.q_indptr: must be NULL for decode (one query row per sequence)");
    if (readable)
      for (int64_t b = 0; b < t.num_seqs; ++b)
        if (table.seq_len(b) < 1)
          return fail(KVX_ERR_INVALID_ARGUMENT,
                      "args.page_table: sequence {} has no tokens (its query's own K/V must be cached)", b);
    *rows = t.num_seqs;
    return KVX_OK;
  }
  if (a.q_indptr == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.q_indptr: null (required for prefill)");
  *rows = -1;
  if (!readable) return KVX_OK;
  if (a.q_indptr[0] != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[0]: {} (must be 0)", a.q_indptr[0]);
  for (int64_t b = 0; b < t.num_seqs; ++b) {
    const int64_t n = static_cast<int64_t>(a.q_indptr[b + 1]) - a.q_indptr[b];
    if (n < 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[{}]: {} < q_indptr[{}] = {} (must not decrease)", b + 1,
                  a.q_indptr[b + 1], b, a.q_indptr[b]);
    if (n > table.seq_len(b))
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "args.q_indptr[{}]: sequence {} has {} query rows but only {} cached tokens (the queries' own "
                  "K/V must be cached)",
                  b + 1, b, n, table.seq_len(b));
  }
  *rows = a.q_indptr[t.num_seqs];
  return KVX_OK;
}

// With a window, a page wholly before every query's window and past the sinks
// is never read: the null block may stand there. The earliest query of
// sequence b sits at len - n_b (n_b = 1 for decode), so its window starts at
// len - n_b - window_left. q_indptr is trusted here only to widen what may be
// null; check_query_rows refuses it afterwards if it is inconsistent.
UnreadPage unread_pages(const kvx_attention_args_t& a, AttentionMode mode) {
  if (a.window_left < 0) return {};
  if (mode == AttentionMode::kPrefill && (a.q_indptr == nullptr || !host_checkable(a.page_table->memory)))
    return {};
  const int64_t block_tokens = a.cache->block_tokens;
  return [&a, mode, block_tokens](int64_t b, int64_t page, int64_t len) {
    const int64_t n = mode == AttentionMode::kDecode ? 1 : int64_t{a.q_indptr[b + 1]} - a.q_indptr[b];
    const int64_t window_begin = len - n - a.window_left;
    return page * block_tokens >= a.sink_tokens && (page + 1) * block_tokens <= window_begin;
  };
}

kvx_status_t validate(const kvx_attention_args_t* args, AttentionMode mode, const kvx_exec_t* exec,
                      ExecConfig* cfg) {
  KVX_TRY(check_args_header(args));
  if (args->reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "args.reserved0: must be zero");
  KVX_TRY(check_cache(args->cache, args->layer));
  const kvx_layout_t& c = *args->cache;
  if (c.num_kv != 2)
    return fail(KVX_ERR_UNSUPPORTED,
                "args.cache.num_kv: attention over a single-latent cache (num_kv 1) is not part of v1.0");
  if (args->page_table == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.page_table: null");
  KVX_TRY(validate_page_table(args->page_table, c, "args.page_table", unread_pages(*args, mode)));

  if (args->causal != 0 && args->causal != 1)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.causal: {} (must be 0 or 1)", args->causal);
  if (!std::isfinite(args->scale) || args->scale < 0.0f)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.scale: {} (must be finite and >= 0; 0 means 1/sqrt(head_dim))",
                args->scale);
  if (!std::isfinite(args->logit_softcap) || args->logit_softcap < 0.0f)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.logit_softcap: {} (must be finite and >= 0; 0 means none)",
                args->logit_softcap);
  if (args->sink_tokens < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.sink_tokens: {} < 0", args->sink_tokens);

  int64_t rows = -1;
  KVX_TRY(check_query_rows(*args, mode, &rows));
  if (mode == AttentionMode::kPrefill && rows >= 0 && args->q.num_tokens != rows)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[{}]: {} query rows, but args.q.num_tokens is {}",
                args->page_table->num_seqs, rows, args->q.num_tokens);
  KVX_TRY(check_tensor(args->q, {.num_tokens = rows, .head_dim = c.plane[0].head_dim}, "args.q"));
  const int64_t num_q_heads = args->q.num_heads;
  if (num_q_heads % c.num_kv_heads != 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.q.num_heads: {} is not a multiple of the cache's {} kv heads",
                num_q_heads, c.num_kv_heads);
  rows = args->q.num_tokens;
  KVX_TRY(check_tensor(args->out, {.num_tokens = rows, .num_heads = num_q_heads, .head_dim = c.plane[1].head_dim},
                       "args.out"));
  const bool has_lse = args->lse.data != nullptr;
  if (has_lse)
    KVX_TRY(check_tensor(args->lse, {.num_tokens = rows, .num_heads = num_q_heads, .head_dim = 1, .f32_only = true},
                         "args.lse"));

  KVX_TRY(resolve_exec(exec, c.memory, cfg));
  KVX_TRY(check_backend_memory(cfg->backend, args->page_table->memory, "args.page_table"));
  KVX_TRY(check_backend_memory(cfg->backend, args->q.memory, "args.q"));
  KVX_TRY(check_backend_memory(cfg->backend, args->out.memory, "args.out"));
  if (has_lse) KVX_TRY(check_backend_memory(cfg->backend, args->lse.memory, "args.lse"));
  return KVX_OK;
}

}  // namespace

kvx_status_t attention_supports(const kvx_attention_args_t* args, AttentionMode mode, const kvx_exec_t* exec) {
  ExecConfig cfg;
  return validate(args, mode, exec, &cfg);
}

kvx_status_t attention(const kvx_attention_args_t* args, AttentionMode mode, const kvx_exec_t* exec) {
  ExecConfig cfg;
  KVX_TRY(validate(args, mode, exec, &cfg));
  if (args->q.num_tokens == 0) return KVX_OK;
  return cfg.backend == KVX_BACKEND_CUDA ? cuda::attention(*args, mode, cfg) : cpu::attention(*args, mode, cfg);
}

}  // namespace kvx::ops
