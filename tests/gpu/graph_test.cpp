// The run path of a planned decode is CUDA-graph safe: captured once, it is
// replayed with new lengths (within the plan's pages) and still matches the
// CPU backend; and a long decode loop over a growing batch leaves device
// memory where it found it.
#include <algorithm>

#include "backends/cuda/plan.hpp"
#include "gpu_harness.hpp"

namespace kvx_gpu {
namespace {

struct Stream {
  cudaStream_t s = nullptr;
  Stream() { EXPECT_EQ(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), cudaSuccess); }
  ~Stream() { cudaStreamDestroy(s); }
};

struct Batch {
  Cache cache;
  PageTable table;
  Tensor q, out, lse, ref_out, ref_lse;
  int64_t kv_heads = 8, group = 4, head_dim = 128, block_tokens = 16;
};

kvx_attention_args_t args_of(Batch& b, bool device) {
  kvx_attention_args_t a = kvx_attention_args_init();
  a.cache = device ? &b.cache.device() : &b.cache.host();
  a.page_table = device ? &b.table.device() : &b.table.host();
  a.q = device ? b.q.device : b.q.host;
  a.out = device ? b.out.device : b.ref_out.host;
  a.lse = device ? b.lse.device : b.ref_lse.host;
  return a;
}

void expect_matches_cpu(Batch& b, const char* what) {
  kvx_attention_args_t a = args_of(b, false);
  const kvx_exec_t cpu = cpu_exec();
  ASSERT_EQ(kvx_attention_decode(&a, &cpu), KVX_OK) << kvx_last_error();
  b.out.download();
  b.lse.download();
  const Error e = compare(b.out, b.ref_out), el = compare(b.lse, b.ref_lse);
  EXPECT_EQ(e.nans + el.nans, 0) << what;
  EXPECT_LE(e.rel, tolerance(KVX_DTYPE_BF16)) << what;
  EXPECT_LE(el.rel, 1e-4) << what;
}

// min_chunk_tokens > 0 sets the split plan's fewest tokens a split, so that
// the batch splits and the replays run the split merge.
void replay_with_new_lengths(int64_t min_chunk_tokens) {
  struct Restore {
    kvx::cuda::DecodeTuning saved = kvx::cuda::decode_tuning();
    ~Restore() { kvx::cuda::decode_tuning() = saved; }
  } restore;
  if (min_chunk_tokens > 0) {
    kvx::cuda::decode_tuning().min_chunk_tokens = min_chunk_tokens;
    kvx::cuda::decode_tuning().min_split_tokens = min_chunk_tokens;
  }
  Rng rng(2024);
  Batch b;
  const int64_t batch = 6;
  // Pages for lengths up to 3000; the plan is made at the starting lengths.
  std::vector<int64_t> cap(batch), lens(batch);
  for (int64_t i = 0; i < batch; ++i) {
    cap[i] = 3000 - 250 * i;
    lens[i] = cap[i] / 3 + 1;
  }
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = KVX_DTYPE_BF16;
  params.num_layers = 1;
  params.num_blocks = PageTable::pages_needed(cap, b.block_tokens) + 1;
  params.block_tokens = b.block_tokens;
  params.num_kv_heads = b.kv_heads;
  params.head_dim = b.head_dim;
  bool expressible = true;
  ASSERT_TRUE(b.cache.make(KVX_PRESET_VLLM_FLASH_NHD, params, rng, &expressible));
  b.table.make(cap, b.block_tokens, params.num_blocks, /*csr=*/false, rng);
  b.table.set_lens(lens);
  const int64_t q_heads = b.kv_heads * b.group;
  b.q.make(batch, q_heads, b.head_dim, KVX_DTYPE_BF16, rng);
  b.out.make(batch, q_heads, b.head_dim, KVX_DTYPE_BF16, rng);
  b.lse.make(batch, q_heads, 1, KVX_DTYPE_F32, rng);
  b.ref_out.make(batch, q_heads, b.head_dim, KVX_DTYPE_F32, rng);
  b.ref_lse.make(batch, q_heads, 1, KVX_DTYPE_F32, rng);

  kvx_attention_args_t plan_args = args_of(b, true);
  plan_args.page_table = &b.table.host();
  kvx_attention_plan_t* plan = nullptr;
  KVX_ASSERT_OK(kvx_attention_plan_create(&plan_args, nullptr, &plan));
  uint64_t ws = 0;
  KVX_ASSERT_OK(kvx_attention_plan_workspace_bytes(plan, &ws));
  DeviceBuffer workspace(ws);

  Stream stream;
  kvx_attention_args_t run = args_of(b, true);
  run.plan = plan;
  const kvx_exec_t gpu = cuda_exec(stream.s, workspace.get(), ws);
  cudaGraph_t graph = nullptr;
  CUDA_ASSERT(cudaStreamBeginCapture(stream.s, cudaStreamCaptureModeThreadLocal));
  const kvx_status_t captured = kvx_attention_decode(&run, &gpu);
  CUDA_ASSERT(cudaStreamEndCapture(stream.s, &graph));
  ASSERT_EQ(captured, KVX_OK) << kvx_last_error();
  cudaGraphExec_t exec = nullptr;
  CUDA_ASSERT(cudaGraphInstantiate(&exec, graph, 0));

  // Three replays: the starting lengths, grown lengths, the full capacity.
  // The table's device arrays keep their addresses, only their contents change.
  const std::vector<std::vector<int64_t>> steps = {lens, [&] {
                                                     auto l = lens;
                                                     for (auto& x : l) x += 700;
                                                     return l;
                                                   }(),
                                                   cap};
  for (size_t i = 0; i < steps.size(); ++i) {
    b.table.set_lens(steps[i]);
    b.out.device_bytes.poison();
    b.lse.device_bytes.poison();
    CUDA_ASSERT(cudaDeviceSynchronize());  // the poison ran on the legacy stream
    CUDA_ASSERT(cudaGraphLaunch(exec, stream.s));
    CUDA_ASSERT(cudaStreamSynchronize(stream.s));
    expect_matches_cpu(b, i == 0 ? "replay at the plan's lengths" : "replay at new lengths");
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  EXPECT_EQ(kvx_attention_plan_destroy(plan), KVX_OK);
}

TEST(DecodeGraph, ReplaysWithNewLengthsWithinThePlan) {
  KVX_REQUIRE_GPU();
  replay_with_new_lengths(0);
}

// Splits of 128 tokens: the split decode and its merge kernel (a programmatic
// dependent) inside the graph, at lengths that change the split counts.
TEST(DecodeGraph, ReplaysSplitDecodeWithNewLengths) {
  KVX_REQUIRE_GPU();
  replay_with_new_lengths(128);
}

// 1,200 decode steps: each appends one token to every sequence and decodes
// with a fresh plan; every 100 steps a new sequence joins. Device memory free
// before and after must be equal (the ops allocate nothing).
TEST(DecodeLoop, GrowingBatchDoesNotGrowDeviceMemory) {
  KVX_REQUIRE_GPU();
  Rng rng(99);
  const int64_t steps = kReduced ? 40 : 1200, max_batch = 16, kv_heads = 2, group = 4, d = 128, T = 16;
  const int64_t max_len = steps + 64;
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = KVX_DTYPE_BF16;
  params.num_layers = 1;
  params.num_blocks = max_batch * ((max_len + T - 1) / T) + 1;
  params.block_tokens = T;
  params.num_kv_heads = kv_heads;
  params.head_dim = d;
  Cache cache;
  bool expressible = true;
  ASSERT_TRUE(cache.make(KVX_PRESET_FLASHINFER_HND, params, rng, &expressible));
  PageTable table;
  table.make(std::vector<int64_t>(max_batch, max_len), T, params.num_blocks, false, rng);  // every page reserved
  Tensor q, out, lse, kv_new;
  q.make(max_batch, kv_heads * group, d, KVX_DTYPE_BF16, rng);
  out.make(max_batch, kv_heads * group, d, KVX_DTYPE_BF16, rng);
  lse.make(max_batch, kv_heads * group, 1, KVX_DTYPE_F32, rng);
  kv_new.make(max_batch, kv_heads, d, KVX_DTYPE_BF16, rng);
  DeviceBuffer slots(max_batch * 8);
  const uint64_t ws_bytes = 64ull << 20;
  DeviceBuffer workspace(ws_bytes);
  Stream stream;
  const kvx_exec_t gpu = cuda_exec(stream.s, workspace.get(), ws_bytes);
  CUDA_ASSERT(cudaDeviceSynchronize());

  size_t free_before = 0, free_after = 0, total = 0;
  CUDA_ASSERT(cudaMemGetInfo(&free_before, &total));
  std::vector<int64_t> lens = {40};
  for (int64_t step = 0; step < steps; ++step) {
    if (step % 100 == 99 && static_cast<int64_t>(lens.size()) < max_batch) lens.push_back(1 + step % 37);
    for (auto& len : lens) ++len;
    const int64_t B = static_cast<int64_t>(lens.size());
    std::vector<int64_t> slot(static_cast<size_t>(B));
    for (int64_t b = 0; b < B; ++b) slot[b] = table.block(b, (lens[b] - 1) / T) * T + (lens[b] - 1) % T;
    ASSERT_EQ(cudaMemcpyAsync(slots.get(), slot.data(), B * 8, cudaMemcpyHostToDevice, stream.s), cudaSuccess);
    kvx_append_args_t a = kvx_append_args_init();
    a.cache = &cache.device();
    a.k = kv_new.device;
    a.v = kv_new.device;
    a.k.num_tokens = a.v.num_tokens = B;
    a.slot_mapping = static_cast<const int64_t*>(slots.get());
    ASSERT_EQ(kvx_append(&a, &gpu), KVX_OK) << kvx_last_error();
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);  // the host slot vector is reused next step

    table.set_lens(std::vector<int64_t>(lens));
    kvx_attention_args_t run = kvx_attention_args_init();
    run.cache = &cache.device();
    run.page_table = &table.host();
    run.q = q.device;
    run.q.num_tokens = B;
    run.out = out.device;
    run.out.num_tokens = B;
    run.lse = lse.device;
    run.lse.num_tokens = B;
    kvx_attention_plan_t* plan = nullptr;
    ASSERT_EQ(kvx_attention_plan_create(&run, nullptr, &plan), KVX_OK) << kvx_last_error();
    run.page_table = &table.device();
    run.plan = plan;
    ASSERT_EQ(kvx_attention_decode(&run, &gpu), KVX_OK) << kvx_last_error();
    ASSERT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    ASSERT_EQ(kvx_attention_plan_destroy(plan), KVX_OK);
  }
  CUDA_ASSERT(cudaDeviceSynchronize());
  CUDA_ASSERT(cudaMemGetInfo(&free_after, &total));
  EXPECT_EQ(free_after, free_before) << "device memory changed over " << steps << " decode steps";

  // The last step's output against the CPU backend (the loop must still be right).
  cache.download();
  Tensor ref, ref_lse;
  const int64_t B = static_cast<int64_t>(lens.size());
  ref.make(B, kv_heads * group, d, KVX_DTYPE_F32, rng);
  ref_lse.make(B, kv_heads * group, 1, KVX_DTYPE_F32, rng);
  kvx_attention_args_t check = kvx_attention_args_init();
  check.cache = &cache.host();
  check.page_table = &table.host();
  check.q = q.host;
  check.q.num_tokens = B;
  check.out = ref.host;
  check.lse = ref_lse.host;
  const kvx_exec_t cpu = cpu_exec();
  KVX_ASSERT_OK(kvx_attention_decode(&check, &cpu));
  out.download();
  Tensor got;
  got.host = out.host;
  got.host.num_tokens = B;
  got.host_bytes = out.host_bytes;
  got.host.data = got.host_bytes.data();
  const Error e = compare(got, ref);
  EXPECT_EQ(e.nans, 0);
  EXPECT_LE(e.rel, tolerance(KVX_DTYPE_BF16));
}

}  // namespace
}  // namespace kvx_gpu
