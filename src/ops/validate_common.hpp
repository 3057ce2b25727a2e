// Checks shared by the op entry points (src/ops/<op>.cpp), and the entry
// points themselves. Every op validates its whole argument struct here, once,
// before anything is written; backends trust what reaches them.
#pragma once

#include <cstdint>
#include <iterator>

#include "backends/backend.hpp"
#include "core/status.hpp"
#include "kvx/layout.h"
#include "kvx/ops.h"
#include "ops/exec.hpp"

namespace kvx::ops {

// ------------------------------------------------------------ entry points --
// Each `<op>` validates and runs; each `<op>_supports` validates and picks the
// backend only. They are called by the extern "C" shims in capi/ops_api.cpp.
kvx_status_t append(const kvx_append_args_t* args, const kvx_exec_t* exec);
kvx_status_t append_supports(const kvx_append_args_t* args, const kvx_exec_t* exec);
kvx_status_t gather(const kvx_gather_args_t* args, const kvx_exec_t* exec);
kvx_status_t gather_supports(const kvx_gather_args_t* args, const kvx_exec_t* exec);
kvx_status_t attention(const kvx_attention_args_t* args, AttentionMode mode, const kvx_exec_t* exec);
kvx_status_t attention_supports(const kvx_attention_args_t* args, AttentionMode mode,
                                const kvx_exec_t* exec);
kvx_status_t merge_states(const kvx_merge_args_t* args, const kvx_exec_t* exec);
kvx_status_t merge_states_supports(const kvx_merge_args_t* args, const kvx_exec_t* exec);

// ---------------------------------------------------------------- helpers --

// Where an op's bare index arrays live (slot_mapping, batch_indices,
// positions, q_indptr: they carry no memory field of their own): in the
// memory of the page table when the op has one, else in the cache's memory.
// They are checked element by element when host_checkable (layout.hpp), and
// otherwise only as far as that needs no read of them.

// reserved[0..n) must all be zero.
kvx_status_t check_reserved(const uint64_t* reserved, int n, const char* name);

// The common head of every args struct: non-null, struct_size and version of
// this library, reserved[] zero.
template <typename Args>
kvx_status_t check_args_header(const Args* args) {
  if (args == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args: null");
  KVX_TRY(check_abi_header(args->struct_size, args->version, sizeof(Args), "args"));
  return check_reserved(args->reserved, static_cast<int>(std::size(args->reserved)), "args.reserved");
}

// The cache of an op: a valid layout (named "args.cache"), f32/f16/bf16
// storage (quantized storage arrives in a later version), non-null base
// pointers for `layer`, and `layer` in [0, num_layers).
kvx_status_t check_cache(const kvx_layout_t* cache, int64_t layer);

// What a tensor argument must look like. A dimension of -1 is not checked
// (its size is not known on the host, e.g. behind a device page table).
struct TensorSpec {
  int64_t num_tokens = -1;
  int64_t num_heads = -1;
  int64_t head_dim = -1;
  bool f32_only = false;  // log-sum-exp tensors; otherwise f32, f16 or bf16
};

// A kvx_tensor_t: reserved zero, dtype and memory enums, the dims of `spec`,
// data non-null when it holds any element and aligned to the element size,
// strides non-negative and aligned, rows that never overlap.
kvx_status_t check_tensor(const kvx_tensor_t& t, const TensorSpec& spec, const char* name);

// Whether `backend` can reach `memory` (tensors chosen by the caller may sit
// elsewhere than the cache that chose the backend).
kvx_status_t check_backend_memory(kvx_backend_t backend, kvx_memory_t memory, const char* name);

}  // namespace kvx::ops
