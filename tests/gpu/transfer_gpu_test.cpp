// GPU transfers against the CPU conversion (the oracle): every pair of
// presets, dtypes f16, bf16, f32 and fp8 (as bytes), device->device,
// device->pinned host and pinned host->device, both GPU engines where they
// apply, forward and back (a round trip); raw copies at every alignment; the
// engine report; and the offload data path raced by a fast producer.
// Destinations are poisoned first and compared whole, bit for bit.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gpu_harness.hpp"
#include "kvx/kvx.h"

namespace {

using kvx_gpu::Rng;

constexpr unsigned char kPoison = 0xA5;

enum class Mem { kHost, kDevice, kPinned };

kvx_memory_t memory_of(Mem m) {
  return m == Mem::kHost ? KVX_MEMORY_HOST : m == Mem::kDevice ? KVX_MEMORY_CUDA_DEVICE : KVX_MEMORY_CUDA_HOST_PINNED;
}

// One allocation of host, pinned or device memory; `offset` bytes past its
// start the buffer begins (a base less aligned than the allocator's).
class Buffer {
 public:
  Buffer(Mem m, size_t bytes, size_t offset = 0) : mem_(m), bytes_(bytes), offset_(offset) {
    if (m == Mem::kHost) host_.resize(bytes + offset);
    else if (m == Mem::kDevice) ok_ = cudaMalloc(&ptr_, bytes + offset) == cudaSuccess;
    else ok_ = cudaMallocHost(&ptr_, bytes + offset) == cudaSuccess;
  }
  ~Buffer() {
    if (mem_ == Mem::kDevice) cudaFree(ptr_);
    if (mem_ == Mem::kPinned) cudaFreeHost(ptr_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  bool ok() const { return ok_; }
  void* data() { return static_cast<unsigned char*>(mem_ == Mem::kHost ? host_.data() : ptr_) + offset_; }
  size_t bytes() const { return bytes_; }
  void upload(const std::vector<unsigned char>& h) { cudaMemcpy(data(), h.data(), bytes_, cudaMemcpyDefault); }
  std::vector<unsigned char> download() {
    std::vector<unsigned char> h(bytes_);
    cudaMemcpy(h.data(), data(), bytes_, cudaMemcpyDefault);
    return h;
  }

 private:
  Mem mem_;
  size_t bytes_, offset_;
  bool ok_ = true;
  void* ptr_ = nullptr;
  std::vector<unsigned char> host_;
};

// A pool in one preset: one buffer per base pointer of the layout.
class Pool {
 public:
  Pool(kvx_preset_t preset, kvx_preset_params_t p, Mem m, size_t offset = 0) {
    p.memory = memory_of(m);
    status_ = kvx_layout_preset(preset, &p, &layout_);
    if (status_ != KVX_OK) return;
    uint64_t span = 0;
    kvx_layout_span_bytes(&layout_, &span);
    const int64_t n = layout_.base_kind == KVX_BASE_STRIDED      ? 1
                      : layout_.base_kind == KVX_BASE_LAYER_PTRS ? layout_.num_layers
                                                                 : layout_.num_layers * layout_.num_kv;
    for (int64_t i = 0; i < n; ++i) {
      buffers_.push_back(std::make_unique<Buffer>(m, span, offset));
      if (!buffers_.back()->ok()) status_ = KVX_ERR_OUT_OF_MEMORY;
      ptrs_.push_back(buffers_.back()->data());
    }
    if (layout_.base_kind == KVX_BASE_STRIDED) layout_.base = ptrs_[0];
    else layout_.ptrs = ptrs_.data();
  }
  kvx_status_t status() const { return status_; }
  const kvx_layout_t& layout() const { return layout_; }
  std::vector<std::vector<unsigned char>> bytes() {
    std::vector<std::vector<unsigned char>> out;
    for (auto& b : buffers_) out.push_back(b->download());
    return out;
  }
  void set(const std::vector<std::vector<unsigned char>>& bytes) {
    for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i]->upload(bytes[i]);
  }
  void fill(Rng* rng) {  // random bytes, or the poison when rng is null
    for (auto& b : buffers_) {
      std::vector<unsigned char> h(b->bytes(), kPoison);
      if (rng != nullptr)
        for (auto& x : h) x = static_cast<unsigned char>((*rng)());
      b->upload(h);
    }
  }

 private:
  kvx_layout_t layout_ = kvx_layout_init();
  kvx_status_t status_ = KVX_ERR_INTERNAL;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<void*> ptrs_;
};

std::vector<int32_t> distinct_blocks(Rng& rng, int64_t n, int64_t count) {
  std::vector<int32_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(count));
  return all;
}

kvx_status_t copy(const kvx_layout_t& src, const kvx_layout_t& dst, const std::vector<int32_t>& sb,
                  const std::vector<int32_t>& db, kvx_copy_engine_t engine, cudaStream_t stream,
                  kvx_transfer_report_t* report = nullptr, kvx_dma_mode_t mode = KVX_DMA_BATCHED_WITH_FALLBACK,
                  int32_t max_ctas = 0) {
  kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
  a.max_ctas = max_ctas;
  a.src = &src;
  a.dst = &dst;
  a.src_blocks = sb.data();
  a.dst_blocks = db.data();
  a.num_blocks = static_cast<int64_t>(sb.size());
  a.engine = engine;
  a.dma_mode = mode;
  a.report = report;
  kvx_exec_t e = KVX_EXEC_INIT;
  e.stream = stream;
  e.num_threads = 4;
  return kvx_copy_blocks(&a, &e);
}

const char* mem_name(Mem m) { return m == Mem::kHost ? "host" : m == Mem::kDevice ? "device" : "pinned"; }

struct Case {
  kvx_preset_t src, dst;
  kvx_dtype_t dtype;
  int64_t L, NB, T, H, D;
  Mem src_mem, dst_mem;
  kvx_copy_engine_t engine;
  size_t offset = 0;  // bytes past an aligned start where the GPU pools begin
  int32_t max_ctas = 0;  // SM kernel grid cap (0: one CTA an item)
  std::string name() const {
    return std::string("XFER(") + kvx_preset_name(src) + "->" + kvx_preset_name(dst) + ",dtype=" +
           kvx_dtype_name(dtype) + ",L=" + std::to_string(L) + ",T=" + std::to_string(T) + ",H=" + std::to_string(H) +
           ",D=" + std::to_string(D) + "," + mem_name(src_mem) + "->" + mem_name(dst_mem) +
           (engine == KVX_COPY_ENGINE_DMA ? ",dma" : ",sm") + (offset != 0 ? ",offset=" + std::to_string(offset) : "") +
           (max_ctas != 0 ? ",max_ctas=" + std::to_string(max_ctas) : "") + ")";
  }
};

// Forward on the GPU engine and on the CPU, compared whole; then back into
// a poisoned pool of the source preset, compared whole with the CPU's
// backward copy. Returns false when the engine does not serve the case.
void run_case(const Case& c, uint64_t seed, cudaStream_t stream, int* ran) {
  SCOPED_TRACE(c.name() + " seed=" + std::to_string(seed));
  Rng rng(seed);
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = c.dtype;
  p.num_layers = c.L;
  p.num_blocks = c.NB;
  p.block_tokens = c.T;
  p.num_kv_heads = c.H;
  p.head_dim = c.D;
  Pool hs(c.src, p, Mem::kHost), hd(c.dst, p, Mem::kHost), hb(c.src, p, Mem::kHost);
  if (hs.status() == KVX_ERR_UNSUPPORTED || hd.status() == KVX_ERR_UNSUPPORTED) return;  // not expressible
  ASSERT_EQ(hs.status(), KVX_OK);
  ASSERT_EQ(hd.status(), KVX_OK);
  Pool gs(c.src, p, c.src_mem, c.offset), gd(c.dst, p, c.dst_mem, c.offset), gb(c.src, p, c.src_mem, c.offset);
  ASSERT_EQ(gs.status(), KVX_OK);
  ASSERT_EQ(gd.status(), KVX_OK);
  hs.fill(&rng);
  gs.set(hs.bytes());
  for (Pool* q : {&hd, &hb, &gd, &gb}) q->fill(nullptr);
  const int64_t n = std::max<int64_t>(1, c.NB * 2 / 3);
  const auto sb = distinct_blocks(rng, c.NB, n), db = distinct_blocks(rng, c.NB, n);

  kvx_transfer_report_t report = KVX_TRANSFER_REPORT_INIT;
  const kvx_status_t st =
      copy(gs.layout(), gd.layout(), sb, db, c.engine, stream, &report, KVX_DMA_BATCHED_WITH_FALLBACK, c.max_ctas);
  if (st == KVX_ERR_UNSUPPORTED && c.engine == KVX_COPY_ENGINE_DMA) return;  // rows not contiguous
  ASSERT_EQ(st, KVX_OK) << kvx_last_error();
  EXPECT_EQ(report.engine, c.engine);
  KVX_ASSERT_OK(copy(hs.layout(), hd.layout(), sb, db, KVX_COPY_ENGINE_CPU, nullptr));
  CUDA_ASSERT(cudaStreamSynchronize(stream));
  ASSERT_TRUE(gd.bytes() == hd.bytes()) << "forward copy differs from the CPU conversion";
  ASSERT_EQ(copy(gd.layout(), gb.layout(), db, sb, c.engine, stream, nullptr, KVX_DMA_BATCHED_WITH_FALLBACK, c.max_ctas),
            KVX_OK)
      << kvx_last_error();
  KVX_ASSERT_OK(copy(hd.layout(), hb.layout(), db, sb, KVX_COPY_ENGINE_CPU, nullptr));
  CUDA_ASSERT(cudaStreamSynchronize(stream));
  ASSERT_TRUE(gb.bytes() == hb.bytes()) << "round trip differs from the CPU conversion";
  ++*ran;
}

class TransferGpu : public ::testing::Test {
 protected:
  void SetUp() override {
    KVX_REQUIRE_GPU();
    CUDA_ASSERT(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

TEST_F(TransferGpu, EveryPresetPairEveryDtype) {
  const uint64_t seed = 20261123;
  Rng rng(seed);
  const kvx_dtype_t dtypes[] = {KVX_DTYPE_F16, KVX_DTYPE_BF16, KVX_DTYPE_F32, KVX_DTYPE_FP8_E4M3};
  const std::pair<Mem, Mem> mems[] = {{Mem::kDevice, Mem::kDevice}, {Mem::kDevice, Mem::kPinned},
                                      {Mem::kPinned, Mem::kDevice}};
  int ran = 0;
  for (int s = KVX_PRESET_FIRST; s <= KVX_PRESET_LAST; ++s)
    for (int d = KVX_PRESET_FIRST; d <= KVX_PRESET_LAST; ++d)
      for (kvx_dtype_t dt : dtypes) {
        // One sampled geometry and memory pair per (pair, dtype); both engines.
        Case c{static_cast<kvx_preset_t>(s), static_cast<kvx_preset_t>(d), dt, 0, 0, 0, 0, 0,
               Mem::kDevice, Mem::kDevice, KVX_COPY_ENGINE_SM_KERNEL};
        const int64_t Ts[] = {1, 3, 16};
        const int64_t Ds[] = {16, 64, 128};
        c.L = 1 + static_cast<int64_t>(rng() % 3);
        c.NB = 3 + static_cast<int64_t>(rng() % 6);
        c.T = (s == KVX_PRESET_SGLANG || d == KVX_PRESET_SGLANG) ? 1 : Ts[rng() % 3];
        c.H = 1 + static_cast<int64_t>(rng() % 4);
        c.D = Ds[rng() % 3];
        const auto& m = mems[rng() % 3];
        c.src_mem = m.first;
        c.dst_mem = m.second;
        const uint64_t case_seed = rng();
        for (kvx_copy_engine_t e : {KVX_COPY_ENGINE_SM_KERNEL, KVX_COPY_ENGINE_DMA}) {
          c.engine = e;
          run_case(c, case_seed, stream_, &ran);
          if (HasFatalFailure()) return;
        }
      }
  EXPECT_GT(ran, 13 * 13 * 4) << "seed " << seed;
}

// Long blocks with a wide head dim: the tiled copy cuts each head into
// several token chunks (a 64-token f32 head of 256 dims is 64 KiB, over one
// tile), the legacy value moves along tokens chunk by chunk.
TEST_F(TransferGpu, TiledCopyCutsLongBlocksIntoTokenChunks) {
  int ran = 0, cases = 0;
  uint64_t seed = 515;
  for (auto [s, d] : {std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_VLLM_FLASH_NHD},
                      std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_LEGACY},
                      std::pair{KVX_PRESET_FLASHINFER_HND, KVX_PRESET_VLLM_LEGACY},
                      std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_FLASHINFER_HND}})
    for (kvx_dtype_t dt : {KVX_DTYPE_F32, KVX_DTYPE_BF16, KVX_DTYPE_FP8_E4M3})
      for (auto [sm, dm] : {std::pair{Mem::kDevice, Mem::kDevice}, std::pair{Mem::kPinned, Mem::kDevice}}) {
        const Case c{s, d, dt, 2, 5, 64, 3, 256, sm, dm, KVX_COPY_ENGINE_SM_KERNEL};
        run_case(c, ++seed, stream_, &ran);
        if (HasFatalFailure()) return;
        ++cases;
      }
  EXPECT_EQ(ran, cases);
}

// Pools that begin off the allocator's alignment: the copy takes narrower
// pieces (8, 4, 2 or 1 bytes), on the register path (NHD <-> HND rows, the
// legacy key's groups cut into several pieces) and in the tiles (the legacy
// value), forward and back, against the CPU.
TEST_F(TransferGpu, UnalignedPoolsTakeNarrowerPieces) {
  int ran = 0, cases = 0;
  uint64_t seed = 4242;
  for (auto [s, d] : {std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_VLLM_FLASH_NHD},
                      std::pair{KVX_PRESET_FLASHINFER_HND, KVX_PRESET_VLLM_LEGACY},
                      std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_FLASHINFER_HND}})
    for (kvx_dtype_t dt : {KVX_DTYPE_F32, KVX_DTYPE_BF16, KVX_DTYPE_FP8_E4M3})
      for (size_t offset : {size_t{8}, size_t{4}, size_t{2}, size_t{1}}) {
        if (offset % static_cast<size_t>(kvx_dtype_bits(dt) / 8) != 0) continue;  // elements stay aligned
        const Case c{s, d, dt, 2, 6, 16, 2, 64, Mem::kDevice, Mem::kDevice, KVX_COPY_ENGINE_SM_KERNEL, offset};
        run_case(c, ++seed, stream_, &ran);
        if (HasFatalFailure()) return;
        ++cases;
      }
  EXPECT_EQ(ran, cases);
}

