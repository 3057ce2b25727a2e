// extern "C" shims of include/kvx/transfer.h.
#include <memory>

#include "capi/guard.hpp"
#include "kvx/transfer.h"
#include "ops/transfer.hpp"
#include "ops/transfer_offload.hpp"

// The C handle (an incomplete type in C) is the C++ object.
namespace {
kvx_status_t null_handle() { return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "offload: null"); }
kvx::ops::Offload* impl(kvx_offload_t h) { return reinterpret_cast<kvx::ops::Offload*>(h); }
}  // namespace

extern "C" {

KVX_API kvx_status_t kvx_transfer_plan_default(kvx_transfer_plan_t* out) {
  return kvx::capi_guard("kvx_transfer_plan_default", [&] { return kvx::ops::transfer_plan_default(out); });
}

KVX_API kvx_status_t kvx_copy_blocks(const kvx_block_copy_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_copy_blocks", [&] { return kvx::ops::copy_blocks(args, exec, true); });
}
KVX_API kvx_status_t kvx_copy_blocks_supports(const kvx_block_copy_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_copy_blocks_supports", [&] { return kvx::ops::copy_blocks(args, exec, false); });
}
KVX_API kvx_status_t kvx_copy_raw(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_copy_raw", [&] { return kvx::ops::copy_raw(args, exec, true); });
}
KVX_API kvx_status_t kvx_copy_raw_supports(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec) {
  return kvx::capi_guard("kvx_copy_raw_supports", [&] { return kvx::ops::copy_raw(args, exec, false); });
}

KVX_API kvx_status_t kvx_offload_create(const kvx_offload_config_t* config, kvx_offload_t* out) {
  return kvx::capi_guard("kvx_offload_create", [&] {
    if (out == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
    std::unique_ptr<kvx::ops::Offload> o;
    KVX_TRY(kvx::ops::Offload::create(config, &o));
    *out = reinterpret_cast<kvx_offload_t>(o.release());
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_offload_destroy(kvx_offload_t offload) {
  return kvx::capi_guard("kvx_offload_destroy", [&] {
    delete impl(offload);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_offload_submit(kvx_offload_t offload, const kvx_copy_t* items, int64_t num_items,
                                        void* stream, uint64_t* out_ticket) {
  return kvx::capi_guard("kvx_offload_submit", [&] {
    return offload == nullptr ? null_handle() : impl(offload)->submit(items, num_items, stream, out_ticket);
  });
}

KVX_API kvx_status_t kvx_offload_query(kvx_offload_t offload, uint64_t ticket, int32_t* out_done) {
  return kvx::capi_guard("kvx_offload_query", [&] {
    if (offload == nullptr) return null_handle();
    if (out_done == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_done: null");
    bool done = false;
    KVX_TRY(impl(offload)->query(ticket, &done));
    *out_done = done ? 1 : 0;
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_offload_wait(kvx_offload_t offload, uint64_t ticket) {
  return kvx::capi_guard("kvx_offload_wait",
                         [&] { return offload == nullptr ? null_handle() : impl(offload)->wait(ticket); });
}

KVX_API kvx_status_t kvx_offload_block_busy(kvx_offload_t offload, kvx_pool_tier_t tier, int32_t block,
                                            int32_t* out_busy) {
  return kvx::capi_guard("kvx_offload_block_busy", [&] {
    if (offload == nullptr) return null_handle();
    if (out_busy == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_busy: null");
    bool busy = false;
    KVX_TRY(impl(offload)->block_busy(tier, block, &busy));
    *out_busy = busy ? 1 : 0;
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_offload_stream_wait_blocks(kvx_offload_t offload, kvx_pool_tier_t tier,
                                                    const int32_t* blocks, int64_t num_blocks, void* stream) {
  return kvx::capi_guard("kvx_offload_stream_wait_blocks", [&] {
    return offload == nullptr ? null_handle() : impl(offload)->stream_wait_blocks(tier, blocks, num_blocks, stream);
  });
}

}  // extern "C"
