// The float64 oracle of the reference ops. It shares no code with the library
// beyond the public C API: cache elements are found through
// kvx_layout_offset(), page tables and 16-bit floats are decoded here, and
// attention is the textbook formula (every logit, then a full softmax in
// double), with no online rescaling.
#pragma once

#include <cstdint>
#include <vector>

#include "kvx/kvx.h"

namespace kvx_test {

// Decodes one stored element of dtype f32/f16/bf16.
double decode_element(const void* p, kvx_dtype_t dtype);

// One element of the cache, read through kvx_layout_offset().
double cache_element(const kvx_layout_t& cache, const kvx_coord_t& coord);

// Element (token, head, dim) of a dense tensor.
double tensor_element(const kvx_tensor_t& t, int64_t token, int64_t head, int64_t dim);

// A host page table decoded by the oracle itself.
struct OracleTable {
  std::vector<int64_t> lens;                 // per sequence
  std::vector<std::vector<int64_t>> blocks;  // per sequence, per page
};
OracleTable decode_page_table(const kvx_page_table_t& table, int64_t block_tokens);

// The logical K (kv 0) or V (kv 1) of one sequence of one layer:
// [len][num_kv_heads][head_dim] in double.
std::vector<double> sequence_plane(const kvx_layout_t& cache, const OracleTable& table, int64_t layer,
                                   int64_t seq, int64_t kv);

struct AttentionRef {
  std::vector<double> out;  // [rows][num_q_heads][head_dim_v]
  std::vector<double> lse;  // [rows][num_q_heads]; -inf where no key is visible
};

// Attention exactly as kvx/ops.h defines it. q_indptr null: decode.
AttentionRef attention_oracle(const kvx_attention_args_t& args);

}  // namespace kvx_test
