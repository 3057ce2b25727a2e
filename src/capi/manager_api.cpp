// extern "C" shims of the block manager (include/kvx/manager.h): validate
// every argument here, once, then call the manager, which trusts them.
#include <algorithm>
#include <cstring>
#include <span>

#include "capi/guard.hpp"
#include "core/status.hpp"
#include "kvx/manager.h"
#include "layout/layout.hpp"
#include "manager/hash.hpp"
#include "manager/manager.hpp"

namespace {

using kvx::fail;
using kvx::manager::Manager;
using kvx::manager::SeqParams;

template <size_t N>
kvx_status_t check_reserved(const uint64_t (&reserved)[N], const char* name) {
  for (size_t i = 0; i < N; ++i) {
    if (reserved[i] != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.reserved[{}]: must be zero", name, i);
  }
  return KVX_OK;
}

// A caller's enum field read as the int it is in C: loading an out-of-range
// value through the C++ enum type would be undefined behaviour.
template <typename E>
int32_t enum_value(const E& field) {
  static_assert(sizeof(E) == sizeof(int32_t));
  int32_t v;
  std::memcpy(&v, &field, sizeof v);
  return v;
}

kvx_status_t check_manager(kvx_manager_t m) {
  if (m == nullptr || m->impl == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "manager: null");
  return KVX_OK;
}

kvx_status_t check_config(const kvx_manager_config_t* c) {
  if (c == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "config: null");
  KVX_TRY(kvx::check_abi_header(c->struct_size, c->version, sizeof(kvx_manager_config_t), "config"));
  KVX_TRY(check_reserved(c->reserved, "config"));
  if (c->reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "config.reserved0: must be zero");
  if (c->num_blocks < 2 || c->num_blocks > INT32_MAX) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.num_blocks: {} outside [2, 2^31 - 1]", c->num_blocks);
  }
  if (c->block_tokens < 1 || c->block_tokens > 65536) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.block_tokens: {} outside [1, 65536]", c->block_tokens);
  }
  const int32_t memory = enum_value(c->memory), eviction = enum_value(c->eviction);
  if (memory < KVX_POOL_MEMORY_NONE || memory > KVX_POOL_MEMORY_CUDA_VMM) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.memory: {} is not a kvx_pool_memory_t", memory);
  }
  if (eviction < KVX_EVICTION_LRU || eviction > KVX_EVICTION_HYBRID) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.eviction: {} is not a kvx_eviction_policy_t", eviction);
  }
  if (c->bytes_per_block < 0 || (c->memory != KVX_POOL_MEMORY_NONE && c->bytes_per_block == 0)) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.bytes_per_block: {} (must be > 0 with physical memory)",
                c->bytes_per_block);
  }
  if (c->max_blocks != 0 && (c->max_blocks < c->num_blocks || c->max_blocks > INT32_MAX)) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.max_blocks: {} is neither 0 nor within [num_blocks = {}, 2^31 - 1]",
                c->max_blocks, c->num_blocks);
  }
  const int64_t reserve_blocks = std::max(c->num_blocks, c->max_blocks);
  if (c->bytes_per_block > 0 && reserve_blocks > INT64_MAX / c->bytes_per_block) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.bytes_per_block: {} x {} blocks overflows", c->bytes_per_block,
                reserve_blocks);
  }
  if (c->host_blocks < 0 || c->host_blocks > INT32_MAX - 1 ||
      (c->host_blocks > 0 && c->host_blocks > INT64_MAX / 4 / c->block_tokens) ||
      (c->bytes_per_block > 0 && c->host_blocks > INT64_MAX / c->bytes_per_block)) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.host_blocks: {} outside [0, 2^31 - 2]", c->host_blocks);
  }
  if (c->thrash_window < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "config.thrash_window: {} < 0", c->thrash_window);
  if (c->hybrid_hit_steps < 0) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.hybrid_hit_steps: {} < 0", c->hybrid_hit_steps);
  }
  if (c->device_id < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "config.device_id: {} < 0", c->device_id);
  if (c->clock == nullptr && c->clock_user != nullptr) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.clock_user: set without a clock");
  }
  return KVX_OK;
}

