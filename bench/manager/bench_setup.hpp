// Set-ups shared by the manager benchmarks (bench_manager.cpp, timed) and
// the operation counter (manager_opcount.cpp, run under callgrind), so both
// measure exactly the same operations.
#pragma once

#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "kvx/manager.h"

namespace kvx::bench {

inline void check(kvx_status_t st) {
  if (st != KVX_OK) throw std::runtime_error(kvx_last_error());
}

inline kvx_manager_t make_manager(int64_t blocks, int64_t block_tokens) {
  kvx_manager_config_t c = kvx_manager_config_init();
  c.num_blocks = blocks;
  c.block_tokens = block_tokens;
  kvx_manager_t m = nullptr;
  check(kvx_manager_create(&c, &m));
  return m;
}

inline std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t n) {
  std::vector<int32_t> t(n);
  for (auto& v : t) v = static_cast<int32_t>(rng() % 128000);
  return t;
}

// A decode step: one token appended to each of 1,024 live sequences of
// ragged lengths (a block fills, is hashed and published every 16th step of
// each sequence). renew() replaces the sequences; callers renew every 64
// steps, outside the measurement.
class DecodeBatch {
 public:
  static constexpr int kSeqs = 1024;
  static constexpr int64_t kRenewEvery = 64;

  DecodeBatch() : m_(make_manager(1 << 16, 16)), rng_(11), ids_(kSeqs, 0), slots_(kSeqs) {
    renew();
    tokens_ = random_tokens(rng_, kSeqs);
  }
  DecodeBatch(const DecodeBatch&) = delete;
  DecodeBatch& operator=(const DecodeBatch&) = delete;
  ~DecodeBatch() { kvx_manager_destroy(m_); }

  void renew() {
    for (const kvx_seq_id_t id : ids_) {
      if (id != 0) check(kvx_seq_free(m_, id));
    }
    check(kvx_manager_reset(m_));
    for (auto& id : ids_) {
      const auto prompt = random_tokens(rng_, 17 + rng_() % 200);
      std::vector<int64_t> slots(prompt.size());
      check(kvx_seq_create(m_, nullptr, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &id, nullptr));
    }
  }
  // One timed step; true when the caller must renew() before the next.
  bool append() {
    check(kvx_seq_append_batch(m_, ids_.data(), kSeqs, tokens_.data(), slots_.data(), nullptr));
    return ++steps_ % kRenewEvery == 0;
  }
  // append() and its renewal (for the operation counter).
  void step() {
    if (append()) renew();
  }
  const int64_t* slots() const { return slots_.data(); }

 private:
  kvx_manager_t m_;
  std::mt19937_64 rng_;
  std::vector<kvx_seq_id_t> ids_;
  std::vector<int32_t> tokens_;
  std::vector<int64_t> slots_;
  int64_t steps_ = 0;
};

// A manager whose cache holds all 2,048 blocks of a random 32k-token prompt.
class CachedPrompt {
 public:
  static constexpr int64_t kTokens = 32768;

  explicit CachedPrompt(uint64_t seed) : m_(make_manager(4096, 16)) {
    std::mt19937_64 rng(seed);
    prompt_ = random_tokens(rng, kTokens);
    slots_.resize(prompt_.size());
    kvx_seq_id_t id;
    check(kvx_seq_create(m_, nullptr, prompt_.data(), kTokens, slots_.data(), &id, nullptr));
    check(kvx_seq_free(m_, id));
    params_ = kvx_seq_params_init();
    params_.flags = KVX_SEQ_MATCH_LAST_TOKEN;
  }
  CachedPrompt(const CachedPrompt&) = delete;
  CachedPrompt& operator=(const CachedPrompt&) = delete;
  ~CachedPrompt() { kvx_manager_destroy(m_); }

  // Longest cached prefix (2,048 chained xxh3-128 hashes and table probes);
  // returns the matched tokens.
  int64_t lookup() {
    int64_t matched = 0;
    check(kvx_manager_match_prefix(m_, &params_, prompt_.data(), kTokens, &matched, nullptr));
    return matched;
  }
  // The prompt attached as a new sequence (lookup + 2,048 references taken)
  // and freed again; returns the matched tokens.
  int64_t attach_and_free() {
    kvx_seq_id_t id;
    kvx_seq_match_t match;
    check(kvx_seq_create(m_, &params_, prompt_.data(), kTokens, slots_.data(), &id, &match));
    check(kvx_seq_free(m_, id));
    return match.matched_tokens;
  }

 private:
  kvx_manager_t m_;
  std::vector<int32_t> prompt_;
  std::vector<int64_t> slots_;
  kvx_seq_params_t params_{};
};

}  // namespace kvx::bench
