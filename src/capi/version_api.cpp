// extern "C" shims for version and status. No exception crosses the ABI.
#include "core/status.hpp"
#include "kvx/status.h"
#include "kvx/version.h"

extern "C" {

KVX_API uint32_t kvx_get_version(void) { return KVX_VERSION; }

KVX_API kvx_status_t kvx_check_version(uint32_t caller_version) {
  if (KVX_VERSION_MAJOR_OF(caller_version) != KVX_VERSION_MAJOR || caller_version > KVX_VERSION) {
    return kvx::fail(KVX_ERR_VERSION_MISMATCH,
                     "caller_version: {} (built against {}.{}.{}) cannot use library {}.{}.{}",
                     caller_version, caller_version / 1000000u, caller_version / 1000u % 1000u,
                     caller_version % 1000u, KVX_VERSION_MAJOR, KVX_VERSION_MINOR, KVX_VERSION_PATCH);
  }
  return KVX_OK;
}

KVX_API const char* kvx_status_string(kvx_status_t status) {
  switch (status) {
    case KVX_OK: return "KVX_OK";
    case KVX_ERR_INVALID_ARGUMENT: return "KVX_ERR_INVALID_ARGUMENT";
    case KVX_ERR_INVALID_LAYOUT: return "KVX_ERR_INVALID_LAYOUT";
    case KVX_ERR_MISALIGNED: return "KVX_ERR_MISALIGNED";
    case KVX_ERR_UNSUPPORTED: return "KVX_ERR_UNSUPPORTED";
    case KVX_ERR_OUT_OF_BLOCKS: return "KVX_ERR_OUT_OF_BLOCKS";
    case KVX_ERR_WORKSPACE_TOO_SMALL: return "KVX_ERR_WORKSPACE_TOO_SMALL";
    case KVX_ERR_DEVICE: return "KVX_ERR_DEVICE";
    case KVX_ERR_OUT_OF_MEMORY: return "KVX_ERR_OUT_OF_MEMORY";
    case KVX_ERR_VERSION_MISMATCH: return "KVX_ERR_VERSION_MISMATCH";
    case KVX_ERR_NOT_FOUND: return "KVX_ERR_NOT_FOUND";
    case KVX_ERR_INTERNAL: return "KVX_ERR_INTERNAL";
    default: return "KVX_ERR_UNKNOWN";
  }
}

KVX_API const char* kvx_last_error(void) { return kvx::last_error(); }

}  // extern "C"
