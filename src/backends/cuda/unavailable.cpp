// The CUDA backend when the build has no CUDA: every entry refuses cleanly.
#include "backends/backend.hpp"
#include "backends/cuda/plan.hpp"
#include "core/status.hpp"

namespace kvx::cuda {
namespace {
kvx_status_t unavailable(const char* op) {
  return fail(KVX_ERR_UNSUPPORTED, "exec.backend: {} needs the CUDA backend, which this build lacks", op);
}
}  // namespace

bool available() { return false; }
kvx_status_t append(const kvx_append_args_t&, const ExecConfig&) { return unavailable("kvx_append"); }
kvx_status_t gather(const kvx_gather_args_t&, const ExecConfig&) { return unavailable("kvx_gather"); }
kvx_status_t attention(const kvx_attention_args_t&, AttentionMode, const ExecConfig&) {
  return unavailable("attention");
}
kvx_status_t merge_states(const kvx_merge_args_t&, const ExecConfig&) {
  return unavailable("kvx_merge_states");
}
kvx_status_t convert_blocks(const kvx_convert_args_t&, const ExecConfig&) {
  return unavailable("kvx_convert_blocks");
}

// A plan schedules CUDA kernels; without them there is nothing to plan, and
// no plan can exist to query or destroy (NULL is accepted, as by free()).
kvx_status_t attention_plan_create(const kvx_attention_args_t*, const kvx_exec_t*, kvx_attention_plan_t** out) {
  if (out != nullptr) *out = nullptr;
  return unavailable("kvx_attention_plan_create");
}
kvx_status_t attention_plan_workspace_bytes(const kvx_attention_plan_t*, uint64_t*) {
  return unavailable("kvx_attention_plan_workspace_bytes");
}
kvx_status_t attention_plan_destroy(kvx_attention_plan_t* plan) {
  return plan == nullptr ? KVX_OK : unavailable("kvx_attention_plan_destroy");
}

}  // namespace kvx::cuda
