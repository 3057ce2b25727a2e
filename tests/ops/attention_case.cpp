#include "attention_case.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "oracle.hpp"

namespace kvx_test {

std::string AttnCase::name() const {
  std::string s = fmt::format("{}(dtype={},src={},hd={},hdv={},T={},layout={},gqa={},kvh={},len={}", prefill ? "PREFILL" : "DECODE",
                              dtype_str(dtype), dtype_str(src_dtype), head_dim, head_dim_v, block_tokens,
                              kvx_preset_name(preset), gqa, kv_heads, fmt::join(lens, "/"));
  if (prefill) s += fmt::format(",q={},causal={}", fmt::join(qrows, "/"), causal);
  s += fmt::format(",win={},sink={},cap={},scale={},table={},seed={})", window, sink, cap, scale,
                   table == KVX_PAGE_TABLE_CSR ? "csr" : "dense", seed);
  return s;
}

AttnResult run_attention_case(const AttnCase& c, bool check) {
  AttnResult r;
  Rng garbage(c.seed ^ 0x9e3779b97f4a7c15ull);  // the cache's initial bytes: differ per preset, never read
  Rng data(c.seed);
  const CacheGeometry g{.dtype = c.dtype,
                        .layers = 2,
                        .blocks = blocks_needed(c.lens, c.block_tokens) + 3,
                        .block_tokens = c.block_tokens,
                        .kv_heads = c.kv_heads,
                        .head_dim = c.head_dim,
                        .head_dim_v = c.head_dim_v};
  auto cache = Cache::make(c.preset, g, garbage, &r.status);
  if (!cache) {
    r.unsupported_preset = r.status == KVX_ERR_UNSUPPORTED;
    r.message = kvx_last_error();
    return r;
  }
  const int64_t layer = static_cast<int64_t>(data() % 2);
  const Batch batch = make_batch(c.lens, cache->layout(), data);
  Tensor k = make_tensor(c.src_dtype, batch.total_tokens(), c.kv_heads, c.head_dim, data, true);
  Tensor v = make_tensor(c.src_dtype, batch.total_tokens(), c.kv_heads, c.head_dim_v, data, true);
  fill_values(k, data);
  fill_values(v, data);
  r.status = append_batch(cache->layout(), layer, batch, k, v);
  if (r.status != KVX_OK) {
    r.message = std::string("append: ") + kvx_last_error();
    return r;
  }

  std::vector<int32_t> q_indptr{0};
  for (int64_t n : c.qrows) q_indptr.push_back(q_indptr.back() + static_cast<int32_t>(n));
  const int64_t rows = c.prefill ? q_indptr.back() : static_cast<int64_t>(c.lens.size());
  const int64_t hq = c.kv_heads * c.gqa;
  Tensor q = make_tensor(c.dtype, rows, hq, c.head_dim, data, true);
  fill_values(q, data);
  Tensor out = make_tensor(c.dtype, rows, hq, c.head_dim_v, data, true);
  Tensor lse = make_tensor(KVX_DTYPE_F32, rows, hq, 1, data, true);
  poison(out);
  poison(lse);

  const kvx_page_table_t table = batch.table(c.table);
  kvx_attention_args_t a = KVX_ATTENTION_ARGS_INIT;
  a.cache = &cache->layout();
  a.layer = layer;
  a.page_table = &table;
  a.q_indptr = c.prefill ? q_indptr.data() : nullptr;
  a.q = q.t;
  a.out = out.t;
  a.lse = lse.t;
  a.scale = c.scale;
  a.logit_softcap = c.cap;
  a.causal = c.causal;
  a.window_left = c.window;
  a.sink_tokens = c.sink;
  r.status = c.prefill ? kvx_attention_prefill(&a, nullptr) : kvx_attention_decode(&a, nullptr);
  if (r.status != KVX_OK) {
    r.message = kvx_last_error();
    return r;
  }
  r.out = tensor_values(out.t);
  r.lse = tensor_values(lse.t);
  if (!check) return r;

  const AttentionRef ref = attention_oracle(a);
  r.out_err = compare(r.out, ref.out);
  for (size_t i = 0; i < ref.lse.size(); ++i) {
    if (std::isinf(ref.lse[i]) || std::isinf(r.lse[i])) {
      r.lse_inf_mismatch |= r.lse[i] != ref.lse[i];
      continue;
    }
    const double e = std::fabs(r.lse[i] - ref.lse[i]) / std::fmax(1.0, std::fabs(ref.lse[i]));
    r.lse_err = std::isnan(e) ? INFINITY : std::fmax(r.lse_err, e);
  }
  return r;
}

}  // namespace kvx_test