// The header of a kvx_seq_params_t and its conversion (null: defaults).
kvx_status_t read_params(const Manager& m, const kvx_seq_params_t* p, SeqParams* out) {
  if (p != nullptr) {
    KVX_TRY(kvx::check_abi_header(p->struct_size, p->version, sizeof(kvx_seq_params_t), "params"));
    KVX_TRY(check_reserved(p->reserved, "params"));
  }
  return m.make_params(p, out);
}

kvx_status_t check_tokens(const int32_t* tokens, int64_t num_tokens, bool allow_empty) {
  if (num_tokens < (allow_empty ? 0 : 1) || num_tokens > INT32_MAX) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "num_tokens: {} outside [{}, 2^31 - 1]", num_tokens, allow_empty ? 0 : 1);
  }
  if (num_tokens > 0 && tokens == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "tokens: null");
  return KVX_OK;
}

std::span<const int32_t> token_span(const int32_t* tokens, int64_t n) {
  return n == 0 ? std::span<const int32_t>() : std::span<const int32_t>(tokens, static_cast<size_t>(n));
}

}  // namespace

extern "C" {

KVX_API kvx_status_t kvx_manager_create(const kvx_manager_config_t* config, kvx_manager_t* out) {
  return kvx::capi_guard("kvx_manager_create", [&]() -> kvx_status_t {
    KVX_TRY(check_config(config));
    if (out == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
    std::unique_ptr<Manager> impl;
    KVX_TRY(Manager::create(*config, &impl));
    auto* handle = new kvx_manager{std::move(impl)};
    *out = handle;
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_destroy(kvx_manager_t manager) {
  return kvx::capi_guard("kvx_manager_destroy", [&]() -> kvx_status_t {
    delete manager;
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_step(kvx_manager_t manager, int64_t* out_step) {
  return kvx::capi_guard("kvx_manager_step", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    const int64_t s = manager->impl->step();
    if (out_step != nullptr) *out_step = s;
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_seq_create(kvx_manager_t manager, const kvx_seq_params_t* params, const int32_t* tokens,
                                    int64_t num_tokens, int64_t* out_slots, kvx_seq_id_t* out_seq,
                                    kvx_seq_match_t* out_match) {
  return kvx::capi_guard("kvx_seq_create", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    SeqParams p;
    KVX_TRY(read_params(*manager->impl, params, &p));
    KVX_TRY(check_tokens(tokens, num_tokens, true));
    if (num_tokens > 0 && out_slots == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_slots: null");
    if (out_seq == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_seq: null");
    return manager->impl->seq_create(p, token_span(tokens, num_tokens), out_slots, out_seq, out_match);
  });
}

KVX_API kvx_status_t kvx_seq_append(kvx_manager_t manager, kvx_seq_id_t seq, const int32_t* tokens, int64_t num_tokens,
                                    int64_t* out_slots, int64_t* out_pending_work) {
  return kvx::capi_guard("kvx_seq_append", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    KVX_TRY(check_tokens(tokens, num_tokens, false));
    if (out_slots == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_slots: null");
    KVX_TRY(manager->impl->seq_append(seq, token_span(tokens, num_tokens), out_slots));
    if (out_pending_work != nullptr) *out_pending_work = manager->impl->pending_work();
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_seq_append_batch(kvx_manager_t manager, const kvx_seq_id_t* seq_ids, int64_t num_seqs,
                                          const int32_t* tokens, int64_t* out_slots, int64_t* out_pending_work) {
  return kvx::capi_guard("kvx_seq_append_batch", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (num_seqs < 0 || num_seqs > INT32_MAX) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "num_seqs: {} outside [0, 2^31 - 1]", num_seqs);
    }
    if (num_seqs > 0 && (seq_ids == nullptr || tokens == nullptr || out_slots == nullptr)) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}: null", seq_ids == nullptr ? "seq_ids" : tokens == nullptr ? "tokens" : "out_slots");
    }
    if (num_seqs > 0) {
      KVX_TRY(manager->impl->seq_append_batch(
          std::span<const kvx_seq_id_t>(seq_ids, static_cast<size_t>(num_seqs)), tokens, out_slots));
    }
    if (out_pending_work != nullptr) *out_pending_work = manager->impl->pending_work();
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_seq_fork(kvx_manager_t manager, kvx_seq_id_t seq, kvx_seq_id_t* out_seq) {
  return kvx::capi_guard("kvx_seq_fork", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (out_seq == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_seq: null");
    return manager->impl->seq_fork(seq, out_seq);
  });
}

KVX_API kvx_status_t kvx_seq_free(kvx_manager_t manager, kvx_seq_id_t seq) {
  return kvx::capi_guard("kvx_seq_free", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    return manager->impl->seq_free(seq);
  });
}

KVX_API kvx_status_t kvx_seq_length(kvx_manager_t manager, kvx_seq_id_t seq, int64_t* out_tokens, int64_t* out_blocks) {
  return kvx::capi_guard("kvx_seq_length", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    return manager->impl->seq_length(seq, out_tokens, out_blocks);
  });
}

KVX_API kvx_status_t kvx_manager_block_table(kvx_manager_t manager, kvx_block_table_export_t* t) {
  return kvx::capi_guard("kvx_manager_block_table", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (t == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "table: null");
    KVX_TRY(kvx::check_abi_header(t->struct_size, t->version, sizeof(kvx_block_table_export_t), "table"));
    KVX_TRY(check_reserved(t->reserved, "table"));
    if (t->reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "table.reserved0: must be zero");
    const int32_t kind = enum_value(t->kind);
    if (kind != KVX_PAGE_TABLE_DENSE && kind != KVX_PAGE_TABLE_CSR) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "table.kind: {} is not a kvx_page_table_kind_t", kind);
    }
    if (t->num_seqs < 0 || t->num_seqs > INT32_MAX) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "table.num_seqs: {} outside [0, 2^31 - 1]", t->num_seqs);
    }
    if (t->num_seqs > 0 && t->seq_ids == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "table.seq_ids: null");
    if (t->kind == KVX_PAGE_TABLE_DENSE && t->block_table != nullptr) {
      if (t->seq_lens == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "table.seq_lens: null");
      if (t->block_table_stride < 0) {
        return fail(KVX_ERR_INVALID_ARGUMENT, "table.block_table_stride: {} < 0", t->block_table_stride);
      }
    }
    if (t->kind == KVX_PAGE_TABLE_CSR && t->indices != nullptr) {
      if (t->indptr == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "table.indptr: null");
      if (t->last_page_len == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "table.last_page_len: null");
      if (t->indices_capacity < 0) {
        return fail(KVX_ERR_INVALID_ARGUMENT, "table.indices_capacity: {} < 0", t->indices_capacity);
      }
    }
    return manager->impl->block_table(t);
  });
}

KVX_API kvx_status_t kvx_manager_match_prefix(kvx_manager_t manager, const kvx_seq_params_t* params,
                                              const int32_t* tokens, int64_t num_tokens, int64_t* out_tokens,
                                              int64_t* out_device_tokens) {
  return kvx::capi_guard("kvx_manager_match_prefix", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    SeqParams p;
    KVX_TRY(read_params(*manager->impl, params, &p));
    KVX_TRY(check_tokens(tokens, num_tokens, true));
    if (out_tokens == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_tokens: null");
    manager->impl->match_prefix(p, token_span(tokens, num_tokens), out_tokens, out_device_tokens);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_prefix_cache(kvx_manager_t manager, kvx_seq_id_t seq, int64_t num_tokens,
                                      kvx_prefix_id_t* out_prefix) {
  return kvx::capi_guard("kvx_prefix_cache", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (out_prefix == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_prefix: null");
    return manager->impl->prefix_cache(seq, num_tokens, out_prefix);
  });
}

KVX_API kvx_status_t kvx_prefix_attach(kvx_manager_t manager, kvx_prefix_id_t prefix, kvx_seq_id_t* out_seq) {
  return kvx::capi_guard("kvx_prefix_attach", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (out_seq == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_seq: null");
    return manager->impl->prefix_attach(prefix, out_seq);
  });
}

KVX_API kvx_status_t kvx_prefix_release(kvx_manager_t manager, kvx_prefix_id_t prefix) {
  return kvx::capi_guard("kvx_prefix_release", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    return manager->impl->prefix_release(prefix);
  });
}

KVX_API kvx_status_t kvx_manager_pin(kvx_manager_t manager, const kvx_seq_params_t* params, const int32_t* tokens,
                                     int64_t num_tokens, int64_t* out_pinned_tokens) {
  return kvx::capi_guard("kvx_manager_pin", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    SeqParams p;
    KVX_TRY(read_params(*manager->impl, params, &p));
    KVX_TRY(check_tokens(tokens, num_tokens, true));
    manager->impl->pin(p, token_span(tokens, num_tokens), out_pinned_tokens);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_unpin(kvx_manager_t manager, const kvx_seq_params_t* params, const int32_t* tokens,
                                       int64_t num_tokens) {
  return kvx::capi_guard("kvx_manager_unpin", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    SeqParams p;
    KVX_TRY(read_params(*manager->impl, params, &p));
    KVX_TRY(check_tokens(tokens, num_tokens, true));
    return manager->impl->unpin(p, token_span(tokens, num_tokens));
  });
}

KVX_API kvx_status_t kvx_manager_reset(kvx_manager_t manager) {
  return kvx::capi_guard("kvx_manager_reset", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    manager->impl->reset();
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_grow(kvx_manager_t manager, int64_t num_blocks) {
  return kvx::capi_guard("kvx_manager_grow", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    return manager->impl->grow(num_blocks);
  });
}

KVX_API kvx_status_t kvx_manager_trim(kvx_manager_t manager, uint64_t* out_released_bytes) {
  return kvx::capi_guard("kvx_manager_trim", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    return manager->impl->trim(out_released_bytes);
  });
}

KVX_API kvx_status_t kvx_manager_take_work(kvx_manager_t manager, kvx_copy_t* out, int64_t capacity,
                                           int64_t* out_count) {
  return kvx::capi_guard("kvx_manager_take_work", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (out_count == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_count: null");
    if (out == nullptr) {
      *out_count = manager->impl->pending_work();
      return KVX_OK;
    }
    if (capacity < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "capacity: {} < 0", capacity);
    *out_count = manager->impl->take_work(out, capacity);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_get_metrics(kvx_manager_t manager, kvx_manager_metrics_t* metrics) {
  return kvx::capi_guard("kvx_manager_get_metrics", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (metrics == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "metrics: null");
    KVX_TRY(kvx::check_abi_header(metrics->struct_size, metrics->version, sizeof(kvx_manager_metrics_t), "metrics"));
    manager->impl->metrics(metrics);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_manager_pool_base(kvx_manager_t manager, kvx_pool_tier_t tier, void** out_base) {
  return kvx::capi_guard("kvx_manager_pool_base", [&]() -> kvx_status_t {
    KVX_TRY(check_manager(manager));
    if (tier != KVX_POOL_TIER_DEVICE && tier != KVX_POOL_TIER_HOST) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "tier: {} is not a kvx_pool_tier_t", static_cast<int>(tier));
    }
    if (out_base == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_base: null");
    *out_base = manager->impl->pool_base(tier);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_block_hash(uint64_t hash_seed, uint64_t model_id, const kvx_seq_params_t* params,
                                    const uint64_t* parent, const int32_t* tokens, int64_t num_tokens,
                                    int64_t first_token, uint64_t* out_hash) {
  return kvx::capi_guard("kvx_block_hash", [&]() -> kvx_status_t {
    // Parameters are validated as a manager would, through a throwaway one.
    kvx_manager_config_t config = kvx_manager_config_init();
    config.num_blocks = 2;
    config.block_tokens = 1;
    config.model_id = model_id;
    std::unique_ptr<Manager> m;
    KVX_TRY(Manager::create(config, &m));
    SeqParams p;
    KVX_TRY(read_params(*m, params, &p));
    KVX_TRY(check_tokens(tokens, num_tokens, false));
    if (first_token < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "first_token: {} < 0", first_token);
    if (out_hash == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_hash: null");
    kvx::manager::BlockHasher hasher(hash_seed);
    kvx::manager::Hash128 parent_hash;
    if (parent != nullptr) parent_hash = {parent[0], parent[1]};
    const kvx::manager::Hash128 h =
        hasher.hash(*p.keys, parent != nullptr ? &parent_hash : nullptr, token_span(tokens, num_tokens), first_token);
    out_hash[0] = h.lo;
    out_hash[1] = h.hi;
    return KVX_OK;
  });
}

}  // extern "C"
