// The contract between ops and backends: ops validate every argument once and
// then call a backend, which trusts what it receives (DESIGN.md section 2).
#pragma once

#include "kvx/ops.h"

namespace kvx {

// A resolved kvx_exec_t: defaults applied.
struct ExecConfig {
  kvx_backend_t backend = KVX_BACKEND_CPU;
  int num_threads = 1;
  void* stream = nullptr;
  void* workspace = nullptr;
  uint64_t workspace_bytes = 0;
};

enum class AttentionMode { kDecode, kPrefill };

namespace cpu {
kvx_status_t append(const kvx_append_args_t& args, const ExecConfig& exec);
kvx_status_t gather(const kvx_gather_args_t& args, const ExecConfig& exec);
kvx_status_t attention(const kvx_attention_args_t& args, AttentionMode mode, const ExecConfig& exec);
kvx_status_t merge_states(const kvx_merge_args_t& args, const ExecConfig& exec);
kvx_status_t convert_blocks(const kvx_convert_args_t& args, const ExecConfig& exec);
}  // namespace cpu

// The CUDA backend. Without CUDA in the build these return KVX_ERR_UNSUPPORTED
// (backends/cuda/unavailable.cpp); with it, backends/cuda/ implements them.
namespace cuda {
bool available();  // compiled in and a device is present
kvx_status_t append(const kvx_append_args_t& args, const ExecConfig& exec);
kvx_status_t gather(const kvx_gather_args_t& args, const ExecConfig& exec);
kvx_status_t attention(const kvx_attention_args_t& args, AttentionMode mode, const ExecConfig& exec);
kvx_status_t merge_states(const kvx_merge_args_t& args, const ExecConfig& exec);
kvx_status_t convert_blocks(const kvx_convert_args_t& args, const ExecConfig& exec);
}  // namespace cuda

}  // namespace kvx
