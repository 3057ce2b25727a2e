// kvx_gather: validation of the whole argument struct, then dispatch.
#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

kvx_status_t validate(const kvx_gather_args_t* args, const kvx_exec_t* exec, ExecConfig* cfg) {
  KVX_TRY(check_args_header(args));
  KVX_TRY(check_cache(args->cache, args->layer));
  const kvx_layout_t& c = *args->cache;
  if (args->page_table == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.page_table: null");
  KVX_TRY(validate_page_table(args->page_table, c, "args.page_table"));

  // The number of rows is known only when the lengths can be read here.
  int64_t total = -1;
  if (host_checkable(args->page_table->memory)) {
    const PageTableView table(*args->page_table, c.block_tokens);
    total = 0;
    for (int64_t b = 0; b < table.num_seqs(); ++b) total += table.seq_len(b);  // each < num_blocks * T
  }
  KVX_TRY(check_tensor(args->k_out, {.num_tokens = total, .num_heads = c.num_kv_heads, .head_dim = c.plane[0].head_dim},
                       "args.k_out"));
  if (c.num_kv == 2)
    KVX_TRY(check_tensor(args->v_out,
                         {.num_tokens = args->k_out.num_tokens, .num_heads = c.num_kv_heads,
                          .head_dim = c.plane[1].head_dim},
                         "args.v_out"));

  KVX_TRY(resolve_exec(exec, c.memory, cfg));
  KVX_TRY(check_backend_memory(cfg->backend, args->page_table->memory, "args.page_table"));
  KVX_TRY(check_backend_memory(cfg->backend, args->k_out.memory, "args.k_out"));
  if (c.num_kv == 2) KVX_TRY(check_backend_memory(cfg->backend, args->v_out.memory, "args.v_out"));
  return KVX_OK;
}

}  // namespace

kvx_status_t gather_supports(const kvx_gather_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  return validate(args, exec, &cfg);
}

kvx_status_t gather(const kvx_gather_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  KVX_TRY(validate(args, exec, &cfg));
  return cfg.backend == KVX_BACKEND_CUDA ? cuda::gather(*args, cfg) : cpu::gather(*args, cfg);
}

}  // namespace kvx::ops
