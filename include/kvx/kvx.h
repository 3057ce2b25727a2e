/* KVX — the KV cache of LLM inference, as one library. The umbrella header of
 * the C ABI; the standard it implements is docs/spec/kvx-v1.md. */
#ifndef KVX_KVX_H
#define KVX_KVX_H

#include "kvx/version.h"
#include "kvx/status.h"
#include "kvx/layout.h"
#include "kvx/ops.h"
#include "kvx/manager.h"
#include "kvx/transfer.h"

#endif /* KVX_KVX_H */