// vLLM's legacy value (tokens contiguous) against layouts whose head dim is
// contiguous: 2- and 4-byte elements move as squares transposed in
// registers, in the same launch as the key. Blocks of 8 to 32 tokens, head
// dims of 16 and 128, device and pinned memory, pools 16 bytes off the
// allocator's alignment (still squares) or 8 (the tiles), and grids capped
// so that CTAs walk several items; forward and back against the CPU.
TEST_F(TransferGpu, LegacyValueMovesAsSquares) {
  int ran = 0, cases = 0;
  uint64_t seed = 777;
  const std::pair<Mem, Mem> mems[] = {{Mem::kDevice, Mem::kDevice}, {Mem::kPinned, Mem::kDevice},
                                      {Mem::kDevice, Mem::kPinned}};
  const int64_t dims[] = {16, 128};
  const size_t offsets[] = {0, 16, 8};
  int i = 0;
  for (auto [s, d] : {std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_VLLM_FLASH_NHD},
                      std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_LEGACY},
                      std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_FLASHINFER_HND},
                      std::pair{KVX_PRESET_FLASHINFER_HND, KVX_PRESET_VLLM_LEGACY},
                      std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_DYNAMO_UNIVERSAL},
                      std::pair{KVX_PRESET_LMCACHE, KVX_PRESET_VLLM_LEGACY}})
    for (kvx_dtype_t dt : {KVX_DTYPE_F16, KVX_DTYPE_BF16, KVX_DTYPE_F32})
      for (int64_t T : {8, 16, 32}) {
        const auto& m = mems[i % 3];
        Case c{s, d, dt, 2, 9, T, 3, dims[i % 2], m.first, m.second, KVX_COPY_ENGINE_SM_KERNEL, offsets[(i / 3) % 3]};
        c.max_ctas = (i / 2) % 2 ? 5 : 0;
        ++i;
        run_case(c, ++seed, stream_, &ran);
        if (HasFatalFailure()) return;
        ++cases;
      }
  EXPECT_EQ(ran, cases);
}

