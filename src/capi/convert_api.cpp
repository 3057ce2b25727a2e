// extern "C" shim for block conversion between layouts.
#include "capi/guard.hpp"
#include "kvx/ops.h"
#include "ops/convert.hpp"

extern "C" {

KVX_API kvx_status_t kvx_convert_blocks(const kvx_convert_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_convert_blocks",
                         [&] { return kvx::ops::convert_blocks(args, exec); });
}

KVX_API kvx_status_t kvx_convert_blocks_supports(const kvx_convert_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_convert_blocks_supports",
                         [&] { return kvx::ops::convert_blocks_supports(args, exec); });
}

}  // extern "C"
