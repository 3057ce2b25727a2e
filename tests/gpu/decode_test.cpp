// Paged decode attention on the GPU against the CPU backend, over a seeded
// sample of the shape matrix of issue 4: head_dim (64/128/256 and other
// multiples of 8), GQA 1..16, block_tokens 1..256, every preset with a
// contiguous head dim, both page-table forms, lengths 1..32k with
// non-multiples, windows with sinks, soft-cap, custom scale, batch 1..256,
// with and without a plan.
#include <algorithm>
#include <cmath>
#include <sstream>

#include "backends/cuda/plan.hpp"
#include "gpu_harness.hpp"

namespace kvx_gpu {
namespace {

struct DecodeCase {
  uint64_t seed = 0;
  kvx_dtype_t dtype = KVX_DTYPE_BF16;
  kvx_preset_t preset = KVX_PRESET_FLASHINFER_NHD;
  int64_t head_dim = 128, kv_heads = 2, group = 4, block_tokens = 16;
  int64_t batch = 1, max_len = 1;
  bool csr = false;
  int64_t window_left = -1, sinks = 0;
  float softcap = 0.0f, scale = 0.0f;
  kvx_dtype_t q_dtype = KVX_DTYPE_BF16, out_dtype = KVX_DTYPE_BF16;
  bool lse = true;
  int plan = 1;  // 1: a plan; 0: none, no workspace; 2: none, a large workspace; 3: as 2, not 16-byte aligned
  int64_t min_chunk_tokens = 0;  // > 0: the split plan's fewest tokens a split (splits short sequences)

