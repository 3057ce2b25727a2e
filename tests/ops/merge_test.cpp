// kvx_merge_states: attending to two halves of a sequence's keys and merging
// equals attending to all of them; -inf states (no visible key) merge as the
// spec says; the output may alias the first state.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include <fmt/format.h>

#include "core/dtype.hpp"
#include "harness.hpp"
#include "oracle.hpp"

namespace kvx_test {
namespace {

struct Decoded {
  Tensor out, lse;
};

// Decode attention of one query row per sequence of `batch`, f32 outputs.
Decoded decode(const kvx_layout_t& cache, const Batch& batch, const kvx_tensor_t& q, Rng& rng) {
  Decoded d{make_tensor(KVX_DTYPE_F32, q.num_tokens, q.num_heads, cache.plane[1].head_dim, rng, true),
            make_tensor(KVX_DTYPE_F32, q.num_tokens, q.num_heads, 1, rng, true)};
  poison(d.out);
  poison(d.lse);
  const kvx_page_table_t table = batch.table(KVX_PAGE_TABLE_CSR);
  kvx_attention_args_t a = KVX_ATTENTION_ARGS_INIT;
  a.cache = &cache;
  a.page_table = &table;
  a.q = q;
  a.out = d.out.t;
  a.lse = d.lse.t;
  EXPECT_EQ(kvx_attention_decode(&a, nullptr), KVX_OK) << kvx_last_error();
  return d;
}

// A batch over the pages [first_page, last_page) of `whole`'s sequences, with
// `len` tokens each.
Batch sub_batch(const Batch& whole, size_t first_page, size_t last_page, const std::vector<int64_t>& lens) {
  Batch b = whole;
  b.lens = lens;
  b.indices.clear();
  b.indptr = {0};
  b.last_page_len.clear();
  for (size_t s = 0; s < whole.pages.size(); ++s) {
    b.pages[s] = std::vector<int32_t>(whole.pages[s].begin() + static_cast<int64_t>(first_page),
                                      whole.pages[s].begin() + static_cast<int64_t>(last_page));
    b.indices.insert(b.indices.end(), b.pages[s].begin(), b.pages[s].end());
    b.indptr.push_back(static_cast<int32_t>(b.indices.size()));
    b.last_page_len.push_back(static_cast<int32_t>((lens[s] - 1) % whole.block_tokens + 1));
  }
  return b;
}

TEST(MergeStates, TwoHalvesEqualTheWhole) {
  for (uint64_t seed = 1; seed <= (kSmall ? 2u : 6u); ++seed) {
    Rng rng(seed);
    const int64_t t = 16, pages = 2 + static_cast<int64_t>(rng() % 8), split = 1 + static_cast<int64_t>(rng() % (pages - 1));
    const int64_t tail = 1 + static_cast<int64_t>(rng() % t);  // tokens in the last page
    const int64_t len = (pages - 1) * t + tail, seqs = 3;
    const bool alias = seed % 2 == 0;
    SCOPED_TRACE(fmt::format("MERGE(T={},len={},split={},alias={},seed={})", t, len, split * t, alias, seed));
    kvx_status_t st;
    auto cache = Cache::make(KVX_PRESET_FLASH_ATTN,
                             {.dtype = KVX_DTYPE_F32, .layers = 1, .blocks = seqs * pages + 1, .block_tokens = t,
                              .kv_heads = 2, .head_dim = 32, .head_dim_v = 48},
                             rng, &st);
    ASSERT_TRUE(cache) << kvx_last_error();
    const Batch whole = make_batch(std::vector<int64_t>(seqs, len), cache->layout(), rng);
    Tensor k = make_tensor(KVX_DTYPE_F32, whole.total_tokens(), 2, 32, rng, false);
    Tensor v = make_tensor(KVX_DTYPE_F32, whole.total_tokens(), 2, 48, rng, false);
    fill_values(k, rng);
    fill_values(v, rng);
    ASSERT_EQ(append_batch(cache->layout(), 0, whole, k, v), KVX_OK) << kvx_last_error();
    Tensor q = make_tensor(KVX_DTYPE_F32, seqs, 4, 32, rng, true);
    fill_values(q, rng);

    // Decode sees every key of a sequence (its query sits at the last position).
    const Batch first = sub_batch(whole, 0, static_cast<size_t>(split), std::vector<int64_t>(seqs, split * t));
    const Batch second = sub_batch(whole, static_cast<size_t>(split), static_cast<size_t>(pages),
                                   std::vector<int64_t>(seqs, len - split * t));
    const Decoded all = decode(cache->layout(), whole, q.t, rng);
    Decoded a = decode(cache->layout(), first, q.t, rng);
    const Decoded b = decode(cache->layout(), second, q.t, rng);

    Tensor out = make_tensor(KVX_DTYPE_F32, seqs, 4, 48, rng, true);
    Tensor lse = make_tensor(KVX_DTYPE_F32, seqs, 4, 1, rng, true);
    poison(out);
    poison(lse);
    kvx_merge_args_t m = KVX_MERGE_ARGS_INIT;
    m.out_a = a.out.t;
    m.lse_a = a.lse.t;
    m.out_b = b.out.t;
    m.lse_b = b.lse.t;
    m.out = alias ? a.out.t : out.t;
    m.lse = alias ? a.lse.t : lse.t;
    ASSERT_EQ(kvx_merge_states(&m, nullptr), KVX_OK) << kvx_last_error();
    const ErrorStats e = compare(tensor_values(m.out), tensor_values(all.out.t));
    EXPECT_TRUE(e.within(1e-5)) << "out: max_rel " << e.max_rel << ", rel_l2 " << e.rel_l2 << (e.nan ? ", NaN" : "");
    const std::vector<double> got = tensor_values(m.lse), want = tensor_values(all.lse.t);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4 * std::fmax(1.0, std::fabs(want[i])));
  }
}

TEST(MergeStates, NegativeInfinityStates) {
  Rng rng(5);
  const float inf = std::numeric_limits<float>::infinity();
  // Per row: (lse_a, lse_b); rows 0..3 are a only, b only, neither, both.
  const float la[] = {0.7f, -inf, -inf, -1.25f}, lb[] = {-inf, 2.5f, -inf, 0.5f};
  for (kvx_dtype_t dtype : {KVX_DTYPE_F32, KVX_DTYPE_BF16}) {
    SCOPED_TRACE(fmt::format("MERGE_INF(dtype={})", dtype_str(dtype)));
    Tensor oa = make_tensor(dtype, 4, 1, 24, rng, true), ob = make_tensor(dtype, 4, 1, 24, rng, true);
    Tensor sa = make_tensor(KVX_DTYPE_F32, 4, 1, 1, rng, false), sb = make_tensor(KVX_DTYPE_F32, 4, 1, 1, rng, false);
    fill_values(oa, rng);
    fill_values(ob, rng);
    for (int r = 0; r < 4; ++r) {
      static_cast<float*>(sa.t.data)[r] = la[r];
      static_cast<float*>(sb.t.data)[r] = lb[r];
      // A state with no visible key has weight 0: whatever its row holds (here NaN) must not leak.
      for (int d = 0; d < 24; ++d) {
        if (std::isinf(la[r])) kvx::store_float(static_cast<std::byte*>(oa.t.data) + r * oa.t.token_stride_bytes, d, dtype, NAN);
        if (std::isinf(lb[r])) kvx::store_float(static_cast<std::byte*>(ob.t.data) + r * ob.t.token_stride_bytes, d, dtype, NAN);
      }
    }
    const std::vector<double> va = tensor_values(oa.t), vb = tensor_values(ob.t);
    Tensor out = make_tensor(dtype, 4, 1, 24, rng, true), lse = make_tensor(KVX_DTYPE_F32, 4, 1, 1, rng, false);
    poison(out);
    poison(lse);
    kvx_merge_args_t m = KVX_MERGE_ARGS_INIT;
    m.out_a = oa.t;
    m.lse_a = sa.t;
    m.out_b = ob.t;
    m.lse_b = sb.t;
    m.out = out.t;
    m.lse = lse.t;
    ASSERT_EQ(kvx_merge_states(&m, nullptr), KVX_OK) << kvx_last_error();
    const std::vector<double> got = tensor_values(out.t), got_lse = tensor_values(lse.t);
    for (int r = 0; r < 4; ++r) {
      const double wa = std::isinf(la[r]) ? 0.0 : std::exp(double(la[r]));
      const double wb = std::isinf(lb[r]) ? 0.0 : std::exp(double(lb[r]));
      const double want_lse = wa + wb == 0.0 ? -INFINITY : std::log(wa + wb);
      if (std::isinf(want_lse)) {
        EXPECT_EQ(got_lse[r], want_lse) << "row " << r;
      } else {
        EXPECT_NEAR(got_lse[r], want_lse, 1e-6) << "row " << r;
      }
      std::vector<double> want(24), have(got.begin() + r * 24, got.begin() + (r + 1) * 24);
      for (int d = 0; d < 24; ++d)
        want[d] = wa + wb == 0.0 ? 0.0
                                 : ((wa > 0 ? va[r * 24 + d] * wa : 0.0) + (wb > 0 ? vb[r * 24 + d] * wb : 0.0)) / (wa + wb);
      const ErrorStats e = compare(have, want);
      EXPECT_TRUE(e.within(tolerance(dtype))) << "row " << r << ": max_rel " << e.max_rel << (e.nan ? ", NaN" : "");
      if (wa + wb == 0.0) {
        for (double x : have) EXPECT_EQ(x, 0.0) << "row " << r << " (no visible key) must be 0";
      }
    }
  }
}

}  // namespace
}  // namespace kvx_test
