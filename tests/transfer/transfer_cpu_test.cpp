// Transfers on the CPU engine: block copies between every pair of presets
// (checked element by element through the naive offsets of
// tests/property/layout_testing.hpp), copies within one pool, raw copies,
// the offload data path, and bad input: refused with a status naming the
// field, before any byte is copied.
#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kvx/kvx.h"
#include "property/layout_testing.hpp"

namespace {

using kvx::testing::Cache;
using kvx::testing::Geometry;

constexpr std::byte kPoison{0xA5};

kvx_exec_t cpu_exec() {
  kvx_exec_t e = KVX_EXEC_INIT;
  e.backend = KVX_BACKEND_CPU;
  e.num_threads = 2;
  return e;
}

// Distinct random blocks of [0, n).
std::vector<int32_t> random_blocks(std::mt19937_64& rng, int64_t n, int64_t count) {
  std::vector<int32_t> all(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) all[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(static_cast<size_t>(count));
  return all;
}

// Two layers, 4 tokens a block, 2 heads of 16 f16 elements.
Geometry small_geometry(int64_t num_blocks) {
  Geometry g;
  g.L = 2;
  g.NB = num_blocks;
  g.T = 4;
  g.H = 2;
  g.D = g.Dv = 16;
  return g;
}

std::string fmt_index(const char* name, size_t i) { return std::string(name) + "[" + std::to_string(i) + "]"; }

bool all_poison(Cache& c) {
  for (auto& b : c.buffers())
    for (std::byte x : b)
      if (x != kPoison) return false;
  return true;
}

struct PairCase {
  kvx_preset_t src, dst;
  Geometry g;
  std::string name() const {
    return std::string("COPY(") + kvx_preset_name(src) + "->" + kvx_preset_name(dst) + "," + g.str() + ")";
  }
};

// Copies random blocks from a random source into a poisoned destination and
// checks every element of every copied block, and that every other block
// of the destination still holds only poison.
void check_pair(const PairCase& pc, uint64_t seed) {
  SCOPED_TRACE(pc.name() + " seed=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Cache src(pc.src, pc.g), dst(pc.dst, pc.g);
  ASSERT_EQ(src.status(), KVX_OK);
  ASSERT_EQ(dst.status(), KVX_OK);
  src.fill_random(rng);
  dst.fill(kPoison);
  const int64_t n = std::max<int64_t>(1, pc.g.NB / 2);
  const auto sb = random_blocks(rng, pc.g.NB, n), db = random_blocks(rng, pc.g.NB, n);
  kvx_transfer_report_t report = KVX_TRANSFER_REPORT_INIT;
  kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
  a.src = &src.layout();
  a.dst = &dst.layout();
  a.src_blocks = sb.data();
  a.dst_blocks = db.data();
  a.num_blocks = n;
  a.report = &report;
  const kvx_exec_t exec = cpu_exec();
  ASSERT_EQ(kvx_copy_blocks(&a, &exec), KVX_OK) << kvx_last_error();
  EXPECT_EQ(report.engine, KVX_COPY_ENGINE_CPU);
  EXPECT_EQ(report.direction, KVX_TRANSFER_H2H);
  std::vector<bool> written(static_cast<size_t>(pc.g.NB), false);
  for (int64_t i = 0; i < n; ++i) {
    written[static_cast<size_t>(db[static_cast<size_t>(i)])] = true;
    int bad = 0;
    kvx::testing::for_each_element_of_block(pc.g, db[static_cast<size_t>(i)], [&](const kvx_coord_t& c) {
      kvx_coord_t s = c;
      s.block = sb[static_cast<size_t>(i)];
      if (bad < 3 && dst.value(c) != src.value(s)) {
        ADD_FAILURE() << "element (layer " << c.layer << ", kv " << c.kv << ", block " << c.block << ", token "
                      << c.token << ", head " << c.head << ", dim " << c.dim << ")";
        ++bad;
      }
    });
  }
  // Blocks nobody wrote keep their poison (int4 pairs share bytes: checked whole).
  for (int64_t b = 0; b < pc.g.NB; ++b) {
    if (written[static_cast<size_t>(b)]) continue;
    kvx::testing::for_each_element_of_block(pc.g, b, [&](const kvx_coord_t& c) {
      if (*dst.at(c) != kPoison) ADD_FAILURE() << "block " << b << " was written";
    });
  }
}

TEST(TransferCpu, EveryPresetPairEveryDtype) {
  const kvx_dtype_t dtypes[] = {KVX_DTYPE_F16, KVX_DTYPE_BF16, KVX_DTYPE_F32, KVX_DTYPE_FP8_E4M3, KVX_DTYPE_INT4};
  const uint64_t seed = 20261122;
  std::mt19937_64 rng(seed);
  int checked = 0;
  for (kvx_preset_t s : kvx::testing::all_presets())
    for (kvx_preset_t d : kvx::testing::all_presets()) {
      // A sampled geometry per pair and dtype keeps the matrix fast.
      for (kvx_dtype_t dt : dtypes) {
        Geometry g;
        g.dtype = dt;
        g.L = 1 + static_cast<int64_t>(rng() % 3);
        g.NB = 2 + static_cast<int64_t>(rng() % 5);
        g.T = (s == KVX_PRESET_SGLANG || d == KVX_PRESET_SGLANG) ? 1 : 1 + static_cast<int64_t>(rng() % 5);
        g.H = 1 + static_cast<int64_t>(rng() % 3);
        g.D = g.Dv = 16 * (1 + static_cast<int64_t>(rng() % 2));
        if (!kvx::testing::unsupported_reason(s, g).empty() || !kvx::testing::unsupported_reason(d, g).empty())
          continue;  // the engine cannot hold this geometry (int4 in vllm_legacy)
        check_pair({s, d, g}, rng());
        ++checked;
      }
    }
  EXPECT_GT(checked, 13 * 13 * 4) << "seed " << seed;
}

TEST(TransferCpu, WithinOnePool) {
  std::mt19937_64 rng(7);
  const Geometry g = small_geometry(8);
  Cache c(KVX_PRESET_FLASHINFER_NHD, g);
  c.fill_random(rng);
  const int32_t sb[] = {0, 1, 2}, db[] = {5, 7, 3};
  kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
  a.src = a.dst = &c.layout();
  a.src_blocks = sb;
  a.dst_blocks = db;
  a.num_blocks = 3;
  const kvx_exec_t exec = cpu_exec();
  ASSERT_EQ(kvx_copy_blocks(&a, &exec), KVX_OK) << kvx_last_error();
  for (int i = 0; i < 3; ++i)
    kvx::testing::for_each_element_of_block(g, db[i], [&](const kvx_coord_t& e) {
      kvx_coord_t s = e;
      s.block = sb[i];
      ASSERT_EQ(c.value(e), c.value(s)) << "seed 7";
    });
}

TEST(TransferCpu, RawCopies) {
  std::mt19937_64 rng(11);
  std::vector<uint8_t> src(1 << 16), dst(1 << 16, 0xA5);
  for (auto& x : src) x = static_cast<uint8_t>(rng());
  std::vector<kvx_raw_copy_t> copies;
  for (int i = 0; i < 64; ++i)  // disjoint 512-byte slots, random sizes in them, shuffled order
    copies.push_back({dst.data() + 1024 * ((i * 37) % 64), src.data() + 1024 * i, 2 * (1 + rng() % 255)});
  kvx_raw_copy_args_t a = KVX_RAW_COPY_ARGS_INIT;
  a.src_pool = {src.data(), src.size(), KVX_MEMORY_HOST, 0};
  a.dst_pool = {dst.data(), dst.size(), KVX_MEMORY_HOST, 0};
  a.copies = copies.data();
  a.num_copies = static_cast<int64_t>(copies.size());
  a.elem_bytes = 2;
  kvx_transfer_report_t report = KVX_TRANSFER_REPORT_INIT;
  a.report = &report;
  ASSERT_EQ(kvx_copy_raw(&a, nullptr), KVX_OK) << kvx_last_error();
  EXPECT_EQ(report.engine, KVX_COPY_ENGINE_CPU);
  std::vector<uint8_t> want(dst.size(), 0xA5);
  for (const auto& c : copies) std::memcpy(static_cast<uint8_t*>(c.dst) - dst.data() + want.data(), c.src, c.bytes);
  EXPECT_EQ(dst, want) << "seed 11";
}

// ------------------------------------------------------------- bad input --

class TransferBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(3);
    src_.fill_random(rng);
    dst_.fill(kPoison);
    a_.src = &src_.layout();
    a_.dst = &dst_.layout();
    a_.src_blocks = sb_;
    a_.dst_blocks = db_;
    a_.num_blocks = 3;
  }
  // Refused with `status`, a message naming `field`, nothing written.
  void expect_refused(kvx_status_t status, const std::string& field) {
    const kvx_exec_t exec = cpu_exec();
    EXPECT_EQ(kvx_copy_blocks(&a_, &exec), status);
    EXPECT_NE(std::string(kvx_last_error()).find(field), std::string::npos) << kvx_last_error();
    EXPECT_TRUE(all_poison(dst_)) << "a refused copy wrote to its destination";
  }

  Geometry g_ = small_geometry(6);
  Cache src_{KVX_PRESET_VLLM_FLASH_NHD, g_};
  Cache dst_{KVX_PRESET_FLASHINFER_HND, g_};
  int32_t sb_[3] = {0, 1, 2};
  int32_t db_[3] = {3, 4, 5};
  kvx_block_copy_args_t a_ = KVX_BLOCK_COPY_ARGS_INIT;
};

TEST_F(TransferBadInput, OverlappingDestinations) {
  db_[2] = 3;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks[2]");
}

TEST_F(TransferBadInput, BlocksOutOfRange) {
  sb_[1] = 6;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.src_blocks[1]");
  sb_[1] = 1;
  db_[0] = -1;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks[0]");
}

TEST_F(TransferBadInput, NullBlock) {
  dst_.layout().null_block = 4;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks[1]");
}

TEST_F(TransferBadInput, ReadAndWrittenInOnePool) {
  a_.dst = a_.src;
  db_[1] = 0;
  const kvx_exec_t exec = cpu_exec();
  EXPECT_EQ(kvx_copy_blocks(&a_, &exec), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("also read"), std::string::npos) << kvx_last_error();
}

TEST_F(TransferBadInput, DifferentPoolsSharingMemory) {
  kvx_layout_t uni = kvx_layout_init();
  const kvx_preset_params_t p = kvx::testing::params_of(g_);
  ASSERT_EQ(kvx_layout_preset(KVX_PRESET_UNIVERSAL, &p, &uni), KVX_OK);
  uni.base = src_.layout().ptrs[0];  // another view of the source's memory
  a_.dst = &uni;
  const kvx_exec_t exec = cpu_exec();
  EXPECT_EQ(kvx_copy_blocks(&a_, &exec), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("overlaps"), std::string::npos) << kvx_last_error();
}

TEST_F(TransferBadInput, MismatchedDimsAndDtype) {
  dst_.layout().num_kv_heads = 1;  // still a valid layout, fewer heads
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.dst.num_kv_heads");
  dst_.layout().num_kv_heads = 2;
  Geometry g = g_;
  g.dtype = KVX_DTYPE_BF16;
  Cache bf(KVX_PRESET_FLASHINFER_HND, g);
  bf.fill(kPoison);
  a_.dst = &bf.layout();
  const kvx_exec_t exec = cpu_exec();
  EXPECT_EQ(kvx_copy_blocks(&a_, &exec), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("args.dst.dtype"), std::string::npos);
  EXPECT_TRUE(all_poison(bf));
}

TEST_F(TransferBadInput, HeaderEnumsAndReserved) {
  a_.struct_size = 8;
  expect_refused(KVX_ERR_VERSION_MISMATCH, "args.struct_size");
  a_.struct_size = sizeof(a_);
  a_.reserved[3] = 1;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.reserved");
  a_.reserved[3] = 0;
  a_.engine = static_cast<kvx_copy_engine_t>(9);
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.engine");
  a_.engine = KVX_COPY_ENGINE_CPU;
  a_.dma_mode = static_cast<kvx_dma_mode_t>(7);
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.dma_mode");
  a_.dma_mode = KVX_DMA_FALLBACK_ONLY;
  a_.max_ctas = -1;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.max_ctas");
  a_.max_ctas = 0;
  kvx_transfer_report_t report{};
  a_.report = &report;
  expect_refused(KVX_ERR_VERSION_MISMATCH, "args.report");
  a_.report = nullptr;
  kvx_transfer_plan_t plan = KVX_TRANSFER_PLAN_INIT;
  plan.dma_min_run_bytes[1] = -5;
  a_.plan = &plan;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.plan.dma_min_run_bytes[1]");
}

TEST_F(TransferBadInput, GpuEngineOnPageableMemory) {
  a_.engine = KVX_COPY_ENGINE_SM_KERNEL;
  const kvx_exec_t exec = cpu_exec();
  EXPECT_NE(kvx_copy_blocks(&a_, &exec), KVX_OK);
  EXPECT_TRUE(all_poison(dst_));
  kvx_exec_t any = KVX_EXEC_INIT;
  EXPECT_NE(kvx_copy_blocks(&a_, &any), KVX_OK);
  EXPECT_NE(std::string(kvx_last_error()).find("pageable"), std::string::npos) << kvx_last_error();
  EXPECT_TRUE(all_poison(dst_));
}

TEST_F(TransferBadInput, SupportsCopiesNothing) {
  kvx_transfer_report_t report = KVX_TRANSFER_REPORT_INIT;
  a_.report = &report;
  const kvx_exec_t exec = cpu_exec();
  EXPECT_EQ(kvx_copy_blocks_supports(&a_, &exec), KVX_OK) << kvx_last_error();
  EXPECT_EQ(report.engine, KVX_COPY_ENGINE_CPU);
  EXPECT_TRUE(all_poison(dst_));
}

// Block-list checks over long lists, against a naive oracle: ids (one pass
// in fixed chunks plus a tail) and hazards, both on pools with a byte of
// scratch per block and on a pool of 2^22 blocks with a short list (a hash
// set of the destinations). Only validated (the pools are never touched:
// their bases are far-apart addresses nothing maps).
class BlockListChecks : public ::testing::Test {
 protected:
  kvx_layout_t pool(int64_t num_blocks, uintptr_t base) {
    kvx_preset_params_t p = kvx::testing::params_of(small_geometry(num_blocks));
    kvx_layout_t l = kvx_layout_init();
    EXPECT_EQ(kvx_layout_preset(KVX_PRESET_UNIVERSAL, &p, &l), KVX_OK) << kvx_last_error();
    l.base = reinterpret_cast<void*>(base);
    return l;
  }
  kvx_status_t validate(const kvx_layout_t& s, const kvx_layout_t& d, const std::vector<int32_t>& sb,
                        const std::vector<int32_t>& db) {
    kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
    a.src = &s;
    a.dst = &d;
    a.src_blocks = sb.data();
    a.dst_blocks = db.data();
    a.num_blocks = static_cast<int64_t>(sb.size());
    const kvx_exec_t exec = cpu_exec();
    return kvx_copy_blocks_supports(&a, &exec);
  }
};

TEST_F(BlockListChecks, IdsOutOfRangeOrNullAnywhereInALongList) {
  const kvx_layout_t s = pool(1000, uintptr_t{1} << 40);
  kvx_layout_t d = pool(1000, uintptr_t{2} << 40);
  std::mt19937_64 rng(21);
  const std::vector<int32_t> sb = random_blocks(rng, 1000, 200), db = random_blocks(rng, 1000, 200);
  ASSERT_EQ(validate(s, d, sb, db), KVX_OK) << kvx_last_error();
  // Inside the chunked pass (index 100), in its tail (199), at both ends.
  for (int32_t bad : {1000, -1, INT32_MIN, INT32_MAX})
    for (size_t at : {size_t{0}, size_t{100}, size_t{199}}) {
      std::vector<int32_t> b = db;
      b[at] = bad;
      EXPECT_EQ(validate(s, d, sb, b), KVX_ERR_INVALID_ARGUMENT) << "block " << bad << " at " << at;
      EXPECT_NE(std::string(kvx_last_error()).find(fmt_index("args.dst_blocks", at)), std::string::npos)
          << kvx_last_error();
    }
  d.null_block = db[150];
  EXPECT_EQ(validate(s, d, sb, db), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("args.dst_blocks[150]: block"), std::string::npos) << kvx_last_error();
  EXPECT_NE(std::string(kvx_last_error()).find("null block"), std::string::npos) << kvx_last_error();
}

// Seeds 0-59: 2-301 pairs, some with a hazard planted at random indices;
// the verdict must match a naive set check, in both scratch modes and with
// the two sides one pool or two.
TEST_F(BlockListChecks, HazardsMatchANaiveCheck) {
  for (int64_t num_blocks : {int64_t{512}, int64_t{1} << 22}) {
    const kvx_layout_t s = pool(num_blocks, uintptr_t{1} << 40);
    const kvx_layout_t d = pool(num_blocks, uintptr_t{1} << 42);
    int verdicts[2] = {0, 0};  // clean, hazard: both must occur
    for (uint64_t seed = 0; seed < 60; ++seed) {
      std::mt19937_64 rng(seed);
      const int64_t n = 2 + static_cast<int64_t>(rng() % 300);
      // 2n distinct ids spread over the pool: destinations, then sources.
      const int64_t values = std::min(num_blocks, 2 * n + static_cast<int64_t>(rng() % (4 * n)));
      const int64_t scale = std::max<int64_t>(1, (num_blocks - 1) / values);
      std::vector<int32_t> ids = random_blocks(rng, values, 2 * n);
      for (int32_t& id : ids) id = static_cast<int32_t>(id * scale);
      std::vector<int32_t> db(ids.begin(), ids.begin() + n), sb(ids.begin() + n, ids.end());
      // Seeds by thirds: no hazard, a repeated destination, a source that
      // is also a destination (a hazard within one pool only).
      const auto i = static_cast<size_t>(rng() % static_cast<uint64_t>(n));
      const auto j = (i + 1 + static_cast<size_t>(rng() % static_cast<uint64_t>(n - 1))) % static_cast<size_t>(n);
      if (seed % 3 == 1) db[j] = db[i];
      if (seed % 3 == 2) sb[j] = db[i];
      for (bool one_pool : {false, true}) {
        std::vector<int32_t> dsts = db;
        std::sort(dsts.begin(), dsts.end());
        bool hazard = std::adjacent_find(dsts.begin(), dsts.end()) != dsts.end();
        for (int32_t b : sb) hazard = hazard || (one_pool && std::binary_search(dsts.begin(), dsts.end(), b));
        ++verdicts[hazard ? 1 : 0];
        const kvx_status_t st = validate(s, one_pool ? s : d, sb, db);
        EXPECT_EQ(st, hazard ? KVX_ERR_INVALID_ARGUMENT : KVX_OK)
            << "seed " << seed << " pool " << num_blocks << " one_pool " << one_pool << ": " << kvx_last_error();
        if (hazard) {
          EXPECT_NE(std::string(kvx_last_error()).find("args.dst_blocks["), std::string::npos) << kvx_last_error();
        }
      }
    }
    EXPECT_GE(verdicts[0], 10) << "pool " << num_blocks;
    EXPECT_GE(verdicts[1], 10) << "pool " << num_blocks;
  }
}

class RawBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    for (size_t i = 0; i < src_.size(); ++i) src_[i] = static_cast<uint8_t>(i * 7 + 1);
    copies_[0] = {dst_.data(), src_.data(), 64};
    copies_[1] = {dst_.data() + 128, src_.data() + 64, 64};
    a_.src_pool = {src_.data(), src_.size(), KVX_MEMORY_HOST, 0};
    a_.dst_pool = {dst_.data(), dst_.size(), KVX_MEMORY_HOST, 0};
    a_.copies = copies_;
    a_.num_copies = 2;
    a_.elem_bytes = 4;
  }
  void expect_refused(kvx_status_t status, const std::string& field) {
    EXPECT_EQ(kvx_copy_raw(&a_, nullptr), status);
    EXPECT_NE(std::string(kvx_last_error()).find(field), std::string::npos) << kvx_last_error();
    for (uint8_t x : dst_) ASSERT_EQ(x, 0xA5) << "a refused copy wrote";
  }
  std::vector<uint8_t> src_ = std::vector<uint8_t>(1024);
  std::vector<uint8_t> dst_ = std::vector<uint8_t>(1024, 0xA5);
  kvx_raw_copy_t copies_[2];
  kvx_raw_copy_args_t a_ = KVX_RAW_COPY_ARGS_INIT;
};