  std::string name() const {
    std::ostringstream s;
    s << kvx_dtype_name(dtype) << "_hd" << head_dim << "_T" << block_tokens << "_" << kvx_preset_name(preset) << "_gqa"
      << group << "_kvh" << kv_heads << "_b" << batch << "_len" << max_len << (csr ? "_csr" : "_dense");
    if (window_left >= 0) s << "_win" << window_left << "_sink" << sinks;
    if (softcap > 0) s << "_cap";
    if (scale > 0) s << "_scale";
    s << "_q" << kvx_dtype_name(q_dtype) << "_out" << kvx_dtype_name(out_dtype) << (lse ? "_lse" : "")
      << (plan == 1 ? "_plan" : plan == 0 ? "_noplan" : plan == 2 ? "_noplanws" : "_noplanws4")
      << (min_chunk_tokens > 0 ? "_chunk" + std::to_string(min_chunk_tokens) : "") << "_seed" << seed;
    return s.str();
  }
};

template <typename T>
T pick(Rng& rng, std::initializer_list<T> options) {
  return *(options.begin() + std::uniform_int_distribution<size_t>(0, options.size() - 1)(rng));
}

// Bounded so that the whole sample runs in a few minutes (caches <= ~64 MB,
// CPU oracle work <= ~2e8 multiply-adds a case).
DecodeCase sample_case(uint64_t seed) {
  Rng rng(seed);
  DecodeCase c;
  c.seed = seed;
  c.dtype = pick(rng, {KVX_DTYPE_BF16, KVX_DTYPE_F16});
  c.head_dim = pick<int64_t>(rng, {64, 128, 256, 128, 64, 8, 40, 96, 192});
  c.group = pick<int64_t>(rng, {1, 4, 8, 4, 2, 3, 6, 16});
  c.kv_heads = pick<int64_t>(rng, {1, 2, 4, 8});
  const auto presets = contiguous_presets();
  c.preset = presets[std::uniform_int_distribution<size_t>(0, presets.size() - 1)(rng)];
  c.block_tokens = c.preset == KVX_PRESET_SGLANG ? 1 : pick<int64_t>(rng, {1, 16, 64, 16, 5, 32, 256});
  c.batch = pick<int64_t>(rng, {1, 2, 3, 7, 16, 64, 256});
  c.max_len = pick<int64_t>(rng, {1, 17, 100, 1000, 4097, 32768});
  c.csr = rng() % 2 == 0;
  if (rng() % 10 < 3) {
    c.window_left = std::uniform_int_distribution<int64_t>(0, c.max_len)(rng);
    c.sinks = pick<int64_t>(rng, {0, 4, 33});
  }
  if (rng() % 5 == 0) c.softcap = 30.0f;
  if (rng() % 5 == 0) c.scale = 0.05f;
  c.q_dtype = rng() % 5 == 0 ? KVX_DTYPE_F32 : c.dtype;
  c.out_dtype = rng() % 3 == 0 ? KVX_DTYPE_F32 : c.dtype;
  c.lse = rng() % 5 != 0;
  c.plan = pick(rng, {1, 1, 1, 0, 2});
  const auto cost = [&] { return c.batch * c.max_len * c.kv_heads * c.head_dim; };
  while (cost() > (8 << 20) && c.batch > 1) c.batch = std::max<int64_t>(1, c.batch / 2);
  while (cost() > (8 << 20)) c.kv_heads = std::max<int64_t>(1, c.kv_heads / 2), c.max_len = std::min<int64_t>(c.max_len, (8 << 20) / (c.kv_heads * c.head_dim));
  return c;
}

// Fixed cases: the benchmark's shapes scaled down, and the edges.
std::vector<DecodeCase> fixed_cases() {
  std::vector<DecodeCase> out;
  auto add = [&](DecodeCase c) { out.push_back(c); };
  DecodeCase llama;  // Llama-3.1-8B geometry
  llama.seed = 1;
  llama.kv_heads = 8, llama.group = 4, llama.head_dim = 128, llama.block_tokens = 16;
  llama.batch = 1, llama.max_len = 32768, llama.kv_heads = 2;
  add(llama);
  llama.seed = 2, llama.batch = 16, llama.max_len = 2048, llama.kv_heads = 8;
  add(llama);
  llama.seed = 3, llama.batch = 64, llama.max_len = 1000, llama.block_tokens = 1;
  add(llama);
  llama.seed = 4, llama.block_tokens = 64, llama.group = 1;
  add(llama);
  llama.seed = 5, llama.group = 8, llama.kv_heads = 1, llama.block_tokens = 16;
  add(llama);
  DecodeCase edge;
  edge.seed = 6, edge.batch = 5, edge.max_len = 1, edge.block_tokens = 256;
  add(edge);
  edge.seed = 7, edge.max_len = 300, edge.window_left = 0, edge.sinks = 0;
  add(edge);
  edge.seed = 8, edge.window_left = 10, edge.sinks = 4, edge.block_tokens = 1;
  add(edge);
  edge.seed = 9, edge.dtype = KVX_DTYPE_F16, edge.q_dtype = KVX_DTYPE_F16, edge.out_dtype = KVX_DTYPE_F16,
  edge.head_dim = 256, edge.group = 16, edge.kv_heads = 2, edge.window_left = -1, edge.block_tokens = 7;
  add(edge);
  // A workspace 4 bytes past 16-byte alignment: the merge takes its scalar path.
  edge.seed = 10, edge.plan = 3, edge.max_len = 3000;
  add(edge);
  llama.seed = 11, llama.plan = 3, llama.batch = 2, llama.max_len = 20000, llama.kv_heads = 2, llama.group = 4;
  add(llama);
  // Splits of 48 tokens, so that the reduced matrix (compute-sanitizer) runs
  // the split path and its merge too, with a plan and without.
  for (const int plan : {1, 2}) {
    DecodeCase small;
    small.seed = 13, small.batch = 3, small.max_len = 300, small.kv_heads = 2, small.group = 4;
    small.min_chunk_tokens = 48, small.plan = plan;
    add(small);
  }
  return out;
}

std::vector<DecodeCase> all_cases() {
  std::vector<DecodeCase> out = fixed_cases();
  const int sampled = kReduced ? 6 : 150;
  for (int i = 0; i < sampled; ++i) out.push_back(sample_case(1000 + static_cast<uint64_t>(i)));
  if (kReduced) {  // small shapes only under compute-sanitizer
    std::vector<DecodeCase> small;
    for (DecodeCase c : out) {
      c.batch = std::min<int64_t>(c.batch, 3);
      c.max_len = std::min<int64_t>(c.max_len, 300);
      if (c.window_left > c.max_len) c.window_left = c.max_len / 2;
      small.push_back(c);
    }
    return small;
  }
  return out;
}

class Decode : public ::testing::TestWithParam<DecodeCase> {};

// Restores the library's split tuning that a case changed.
struct TuningGuard {
  kvx::cuda::DecodeTuning saved = kvx::cuda::decode_tuning();
  ~TuningGuard() { kvx::cuda::decode_tuning() = saved; }
};

TEST_P(Decode, MatchesCpu) {
  KVX_REQUIRE_GPU();
  const DecodeCase& c = GetParam();
  SCOPED_TRACE(c.name());
  Rng rng(c.seed);
  std::vector<int64_t> lens(static_cast<size_t>(c.batch));
  for (auto& len : lens) len = std::uniform_int_distribution<int64_t>(1, c.max_len)(rng);
  lens[0] = c.max_len;  // the longest length always occurs
  const int64_t pages = PageTable::pages_needed(lens, c.block_tokens);

  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = c.dtype;
  params.num_layers = 2;
  params.num_blocks = pages + 3;
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

  const int64_t q_heads = c.kv_heads * c.group;
  Tensor q, out, lse, ref_out, ref_lse;
  q.make(c.batch, q_heads, c.head_dim, c.q_dtype, rng);
  out.make(c.batch, q_heads, c.head_dim, c.out_dtype, rng);
  lse.make(c.batch, q_heads, 1, KVX_DTYPE_F32, rng);
  ref_out.make(c.batch, q_heads, c.head_dim, KVX_DTYPE_F32, rng);
  ref_lse.make(c.batch, q_heads, 1, KVX_DTYPE_F32, rng);
  out.device_bytes.poison();
  lse.device_bytes.poison();

  kvx_attention_args_t args = kvx_attention_args_init();
  args.cache = &cache.host();
  args.layer = 1;
  args.page_table = &table.host();
  args.q = q.host;
  args.out = ref_out.host;
  args.lse = ref_lse.host;
  args.scale = c.scale;
  args.logit_softcap = c.softcap;
  args.window_left = c.window_left;
  args.sink_tokens = c.sinks;
  const kvx_exec_t cpu = cpu_exec();
  KVX_ASSERT_OK(kvx_attention_decode(&args, &cpu));

  // The plan is made from the host table; the run takes the device one.
  const TuningGuard restore;
  if (c.min_chunk_tokens > 0) {
    kvx::cuda::decode_tuning().min_chunk_tokens = c.min_chunk_tokens;
    kvx::cuda::decode_tuning().min_split_tokens = c.min_chunk_tokens;
  }
  kvx_attention_plan_t* plan = nullptr;
  uint64_t ws_bytes = 0;
  if (c.plan == 1) {
    args.cache = &cache.device();
    args.q = q.device;
    KVX_ASSERT_OK(kvx_attention_plan_create(&args, nullptr, &plan));
    KVX_ASSERT_OK(kvx_attention_plan_workspace_bytes(plan, &ws_bytes));
  } else if (c.plan >= 2) {
    ws_bytes = 64ull << 20;
  }
  DeviceBuffer workspace(ws_bytes + 4);
  workspace.poison();
  void* ws_ptr = static_cast<char*>(workspace.get()) + (c.plan == 3 ? 4 : 0);

  args.cache = &cache.device();
  args.page_table = &table.device();
  args.q = q.device;
  args.out = out.device;
  args.lse = c.lse ? lse.device : kvx_tensor_t{};
  args.plan = plan;
  const kvx_exec_t gpu = cuda_exec(nullptr, ws_bytes > 0 ? ws_ptr : nullptr, ws_bytes);
  const kvx_status_t s = kvx_attention_decode(&args, &gpu);
  kvx_attention_plan_destroy(plan);
  ASSERT_EQ(s, KVX_OK) << kvx_last_error();
  CUDA_ASSERT(cudaDeviceSynchronize());
  out.download();
  lse.download();

  const Error e = compare(out, ref_out);
  EXPECT_EQ(e.nans, 0) << "unwritten or NaN outputs";
  EXPECT_LE(e.rel, tolerance(c.dtype)) << "max|out-ref|/max|ref|";
  if (c.lse) {
    const Error el = compare(lse, ref_lse);
    EXPECT_EQ(el.nans, 0);
    EXPECT_LE(el.rel, 1e-4) << "lse";
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, Decode, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<DecodeCase>& p) { return p.param.name(); });

// A call the CUDA backend must refuse, with the field named.
TEST(DecodeRefusals, WorkspaceTooSmallPlanMismatchAndPrefill) {
  KVX_REQUIRE_GPU();
  Rng rng(77);
  const std::vector<int64_t> lens = {4000, 3000};
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = KVX_DTYPE_BF16;
  params.num_layers = 1;
  params.num_blocks = PageTable::pages_needed(lens, 16) + 1;
  params.block_tokens = 16;
  params.num_kv_heads = 1;
  params.head_dim = 128;
  Cache cache;
  bool expressible = true;
  ASSERT_TRUE(cache.make(KVX_PRESET_FLASHINFER_HND, params, rng, &expressible));
  PageTable table;
  table.make(lens, 16, params.num_blocks, false, rng);
  Tensor q, out;
  q.make(2, 4, 128, KVX_DTYPE_BF16, rng);
  out.make(2, 4, 128, KVX_DTYPE_BF16, rng);
  kvx_attention_args_t args = kvx_attention_args_init();
  args.cache = &cache.device();
  args.page_table = &table.host();
  args.q = q.device;
  args.out = out.device;
  kvx_attention_plan_t* plan = nullptr;
  KVX_ASSERT_OK(kvx_attention_plan_create(&args, nullptr, &plan));
  uint64_t ws = 0;
  KVX_ASSERT_OK(kvx_attention_plan_workspace_bytes(plan, &ws));
  ASSERT_GT(ws, 0u) << "two long sequences on one kv head should split";
  args.page_table = &table.device();
  args.plan = plan;
  DeviceBuffer workspace(ws);
  kvx_exec_t gpu = cuda_exec(nullptr, workspace.get(), ws - 4);
  EXPECT_EQ(kvx_attention_decode(&args, &gpu), KVX_ERR_WORKSPACE_TOO_SMALL);
  EXPECT_NE(std::string(kvx_last_error()).find("exec.workspace_bytes"), std::string::npos) << kvx_last_error();

  Tensor q8, out8;  // another head count than the plan's
  q8.make(2, 8, 128, KVX_DTYPE_BF16, rng);
  out8.make(2, 8, 128, KVX_DTYPE_BF16, rng);
  args.q = q8.device;
  args.out = out8.device;
  gpu.workspace_bytes = ws;
  EXPECT_EQ(kvx_attention_decode(&args, &gpu), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("args.plan"), std::string::npos) << kvx_last_error();

  std::vector<int32_t> q_indptr = {0, 1, 2};
  DeviceBuffer d_indptr(12);
  d_indptr.upload(q_indptr.data(), 12);
  args.q = q.device;
  args.out = out.device;
  args.plan = nullptr;
  args.q_indptr = static_cast<const int32_t*>(d_indptr.get());
  EXPECT_EQ(kvx_attention_prefill(&args, &gpu), KVX_ERR_UNSUPPORTED);
  EXPECT_EQ(kvx_attention_plan_destroy(plan), KVX_OK);
}

}  // namespace
}  // namespace kvx_gpu
