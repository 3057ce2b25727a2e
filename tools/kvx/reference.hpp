// A naive float64 attention over logical (unpaged) K/V: the demo's oracle.
// It follows the semantics written in include/kvx/ops.h and shares no code
// with the library.
#pragma once

#include <cstdint>
#include <vector>

namespace kvx::tool {

struct ReferenceAttention {
  int64_t num_q_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;    // of Q and K
  int64_t head_dim_v = 0;  // of V and the output
  // Logical K [token][kv_head][head_dim] and V [token][kv_head][head_dim_v] of
  // every sequence, one after another: sequence b starts at seq_start[b].
  const std::vector<double>* k = nullptr;
  const std::vector<double>* v = nullptr;
  std::vector<int64_t> seq_start;
  std::vector<int64_t> seq_len;
  // Query row r belongs to sequence row_seq[r] and sits at position row_pos[r].
  const std::vector<double>* q = nullptr;  // [row][q_head][head_dim]
  std::vector<int64_t> row_seq;
  std::vector<int64_t> row_pos;
  double scale = 0.0;  // 0: 1 / sqrt(head_dim)
  double logit_softcap = 0.0;
  bool causal = true;
  int64_t window_left = -1;
  int64_t sink_tokens = 0;
};

struct ReferenceResult {
  std::vector<double> out;  // [row][q_head][head_dim_v]
  std::vector<double> lse;  // [row][q_head], natural log; -inf when no key is visible
};

ReferenceResult reference_attention(const ReferenceAttention& problem);

}  // namespace kvx::tool