// Calls of 200 to 5,000 blocks: each launch passes the smallest parameter
// block that holds its pairs (2 KiB, 8.25 KiB or 31 KiB; 5,000 pairs are a
// 31 KiB and an 8.25 KiB launch), for whole-plane copies, NHD -> HND rows
// and the legacy conversion (squares); forward and back against the CPU.
TEST_F(TransferGpu, LargeCallsTakeEveryParameterSize) {
  int ran = 0, cases = 0;
  uint64_t seed = 9090;
  for (auto [s, d] : {std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_FLASH_NHD},
                      std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_FLASHINFER_HND},
                      std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_VLLM_FLASH_NHD}})
    for (int64_t nb : {300, 1050, 1650, 7500}) {  // 2/3 of them copied: 200 ... 5,000 pairs
      const Case c{s, d, KVX_DTYPE_BF16, 1, nb, 8, 2, 16, Mem::kDevice, Mem::kDevice, KVX_COPY_ENGINE_SM_KERNEL};
      run_case(c, ++seed, stream_, &ran);
      if (HasFatalFailure()) return;
      ++cases;
    }
  EXPECT_EQ(ran, cases);
}

TEST_F(TransferGpu, CudaConvertBlocksMatchesCpu) {
  Rng rng(99);
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = KVX_DTYPE_BF16;
  p.num_layers = 2;
  p.num_blocks = 16;
  p.block_tokens = 16;
  p.num_kv_heads = 4;
  p.head_dim = 128;
  Pool gs(KVX_PRESET_VLLM_LEGACY, p, Mem::kDevice), gd(KVX_PRESET_FLASHINFER_HND, p, Mem::kDevice);
  Pool hs(KVX_PRESET_VLLM_LEGACY, p, Mem::kHost), hd(KVX_PRESET_FLASHINFER_HND, p, Mem::kHost);
  hs.fill(&rng);
  gs.set(hs.bytes());
  gd.fill(nullptr);
  hd.fill(nullptr);
  const auto sb = distinct_blocks(rng, 16, 9), db = distinct_blocks(rng, 16, 9);
  kvx_convert_args_t a = KVX_CONVERT_ARGS_INIT;
  a.src = &gs.layout();
  a.dst = &gd.layout();
  a.src_blocks = sb.data();
  a.dst_blocks = db.data();
  a.num_blocks = 9;
  kvx_exec_t e = KVX_EXEC_INIT;
  e.stream = stream_;
  KVX_ASSERT_OK(kvx_convert_blocks(&a, &e));
  a.src = &hs.layout();
  a.dst = &hd.layout();
  KVX_ASSERT_OK(kvx_convert_blocks(&a, nullptr));
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
  EXPECT_TRUE(gd.bytes() == hd.bytes()) << "seed 99";
}

