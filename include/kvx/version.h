/* KVX — the KV cache of LLM inference. Version and ABI negotiation. */
#ifndef KVX_VERSION_H
#define KVX_VERSION_H

#include <stdint.h>
#include <string.h>

#include "kvx/export.h"
#include "kvx/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Versions are encoded as MAJOR*1000000 + MINOR*1000 + PATCH. A caller built
 * against a different MAJOR is refused (KVX_ERR_VERSION_MISMATCH); a caller
 * built against an older MINOR of the same MAJOR is served. */
#define KVX_VERSION_MAJOR 1
#define KVX_VERSION_MINOR 0
#define KVX_VERSION_PATCH 0
#define KVX_MAKE_VERSION(major, minor, patch) \
  ((uint32_t)(major) * 1000000u + (uint32_t)(minor) * 1000u + (uint32_t)(patch))
#define KVX_VERSION KVX_MAKE_VERSION(KVX_VERSION_MAJOR, KVX_VERSION_MINOR, KVX_VERSION_PATCH)
#define KVX_VERSION_MAJOR_OF(v) ((uint32_t)(v) / 1000000u)

/* Every ABI struct that begins with struct_size and version has an inline
 * initializer kvx_<name>_init() that zeroes it and sets those two fields, and
 * a macro KVX_<NAME>_INIT that calls it (an initializer of automatic
 * variables in C and C++; static objects are zero-initialized and need
 * struct_size and version set by hand). */
#define KVX_DEFINE_INIT_(type, fn, extra) \
  static inline type fn(void) {           \
    type x_;                              \
    memset(&x_, 0, sizeof x_);            \
    x_.struct_size = (uint32_t)sizeof(type); \
    x_.version = KVX_VERSION;             \
    extra;                                \
    return x_;                            \
  }

/* The version of the library that is loaded (not of the header). */
KVX_API uint32_t kvx_get_version(void);

/* Returns KVX_OK (0) when a caller compiled against header version
 * `caller_version` may use the loaded library, KVX_ERR_VERSION_MISMATCH (-9)
 * when the major versions differ or the caller is newer than the library.
 * Callers should check once at start-up: kvx_check_version(KVX_VERSION). */
KVX_API kvx_status_t kvx_check_version(uint32_t caller_version);

#ifdef __cplusplus
}
#endif

#endif /* KVX_VERSION_H */
