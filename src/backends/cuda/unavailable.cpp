// The CUDA backend when the build has no CUDA: every entry refuses cleanly.
#include "backends/backend.hpp"
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

}  // namespace kvx::cuda
