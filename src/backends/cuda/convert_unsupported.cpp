// kvx_convert_blocks until the CUDA conversion kernels (convert/) exist:
// refused cleanly. src/backends/cuda/CMakeLists.txt drops this file once
// convert/convert.cpp is there.
#include "backends/backend.hpp"
#include "core/status.hpp"

namespace kvx::cuda {

kvx_status_t convert_blocks(const kvx_convert_args_t&, const ExecConfig&) {
  return fail(KVX_ERR_UNSUPPORTED,
              "exec.backend: kvx_convert_blocks has no CUDA kernel in this build; use the CPU backend on host or "
              "pinned memory");
}

}  // namespace kvx::cuda
