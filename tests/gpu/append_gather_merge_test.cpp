// append, gather and merge_states on the GPU against the CPU backend. append
// and gather move bytes (or round with the same rule as the CPU), so the
// caches and dense outputs must match bit for bit; merge within the dtype's
// bound.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "gpu_harness.hpp"

namespace kvx_gpu {
namespace {

struct MoveCase {
  uint64_t seed = 0;
  kvx_preset_t preset = KVX_PRESET_FLASHINFER_NHD;
  kvx_dtype_t dtype = KVX_DTYPE_BF16;
  kvx_dtype_t tensor_dtype = KVX_DTYPE_BF16;  // of the new rows / gathered rows
  int64_t head_dim = 128, kv_heads = 2, block_tokens = 16, batch = 4, new_tokens = 1, max_len = 100;
  bool by_slot = true, csr = false;

  std::string name() const {
    std::ostringstream s;
    s << kvx_preset_name(preset) << "_" << kvx_dtype_name(dtype) << "_from" << kvx_dtype_name(tensor_dtype) << "_hd"
      << head_dim << "_kvh" << kv_heads << "_T" << block_tokens << "_b" << batch << "_new" << new_tokens << "_len"
      << max_len << (by_slot ? "_slots" : "_positions") << (csr ? "_csr" : "_dense") << "_seed" << seed;
    return s.str();
  }
};

std::vector<MoveCase> move_cases() {
  std::vector<MoveCase> out;
  Rng rng(4242);
  const int n = kReduced ? 4 : 60;
  for (int i = 0; i < n; ++i) {
    MoveCase c;
    c.seed = 500 + static_cast<uint64_t>(i);
    c.preset = static_cast<kvx_preset_t>(KVX_PRESET_FIRST + static_cast<int>(rng() % (KVX_PRESET_LAST - KVX_PRESET_FIRST + 1)));
    c.dtype = std::array{KVX_DTYPE_BF16, KVX_DTYPE_F16, KVX_DTYPE_F32}[rng() % 3];
    c.tensor_dtype = rng() % 4 == 0 ? KVX_DTYPE_F32 : c.dtype;
    c.head_dim = std::array<int64_t, 5>{64, 128, 256, 8, 96}[rng() % 5];
    c.kv_heads = std::array<int64_t, 3>{1, 2, 8}[rng() % 3];
    c.block_tokens = c.preset == KVX_PRESET_SGLANG ? 1 : std::array<int64_t, 5>{1, 16, 64, 5, 256}[rng() % 5];
    c.batch = std::array<int64_t, 4>{1, 3, 16, 256}[rng() % 4];
    c.new_tokens = std::array<int64_t, 3>{1, 16, 7}[rng() % 3];
    c.max_len = std::array<int64_t, 3>{1, 100, 1000}[rng() % 3];
    c.max_len = std::max(c.max_len, c.new_tokens);
    c.by_slot = rng() % 2 == 0;
    c.csr = rng() % 2 == 0;
    // Caches stay under ~64 MB (the oracle fills and compares every byte).
    while (c.batch > 1 && c.batch * c.max_len * c.kv_heads * c.head_dim > (4 << 20)) c.batch /= 2;
    if (kReduced) c.batch = std::min<int64_t>(c.batch, 3);
    out.push_back(c);
  }
  return out;
}

class Move : public ::testing::TestWithParam<MoveCase> {};

// Appends the last new_tokens of every sequence (slots or positions), then
// gathers the whole batch: both ops, both backends, same bytes.
TEST_P(Move, AppendThenGatherMatchCpu) {
  KVX_REQUIRE_GPU();
  const MoveCase& c = GetParam();
  SCOPED_TRACE(c.name());
  Rng rng(c.seed);
  std::vector<int64_t> lens(static_cast<size_t>(c.batch));
  for (auto& len : lens) len = std::uniform_int_distribution<int64_t>(c.new_tokens, c.max_len)(rng);
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = c.dtype;
  params.num_layers = 2;
  params.num_blocks = PageTable::pages_needed(lens, c.block_tokens) + 2;
  params.block_tokens = c.block_tokens;
  params.num_kv_heads = c.kv_heads;
  params.head_dim = c.head_dim;
  Cache cache;
  bool expressible = true;
  if (!cache.make(c.preset, params, rng, &expressible)) {
    if (!expressible) GTEST_SKIP() << "the preset cannot express this geometry: " << kvx_last_error();
    return;
  }
  PageTable table;
  table.make(lens, c.block_tokens, params.num_blocks, c.csr, rng);

  // The new rows: the last new_tokens positions of each sequence, in a shuffled order,
  // plus a padding row (slot -1) in the slot form.
  std::vector<std::pair<int64_t, int64_t>> rows;  // (seq, pos)
  for (int64_t b = 0; b < c.batch; ++b)
    for (int64_t p = lens[b] - c.new_tokens; p < lens[b]; ++p) rows.emplace_back(b, p);
  std::shuffle(rows.begin(), rows.end(), rng);
  const int64_t n = static_cast<int64_t>(rows.size()) + (c.by_slot ? 1 : 0);
  std::vector<int64_t> slots;
  std::vector<int32_t> seqs, positions;
  for (auto [b, p] : rows) {
    slots.push_back(table.block(b, p / c.block_tokens) * c.block_tokens + p % c.block_tokens);
    seqs.push_back(static_cast<int32_t>(b));
    positions.push_back(static_cast<int32_t>(p));
  }
  if (c.by_slot) slots.push_back(-1);
  DeviceBuffer d_slots(slots.size() * 8), d_seqs(seqs.size() * 4), d_positions(positions.size() * 4);
  d_slots.upload(slots.data(), slots.size() * 8);
  d_seqs.upload(seqs.data(), seqs.size() * 4);
  d_positions.upload(positions.data(), positions.size() * 4);

  Tensor k, v;
  k.make(n, c.kv_heads, c.head_dim, c.tensor_dtype, rng);
  v.make(n, c.kv_heads, c.head_dim, c.tensor_dtype, rng);

  kvx_append_args_t a = kvx_append_args_init();
  a.layer = 1;
  a.cache = &cache.host();
  a.k = k.host;
  a.v = v.host;
  if (c.by_slot) {
    a.slot_mapping = slots.data();
  } else {
    a.page_table = &table.host();
    a.batch_indices = seqs.data();
    a.positions = positions.data();
  }
  const kvx_exec_t cpu = cpu_exec();
  KVX_ASSERT_OK(kvx_append(&a, &cpu));
  const auto expected = cache.host_bytes();

  a.cache = &cache.device();
  a.k = k.device;
  a.v = v.device;
  if (c.by_slot) {
    a.slot_mapping = static_cast<const int64_t*>(d_slots.get());
  } else {
    a.page_table = &table.device();
    a.batch_indices = static_cast<const int32_t*>(d_seqs.get());
    a.positions = static_cast<const int32_t*>(d_positions.get());
  }
  const kvx_exec_t gpu = cuda_exec(nullptr, nullptr, 0);
  KVX_ASSERT_OK(kvx_append(&a, &gpu));
  CUDA_ASSERT(cudaDeviceSynchronize());
  cache.download();  // the device result replaces the host copy
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_TRUE(std::memcmp(expected[i].data(), cache.host_bytes()[i].data(), expected[i].size()) == 0)
        << "append: cache base " << i << " differs from the CPU backend's";

  int64_t total = 0;
  for (int64_t len : lens) total += len;
  Tensor gk, gv, rk, rv;
  gk.make(total, c.kv_heads, c.head_dim, c.tensor_dtype, rng);
  gv.make(total, c.kv_heads, c.head_dim, c.tensor_dtype, rng);
  rk.make(total, c.kv_heads, c.head_dim, c.tensor_dtype, rng);
  rv.make(total, c.kv_heads, c.head_dim, c.tensor_dtype, rng);
  gk.device_bytes.poison();
  gv.device_bytes.poison();
  kvx_gather_args_t g = kvx_gather_args_init();
  g.layer = 1;
  g.cache = &cache.host();
  g.page_table = &table.host();
  g.k_out = rk.host;
  g.v_out = rv.host;
  KVX_ASSERT_OK(kvx_gather(&g, &cpu));
  g.cache = &cache.device();
  g.page_table = &table.device();
  g.k_out = gk.device;
  g.v_out = gv.device;
  KVX_ASSERT_OK(kvx_gather(&g, &gpu));
  CUDA_ASSERT(cudaDeviceSynchronize());
  gk.download();
  gv.download();
  EXPECT_TRUE(gk.host_bytes == rk.host_bytes) << "gather: K differs from the CPU backend's";
  EXPECT_TRUE(gv.host_bytes == rv.host_bytes) << "gather: V differs from the CPU backend's";
}

INSTANTIATE_TEST_SUITE_P(Matrix, Move, ::testing::ValuesIn(move_cases()),
                         [](const ::testing::TestParamInfo<MoveCase>& p) { return p.param.name(); });

struct MergeCase {
  uint64_t seed;
  kvx_dtype_t dtype;
  int64_t tokens, heads, head_dim;
  bool alias;
  std::string name() const {
    std::ostringstream s;
    s << kvx_dtype_name(dtype) << "_t" << tokens << "_h" << heads << "_d" << head_dim << (alias ? "_alias" : "")
      << "_seed" << seed;
    return s.str();
  }
};

class Merge : public ::testing::TestWithParam<MergeCase> {};

TEST_P(Merge, MatchesCpu) {
  KVX_REQUIRE_GPU();
  const MergeCase& c = GetParam();
  SCOPED_TRACE(c.name());
  Rng rng(c.seed);
  Tensor oa, la, ob, lb, out, lse, ref, ref_lse;
  oa.make(c.tokens, c.heads, c.head_dim, c.dtype, rng);
  ob.make(c.tokens, c.heads, c.head_dim, c.dtype, rng);
  la.make(c.tokens, c.heads, 1, KVX_DTYPE_F32, rng);
  lb.make(c.tokens, c.heads, 1, KVX_DTYPE_F32, rng);
  // Some states are empty (lse -inf), one row on both sides.
  auto* pa = reinterpret_cast<float*>(la.host_bytes.data());
  auto* pb = reinterpret_cast<float*>(lb.host_bytes.data());
  for (int64_t i = 0; i < c.tokens * c.heads; ++i) {
    pa[i] *= 8.0f, pb[i] *= 8.0f;
    if (rng() % 7 == 0) pa[i] = -INFINITY;
    if (rng() % 7 == 0) pb[i] = -INFINITY;
  }
  pa[0] = pb[0] = -INFINITY;
  la.upload();
  lb.upload();
  out.make(c.tokens, c.heads, c.head_dim, c.dtype, rng);
  lse.make(c.tokens, c.heads, 1, KVX_DTYPE_F32, rng);
  ref.make(c.tokens, c.heads, c.head_dim, KVX_DTYPE_F32, rng);
  ref_lse.make(c.tokens, c.heads, 1, KVX_DTYPE_F32, rng);
  out.device_bytes.poison();
  lse.device_bytes.poison();

  kvx_merge_args_t m = kvx_merge_args_init();
  m.out_a = oa.host, m.lse_a = la.host, m.out_b = ob.host, m.lse_b = lb.host, m.out = ref.host, m.lse = ref_lse.host;
  const kvx_exec_t cpu = cpu_exec();
  KVX_ASSERT_OK(kvx_merge_states(&m, &cpu));
  m.out_a = oa.device, m.lse_a = la.device, m.out_b = ob.device, m.lse_b = lb.device;
  m.out = c.alias ? oa.device : out.device;
  m.lse = c.alias ? la.device : lse.device;
  const kvx_exec_t gpu = cuda_exec(nullptr, nullptr, 0);
  KVX_ASSERT_OK(kvx_merge_states(&m, &gpu));
  CUDA_ASSERT(cudaDeviceSynchronize());
  Tensor& got = c.alias ? oa : out;
  Tensor& got_lse = c.alias ? la : lse;
  got.download();
  got_lse.download();
  const Error e = compare(got, ref), el = compare(got_lse, ref_lse);
  EXPECT_EQ(e.nans + el.nans, 0);
  EXPECT_LE(e.rel, tolerance(c.dtype));
  EXPECT_LE(el.rel, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(Matrix, Merge,
                         ::testing::Values(MergeCase{11, KVX_DTYPE_BF16, 64, 32, 128, false},
                                           MergeCase{12, KVX_DTYPE_F16, 7, 3, 40, true},
                                           MergeCase{13, KVX_DTYPE_F32, 300, 8, 256, false},
                                           MergeCase{14, KVX_DTYPE_BF16, 1, 1, 8, true}),
                         [](const ::testing::TestParamInfo<MergeCase>& p) { return p.param.name(); });

}  // namespace
}  // namespace kvx_gpu
