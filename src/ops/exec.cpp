#include "ops/exec.hpp"

#include <algorithm>
#include <thread>

#include "core/status.hpp"
#include "layout/layout.hpp"

namespace kvx::ops {

kvx_status_t resolve_exec(const kvx_exec_t* exec, kvx_memory_t data_memory, ExecConfig* out) {
  ExecConfig cfg;
  kvx_backend_t backend = KVX_BACKEND_AUTO;
  int threads = 0;
  if (exec != nullptr) {
    KVX_TRY(check_abi_header(exec->struct_size, exec->version, sizeof(kvx_exec_t), "exec"));
    for (uint64_t r : exec->reserved)
      if (r != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "exec.reserved: must be zero");
    // A C caller may store any int in an enum field: read it as an int first.
    if (raw_enum(exec->backend) < KVX_BACKEND_AUTO || raw_enum(exec->backend) > KVX_BACKEND_CUDA)
      return fail(KVX_ERR_INVALID_ARGUMENT, "exec.backend: unknown value {}", raw_enum(exec->backend));
    if (exec->num_threads < 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "exec.num_threads: {} < 0", exec->num_threads);
    if (exec->workspace_bytes > 0 && exec->workspace == nullptr)
      return fail(KVX_ERR_INVALID_ARGUMENT, "exec.workspace: null with workspace_bytes {}", exec->workspace_bytes);
    backend = exec->backend;
    threads = exec->num_threads;
    cfg.stream = exec->stream;
    cfg.workspace = exec->workspace;
    cfg.workspace_bytes = exec->workspace_bytes;
  }
  const bool device_data = data_memory == KVX_MEMORY_CUDA_DEVICE || data_memory == KVX_MEMORY_CUDA_MANAGED;
  if (backend == KVX_BACKEND_AUTO) backend = device_data ? KVX_BACKEND_CUDA : KVX_BACKEND_CPU;
  if (backend == KVX_BACKEND_CPU && data_memory == KVX_MEMORY_CUDA_DEVICE)
    return fail(KVX_ERR_INVALID_ARGUMENT, "exec.backend: the CPU backend cannot read CUDA device memory");
  if (backend == KVX_BACKEND_CUDA && data_memory == KVX_MEMORY_HOST)
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "exec.backend: the CUDA backend cannot read pageable host memory (use pinned or device memory)");
  if (backend == KVX_BACKEND_CUDA && !cuda::available())
    return fail(KVX_ERR_UNSUPPORTED, "exec.backend: CUDA is not available (not built, or no device)");
  cfg.backend = backend;
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  cfg.num_threads = threads == 0 ? hw : threads;
  *out = cfg;
  return KVX_OK;
}

}  // namespace kvx::ops
