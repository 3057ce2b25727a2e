// One attention case of the differential tests: its axes, its stable name
// (the key printed with every failure), and a run against the oracle.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness.hpp"

namespace kvx_test {

struct AttnCase {
  bool prefill = false;
  kvx_dtype_t dtype = KVX_DTYPE_F32;
  int64_t head_dim = 64, head_dim_v = 64, block_tokens = 16, kv_heads = 2, gqa = 1;
  kvx_preset_t preset = KVX_PRESET_FLASHINFER_NHD;
  kvx_page_table_kind_t table = KVX_PAGE_TABLE_CSR;
  std::vector<int64_t> lens;   // cached tokens per sequence
  std::vector<int64_t> qrows;  // prefill: query rows per sequence
  int64_t window = -1, sink = 0;
  float cap = 0.0f, scale = 0.0f;
  int causal = 1;
  kvx_dtype_t src_dtype = KVX_DTYPE_F32;  // dtype of the appended K/V
  uint64_t seed = 1;

  // "DECODE(dtype=bf16,hd=128,T=16,layout=flashinfer_nhd,gqa=4,len=97,win=-1,sink=0,cap=0,...)"
  std::string name() const;
};

struct AttnResult {
  kvx_status_t status = KVX_OK;  // of the op (or of building the cache)
  std::string message;
  bool unsupported_preset = false;  // the preset cannot express the geometry
  std::vector<double> out, lse;     // what the op wrote
  ErrorStats out_err;               // against the oracle (when asked)
  double lse_err = 0.0;             // max |lse - ref| / max(1, |ref|)
  bool lse_inf_mismatch = false;    // -inf where the oracle has none, or the reverse
};

// Builds the cache in c.preset, appends the batch's K/V (data drawn from
// c.seed alone, so every preset holds the same values), runs the op and, with
// `check`, the oracle.
AttnResult run_attention_case(const AttnCase& c, bool check);

}  // namespace kvx_test
