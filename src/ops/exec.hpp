// Resolution of a kvx_exec_t (defaults, backend choice) shared by every op.
#pragma once

#include "backends/backend.hpp"
#include "core/abi.hpp"
#include "kvx/ops.h"

namespace kvx::ops {

// Validates `exec` (NULL means defaults) and picks the backend: AUTO follows
// the memory of the op's data (`data_memory`): host -> CPU, CUDA -> CUDA.
// An explicit backend must match the memory it is given (the CPU backend
// cannot read device memory; CUDA can read pinned host memory).
kvx_status_t resolve_exec(const kvx_exec_t* exec, kvx_memory_t data_memory, ExecConfig* out);


}  // namespace kvx::ops
