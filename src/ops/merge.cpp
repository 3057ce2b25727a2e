// kvx_merge_states: validation of the whole argument struct, then dispatch.
// The merged lse is optional (args.lse.data NULL); the inputs' are not.
#include "core/status.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

kvx_status_t validate(const kvx_merge_args_t* args, const kvx_exec_t* exec, ExecConfig* cfg) {
  KVX_TRY(check_args_header(args));
  KVX_TRY(check_tensor(args->out_a, {}, "args.out_a"));
  const TensorSpec state{.num_tokens = args->out_a.num_tokens,
                         .num_heads = args->out_a.num_heads,
                         .head_dim = args->out_a.head_dim};
  const TensorSpec lse{.num_tokens = state.num_tokens, .num_heads = state.num_heads, .head_dim = 1, .f32_only = true};
  KVX_TRY(check_tensor(args->lse_a, lse, "args.lse_a"));
  KVX_TRY(check_tensor(args->out_b, state, "args.out_b"));
  KVX_TRY(check_tensor(args->lse_b, lse, "args.lse_b"));
  KVX_TRY(check_tensor(args->out, state, "args.out"));
  const bool has_lse = args->lse.data != nullptr;
  if (has_lse) KVX_TRY(check_tensor(args->lse, lse, "args.lse"));

  KVX_TRY(resolve_exec(exec, args->out_a.memory, cfg));
  KVX_TRY(check_backend_memory(cfg->backend, args->lse_a.memory, "args.lse_a"));
  KVX_TRY(check_backend_memory(cfg->backend, args->out_b.memory, "args.out_b"));
  KVX_TRY(check_backend_memory(cfg->backend, args->lse_b.memory, "args.lse_b"));
  KVX_TRY(check_backend_memory(cfg->backend, args->out.memory, "args.out"));
  if (has_lse) KVX_TRY(check_backend_memory(cfg->backend, args->lse.memory, "args.lse"));
  return KVX_OK;
}

}  // namespace

kvx_status_t merge_states_supports(const kvx_merge_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  return validate(args, exec, &cfg);
}

kvx_status_t merge_states(const kvx_merge_args_t* args, const kvx_exec_t* exec) {
  ExecConfig cfg;
  KVX_TRY(validate(args, exec, &cfg));
  if (args->out_a.num_tokens == 0) return KVX_OK;
  return cfg.backend == KVX_BACKEND_CUDA ? cuda::merge_states(*args, cfg) : cpu::merge_states(*args, cfg);
}

}  // namespace kvx::ops
