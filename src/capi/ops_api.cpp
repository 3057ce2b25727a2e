// extern "C" shims for the ops on the paged cache (append, gather, attention,
// merge). Each goes through capi_guard so that no exception crosses the ABI.
#include "backends/backend.hpp"
#include "capi/guard.hpp"
#include "kvx/ops.h"
#include "ops/validate_common.hpp"

extern "C" {

KVX_API kvx_status_t kvx_append(const kvx_append_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_append", [&] { return kvx::ops::append(args, exec); });
}

KVX_API kvx_status_t kvx_append_supports(const kvx_append_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_append_supports", [&] { return kvx::ops::append_supports(args, exec); });
}

KVX_API kvx_status_t kvx_gather(const kvx_gather_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_gather", [&] { return kvx::ops::gather(args, exec); });
}

KVX_API kvx_status_t kvx_gather_supports(const kvx_gather_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_gather_supports", [&] { return kvx::ops::gather_supports(args, exec); });
}

KVX_API kvx_status_t kvx_attention_decode(const kvx_attention_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_attention_decode",
                         [&] { return kvx::ops::attention(args, kvx::AttentionMode::kDecode, exec); });
}

KVX_API kvx_status_t kvx_attention_decode_supports(const kvx_attention_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_attention_decode_supports",
                         [&] { return kvx::ops::attention_supports(args, kvx::AttentionMode::kDecode, exec); });
}

KVX_API kvx_status_t kvx_attention_prefill(const kvx_attention_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_attention_prefill",
                         [&] { return kvx::ops::attention(args, kvx::AttentionMode::kPrefill, exec); });
}

KVX_API kvx_status_t kvx_attention_prefill_supports(const kvx_attention_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_attention_prefill_supports",
                         [&] { return kvx::ops::attention_supports(args, kvx::AttentionMode::kPrefill, exec); });
}

KVX_API kvx_status_t kvx_merge_states(const kvx_merge_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_merge_states", [&] { return kvx::ops::merge_states(args, exec); });
}
KVX_API kvx_status_t kvx_merge_states_supports(const kvx_merge_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_merge_states_supports",
                         [&] { return kvx::ops::merge_states_supports(args, exec); });
}

KVX_API kvx_status_t kvx_backend_available(kvx_backend_t backend, int32_t* out_available) {
  return kvx::capi_guard("kvx_backend_available", [&] {
    if (out_available == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_available: null");
    switch (backend) {
      case KVX_BACKEND_AUTO:  // always resolves to something: the CPU at worst
      case KVX_BACKEND_CPU: *out_available = 1; return KVX_OK;
      case KVX_BACKEND_CUDA: *out_available = kvx::cuda::available() ? 1 : 0; return KVX_OK;
      default:
        return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "backend: unknown value {}", static_cast<int>(backend));
    }
  });
}

}  // extern "C"
