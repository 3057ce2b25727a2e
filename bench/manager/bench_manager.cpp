// Block manager benchmarks: the targets of issue 3 on one core.
//   pool allocate+free pairs        >= 10 M/s
//   one token appended to each of 1,024 sequences   < 20 us
//   prefix lookup of a 32k-token prompt (2,048 blocks of 16), hashing included   < 100 us
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "kvx/manager.h"
#include "manager/manager.hpp"

namespace {

void check(kvx_status_t st) {
  if (st != KVX_OK) throw std::runtime_error(kvx_last_error());
}

kvx_manager_t make_manager(int64_t blocks, int64_t block_tokens) {
  kvx_manager_config_t c = kvx_manager_config_init();
  c.num_blocks = blocks;
  c.block_tokens = block_tokens;
  kvx_manager_t m = nullptr;
  check(kvx_manager_create(&c, &m));
  return m;
}

std::vector<int32_t> random_tokens(std::mt19937_64& rng, size_t n) {
  std::vector<int32_t> t(n);
  for (auto& v : t) v = static_cast<int32_t>(rng() % 128000);
  return t;
}

// The pool's own cost: take a block id, give it back (the free stack and
// frontier of the device pool).
void BM_PoolAllocFreePairs(benchmark::State& state) {
  kvx_manager_t m = make_manager(1 << 16, 16);
  kvx::manager::BlockPool& pool = m->impl->pool();
  std::vector<int32_t> held(64);
  for (auto _ : state) {
    for (auto& b : held) b = pool.pop();
    for (auto it = held.rbegin(); it != held.rend(); ++it) pool.push(*it);
    benchmark::DoNotOptimize(held.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(held.size()));
  kvx_manager_destroy(m);
}
BENCHMARK(BM_PoolAllocFreePairs);

// The same through the C ABI with sequences: a block's whole life (create a
// sequence, fill one block, which publishes and hashes it, free it).
void BM_SeqBlockLifecycle(benchmark::State& state) {
  kvx_manager_t m = make_manager(1 << 16, 16);
  std::mt19937_64 rng(7);
  const auto tokens = random_tokens(rng, 16);
  int64_t slots[16];
  for (auto _ : state) {
    kvx_seq_id_t id;
    check(kvx_seq_create(m, nullptr, nullptr, 0, nullptr, &id, nullptr));
    check(kvx_seq_append(m, id, tokens.data(), 16, slots, nullptr));
    check(kvx_seq_free(m, id));
  }
  state.SetItemsProcessed(state.iterations());
  kvx_manager_destroy(m);
}
BENCHMARK(BM_SeqBlockLifecycle);

// A decode step: one token appended to each of 1,024 live sequences of
// ragged lengths (a block fills, is hashed and published every 16th step of
// each sequence). Sequences are renewed every 64 steps outside the timing.
void BM_DecodeStep1024(benchmark::State& state) {
  constexpr int kSeqs = 1024;
  kvx_manager_t m = make_manager(1 << 16, 16);
  std::mt19937_64 rng(11);
  std::vector<kvx_seq_id_t> ids(kSeqs);
  auto renew = [&] {
    for (const kvx_seq_id_t id : ids) {
      if (id != 0) check(kvx_seq_free(m, id));
    }
    check(kvx_manager_reset(m));
    for (auto& id : ids) {
      const auto prompt = random_tokens(rng, 17 + rng() % 200);
      std::vector<int64_t> slots(prompt.size());
      check(kvx_seq_create(m, nullptr, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &id, nullptr));
    }
  };
  renew();
  const auto tokens = random_tokens(rng, kSeqs);
  std::vector<int64_t> slots(kSeqs);
  int64_t steps = 0;
  for (auto _ : state) {
    check(kvx_seq_append_batch(m, ids.data(), kSeqs, tokens.data(), slots.data(), nullptr));
    benchmark::DoNotOptimize(slots.data());
    if (++steps % 64 == 0) {
      state.PauseTiming();
      renew();
      state.ResumeTiming();
    }
  }
  state.counters["seqs"] = kSeqs;
  kvx_manager_destroy(m);
}
BENCHMARK(BM_DecodeStep1024)->Unit(benchmark::kMicrosecond);

// A manager whose cache holds all 2,048 blocks of a random 32k-token prompt.
kvx_manager_t cached_prompt_manager(uint64_t seed, std::vector<int32_t>* prompt) {
  kvx_manager_t m = make_manager(4096, 16);
  std::mt19937_64 rng(seed);
  *prompt = random_tokens(rng, 32768);
  std::vector<int64_t> slots(prompt->size());
  kvx_seq_id_t id;
  check(kvx_seq_create(m, nullptr, prompt->data(), 32768, slots.data(), &id, nullptr));
  check(kvx_seq_free(m, id));
  return m;
}

// Longest cached prefix of a 32k-token prompt whose 2,048 blocks of 16 are
// all cached: 2,048 chained xxh3-128 hashes and table probes.
void BM_PrefixLookup32k(benchmark::State& state) {
  std::vector<int32_t> prompt;
  kvx_manager_t m = cached_prompt_manager(13, &prompt);
  kvx_seq_params_t p = kvx_seq_params_init();
  p.flags = KVX_SEQ_MATCH_LAST_TOKEN;
  int64_t matched = 0;
  for (auto _ : state) {
    check(kvx_manager_match_prefix(m, &p, prompt.data(), 32768, &matched, nullptr));
    benchmark::DoNotOptimize(matched);
  }
  if (matched != 32768) state.SkipWithError("the prompt is not fully cached");
  state.counters["blocks"] = 2048;
  kvx_manager_destroy(m);
}
BENCHMARK(BM_PrefixLookup32k)->Unit(benchmark::kMicrosecond);

// The same prompt attached as a new sequence (lookup + 2,048 references
// taken) and freed again.
void BM_PrefixAttach32k(benchmark::State& state) {
  std::vector<int32_t> prompt;
  kvx_manager_t m = cached_prompt_manager(17, &prompt);
  kvx_seq_params_t p = kvx_seq_params_init();
  p.flags = KVX_SEQ_MATCH_LAST_TOKEN;
  std::vector<int64_t> slots(prompt.size());
  kvx_seq_id_t id;
  for (auto _ : state) {
    kvx_seq_match_t match;
    check(kvx_seq_create(m, &p, prompt.data(), 32768, slots.data(), &id, &match));
    check(kvx_seq_free(m, id));
    if (match.matched_tokens != 32768) state.SkipWithError("the prompt is not fully cached");
  }
  kvx_manager_destroy(m);
}
BENCHMARK(BM_PrefixAttach32k)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
