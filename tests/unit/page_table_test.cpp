// Page tables: validation of both forms against a layout (host arrays in
// full, device arrays by header), and the dense <-> CSR conversion helpers.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kvx/kvx.h"
#include "layout/layout.hpp"

namespace kvx {
namespace {

constexpr int64_t kBlockTokens = 4;
constexpr int64_t kNumBlocks = 8;

kvx_layout_t small_layout() {
  kvx_preset_params_t p = kvx_preset_params_init();
  p.dtype = KVX_DTYPE_BF16;
  p.memory = KVX_MEMORY_HOST;
  p.num_layers = 1;
  p.num_blocks = kNumBlocks;
  p.block_tokens = kBlockTokens;
  p.num_kv_heads = 2;
  p.head_dim = 16;
  kvx_layout_t l = kvx_layout_init();
  EXPECT_EQ(kvx_layout_preset(KVX_PRESET_FLASH_ATTN, &p, &l), KVX_OK) << kvx_last_error();
  return l;
}

// Three sequences of 5, 0 and 8 tokens; padding entries hold junk.
struct Dense {
  std::vector<int32_t> table = {3, 1, -7, /**/ -7, -7, -7, /**/ 6, 2, -7};
  std::vector<int32_t> lens = {5, 0, 8};
  kvx_page_table_t view() const {
    kvx_page_table_t t = kvx_page_table_init();
    t.kind = KVX_PAGE_TABLE_DENSE;
    t.memory = KVX_MEMORY_HOST;
    t.num_seqs = 3;
    t.block_table = table.data();
    t.block_table_stride = 3;
    t.max_blocks = 2;
    t.seq_lens = lens.data();
    return t;
  }
};

// The same sequences in CSR form.
struct Csr {
  std::vector<int32_t> indptr = {0, 2, 2, 4};
  std::vector<int32_t> indices = {3, 1, 6, 2};
  std::vector<int32_t> last = {1, 0, 4};
  kvx_page_table_t view() const {
    kvx_page_table_t t = kvx_page_table_init();
    t.kind = KVX_PAGE_TABLE_CSR;
    t.memory = KVX_MEMORY_HOST;
    t.num_seqs = 3;
    t.indptr = indptr.data();
    t.indices = indices.data();
    t.last_page_len = last.data();
    return t;
  }
};

void expect_refused(const kvx_page_table_t& t, const kvx_layout_t& l, kvx_status_t want,
                    const std::string& field) {
  EXPECT_EQ(kvx_page_table_validate(&t, &l), want) << kvx_last_error();
  const std::string message = kvx_last_error();
  EXPECT_EQ(message.rfind(field + ":", 0), 0u)
      << "message does not start with \"" << field << ":\": " << message;
}

// A mutation of a fresh table of form `Form` and the field it must be refused for.
template <typename Form>
struct TableCase {
  const char* field;
  std::function<void(Form&, kvx_page_table_t&)> mutate;
};

// Each case on a fresh table; then the table with `null_block` reserved by
// the layout must be refused at `null_field`.
template <typename Form, size_t N>
void expect_cases_refused(const TableCase<Form> (&cases)[N], int64_t null_block,
                          const std::string& null_field) {
  kvx_layout_t l = small_layout();
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    Form form;
    kvx_page_table_t t = form.view();
    c.mutate(form, t);
    expect_refused(t, l, KVX_ERR_INVALID_ARGUMENT, c.field);
  }
  l.null_block = null_block;
  const Form form;
  const kvx_page_table_t t = form.view();
  expect_refused(t, l, KVX_ERR_INVALID_ARGUMENT, null_field);
  EXPECT_NE(std::string(kvx_last_error()).find("null block"), std::string::npos)
      << kvx_last_error();
}

TEST(PageTable, AcceptsBothForms) {
  const kvx_layout_t l = small_layout();
  const Dense dense;
  const Csr csr;
  const kvx_page_table_t d = dense.view(), c = csr.view();
  EXPECT_EQ(kvx_page_table_validate(&d, &l), KVX_OK) << kvx_last_error();
  EXPECT_EQ(kvx_page_table_validate(&c, &l), KVX_OK) << kvx_last_error();
  kvx_page_table_t empty = kvx_page_table_init();
  empty.kind = KVX_PAGE_TABLE_CSR;
  empty.memory = KVX_MEMORY_HOST;
  EXPECT_EQ(kvx_page_table_validate(&empty, &l), KVX_OK)
      << "no sequences need no arrays: " << kvx_last_error();
}

TEST(PageTable, RefusesBadHeaders) {
  const kvx_layout_t l = small_layout();
  const Dense dense;
  const std::pair<const char*, std::function<void(kvx_page_table_t&)>> cases[] = {
      {"table.struct_size", [](auto& t) { t.struct_size = 8; }},
      {"table.version", [](auto& t) { t.version = KVX_MAKE_VERSION(3, 0, 0); }},
      {"table.reserved[0]", [](auto& t) { t.reserved[0] = 1; }},
      {"table.reserved[3]", [](auto& t) { t.reserved[3] = 1; }},
      {"table.kind", [](auto& t) { t.kind = static_cast<kvx_page_table_kind_t>(0); }},
      {"table.kind", [](auto& t) { t.kind = static_cast<kvx_page_table_kind_t>(3); }},
      {"table.memory", [](auto& t) { t.memory = static_cast<kvx_memory_t>(0); }},
      {"table.num_seqs", [](auto& t) { t.num_seqs = -1; }},
  };
  for (const auto& [field, mutate] : cases) {
    SCOPED_TRACE(field);
    kvx_page_table_t t = dense.view();
    mutate(t);
    const bool header =
        std::string(field) == "table.struct_size" || std::string(field) == "table.version";
    expect_refused(t, l, header ? KVX_ERR_VERSION_MISMATCH : KVX_ERR_INVALID_ARGUMENT, field);
  }
  EXPECT_EQ(kvx_page_table_validate(nullptr, &l), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(kvx_last_error(), "table: null");
}

TEST(PageTable, RefusesBadDenseTables) {
  const TableCase<Dense> cases[] = {
      {"table.max_blocks", [](Dense&, auto& t) { t.max_blocks = -1; }},
      {"table.block_table_stride", [](Dense&, auto& t) { t.block_table_stride = 1; }},
      {"table.seq_lens", [](Dense&, auto& t) { t.seq_lens = nullptr; }},
      {"table.block_table", [](Dense&, auto& t) { t.block_table = nullptr; }},
      {"table.seq_lens[1]", [](Dense& d, auto&) { d.lens[1] = -1; }},
      {"table.seq_lens[2]",
       [](Dense& d, auto&) { d.lens[2] = 9; }},  // more than max_blocks * block_tokens
      {"table.block_table[7]", [](Dense& d, auto&) { d.table[7] = kNumBlocks; }},
      {"table.block_table[0]", [](Dense& d, auto&) { d.table[0] = -1; }},
  };
  expect_cases_refused(cases, 6, "table.block_table[6]");
}

TEST(PageTable, RefusesBadCsrTables) {
  const TableCase<Csr> cases[] = {
      {"table.indptr", [](Csr&, auto& t) { t.indptr = nullptr; }},
      {"table.last_page_len", [](Csr&, auto& t) { t.last_page_len = nullptr; }},
      {"table.indices", [](Csr&, auto& t) { t.indices = nullptr; }},
      {"table.indptr[0]", [](Csr& c, auto&) { c.indptr[0] = 1; }},
      {"table.indptr[2]", [](Csr& c, auto&) { c.indptr[2] = 1; }},       // decreasing
      {"table.last_page_len[0]", [](Csr& c, auto&) { c.last[0] = 0; }},  // 0 with pages
      {"table.last_page_len[2]", [](Csr& c, auto&) { c.last[2] = kBlockTokens + 1; }},
      {"table.last_page_len[1]", [](Csr& c, auto&) { c.last[1] = 1; }},  // non-zero without pages
      {"table.indices[3]", [](Csr& c, auto&) { c.indices[3] = kNumBlocks; }},
      {"table.indices[1]", [](Csr& c, auto&) { c.indices[1] = -2; }},
  };
  expect_cases_refused(cases, 3, "table.indices[0]");
}

// Device arrays cannot be read on the host: only the header is checked.
TEST(PageTable, DeviceArraysAreCheckedByHeaderOnly) {
  const kvx_layout_t l = small_layout();
  Dense d;
  d.lens[0] = -5;  // would be refused in host memory
  kvx_page_table_t t = d.view();
  t.memory = KVX_MEMORY_CUDA_DEVICE;
  EXPECT_EQ(kvx_page_table_validate(&t, &l), KVX_OK) << kvx_last_error();
  t.seq_lens = nullptr;
  expect_refused(t, l, KVX_ERR_INVALID_ARGUMENT, "table.seq_lens");
  t.memory = KVX_MEMORY_CUDA_HOST_PINNED;  // pinned host memory is read in full
  t.seq_lens = d.lens.data();
  expect_refused(t, l, KVX_ERR_INVALID_ARGUMENT, "table.seq_lens[0]");
}

TEST(PageTable, DenseAndCsrConvertBothWays) {
  const kvx_layout_t l = small_layout();
  EXPECT_EQ(page_table_to_csr(Dense().view(), kBlockTokens).indptr, Csr().indptr);
  EXPECT_EQ(page_table_to_csr(Dense().view(), kBlockTokens).indices, Csr().indices);
  EXPECT_EQ(page_table_to_csr(Dense().view(), kBlockTokens).last_page_len, Csr().last);

  const uint64_t seed = 0x9a6e7ab1e;
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    DensePageTable dense;
    dense.num_seqs = static_cast<int64_t>(rng() % 12);
    dense.max_blocks = 1 + static_cast<int64_t>(rng() % 5);
    for (int64_t b = 0; b < dense.num_seqs; ++b) {
      const auto len = static_cast<int32_t>(rng() % (dense.max_blocks * kBlockTokens + 1));
      dense.seq_lens.push_back(len);
      for (int64_t i = 0; i < dense.max_blocks; ++i)
        dense.block_table.push_back(i < (len + kBlockTokens - 1) / kBlockTokens
                                        ? static_cast<int32_t>(rng() % kNumBlocks)
                                        : -1);
    }
    const kvx_page_table_t dv = dense.view();
    ASSERT_EQ(kvx_page_table_validate(&dv, &l), KVX_OK) << kvx_last_error();
    const CsrPageTable csr = page_table_to_csr(dv, kBlockTokens);
    const kvx_page_table_t cv = csr.view();
    ASSERT_EQ(kvx_page_table_validate(&cv, &l), KVX_OK) << kvx_last_error();
    const DensePageTable back = page_table_to_dense(cv, kBlockTokens, dense.max_blocks);
    EXPECT_EQ(back.seq_lens, dense.seq_lens);
    EXPECT_EQ(back.block_table, dense.block_table);
    const CsrPageTable again = page_table_to_csr(back.view(), kBlockTokens);
    EXPECT_EQ(again.indptr, csr.indptr);
    EXPECT_EQ(again.indices, csr.indices);
    EXPECT_EQ(again.last_page_len, csr.last_page_len);
  }
}

}  // namespace
}  // namespace kvx
