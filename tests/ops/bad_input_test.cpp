// Bad input at each op entry point: every refusal returns its status and a
// message naming the field, from the op and from its _supports query alike,
// and writes nothing (poisoned outputs and cache bytes stay as they were).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <string>

#include "harness.hpp"

namespace kvx_test {
namespace {

using ::testing::HasSubstr;

// A small valid setup of every op: an f32 FlashInfer NHD cache of 2 layers,
// 3 sequences appended, decode/prefill queries, gather outputs, merge states.
struct OpsSetup {
  Rng rng{42};
  std::unique_ptr<Cache> cache;
  Batch batch;
  kvx_page_table_t table{};
  Tensor k, v, q, out, lse, k_out, v_out, lse_b;
  std::vector<int64_t> slots;
  std::vector<int32_t> batch_indices, positions, q_indptr{0, 2, 3, 7};

  OpsSetup() {
    kvx_status_t st;
    cache = Cache::make(KVX_PRESET_FLASHINFER_NHD,
                        {.dtype = KVX_DTYPE_F32, .layers = 2, .blocks = 12, .block_tokens = 4, .kv_heads = 2,
                         .head_dim = 16, .head_dim_v = 16},
                        rng, &st);
    batch = make_batch({5, 3, 9}, cache->layout(), rng);
    table = batch.table(KVX_PAGE_TABLE_CSR);
    k = make_tensor(KVX_DTYPE_F32, 17, 2, 16, rng, false);
    v = make_tensor(KVX_DTYPE_F32, 17, 2, 16, rng, false);
    fill_values(k, rng);
    fill_values(v, rng);
    for (size_t s = 0; s < 3; ++s)
      for (int64_t p = 0; p < batch.lens[s]; ++p) {
        slots.push_back(batch.slot(static_cast<int64_t>(s), p));
        batch_indices.push_back(static_cast<int32_t>(s));
        positions.push_back(static_cast<int32_t>(p));
      }
    q = make_tensor(KVX_DTYPE_F32, 7, 4, 16, rng, false);
    fill_values(q, rng);
    out = make_tensor(KVX_DTYPE_F32, 7, 4, 16, rng, false);
    lse = make_tensor(KVX_DTYPE_F32, 7, 4, 1, rng, false);
    lse_b = make_tensor(KVX_DTYPE_F32, 7, 4, 1, rng, false);
    fill_values(lse_b, rng);
    k_out = make_tensor(KVX_DTYPE_F32, 17, 2, 16, rng, false);
    v_out = make_tensor(KVX_DTYPE_F32, 17, 2, 16, rng, false);
    for (Tensor* t : {&out, &lse, &k_out, &v_out}) poison(*t);
  }
  kvx_append_args_t append_args() const {
    kvx_append_args_t a = KVX_APPEND_ARGS_INIT;
    a.cache = &cache->layout();
    a.layer = 1;
    a.k = k.t;
    a.v = v.t;
    a.slot_mapping = slots.data();
    return a;
  }
  kvx_attention_args_t attention_args(bool prefill) const {
    kvx_attention_args_t a = KVX_ATTENTION_ARGS_INIT;
    a.cache = &cache->layout();
    a.layer = 1;
    a.page_table = &table;
    a.q_indptr = prefill ? q_indptr.data() : nullptr;
    a.q = q.t;
    a.out = out.t;
    a.lse = lse.t;
    if (!prefill) a.q.num_tokens = a.out.num_tokens = a.lse.num_tokens = 3;
    return a;
  }
  kvx_gather_args_t gather_args() const {
    kvx_gather_args_t a = KVX_GATHER_ARGS_INIT;
    a.cache = &cache->layout();
    a.layer = 0;
    a.page_table = &table;
    a.k_out = k_out.t;
    a.v_out = v_out.t;
    return a;
  }
  kvx_merge_args_t merge_args() const {
    kvx_merge_args_t a = KVX_MERGE_ARGS_INIT;
    a.out_a = q.t;  // any valid f32 [7, 4, 16] states
    a.lse_a = lse_b.t;
    a.out_b = q.t;
    a.lse_b = lse_b.t;
    a.out = out.t;
    a.lse = lse.t;
    return a;
  }
  // Every byte an op may write: the cache and the poisoned outputs.
  std::vector<std::vector<std::byte>> state() const {
    auto s = cache->snapshot();
    for (const Tensor* t : {&out, &lse, &k_out, &v_out}) s.emplace_back(t->buf->data(), t->buf->data() + t->buf->size());
    return s;
  }
};

void expect_refused(const OpsSetup& s, const std::function<kvx_status_t()>& op,
                    const std::function<kvx_status_t()>& supports, kvx_status_t want, const std::string& field) {
  const auto before = s.state();
  const kvx_status_t got = op();
  EXPECT_EQ(got, want) << kvx_status_string(got) << ": " << kvx_last_error();
  EXPECT_THAT(std::string(kvx_last_error()), HasSubstr(field));
  EXPECT_TRUE(s.state() == before) << "the refused op wrote something";
  if (supports) {
    EXPECT_EQ(supports(), want) << "_supports: " << kvx_last_error();
    EXPECT_THAT(std::string(kvx_last_error()), HasSubstr(field));
  }
}

// ------------------------------------------------------------------ append --
class AppendBad : public ::testing::Test {
 protected:
  OpsSetup s;
  void refused(const std::function<void(kvx_append_args_t&)>& mutate, kvx_status_t want, const std::string& field,
               const kvx_exec_t* exec = nullptr) {
    kvx_append_args_t a = s.append_args();
    mutate(a);
    SCOPED_TRACE("APPEND_BAD(" + field + ")");
    expect_refused(s, [&] { return kvx_append(&a, exec); }, [&] { return kvx_append_supports(&a, exec); }, want, field);
  }
};

TEST_F(AppendBad, ValidArgumentsPass) {
  kvx_append_args_t a = s.append_args();
  EXPECT_EQ(kvx_append_supports(&a, nullptr), KVX_OK) << kvx_last_error();
  EXPECT_EQ(kvx_append(&a, nullptr), KVX_OK) << kvx_last_error();
}

TEST_F(AppendBad, EachFieldIsChecked) {
  const auto before = s.state();
  EXPECT_EQ(kvx_append(nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_THAT(std::string(kvx_last_error()), HasSubstr("args"));
  EXPECT_TRUE(s.state() == before);
  refused([](auto& a) { a.struct_size -= 8; }, KVX_ERR_VERSION_MISMATCH, "args.struct_size");
  refused([](auto& a) { a.version = KVX_MAKE_VERSION(2, 0, 0); }, KVX_ERR_VERSION_MISMATCH, "args.version");
  refused([](auto& a) { a.reserved[3] = 1; }, KVX_ERR_INVALID_ARGUMENT, "args.reserved");
  refused([](auto& a) { a.k.reserved[0] = 1; }, KVX_ERR_INVALID_ARGUMENT, "args.k.reserved");
  refused([](auto& a) { a.cache = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.cache");
  refused([](auto& a) { a.layer = 2; }, KVX_ERR_INVALID_ARGUMENT, "args.layer");
  refused([](auto& a) { a.layer = -1; }, KVX_ERR_INVALID_ARGUMENT, "args.layer");
  refused([](auto& a) { a.k.num_heads = 3; }, KVX_ERR_INVALID_ARGUMENT, "args.k.num_heads");
  refused([](auto& a) { a.v.head_dim = 8; }, KVX_ERR_INVALID_ARGUMENT, "args.v.head_dim");
  refused([](auto& a) { a.v.num_tokens = 16; }, KVX_ERR_INVALID_ARGUMENT, "args.v.num_tokens");
  refused([](auto& a) { a.k.data = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.k.data");
  refused([](auto& a) { a.k.data = static_cast<char*>(a.k.data) + 1; }, KVX_ERR_MISALIGNED, "args.k.data");
  refused([](auto& a) { a.k.dtype = static_cast<kvx_dtype_t>(99); }, KVX_ERR_INVALID_ARGUMENT, "args.k.dtype");
  refused([](auto& a) { a.k.dtype = KVX_DTYPE_FP8_E4M3; }, KVX_ERR_UNSUPPORTED, "args.k.dtype");
  refused([](auto& a) { a.k.memory = static_cast<kvx_memory_t>(0); }, KVX_ERR_INVALID_ARGUMENT, "args.k.memory");
  refused([](auto& a) { a.k.head_stride_bytes = 60; }, KVX_ERR_INVALID_ARGUMENT, "args.k.head_stride_bytes");
  refused([](auto& a) { a.k.token_stride_bytes = 96; }, KVX_ERR_INVALID_ARGUMENT, "args.k.token_stride_bytes");
  refused([](auto& a) { a.k.token_stride_bytes = -128; }, KVX_ERR_INVALID_ARGUMENT, "args.k.token_stride_bytes");
  refused([](auto& a) { a.k.token_stride_bytes = 130; }, KVX_ERR_MISALIGNED, "args.k.token_stride_bytes");
}

TEST_F(AppendBad, PlacementIsChecked) {
  std::vector<int64_t> slots = s.slots;
  refused([&](auto& a) { slots[4] = 12 * 4; a.slot_mapping = slots.data(); }, KVX_ERR_INVALID_ARGUMENT,
          "args.slot_mapping[4]");
  slots = s.slots;
  refused([&](auto& a) { slots[9] = slots[2]; a.slot_mapping = slots.data(); }, KVX_ERR_INVALID_ARGUMENT,
          "args.slot_mapping[");
  kvx_layout_t with_null = s.cache->layout();
  with_null.null_block = s.slots[6] / 4;
  refused([&](auto& a) { a.cache = &with_null; }, KVX_ERR_INVALID_ARGUMENT, "null block");
  refused([](auto& a) { a.slot_mapping = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.slot_mapping");
  refused([&](auto& a) { a.page_table = &s.table; }, KVX_ERR_INVALID_ARGUMENT, "args.slot_mapping");

  auto by_table = [&](kvx_append_args_t& a) {
    a.slot_mapping = nullptr;
    a.page_table = &s.table;
    a.batch_indices = s.batch_indices.data();
    a.positions = s.positions.data();
  };
  {
    kvx_append_args_t a = s.append_args();
    by_table(a);
    EXPECT_EQ(kvx_append_supports(&a, nullptr), KVX_OK) << kvx_last_error();
  }
  std::vector<int32_t> pos = s.positions, seqs = s.batch_indices;
  refused([&](auto& a) { by_table(a); pos[3] = 5; a.positions = pos.data(); }, KVX_ERR_INVALID_ARGUMENT,
          "args.positions[3]");
  pos = s.positions;
  refused([&](auto& a) { by_table(a); pos[1] = 0; a.positions = pos.data(); }, KVX_ERR_INVALID_ARGUMENT,
          "args.positions[");
  refused([&](auto& a) { by_table(a); seqs[0] = 3; a.batch_indices = seqs.data(); }, KVX_ERR_INVALID_ARGUMENT,
          "args.batch_indices[0]");
  refused([&](auto& a) { by_table(a); a.positions = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.positions");
  std::vector<int32_t> indices = s.batch.indices;
  kvx_page_table_t bad_table = s.table;
  bad_table.indices = indices.data();
  indices[2] = 12;
  refused([&](auto& a) { by_table(a); a.page_table = &bad_table; }, KVX_ERR_INVALID_ARGUMENT, "args.page_table");
}

TEST_F(AppendBad, ExecAndStorageAreChecked) {
  kvx_exec_t e = KVX_EXEC_INIT;
  e.backend = static_cast<kvx_backend_t>(7);
  refused([](auto&) {}, KVX_ERR_INVALID_ARGUMENT, "exec.backend", &e);
  e = KVX_EXEC_INIT;
  e.struct_size = 8;
  refused([](auto&) {}, KVX_ERR_VERSION_MISMATCH, "exec.struct_size", &e);
  e = KVX_EXEC_INIT;
  e.reserved[0] = 1;
  refused([](auto&) {}, KVX_ERR_INVALID_ARGUMENT, "exec.reserved", &e);
  kvx_layout_t fp8 = s.cache->layout();
  fp8.dtype = KVX_DTYPE_FP8_E4M3;  // f32 strides are multiples of 1 byte: a valid fp8 layout
  refused([&](auto& a) { a.cache = &fp8; }, KVX_ERR_UNSUPPORTED, "args.cache.dtype");
  kvx_layout_t bad = s.cache->layout();
  bad.struct_size = 4;
  refused([&](auto& a) { a.cache = &bad; }, KVX_ERR_VERSION_MISMATCH, "args.cache");
  bad = s.cache->layout();
  bad.reserved[1] = 1;
  refused([&](auto& a) { a.cache = &bad; }, KVX_ERR_INVALID_LAYOUT, "args.cache");
  bad = s.cache->layout();
  bad.ptrs = nullptr;
  refused([&](auto& a) { a.cache = &bad; }, KVX_ERR_INVALID_ARGUMENT, "args.cache.ptrs");
}

// --------------------------------------------------------------- attention --
class AttentionBad : public ::testing::TestWithParam<bool> {  // prefill?
 protected:
  OpsSetup s;
  void SetUp() override {
    kvx_append_args_t a = s.append_args();
    ASSERT_EQ(kvx_append(&a, nullptr), KVX_OK) << kvx_last_error();
  }
  void refused(const std::function<void(kvx_attention_args_t&)>& mutate, kvx_status_t want, const std::string& field,
               const kvx_exec_t* exec = nullptr) {
    kvx_attention_args_t a = s.attention_args(GetParam());
    mutate(a);
    SCOPED_TRACE(std::string(GetParam() ? "PREFILL" : "DECODE") + "_BAD(" + field + ")");
    auto run = GetParam() ? kvx_attention_prefill : kvx_attention_decode;
    auto supports = GetParam() ? kvx_attention_prefill_supports : kvx_attention_decode_supports;
    expect_refused(s, [&] { return run(&a, exec); }, [&] { return supports(&a, exec); }, want, field);
  }
};

TEST_P(AttentionBad, ValidArgumentsPass) {
  kvx_attention_args_t a = s.attention_args(GetParam());
  EXPECT_EQ((GetParam() ? kvx_attention_prefill : kvx_attention_decode)(&a, nullptr), KVX_OK) << kvx_last_error();
}

TEST_P(AttentionBad, EachFieldIsChecked) {
  EXPECT_EQ((GetParam() ? kvx_attention_prefill : kvx_attention_decode)(nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_THAT(std::string(kvx_last_error()), HasSubstr("args"));
  refused([](auto& a) { a.struct_size += 8; }, KVX_ERR_VERSION_MISMATCH, "args.struct_size");
  refused([](auto& a) { a.reserved[0] = 1; }, KVX_ERR_INVALID_ARGUMENT, "args.reserved");
  refused([](auto& a) { a.reserved0 = 1; }, KVX_ERR_INVALID_ARGUMENT, "args.reserved0");
  refused([](auto& a) { a.cache = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.cache");
  refused([](auto& a) { a.layer = 5; }, KVX_ERR_INVALID_ARGUMENT, "args.layer");
  refused([](auto& a) { a.page_table = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.page_table");
  refused([](auto& a) { a.causal = 2; }, KVX_ERR_INVALID_ARGUMENT, "args.causal");
  refused([](auto& a) { a.causal = -1; }, KVX_ERR_INVALID_ARGUMENT, "args.causal");
  refused([](auto& a) { a.scale = -1.0f; }, KVX_ERR_INVALID_ARGUMENT, "args.scale");
  refused([](auto& a) { a.scale = NAN; }, KVX_ERR_INVALID_ARGUMENT, "args.scale");
  refused([](auto& a) { a.logit_softcap = -2.0f; }, KVX_ERR_INVALID_ARGUMENT, "args.logit_softcap");
  refused([](auto& a) { a.logit_softcap = INFINITY; }, KVX_ERR_INVALID_ARGUMENT, "args.logit_softcap");
  refused([](auto& a) { a.sink_tokens = -1; }, KVX_ERR_INVALID_ARGUMENT, "args.sink_tokens");
  refused([](auto& a) { a.q.num_heads = 3; a.out.num_heads = 3; a.lse.num_heads = 3; }, KVX_ERR_INVALID_ARGUMENT,
          "args.q.num_heads");
  refused([](auto& a) { a.q.head_dim = 8; }, KVX_ERR_INVALID_ARGUMENT, "args.q.head_dim");
  refused([](auto& a) { a.out.head_dim = 8; }, KVX_ERR_INVALID_ARGUMENT, "args.out.head_dim");
  refused([](auto& a) { a.out.num_heads = 2; }, KVX_ERR_INVALID_ARGUMENT, "args.out.num_heads");
  refused([](auto& a) { a.q.data = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.q.data");
  refused([](auto& a) { a.out.data = static_cast<char*>(a.out.data) + 2; }, KVX_ERR_MISALIGNED, "args.out.data");
  refused([](auto& a) { a.q.dtype = static_cast<kvx_dtype_t>(0); }, KVX_ERR_INVALID_ARGUMENT, "args.q.dtype");
  refused([](auto& a) { a.lse.dtype = KVX_DTYPE_F16; }, KVX_ERR_INVALID_ARGUMENT, "args.lse.dtype");
  refused([](auto& a) { a.lse.head_dim = 2; }, KVX_ERR_INVALID_ARGUMENT, "args.lse.head_dim");
  refused([](auto& a) { a.out.head_stride_bytes = 32; }, KVX_ERR_INVALID_ARGUMENT, "args.out.head_stride_bytes");
  refused([](auto& a) { a.q.num_tokens = 2; }, KVX_ERR_INVALID_ARGUMENT, GetParam() ? "args.q_indptr" : "args.q.num_tokens");
  kvx_exec_t e = KVX_EXEC_INIT;
  e.backend = KVX_BACKEND_CUDA;
  int32_t cuda = 0;
  ASSERT_EQ(kvx_backend_available(KVX_BACKEND_CUDA, &cuda), KVX_OK);
  // Pageable host memory is refused by the CUDA backend with or without a device.
  refused([](auto&) {}, KVX_ERR_INVALID_ARGUMENT, "exec.backend", &e);
  kvx_layout_t one = s.cache->layout();
  one.num_kv = 1;
  one.plane[1] = kvx_plane_t{};
  refused([&](auto& a) { a.cache = &one; }, KVX_ERR_UNSUPPORTED, "args.cache.num_kv");
  std::vector<int32_t> lens = s.batch.last_page_len;
  kvx_page_table_t bad = s.table;
  lens[1] = 7;  // more than block_tokens
  bad.last_page_len = lens.data();
  refused([&](auto& a) { a.page_table = &bad; }, KVX_ERR_INVALID_ARGUMENT, "args.page_table");
}

TEST_P(AttentionBad, QueryRowsAreChecked) {
  if (!GetParam()) {
    std::vector<int32_t> indptr = s.q_indptr;
    refused([&](auto& a) { a.q_indptr = indptr.data(); }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr");
    return;
  }
  refused([](auto& a) { a.q_indptr = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr");
  std::vector<int32_t> indptr = s.q_indptr;
  refused([&](auto& a) { indptr = {1, 2, 3, 7}; a.q_indptr = indptr.data(); }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[0]");
  refused([&](auto& a) { indptr = {0, 3, 2, 7}; a.q_indptr = indptr.data(); }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[2]");
  refused([&](auto& a) { indptr = {0, 6, 6, 7}; a.q_indptr = indptr.data(); }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[1]");
  refused([&](auto& a) { indptr = {0, 2, 3, 6}; a.q_indptr = indptr.data(); }, KVX_ERR_INVALID_ARGUMENT, "args.q_indptr[3]");
}

INSTANTIATE_TEST_SUITE_P(Modes, AttentionBad, ::testing::Values(false, true),
                         [](const auto& param_info) { return param_info.param ? "Prefill" : "Decode"; });

// ------------------------------------------------------------------ gather --
class GatherBad : public ::testing::Test {
 protected:
  OpsSetup s;
  void refused(const std::function<void(kvx_gather_args_t&)>& mutate, kvx_status_t want, const std::string& field) {
    kvx_gather_args_t a = s.gather_args();
    mutate(a);
    SCOPED_TRACE("GATHER_BAD(" + field + ")");
    expect_refused(s, [&] { return kvx_gather(&a, nullptr); }, [&] { return kvx_gather_supports(&a, nullptr); }, want,
                   field);
  }
};

TEST_F(GatherBad, EachFieldIsChecked) {
  {
    kvx_gather_args_t a = s.gather_args();
    EXPECT_EQ(kvx_gather_supports(&a, nullptr), KVX_OK) << kvx_last_error();
  }
  EXPECT_EQ(kvx_gather(nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  refused([](auto& a) { a.struct_size = 0; }, KVX_ERR_VERSION_MISMATCH, "args.struct_size");
  refused([](auto& a) { a.reserved[2] = 9; }, KVX_ERR_INVALID_ARGUMENT, "args.reserved");
  refused([](auto& a) { a.cache = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.cache");
  refused([](auto& a) { a.layer = 2; }, KVX_ERR_INVALID_ARGUMENT, "args.layer");
  refused([](auto& a) { a.page_table = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.page_table");
  refused([](auto& a) { a.k_out.num_tokens = 16; }, KVX_ERR_INVALID_ARGUMENT, "args.k_out.num_tokens");
  refused([](auto& a) { a.v_out.head_dim = 32; }, KVX_ERR_INVALID_ARGUMENT, "args.v_out.head_dim");
  refused([](auto& a) { a.k_out.data = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.k_out.data");
  refused([](auto& a) { a.v_out.dtype = KVX_DTYPE_INT8; }, KVX_ERR_UNSUPPORTED, "args.v_out.dtype");
}

// ------------------------------------------------------------------- merge --
class MergeBad : public ::testing::Test {
 protected:
  OpsSetup s;
  void refused(const std::function<void(kvx_merge_args_t&)>& mutate, kvx_status_t want, const std::string& field) {
    kvx_merge_args_t a = s.merge_args();
    mutate(a);
    SCOPED_TRACE("MERGE_BAD(" + field + ")");
    expect_refused(s, [&] { return kvx_merge_states_supports(&a, nullptr); }, nullptr, want, field);
    expect_refused(s, [&] { return kvx_merge_states(&a, nullptr); }, nullptr, want, field);
  }
};

TEST_F(MergeBad, EachFieldIsChecked) {
  EXPECT_EQ(kvx_merge_states(nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_merge_states_supports(nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  refused([](auto& a) { a.version = 0; }, KVX_ERR_VERSION_MISMATCH, "args.version");
  refused([](auto& a) { a.reserved[1] = 1; }, KVX_ERR_INVALID_ARGUMENT, "args.reserved");
  refused([](auto& a) { a.lse_a.dtype = KVX_DTYPE_BF16; }, KVX_ERR_INVALID_ARGUMENT, "args.lse_a.dtype");
  refused([](auto& a) { a.out_b.num_tokens = 6; }, KVX_ERR_INVALID_ARGUMENT, "args.out_b.num_tokens");
  refused([](auto& a) { a.out.head_dim = 15; }, KVX_ERR_INVALID_ARGUMENT, "args.out.head_dim");
  refused([](auto& a) { a.lse_b.data = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.lse_b.data");
  refused([](auto& a) { a.out_a.memory = static_cast<kvx_memory_t>(9); }, KVX_ERR_INVALID_ARGUMENT, "args.out_a.memory");
  kvx_merge_args_t a = s.merge_args();
  kvx_exec_t e = KVX_EXEC_INIT;
  e.num_threads = -1;
  expect_refused(s, [&] { return kvx_merge_states(&a, &e); }, nullptr, KVX_ERR_INVALID_ARGUMENT, "exec.num_threads");
}

TEST(BackendAvailable, ChecksItsArguments) {
  int32_t avail = -1;
  EXPECT_EQ(kvx_backend_available(KVX_BACKEND_CPU, &avail), KVX_OK);
  EXPECT_EQ(avail, 1);
  EXPECT_EQ(kvx_backend_available(KVX_BACKEND_CPU, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_THAT(std::string(kvx_last_error()), HasSubstr("out_available"));
  EXPECT_EQ(kvx_backend_available(static_cast<kvx_backend_t>(3), &avail), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_THAT(std::string(kvx_last_error()), HasSubstr("backend"));
}

}  // namespace
}  // namespace kvx_test
