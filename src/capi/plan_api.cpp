// extern "C" shims for the attention plan (the CUDA decode schedule,
// backends/cuda/plan.hpp).
#include "backends/cuda/plan.hpp"
#include "capi/guard.hpp"
#include "kvx/ops.h"

extern "C" {

KVX_API kvx_status_t kvx_attention_plan_create(const kvx_attention_args_t* args, const kvx_exec_t* exec,
                                               kvx_attention_plan_t** out) {
  return kvx::capi_guard("kvx_attention_plan_create", [&] { return kvx::cuda::attention_plan_create(args, exec, out); });
}

KVX_API kvx_status_t kvx_attention_plan_workspace_bytes(const kvx_attention_plan_t* plan, uint64_t* out_bytes) {
  return kvx::capi_guard("kvx_attention_plan_workspace_bytes",
                         [&] { return kvx::cuda::attention_plan_workspace_bytes(plan, out_bytes); });
}

KVX_API kvx_status_t kvx_attention_plan_destroy(kvx_attention_plan_t* plan) {
  return kvx::capi_guard("kvx_attention_plan_destroy", [&] { return kvx::cuda::attention_plan_destroy(plan); });
}

}  // extern "C"
