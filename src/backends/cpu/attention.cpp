// CPU reference of paged attention (decode and prefill share it: decode is
// prefill with one query row per sequence). One work item is one (query row,
// query head); items run in parallel over OpenMP threads. Each item streams
// its visible keys once with an online softmax in f32: the running maximum
// keeps every exp() argument <= 0, so nothing overflows at any length.
// args.plan is a CUDA schedule and is ignored here.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/backend.hpp"
#include "backends/cpu/rows.hpp"
#include "layout/layout.hpp"

namespace kvx::cpu {
namespace {

struct QueryRow {
  int64_t seq;  // batch index
  int64_t pos;  // position p of the query in its sequence
};

struct Problem {
  const kvx_attention_args_t& a;
  const kvx_layout_t& cache;
  PageTableView table;
  int64_t group;  // query heads per kv head
  float scale;
};

// Keys visible to a query at position p of a sequence of `len` tokens, as two
// ranges [0, sink_end) and [window_begin, end): the sinks, then the window.
struct KeyRanges {
  int64_t sink_end, window_begin, end;
};

KeyRanges visible_keys(const kvx_attention_args_t& a, int64_t p, int64_t len) {
  const int64_t end = a.causal ? p + 1 : len;
  const int64_t window_begin = a.window_left < 0 ? 0 : std::max<int64_t>(0, p - a.window_left);
  const int64_t sink_end = std::min(a.sink_tokens, end);
  return {sink_end, std::max(window_begin, sink_end), end};
}

// scratch: q[dk], kv row[max(dk, dv)], acc[dv].
void attend(const Problem& pr, QueryRow row, int64_t r, int64_t h, float* scratch) {
  const kvx_attention_args_t& a = pr.a;
  const kvx_layout_t& c = pr.cache;
  const kvx_plane_t& pk = c.plane[0];
  const kvx_plane_t& pv = c.plane[1];
  const int64_t dk = pk.head_dim, dv = pv.head_dim, kvh = h / pr.group;
  float* q = scratch;
  float* x = q + dk;
  float* acc = x + std::max(dk, dv);
  load_tensor_row(a.q, r, h, q);
  std::fill(acc, acc + dv, 0.0f);

  float m = -std::numeric_limits<float>::infinity(), l = 0.0f;
  auto visit = [&](int64_t j) {
    const int64_t block = pr.table.block(row.seq, j / c.block_tokens), token = j % c.block_tokens;
    load_cache_row(row_address(c, a.layer, 0, block, token, kvh), pk, c.dtype, x);
    float s = 0.0f;
    for (int64_t d = 0; d < dk; ++d) s += q[d] * x[d];
    s *= pr.scale;
    if (a.logit_softcap > 0.0f) s = a.logit_softcap * std::tanh(s / a.logit_softcap);
    if (s > m) {
      const float correction = std::exp(m - s);  // 0 for the first key (m = -inf)
      l *= correction;
      for (int64_t d = 0; d < dv; ++d) acc[d] *= correction;
      m = s;
    }
    const float w = std::exp(s - m);
    l += w;
    load_cache_row(row_address(c, a.layer, 1, block, token, kvh), pv, c.dtype, x);
    for (int64_t d = 0; d < dv; ++d) acc[d] += w * x[d];
  };
  const KeyRanges keys = visible_keys(a, row.pos, pr.table.seq_len(row.seq));
  for (int64_t j = 0; j < keys.sink_end; ++j) visit(j);
  for (int64_t j = keys.window_begin; j < keys.end; ++j) visit(j);

  float lse = -std::numeric_limits<float>::infinity();
  if (l > 0.0f) {
    for (int64_t d = 0; d < dv; ++d) acc[d] /= l;
    lse = m + std::log(l);
  }  // else no visible key: out 0, lse -inf
  store_tensor_row(a.out, r, h, acc);
  if (a.lse.data != nullptr) store_tensor_row(a.lse, r, h, &lse);
}

}  // namespace

kvx_status_t attention(const kvx_attention_args_t& a, AttentionMode mode, const ExecConfig& exec) {
  const kvx_layout_t& c = *a.cache;
  const Problem pr{.a = a,
                   .cache = c,
                   .table = PageTableView(*a.page_table, c.block_tokens),
                   .group = a.q.num_heads / c.num_kv_heads,
                   .scale = a.scale == 0.0f ? 1.0f / std::sqrt(static_cast<float>(c.plane[0].head_dim)) : a.scale};

  std::vector<QueryRow> rows(static_cast<size_t>(a.q.num_tokens));
  for (int64_t b = 0; b < pr.table.num_seqs(); ++b) {
    const int64_t first = mode == AttentionMode::kDecode ? b : a.q_indptr[b];
    const int64_t n = mode == AttentionMode::kDecode ? 1 : a.q_indptr[b + 1] - first;
    const int64_t len = pr.table.seq_len(b);
    for (int64_t i = 0; i < n; ++i) rows[first + i] = {b, len - n + i};
  }

  const int64_t dk = c.plane[0].head_dim, dv = c.plane[1].head_dim;
  ThreadScratch scratch(exec.num_threads, dk + std::max(dk, dv) + dv);
  const int64_t heads = a.q.num_heads, items = a.q.num_tokens * heads;
#pragma omp parallel for num_threads(exec.num_threads) schedule(dynamic, 4)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t r = item / heads, h = item % heads;
    attend(pr, rows[r], r, h, scratch.of(omp_get_thread_num()));
  }
  return KVX_OK;
}

}  // namespace kvx::cpu
