// The decode split plan (kvx::cuda::plan_splits) is host arithmetic: checked
// here without a GPU, in CI. The figures it is tuned to are in
// docs/perf-notes.md (rounds 3 and 5).
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <vector>

#include "backends/cuda/launch.hpp"
#include "backends/cuda/plan.hpp"

namespace kvx::cuda {
namespace {

constexpr int64_t kSms = 132;    // H100
constexpr int64_t kSlots = 264;  // 132 SMs x 2 resident CTAs
constexpr int64_t kUnits = 8;    // kv heads x head tiles
constexpr int64_t kMinChunk = 64;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

TEST(PlanSplits, UniformBatchesTakeOneWave) {
  const DecodeTuning tuning;
  // 64 x 4k (T 16): 512 CTAs already fill the GPU; no split.
  std::vector<int64_t> pages(64, 256);
  SplitSchedule s = plan_splits(pages.data(), 64, kUnits, kSms, kSlots, kMinChunk, tuning);
  EXPECT_EQ(s.max_splits, 1);
  // 1 x 32k: split to about one CTA a slot, never under the minimum chunk.
  pages.assign(1, 2048);
  s = plan_splits(pages.data(), 1, kUnits, kSms, kSlots, kMinChunk, tuning);
  EXPECT_EQ(s.chunk_pages, kMinChunk);
  EXPECT_EQ(s.max_splits, 2048 / kMinChunk);
  // With a smaller minimum the chunk is total / slots.
  s = plan_splits(pages.data(), 1, kUnits, kSms, kSlots, 16, tuning);
  EXPECT_EQ(s.chunk_pages, ceil_div(2048 * kUnits, kSlots));
  EXPECT_EQ(s.max_splits, ceil_div(2048, s.chunk_pages));
}

TEST(PlanSplits, OneRowPerSmIsNotSplit) {
  const DecodeTuning tuning;
  // 16 x 2k (T 16): 128 rows on 132 SMs would split in two to fill the 264
  // slots; one CTA per SM draws as much and needs no merge.
  std::vector<int64_t> pages(16, 128);
  EXPECT_EQ(plan_splits(pages.data(), 16, kUnits, kSms, kSlots, kMinChunk, tuning).max_splits, 1);
  // Without the rule (fill over 1) it splits, as before.
  DecodeTuning off = tuning;
  off.full_sm_fill = 2.0;
  EXPECT_EQ(plan_splits(pages.data(), 16, kUnits, kSms, kSlots, kMinChunk, off).max_splits, 2);
  // Rows under the fill (15 x 8 = 120 < 0.95 x 132) or over the SM count
  // (17 x 8 = 136: some SM would take two rows) still split.
  pages.assign(15, 128);
  EXPECT_EQ(plan_splits(pages.data(), 15, kUnits, kSms, kSlots, kMinChunk, tuning).max_splits, 2);
  pages.assign(17, 128);
  EXPECT_EQ(plan_splits(pages.data(), 17, kUnits, kSms, kSlots, kMinChunk, tuning).max_splits, 2);
  // Empty rows do not count: 16 busy sequences among 20.
  pages.assign(20, 0);
  for (int i = 0; i < 16; ++i) pages[static_cast<size_t>(i)] = 128;
  EXPECT_EQ(plan_splits(pages.data(), 20, kUnits, kSms, kSlots, kMinChunk, tuning).max_splits, 1);
}

TEST(PlanSplits, RaggedBatchesTakeTwoWaves) {
  const DecodeTuning tuning;
  std::vector<int64_t> pages(64);
  for (size_t i = 0; i < pages.size(); ++i) pages[i] = 7 + static_cast<int64_t>(i) * 16;  // 7 .. 1015 pages
  const int64_t total = std::accumulate(pages.begin(), pages.end(), int64_t{0});
  const SplitSchedule s = plan_splits(pages.data(), 64, kUnits, kSms, kSlots, kMinChunk, tuning);
  EXPECT_EQ(s.chunk_pages, ceil_div(total * kUnits, tuning.ragged_waves * kSlots));
  EXPECT_EQ(s.max_splits, ceil_div(1015, s.chunk_pages));
  EXPECT_EQ(s.max_splits, 3);
  // The same total in equal lengths takes one wave: 512 CTAs, no split.
  std::vector<int64_t> even(64, total / 64);
  EXPECT_EQ(plan_splits(even.data(), 64, kUnits, kSms, kSlots, kMinChunk, tuning).max_splits, 1);
}

TEST(PlanSplits, SplitsAreCappedAndEmptyBatchesDoNotSplit) {
  DecodeTuning tuning;
  tuning.split_cap = 1000;  // over what the merge kernel takes: kMaxSplits still bounds it
  std::vector<int64_t> pages(1, int64_t{1} << 20);
  SplitSchedule s = plan_splits(pages.data(), 1, 1, kSms, kSlots, 1, tuning);
  EXPECT_EQ(s.max_splits, kMaxSplits);
  EXPECT_GE(s.chunk_pages * s.max_splits, pages[0]);
  pages.assign(4, 0);
  s = plan_splits(pages.data(), 4, kUnits, kSms, kSlots, kMinChunk, tuning);
  EXPECT_EQ(s.max_splits, 1);
}

}  // namespace
}  // namespace kvx::cuda
