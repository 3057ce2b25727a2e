#include "core/abi.hpp"

#include "core/status.hpp"
#include "kvx/version.h"

namespace kvx {

kvx_status_t check_abi_header(uint32_t struct_size, uint32_t version, uint32_t expected_size,
                              const char* name) {
  // Exact size: a smaller struct comes from an older header whose tail we
  // would read past; a larger one from a newer header whose fields we would
  // silently ignore.
  if (struct_size != expected_size)
    return fail(KVX_ERR_VERSION_MISMATCH, "{}.struct_size: {} (this library expects {})", name,
                struct_size, expected_size);
  if (KVX_VERSION_MAJOR_OF(version) != KVX_VERSION_MAJOR || version > KVX_VERSION)
    return fail(KVX_ERR_VERSION_MISMATCH,
                "{}.version: {} is not compatible with library version {} (same major, not newer)",
                name, version, KVX_VERSION);
  return KVX_OK;
}

}  // namespace kvx
