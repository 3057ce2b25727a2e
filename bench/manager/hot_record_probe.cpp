// How much would a dense 32-byte hot record per sequence (instead of the
// first cache line of the 128-byte Seq) save in the decode step's pass?
// A stand-alone model of the pass of Manager::append_decode (id check,
// duplicate mark, length, last block's reference count, the token row, the
// slot), over 1,024 sequences with records of 128, 64 or 32 bytes; with
// -DNO_REFS=1 / -DNO_ROWS=1 it drops the reference-count read / the token
// write, to see what those lines cost. Not part of the build:
//   g++ -O3 -std=c++20 bench/manager/hot_record_probe.cpp -o hot_record_probe
//   taskset -c 1 ./hot_record_probe
// Prints the median microseconds of a pass, three rounds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#ifndef NO_REFS
#define NO_REFS 0
#endif
#ifndef NO_ROWS
#define NO_ROWS 0
#endif

namespace {

template <int S>
struct alignas(S >= 64 ? 64 : S) Record {
  int64_t key;
  uint64_t mark;
  int64_t num_tokens;
  int32_t last_block;
  uint32_t window;
  char pad[S - 32];
};
template <>
struct alignas(32) Record<32> {
  int64_t key;
  uint64_t mark;
  int64_t num_tokens;
  int32_t last_block;
  uint32_t window;
};

template <int S>
double median_pass_us() {
  constexpr int kSeqs = 1024, kBlocks = 65536, kT = 16;
  std::mt19937_64 rng(1);
  std::vector<Record<S>> seqs(kSeqs + 8);
  std::vector<int32_t> refs(kBlocks, 1), rows(static_cast<size_t>(kBlocks) * kT), tokens(kSeqs);
  std::vector<int64_t> ids(kSeqs), slots(kSeqs);
  std::vector<uint32_t> fresh(kSeqs + 1), full(kSeqs + 1);
  std::vector<int32_t> blocks(kBlocks - 1);
  for (int i = 0; i < kBlocks - 1; ++i) blocks[i] = i + 1;
  std::shuffle(blocks.begin(), blocks.end(), rng);
  auto lengths = [&] {
    for (int i = 0; i < kSeqs; ++i) seqs[i].num_tokens = 17 + static_cast<int64_t>(rng() % 200);
  };
  for (int i = 0; i < kSeqs; ++i) {
    ids[i] = i;
    seqs[i].key = i;
    seqs[i].last_block = blocks[i];
    seqs[i].window = 0;
    tokens[i] = i;
  }
  lengths();
  uint64_t epoch = 0;
  std::vector<double> us;
  for (int rep = 0; rep < 20000; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    ++epoch;
    size_t num_fresh = 0, num_full = 0;
    for (int i = 0; i < kSeqs; ++i) {
      if (i + 8 < kSeqs) __builtin_prefetch(&seqs[ids[i + 8]]);
      Record<S>& s = seqs[ids[i]];
      if (s.key != ids[i] || s.mark == epoch) __builtin_trap();
      s.mark = epoch;
      if (s.window != 0) break;
      const int64_t off = s.num_tokens & (kT - 1);
      if (off == 0) {
        slots[i] = -1;
        fresh[num_fresh++] = i;
        ++s.num_tokens;
        continue;
      }
      if (!NO_REFS && refs[s.last_block] != 1) break;
      const int64_t at = int64_t{s.last_block} * kT + off;
      if (!NO_ROWS) rows[at] = tokens[i];
      slots[i] = at;
      ++s.num_tokens;
      full[num_full] = i;
      num_full += off + 1 == kT ? 1 : 0;
    }
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    if (rep % 64 == 63) lengths();  // the benchmark renews its sequences every 64 steps
    asm volatile("" ::: "memory");
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

}  // namespace

int main() {
  for (int round = 0; round < 3; ++round)
    std::printf("pass, median us: 128-byte records %.2f, 64-byte %.2f, 32-byte %.2f\n", median_pass_us<128>(),
                median_pass_us<64>(), median_pass_us<32>());
}