TEST_F(TransferGpu, RawCopiesEveryAlignment) {
  Rng rng(31);
  const size_t bytes = 1 << 20;
  for (auto [sm, dm] : {std::pair{Mem::kDevice, Mem::kDevice}, std::pair{Mem::kPinned, Mem::kDevice},
                        std::pair{Mem::kDevice, Mem::kPinned}})
    for (kvx_copy_engine_t engine : {KVX_COPY_ENGINE_SM_KERNEL, KVX_COPY_ENGINE_DMA}) {
      SCOPED_TRACE(std::string(mem_name(sm)) + "->" + mem_name(dm) + (engine == KVX_COPY_ENGINE_DMA ? " dma" : " sm"));
      Buffer src(sm, bytes), dst(dm, bytes);
      std::vector<unsigned char> h(bytes), want(bytes, kPoison);
      for (auto& x : h) x = static_cast<unsigned char>(rng());
      src.upload(h);
      dst.upload(want);
      std::vector<kvx_raw_copy_t> copies;
      auto* s = static_cast<unsigned char*>(src.data());
      auto* d = static_cast<unsigned char*>(dst.data());
      // Slots of 8 KiB (and one of 200 KiB, cut into pieces); odd offsets and sizes give 1/4/8/16-byte paths.
      for (size_t i = 0; i < 100; ++i) {
        const size_t off = (i % 5 == 0) ? 0 : (i % 5 == 1) ? 1 : (i % 5 == 2) ? 4 : (i % 5 == 3) ? 8 : 3;
        const size_t len = (i == 7) ? (200u << 10) : 16 * (1 + rng() % 400) + (i % 3);
        const size_t so = (i * 8192 + off) % (bytes - len), dof = ((99 - i) * 8192 + off + (i == 7 ? 0 : 0));
        if (i == 7) copies.push_back({d + (800u << 10), s + so, len});
        else if (dof + len < (800u << 10)) copies.push_back({d + dof, s + so, len});
      }
      for (const auto& c : copies)
        std::memcpy(want.data() + (static_cast<unsigned char*>(c.dst) - d), h.data() + (static_cast<const unsigned char*>(c.src) - s), c.bytes);
      kvx_raw_copy_args_t a = KVX_RAW_COPY_ARGS_INIT;
      a.src_pool = {src.data(), bytes, memory_of(sm), 0};
      a.dst_pool = {dst.data(), bytes, memory_of(dm), 0};
      a.copies = copies.data();
      a.num_copies = static_cast<int64_t>(copies.size());
      a.engine = engine;
      kvx_exec_t e = KVX_EXEC_INIT;
      e.stream = stream_;
      KVX_ASSERT_OK(kvx_copy_raw(&a, &e));
      CUDA_ASSERT(cudaStreamSynchronize(stream_));
      EXPECT_TRUE(dst.download() == want) << "seed 31";
    }
}

