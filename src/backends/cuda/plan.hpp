// The attention plan: a decode schedule made on the host once per batch shape
// (kvx_attention_plan_create) and passed to every run in args.plan. It is a
// small value (no device memory): the split count and pages per split chosen
// from the batch's lengths and the device's SM count, plus the shape it was
// made for, checked at each run. Implemented by backends/cuda/plan.cpp, or by
// backends/cuda/unavailable.cpp (KVX_ERR_UNSUPPORTED) without CUDA.
#pragma once

#include <cstdint>

#include "kvx/ops.h"

struct kvx_attention_plan {
  uint64_t magic;  // kvx::cuda::kPlanMagic while alive
  int32_t device_id;
  int32_t max_splits;    // splits per sequence at most (the grid's second dimension)
  int64_t chunk_pages;   // visible pages per split the schedule aims at (0 when max_splits is 1)
  int64_t num_seqs, num_q_heads, num_kv_heads, head_dim_k, head_dim_v, block_tokens;
  uint64_t workspace_bytes;
};

namespace kvx::cuda {

inline constexpr uint64_t kPlanMagic = 0x6b76785f706c616eull;  // "kvx_plan"

// Knobs of the split heuristic (the defaults are what docs/perf-notes.md measured).
struct DecodeTuning {
  int32_t waves = 1;         // no plan: aim at this many CTAs per resident CTA slot
  int32_t ragged_waves = 2;  // ragged batches (longest > ragged_ratio x mean): CTAs per slot
  double ragged_ratio = 1.25;
  // A split reads at least this many tokens: ragged batches and runs without
  // a plan (min_chunk_tokens), the other batches (min_split_tokens: one CTA tile).
  int64_t min_chunk_tokens = 1024, min_split_tokens = 64;
  int32_t split_cap = 128;  // splits per sequence at most (kMaxSplits bounds it)
  int32_t splits = 0;       // tuning runs: this many splits per sequence (0: the plan decides)
  // A uniform batch whose rows (sequence x kv head x head tile) number
  // between full_sm_fill x SMs and the SM count is not split when the kernel
  // is the tensor-core one: one of its CTAs per SM draws as much as two, and
  // no merge is needed (docs/perf-notes.md, round 5).
  double full_sm_fill = 0.95;
  // The time model that picks the split count of a batch whose lengths are
  // alike (fitted to the H100 split sweep, docs/perf-notes.md round 7): a CTA
  // streams its K/V at cta_gbps, the CTAs sharing an SM at sm_gbps together,
  // all CTAs at dram_gbps together; each wave of CTAs pays cta_start_us, a
  // split batch merge_us more.
  double cta_gbps = 24.0, sm_gbps = 34.0, dram_gbps = 3300.0;
  double cuda_core_cta_gbps = 17.0;  // the CUDA-core kernel's CTA (4 x 4k MHA unsplit, round 7)
  double cta_start_us = 3.0, merge_us = 10.0;
};
DecodeTuning& decode_tuning();

// What the split plan schedules on: CTAs per split of a sequence (`units`:
// kv heads x head tiles), pages of `block_tokens` tokens of which a CTA reads
// `page_bytes` of K/V each, a device of `sms` SMs with `slots` resident CTAs
// of the kernel, and which kernel (tensor cores or CUDA cores).
struct SplitTarget {
  int64_t units = 1, block_tokens = 1, page_bytes = 1, sms = 1, slots = 1;
  bool tensor_cores = true;
};

// The split schedule for sequences of `virt_pages[b]` visible pages.
//   Lengths alike: the split count (of 1, 2, 3, 4, 6, 8, 12, ... 128, at most
//     split_cap, splits of at least min_split_tokens) with the least
//     modelled time (estimate_decode_us), which fills the SMs for small
//     batches and keeps the CTA count off a wave boundary for the others;
//     about one row per SM is not split when the kernel is the tensor-core
//     one (round 5; two CTAs of the CUDA-core kernel draw more, round 7).
//   Ragged lengths: equal chunks of about total_work / (ragged_waves *
//     slots), never under min_chunk_tokens, so that the short CTAs of the
//     second wave fill in behind the long ones (round 3); a batch too small
//     to fill those waves takes chunks of about total_work / SMs (round 7;
//     the model ranks ragged batches wrongly).
// Pure host arithmetic.
struct SplitSchedule {
  int32_t max_splits = 1;
  int64_t chunk_pages = 0;
};
SplitSchedule plan_splits(const int64_t* virt_pages, int64_t num_seqs, const SplitTarget& target,
                          const DecodeTuning& tuning);

// The modelled time, in microseconds, of a decode whose sequences read
// `virt_pages[b]` pages in chunks of `chunk_pages` (see DecodeTuning;
// bench/decode/fit_plan_model.py is the same model in Python, for the fit).
double estimate_decode_us(const int64_t* virt_pages, int64_t num_seqs, int64_t chunk_pages,
                          const SplitTarget& target, const DecodeTuning& tuning);

// Visible pages of a decode query over `len` tokens (the sink pages plus the
// window's pages; all pages when window_left < 0).
int64_t visible_pages(int64_t len, int64_t block_tokens, int64_t window_left, int64_t sink_tokens);

kvx_status_t attention_plan_create(const kvx_attention_args_t* args, const kvx_exec_t* exec,
                                   kvx_attention_plan_t** out);
kvx_status_t attention_plan_workspace_bytes(const kvx_attention_plan_t* plan, uint64_t* out_bytes);
kvx_status_t attention_plan_destroy(kvx_attention_plan_t* plan);

}  // namespace kvx::cuda
