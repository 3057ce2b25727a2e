// Helpers shared by the manager tests: an owning handle, a config builder,
// and a fingerprint of everything observable, to prove "nothing changed".
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "kvx/manager.h"
#include "manager/manager.hpp"

namespace kvx::test {

struct ManagerHandle {
  kvx_manager_t m = nullptr;
  ManagerHandle() = default;
  explicit ManagerHandle(const kvx_manager_config_t& c) {
    const kvx_status_t st = kvx_manager_create(&c, &m);
    EXPECT_EQ(st, KVX_OK) << kvx_last_error();
  }
  ManagerHandle(const ManagerHandle&) = delete;
  ManagerHandle& operator=(const ManagerHandle&) = delete;
  ~ManagerHandle() { kvx_manager_destroy(m); }
  kvx::manager::Manager& impl() const { return *m->impl; }
  operator kvx_manager_t() const { return m; }
};

inline kvx_manager_config_t small_config(int64_t num_blocks, int64_t block_tokens,
                                         kvx_eviction_policy_t policy = KVX_EVICTION_LRU) {
  kvx_manager_config_t c = kvx_manager_config_init();
  c.num_blocks = num_blocks;
  c.block_tokens = block_tokens;
  c.eviction = policy;
  return c;
}

inline kvx_manager_metrics_t metrics_of(kvx_manager_t m) {
  kvx_manager_metrics_t x = kvx_manager_metrics_init();
  EXPECT_EQ(kvx_manager_get_metrics(m, &x), KVX_OK) << kvx_last_error();
  return x;
}

// Everything a caller can observe, for the given live sequences.
inline std::string fingerprint(kvx_manager_t m, const std::vector<kvx_seq_id_t>& seqs) {
  kvx_manager_metrics_t x = metrics_of(m);
  std::string out(reinterpret_cast<const char*>(&x), sizeof x);
  for (const kvx_seq_id_t id : seqs) {
    const kvx::manager::Seq* s = m->impl->find_seq_for_test(id);
    out.append("|").append(std::to_string(id)).append(":");
    if (s == nullptr) {
      out += "gone";
      continue;
    }
    out.append(std::to_string(s->num_tokens)).append(":");
    // A block's tokens up to the sequence's length: the slots past it hold
    // no state (a refused batched append may have written them).
    const int64_t T = m->impl->config().block_tokens;
    for (size_t i = 0; i < s->blocks.size(); ++i) {
      const int32_t b = s->blocks[i];
      out.append(std::to_string(b)).append(",");
      const int64_t valid = std::min<int64_t>(T, s->num_tokens - static_cast<int64_t>(i) * T);
      if (b == KVX_NULL_BLOCK) continue;
      for (int64_t j = 0; j < valid; ++j) out.append(std::to_string(m->impl->block_tokens_of(b)[j])).append(" ");
    }
  }
  return out;
}

inline std::vector<int32_t> random_tokens(uint64_t& state, size_t n, int32_t vocab) {
  std::vector<int32_t> t(n);
  for (auto& v : t) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    v = static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

}  // namespace kvx::test