TEST_F(TransferGpu, EngineReport) {
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = KVX_DTYPE_F16;
  p.num_layers = 2;
  p.num_blocks = 8;
  p.block_tokens = 16;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  Pool dev(KVX_PRESET_VLLM_FLASH_NHD, p, Mem::kDevice), host(KVX_PRESET_UNIVERSAL, p, Mem::kPinned),
      legacy(KVX_PRESET_VLLM_LEGACY, p, Mem::kDevice);
  const std::vector<int32_t> sb{0, 1, 2}, db{5, 6, 7};
  kvx_transfer_report_t r = KVX_TRANSFER_REPORT_INIT;
  KVX_ASSERT_OK(copy(dev.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_AUTO, stream_, &r));
  EXPECT_EQ(r.direction, KVX_TRANSFER_D2H);
  EXPECT_EQ(r.engine, KVX_COPY_ENGINE_SM_KERNEL) << "32 KiB runs are under the plan's DMA threshold";
  KVX_ASSERT_OK(copy(dev.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_DMA, stream_, &r));
  EXPECT_EQ(r.dma_path, KVX_DMA_PATH_BATCHED);
  KVX_ASSERT_OK(copy(dev.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_DMA, stream_, &r, KVX_DMA_FALLBACK_ONLY));
  EXPECT_EQ(r.dma_path, KVX_DMA_PATH_LOOP);
  KVX_ASSERT_OK(copy(dev.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_DMA, nullptr, &r));
  EXPECT_EQ(r.dma_path, KVX_DMA_PATH_LOOP) << "the legacy stream falls back";
  EXPECT_EQ(copy(dev.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_DMA, nullptr, &r, KVX_DMA_BATCHED_ONLY),
            KVX_ERR_UNSUPPORTED);
  EXPECT_EQ(copy(legacy.layout(), host.layout(), sb, db, KVX_COPY_ENGINE_DMA, stream_, &r), KVX_ERR_UNSUPPORTED);
  CUDA_ASSERT(cudaStreamSynchronize(stream_));
}

