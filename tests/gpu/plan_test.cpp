// The decode split plan (kvx::cuda::plan_splits) is host arithmetic: checked
// here without a GPU, in CI. The figures it is tuned to are in
// docs/perf-notes.md (rounds 3, 5 and 7).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "backends/cuda/launch.hpp"
#include "backends/cuda/plan.hpp"

namespace kvx::cuda {
namespace {

constexpr int64_t kSms = 132;     // H100
constexpr int64_t kSlots = 264;   // 132 SMs x 2 resident CTAs
constexpr int64_t kUnits = 8;     // kv heads x head tiles
constexpr int64_t kT = 16;        // block tokens
constexpr int64_t kPage = 8192;   // K + V bytes of a 16-token page of one head (d 128, bf16)

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The H100 with the tensor-core kernel (Llama-3.1-8B pages) unless told otherwise.
SplitTarget h100(int64_t units = kUnits, int64_t slots = kSlots, bool tensor_cores = true) {
  return {.units = units, .block_tokens = kT, .page_bytes = kPage, .sms = kSms, .slots = slots,
          .tensor_cores = tensor_cores};
}
SplitSchedule plan(const std::vector<int64_t>& pages, int64_t units = kUnits, const DecodeTuning& t = {}) {
  return plan_splits(pages.data(), static_cast<int64_t>(pages.size()), h100(units), t);
}
int32_t splits_of(int64_t batch, int64_t len, int64_t units = kUnits) {
  return plan(std::vector<int64_t>(static_cast<size_t>(batch), len / kT), units).max_splits;
}

// The shapes keep the schedules measured in rounds 3-5.
TEST(PlanSplits, TheBenchShapes) {
  EXPECT_EQ(splits_of(64, 4096), 1);   // 512 CTAs already fill the GPU
  EXPECT_EQ(splits_of(128, 8192), 1);
  EXPECT_EQ(splits_of(256, 1024), 1);
  EXPECT_EQ(splits_of(64, 4096, 32), 1);  // MHA
  EXPECT_EQ(splits_of(64, 4096, 1), 4);   // 8 query heads on 1 kv head: 64 rows, 256 CTAs
  // 1 x 32k: about a CTA per slot (32 splits measured 2,272 GB/s, 16: 2,262).
  const int32_t s = splits_of(1, 32768);
  EXPECT_GE(s, 16);
  EXPECT_LE(s * kUnits, kSlots);
}

TEST(PlanSplits, OneRowPerSmIsNotSplit) {
  // 16 x 2k (T 16): 128 rows on 132 SMs; one CTA per SM draws as much as two
  // and needs no merge.
  EXPECT_EQ(splits_of(16, 2048), 1);
  EXPECT_EQ(splits_of(16, 8192), 1);
  // Not for the CUDA-core kernel (MHA): two of its CTAs per SM draw more (4 x
  // 4k, 32 kv heads: 2,264 GB/s unsplit, 2,700 at 2 splits, round 7).
  const std::vector<int64_t> mha(4, 256);
  EXPECT_GT(plan_splits(mha.data(), 4, h100(32, 4 * kSms, false), {}).max_splits, 1);  // 4 CTAs an SM
  EXPECT_EQ(plan_splits(mha.data(), 4, h100(32), {}).max_splits, 1);
  // Empty rows do not count: 16 busy sequences among 20.
  std::vector<int64_t> pages(20, 0);
  for (int i = 0; i < 16; ++i) pages[static_cast<size_t>(i)] = 128;
  EXPECT_EQ(plan(pages).max_splits, 1);
}

// Round 7 (docs/perf-notes.md): small batches split until the SMs are busy;
// batches just past the SM count are not pushed over the slot count.
TEST(PlanSplits, SmallBatchesFillTheSms) {
  // 1 x 2k: 2 splits (16 CTAs) measured 251 GB/s, 16 splits 557.
  EXPECT_GE(splits_of(1, 2048) * kUnits, kSms / 2);
  EXPECT_GE(splits_of(2, 2048) * 2 * kUnits, kSms / 2);
  EXPECT_GE(splits_of(1, 8192) * kUnits, kSms / 2);
  // 4 x 8k: 8 splits 2,303 GB/s, 2 splits 1,375.
  EXPECT_GE(splits_of(4, 8192), 4);
  // Never more CTAs than slots when the batch fits them.
  for (const int64_t b : {1, 2, 4, 8, 12}) EXPECT_LE(splits_of(b, 2048) * b * kUnits, kSlots) << b;
}

TEST(PlanSplits, RowsJustPastTheSmsAreNotPushedPastTheSlots) {
  // 17 x 2k: 136 rows. Two splits (272 CTAs > 264 slots) measured 1,826
  // GB/s, none 2,237: the plan does not split.
  EXPECT_EQ(splits_of(17, 2048), 1);
  EXPECT_EQ(splits_of(20, 2048), 1);
  EXPECT_EQ(splits_of(24, 2048), 1);
  // The modelled time says the same.
  const DecodeTuning t;
  std::vector<int64_t> pages(17, 128);
  EXPECT_LT(estimate_decode_us(pages.data(), 17, 128, h100(), t),
            estimate_decode_us(pages.data(), 17, 64, h100(), t));
}

TEST(PlanSplits, TheModelCountsWavesAndTheMerge) {
  const DecodeTuning t;
  std::vector<int64_t> pages(16, 128);  // 16 x 2k
  const double one = estimate_decode_us(pages.data(), 16, 128, h100(), t);
  // 128 CTAs of 1 MB at cta_gbps, one wave: ~44 us + the start.
  EXPECT_NEAR(one, 1e3 * 128 * kPage * 1e-6 / t.cta_gbps + t.cta_start_us, 0.5);
  // Two splits: 256 CTAs, two per SM at sm_gbps, all of them at dram_gbps
  // (here the bound), and the merge.
  const double two = estimate_decode_us(pages.data(), 16, 64, h100(), t);
  const double cta_mb = 64 * kPage * 1e-6;
  EXPECT_NEAR(two, 1e3 * std::max(2 * cta_mb / t.sm_gbps, 256 * cta_mb / t.dram_gbps) + t.cta_start_us + t.merge_us,
              0.5);
  // 2,048 CTAs: 8 waves.
  pages.assign(64, 1024);  // 64 x 16k, 4 splits
  const double waves = estimate_decode_us(pages.data(), 64, 256, h100(), t);
  EXPECT_GT(waves, 8 * t.cta_start_us + t.merge_us);
  // Nothing to read, nothing to time.
  pages.assign(4, 0);
  EXPECT_EQ(estimate_decode_us(pages.data(), 4, 64, h100(), t), 0.0);
}

TEST(PlanSplits, RaggedBatchesTakeTwoWaves) {
  const DecodeTuning tuning;
  std::vector<int64_t> pages(64);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = 7 + static_cast<int64_t>(i) * 16;  // 7 .. 1015 pages
  const int64_t total = std::accumulate(pages.begin(), pages.end(), int64_t{0});
  const SplitSchedule s = plan(pages);
  EXPECT_EQ(s.chunk_pages, ceil_div(total * kUnits, tuning.ragged_waves * kSlots));
  EXPECT_EQ(s.max_splits, ceil_div(1015, s.chunk_pages));
  EXPECT_EQ(s.max_splits, 3);
  // The same total in equal lengths takes one wave: 512 CTAs, no split.
  EXPECT_EQ(plan(std::vector<int64_t>(64, total / 64)).max_splits, 1);
  // A ragged batch too small for two waves of 1,024-token splits takes
  // splits of about its work / SMs: more CTAs than that minimum would give
  // (3 x 8), no more than the slots.
  pages = {128, 8, 8, 8};
  const SplitSchedule small = plan(pages);
  EXPECT_LT(small.chunk_pages, 1024 / kT);
  int64_t ctas = 0;
  for (const int64_t p : pages) ctas += ceil_div(p, small.chunk_pages) * kUnits;
  EXPECT_EQ(small.chunk_pages, ceil_div(152 * kUnits, kSms));
  EXPECT_GT(ctas, 3 * kUnits);
  EXPECT_LE(ctas, kSlots);
}

TEST(PlanSplits, TuningRunsFixTheSplitCount) {
  DecodeTuning t;
  t.splits = 6;
  const SplitSchedule s = plan(std::vector<int64_t>(64, 256), kUnits, t);
  EXPECT_EQ(s.max_splits, 6);
  EXPECT_EQ(s.chunk_pages, ceil_div(256, 6));
  t.splits = 1;
  EXPECT_EQ(plan(std::vector<int64_t>(1, 2048), kUnits, t).max_splits, 1);
}

TEST(PlanSplits, SplitsAreCappedAndEmptyBatchesDoNotSplit) {
  DecodeTuning tuning;
  tuning.split_cap = 1000;  // over what the merge kernel takes: kMaxSplits still bounds it
  std::vector<int64_t> pages(1, int64_t{1} << 20);
  SplitSchedule s = plan(pages, 1, tuning);
  EXPECT_LE(s.max_splits, kMaxSplits);
  EXPECT_GE(s.chunk_pages * s.max_splits, pages[0]);
  tuning.splits = 1000;
  s = plan(pages, 1, tuning);
  EXPECT_EQ(s.max_splits, kMaxSplits);
  pages.assign(4, 0);
  EXPECT_EQ(plan(pages).max_splits, 1);
}

}  // namespace
}  // namespace kvx::cuda