TEST_F(RawBadInput, OverlappingDestinations) {
  copies_[1].dst = dst_.data() + 32;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.copies[1].dst");
}

TEST_F(RawBadInput, DestinationOverSource) {
  a_.dst_pool = a_.src_pool;
  copies_[0].dst = src_.data() + 512;
  copies_[1].dst = src_.data() + 32;  // inside copy 0's source
  for (uint8_t& x : dst_) x = 0xA5;
  const std::vector<uint8_t> before = src_;
  EXPECT_EQ(kvx_copy_raw(&a_, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("overlaps the source"), std::string::npos) << kvx_last_error();
  EXPECT_EQ(src_, before);
}

TEST_F(RawBadInput, OutsideThePool) {
  copies_[1].src = src_.data() + 1000;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.copies[1].src");
  copies_[1].src = src_.data();
  copies_[0].dst = dst_.data() - 64;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.copies[0].dst");
}

TEST_F(RawBadInput, SizeNotAMultipleOfTheElement) {
  copies_[1].bytes = 62;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.copies[1].bytes");
  copies_[1].bytes = 64;
  copies_[0].src = src_.data() + 2;
  expect_refused(KVX_ERR_MISALIGNED, "args.copies[0].src");
  copies_[0].src = src_.data();
  a_.elem_bytes = 3;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.elem_bytes");
}

TEST_F(RawBadInput, NullsAndRegions) {
  copies_[0].src = nullptr;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.copies[0].src");
  copies_[0].src = src_.data();
  a_.src_pool.memory = static_cast<kvx_memory_t>(0);
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.src_pool.memory");
  a_.src_pool.memory = KVX_MEMORY_HOST;
  a_.num_copies = -1;
  expect_refused(KVX_ERR_INVALID_ARGUMENT, "args.num_copies");
}

// ------------------------------------------------------------ offload path --

TEST(TransferOffload, CpuRoundTripAndTickets) {
  std::mt19937_64 rng(5);
  const Geometry g = small_geometry(8);
  Cache device(KVX_PRESET_VLLM_FLASH_NHD, g), host(KVX_PRESET_UNIVERSAL, g);
  device.fill_random(rng);
  host.fill(kPoison);
  kvx_offload_config_t cfg = KVX_OFFLOAD_CONFIG_INIT;
  cfg.device = &device.layout();
  cfg.host = &host.layout();
  kvx_offload_t off = nullptr;
  ASSERT_EQ(kvx_offload_create(&cfg, &off), KVX_OK) << kvx_last_error();
  // Evict 1 and 2 to host 6 and 0, then overwrite device 1 from host 6 into 5
  // and copy device 2 to 3 within the pool: one submission, in order.
  const kvx_copy_t items[] = {{1, 6, KVX_COPY_DEVICE_TO_HOST, 0},
                              {2, 0, KVX_COPY_DEVICE_TO_HOST, 0},
                              {6, 5, KVX_COPY_HOST_TO_DEVICE, 0},
                              {2, 3, KVX_COPY_DEVICE_TO_DEVICE, 0}};
  uint64_t ticket = 0;
  ASSERT_EQ(kvx_offload_submit(off, items, 4, nullptr, &ticket), KVX_OK) << kvx_last_error();
  int32_t done = 0, busy = 1;
  ASSERT_EQ(kvx_offload_query(off, ticket, &done), KVX_OK);
  EXPECT_EQ(done, 1);
  ASSERT_EQ(kvx_offload_block_busy(off, KVX_POOL_TIER_HOST, 6, &busy), KVX_OK);
  EXPECT_EQ(busy, 0);
  const int32_t blocks[] = {1, 2};
  EXPECT_EQ(kvx_offload_stream_wait_blocks(off, KVX_POOL_TIER_DEVICE, blocks, 2, nullptr), KVX_OK);
  const struct {
    Cache* to;
    int64_t to_block;
    Cache* from;
    int64_t from_block;
  } want[] = {{&host, 6, &device, 1}, {&host, 0, &device, 2}, {&device, 5, &device, 1}, {&device, 3, &device, 2}};
  for (const auto& w : want)
    kvx::testing::for_each_element_of_block(g, w.to_block, [&](const kvx_coord_t& c) {
      kvx_coord_t s = c;
      s.block = w.from_block;
      ASSERT_EQ(w.to->value(c), w.from->value(s)) << "block " << w.to_block << " seed 5";
    });

  // Bad items are refused before any item runs.
  host.fill(kPoison);
  const kvx_copy_t bad[] = {{1, 6, KVX_COPY_DEVICE_TO_HOST, 0}, {1, 99, KVX_COPY_DEVICE_TO_HOST, 0}};
  EXPECT_EQ(kvx_offload_submit(off, bad, 2, nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("items[1].dst"), std::string::npos) << kvx_last_error();
  EXPECT_TRUE(all_poison(host));
  const kvx_copy_t dup[] = {{1, 6, KVX_COPY_DEVICE_TO_HOST, 0}, {2, 6, KVX_COPY_DEVICE_TO_HOST, 0}};
  uint64_t t2 = 0;
  EXPECT_EQ(kvx_offload_submit(off, dup, 2, nullptr, &t2), KVX_OK) << "a later write of one block runs after";
  kvx::testing::for_each_element_of_block(g, 6, [&](const kvx_coord_t& c) {
    kvx_coord_t s = c;
    s.block = 2;
    ASSERT_EQ(host.value(c), device.value(s));
  });
  EXPECT_EQ(kvx_offload_query(off, 999, &done), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_offload_block_busy(off, KVX_POOL_TIER_HOST, 8, &busy), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_offload_destroy(off), KVX_OK);
  EXPECT_EQ(kvx_offload_destroy(nullptr), KVX_OK);
}

TEST(TransferPlan, DefaultAndHeader) {
  kvx_transfer_plan_t p = KVX_TRANSFER_PLAN_INIT;
  ASSERT_EQ(kvx_transfer_plan_default(&p), KVX_OK);
  EXPECT_EQ(p.dma_min_run_bytes[KVX_TRANSFER_D2D], INT64_MAX);
  EXPECT_GT(p.dma_min_run_bytes[KVX_TRANSFER_H2D], 0);
  kvx_transfer_plan_t bad{};
  EXPECT_EQ(kvx_transfer_plan_default(&bad), KVX_ERR_VERSION_MISMATCH);
  EXPECT_EQ(kvx_transfer_plan_default(nullptr), KVX_ERR_INVALID_ARGUMENT);
}

}  // namespace
