/* KVX status codes and the thread-local last-error message. */
#ifndef KVX_STATUS_H
#define KVX_STATUS_H

#include "kvx/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every entry point returns a kvx_status_t. Values are fixed forever; new codes
 * take new values. On any error the entry point has written nothing to its
 * outputs, and kvx_last_error() names the offending field. */
typedef enum kvx_status {
  KVX_OK = 0,
  KVX_ERR_INVALID_ARGUMENT = -1,    /* a null pointer, an out-of-range value or enum */
  KVX_ERR_INVALID_LAYOUT = -2,      /* a layout descriptor that describes no valid cache */
  KVX_ERR_MISALIGNED = -3,          /* a pointer or stride not aligned to what the op needs */
  KVX_ERR_UNSUPPORTED = -4,         /* valid, but this backend/build does not implement it */
  KVX_ERR_OUT_OF_BLOCKS = -5,       /* the block pool is full and nothing can be evicted */
  KVX_ERR_WORKSPACE_TOO_SMALL = -6, /* the caller's workspace is smaller than the query said */
  KVX_ERR_DEVICE = -7,              /* the device runtime reported an error */
  KVX_ERR_OUT_OF_MEMORY = -8,       /* a host or device allocation failed */
  KVX_ERR_VERSION_MISMATCH = -9,    /* struct_size/version or library version incompatible */
  KVX_ERR_NOT_FOUND = -10,          /* a handle, name or key that does not exist */
  KVX_ERR_INTERNAL = -11,           /* a bug in KVX; please report it */
  KVX_STATUS_FORCE_32BIT = 0x7fffffff
} kvx_status_t;

/* A static, never-null English name for a status ("KVX_ERR_INVALID_LAYOUT"). */
KVX_API const char* kvx_status_string(kvx_status_t status);

/* The message of the last error raised on the calling thread ("" if none):
 * it names the offending field, e.g. "layout.plane[0].token_stride_bytes: ...".
 * Valid until the next KVX call on the same thread. */
KVX_API const char* kvx_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* KVX_STATUS_H */
