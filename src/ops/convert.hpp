// kvx_convert_blocks: the op entry point (validation, then dispatch).
#pragma once

#include "kvx/ops.h"

namespace kvx::ops {

// Validates every argument once (both layouts as "args.src" / "args.dst",
// matching logical dims and dtype, block ids, distinct destination blocks, no
// memory shared between source and destination), resolves `exec` and runs
// the backend. On error nothing is written. The block lists are host arrays
// for every backend. Called by the extern "C" shim in capi/convert_api.cpp.
kvx_status_t convert_blocks(const kvx_convert_args_t* args, const kvx_exec_t* exec);
// Validates and picks the backend only.
kvx_status_t convert_blocks_supports(const kvx_convert_args_t* args, const kvx_exec_t* exec);

}  // namespace kvx::ops
