// A sliding window's released pages may hold the layout's null block (the
// block manager exports windowed tables that way): attention accepts the null
// block exactly in pages no query can see, gives the same result as with the
// real blocks there, and refuses it in any page that a query reads.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "harness.hpp"
#include "kvx/kvx.h"

namespace kvx_test {
namespace {

struct WindowCase {
  int64_t block_tokens, len, window_left, sinks, queries;  // queries: 0 = decode
  std::string name() const {
    return "WINDOW_NULL(T=" + std::to_string(block_tokens) + ",len=" + std::to_string(len) +
           ",win=" + std::to_string(window_left) + ",sink=" + std::to_string(sinks) +
           ",q=" + std::to_string(queries) + ")";
  }
};

// Runs attention over `pages` (seq 0's blocks) and returns the output bytes.
kvx_status_t run(const kvx_layout_t& cache, const WindowCase& c, const std::vector<int32_t>& pages,
                 const Tensor& q, Tensor& out) {
  const std::vector<int32_t> indptr = {0, static_cast<int32_t>(pages.size())};
  const std::vector<int32_t> last = {static_cast<int32_t>((c.len - 1) % c.block_tokens + 1)};
  kvx_page_table_t table = kvx_page_table_init();
  table.kind = KVX_PAGE_TABLE_CSR;
  table.memory = KVX_MEMORY_HOST;
  table.num_seqs = 1;
  table.indptr = indptr.data();
  table.indices = pages.data();
  table.last_page_len = last.data();
  const int32_t rows = static_cast<int32_t>(c.queries == 0 ? 1 : c.queries);
  const std::vector<int32_t> q_indptr = {0, rows};
  kvx_attention_args_t a = kvx_attention_args_init();
  a.cache = &cache;
  a.page_table = &table;
  a.q = q.t;
  a.out = out.t;
  a.causal = 1;
  a.window_left = c.window_left;
  a.sink_tokens = c.sinks;
  poison(out);
  if (c.queries == 0) return kvx_attention_decode(&a, nullptr);
  a.q_indptr = q_indptr.data();
  return kvx_attention_prefill(&a, nullptr);
}

TEST(WindowNull, ReleasedPagesMayHoldTheNullBlock) {
  const std::vector<WindowCase> cases = {
      {16, 200, 31, 0, 0}, {16, 200, 31, 4, 0},  {16, 200, 40, 20, 5},
      {4, 97, 10, 3, 0},   {1, 50, 7, 2, 3},     {16, 33, 0, 0, 0},
  };
  for (const WindowCase& c : cases) {
    SCOPED_TRACE(c.name());
    Rng rng(0x5eed0001u + static_cast<uint64_t>(c.len * 131 + c.window_left));
    const int64_t pages = (c.len + c.block_tokens - 1) / c.block_tokens;
    CacheGeometry g{.dtype = KVX_DTYPE_F32, .layers = 1, .blocks = pages + 2, .block_tokens = c.block_tokens,
                    .kv_heads = 2, .head_dim = 32};
    kvx_status_t status = KVX_OK;
    auto cache = Cache::make(KVX_PRESET_FLASHINFER_NHD, g, rng, &status);
    ASSERT_TRUE(cache) << kvx_status_string(status);
    cache->layout().null_block = 0;
    std::vector<int32_t> real(static_cast<size_t>(pages));
    for (int64_t i = 0; i < pages; ++i) real[static_cast<size_t>(i)] = static_cast<int32_t>(i + 1);

    // The pages no query reads: wholly past the sinks and before the
    // earliest query's window.
    const int64_t rows = c.queries == 0 ? 1 : c.queries;
    const int64_t window_begin = c.len - rows - c.window_left;
    std::vector<int32_t> released = real;
    int64_t nulls = 0;
    for (int64_t i = 0; i < pages; ++i)
      if (i * c.block_tokens >= c.sinks && (i + 1) * c.block_tokens <= window_begin) {
        released[static_cast<size_t>(i)] = 0;
        ++nulls;
      }
    ASSERT_GT(nulls, 0) << "the case must release at least one page";

    Tensor q = make_tensor(KVX_DTYPE_F32, rows, 4, 32, rng, false);
    fill_values(q, rng);
    Tensor want = make_tensor(KVX_DTYPE_F32, rows, 4, 32, rng, false);
    Tensor got = make_tensor(KVX_DTYPE_F32, rows, 4, 32, rng, false);
    ASSERT_EQ(run(cache->layout(), c, real, q, want), KVX_OK) << kvx_last_error();
    ASSERT_EQ(run(cache->layout(), c, released, q, got), KVX_OK) << kvx_last_error();
    EXPECT_EQ(std::memcmp(want.buf->data(), got.buf->data(), want.buf->size()), 0)
        << "the output changed when released pages held the null block";

    // The null block in the first page a query reads is refused.
    std::vector<int32_t> bad = released;
    const int64_t first_read = c.sinks > 0 ? 0 : std::max<int64_t>(0, window_begin) / c.block_tokens;
    bad[static_cast<size_t>(first_read)] = 0;
    EXPECT_EQ(run(cache->layout(), c, bad, q, got), KVX_ERR_INVALID_ARGUMENT);
    EXPECT_THAT(kvx_last_error(), ::testing::HasSubstr("null block"));

    // Without a window every page is read: the released table is refused.
    WindowCase full = c;
    full.window_left = -1;
    EXPECT_EQ(run(cache->layout(), full, released, q, got), KVX_ERR_INVALID_ARGUMENT);
    EXPECT_THAT(kvx_last_error(), ::testing::HasSubstr("args.page_table.indices"));
  }
}

}  // namespace
}  // namespace kvx_test
