// Block manager benchmarks: the targets of issue 3 on one core.
//   pool allocate+free pairs        >= 10 M/s
//   one token appended to each of 1,024 sequences   < 20 us
//   prefix lookup of a 32k-token prompt (2,048 blocks of 16), hashing included   < 100 us
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <vector>

#include "bench_setup.hpp"
#include "kvx/manager.h"
#include "manager/manager.hpp"

namespace {

using namespace kvx::bench;

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

// A decode step (bench_setup.hpp): one token appended to each of 1,024 live
// sequences; sequences are renewed every 64 steps outside the timing.
void BM_DecodeStep1024(benchmark::State& state) {
  DecodeBatch d;
  for (auto _ : state) {
    const bool renew = d.append();
    benchmark::DoNotOptimize(d.slots());
    if (renew) {
      state.PauseTiming();
      d.renew();
      state.ResumeTiming();
    }
  }
  state.counters["seqs"] = DecodeBatch::kSeqs;
}
BENCHMARK(BM_DecodeStep1024)->Unit(benchmark::kMicrosecond);

// Longest cached prefix of a 32k-token prompt whose 2,048 blocks of 16 are
// all cached: 2,048 chained xxh3-128 hashes and table probes.
void BM_PrefixLookup32k(benchmark::State& state) {
  CachedPrompt c(13);
  int64_t matched = 0;
  for (auto _ : state) {
    // A call into the library, never elided; DoNotOptimize on the int64_t
    // result (GCC 12, benchmark 1.7.1) was seen to leave a stale value here.
    matched = c.lookup();
    benchmark::ClobberMemory();
  }
  if (matched != CachedPrompt::kTokens) state.SkipWithError("the prompt is not fully cached");
  state.counters["blocks"] = 2048;
}
BENCHMARK(BM_PrefixLookup32k)->Unit(benchmark::kMicrosecond);

// The same prompt attached as a new sequence (lookup + 2,048 references
// taken) and freed again.
void BM_PrefixAttach32k(benchmark::State& state) {
  CachedPrompt c(17);
  for (auto _ : state) {
    if (c.attach_and_free() != CachedPrompt::kTokens) state.SkipWithError("the prompt is not fully cached");
  }
}
BENCHMARK(BM_PrefixAttach32k)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