// The offload data path: a slow eviction (one CTA moving 64 MiB to pinned
// host memory) on a copy stream, and a producer on another stream that
// overwrites the evicted device blocks as soon as kvx_offload_stream_wait_blocks
// lets it. The host tier must hold the old data bit for bit; a reload on hit
// must bring it back.
TEST_F(TransferGpu, OffloadRaceFastProducerSlowCopy) {
  Rng rng(2718);
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = KVX_DTYPE_BF16;
  p.num_layers = 32;
  p.num_blocks = 64;
  p.block_tokens = 16;
  p.num_kv_heads = 8;
  p.head_dim = 128;  // 2 MiB per block over all layers
  Pool dev(KVX_PRESET_UNIVERSAL, p, Mem::kDevice), host(KVX_PRESET_UNIVERSAL, p, Mem::kPinned);
  ASSERT_EQ(dev.status(), KVX_OK);
  ASSERT_EQ(host.status(), KVX_OK);
  dev.fill(&rng);
  host.fill(nullptr);
  const auto original = dev.bytes();
  kvx_offload_config_t cfg = KVX_OFFLOAD_CONFIG_INIT;
  cfg.device = &dev.layout();
  cfg.host = &host.layout();
  cfg.engine = KVX_COPY_ENGINE_SM_KERNEL;
  cfg.max_ctas = 1;  // slow on purpose
  kvx_offload_t off = nullptr;
  KVX_ASSERT_OK(kvx_offload_create(&cfg, &off));
  cudaStream_t producer = nullptr;
  CUDA_ASSERT(cudaStreamCreateWithFlags(&producer, cudaStreamNonBlocking));
  std::vector<kvx_copy_t> evict;
  std::vector<int32_t> evicted;
  for (int32_t b = 0; b < 32; ++b) {
    evict.push_back({b, 63 - b, KVX_COPY_DEVICE_TO_HOST, 0});
    evicted.push_back(b);
  }
  uint64_t ticket = 0;
  KVX_ASSERT_OK(kvx_offload_submit(off, evict.data(), 32, stream_, &ticket));
  int32_t busy = 0;
  KVX_ASSERT_OK(kvx_offload_block_busy(off, KVX_POOL_TIER_DEVICE, 5, &busy));
  // The producer reuses the evicted blocks at once, behind the wait.
  KVX_ASSERT_OK(kvx_offload_stream_wait_blocks(off, KVX_POOL_TIER_DEVICE, evicted.data(), 32, producer));
  const size_t block_bytes = size_t{2} << 20;
  CUDA_ASSERT(cudaMemsetAsync(dev.layout().base, 0x3C, 32 * block_bytes, producer));
  CUDA_ASSERT(cudaStreamSynchronize(producer));
  KVX_ASSERT_OK(kvx_offload_wait(off, ticket));
  int32_t done = 0;
  KVX_ASSERT_OK(kvx_offload_query(off, ticket, &done));
  EXPECT_EQ(done, 1);
  const auto h = host.bytes()[0];
  for (int32_t b = 0; b < 32; ++b)
    ASSERT_EQ(std::memcmp(h.data() + (63 - b) * block_bytes, original[0].data() + b * block_bytes, block_bytes), 0)
        << "host block " << 63 - b << " is not device block " << b << " as it was before the producer";
  // Load on hit: back into blocks 32..63, then the producer overwrites the host tier.
  std::vector<kvx_copy_t> load;
  std::vector<int32_t> host_blocks;
  for (int32_t b = 0; b < 32; ++b) {
    load.push_back({63 - b, 32 + b, KVX_COPY_HOST_TO_DEVICE, 0});
    host_blocks.push_back(63 - b);
  }
  KVX_ASSERT_OK(kvx_offload_submit(off, load.data(), 32, stream_, &ticket));
  KVX_ASSERT_OK(kvx_offload_stream_wait_blocks(off, KVX_POOL_TIER_HOST, host_blocks.data(), 32, producer));
  CUDA_ASSERT(cudaMemsetAsync(static_cast<char*>(host.layout().base) + 32 * block_bytes, 0x5A, 32 * block_bytes, producer));
  CUDA_ASSERT(cudaStreamSynchronize(producer));
  KVX_ASSERT_OK(kvx_offload_wait(off, ticket));
  const auto d = dev.bytes()[0];
  for (int32_t b = 0; b < 32; ++b)
    ASSERT_EQ(std::memcmp(d.data() + (32 + b) * block_bytes, original[0].data() + b * block_bytes, block_bytes), 0)
        << "device block " << 32 + b << " after reload";
  KVX_ASSERT_OK(kvx_offload_destroy(off));
  cudaStreamDestroy(producer);
  std::printf("offload race: block 5 busy right after submit: %d\n", busy);
}

}  // namespace
