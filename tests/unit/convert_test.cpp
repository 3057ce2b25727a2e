// kvx_convert_blocks: every bad argument is refused with its status and a
// message naming the field, and the destination's bytes stay as they were;
// threaded runs write exactly what a single thread writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kvx/kvx.h"
#include "property/layout_testing.hpp"

namespace kvx::testing {
namespace {

constexpr std::byte kPoison{0x3c};

class ConvertErrors : public ::testing::Test {
 public:  // the cases' lambdas edit the fixture through a reference to it
  ConvertErrors() : src_(KVX_PRESET_FLASHINFER_NHD, g_), dst_(KVX_PRESET_UNIVERSAL, g_) {
    std::mt19937_64 rng(0xc0417e);
    src_.fill_random(rng);
    dst_.fill(kPoison);
    args_.src = &src_.layout();
    args_.dst = &dst_.layout();
    args_.src_blocks = src_blocks_.data();
    args_.dst_blocks = dst_blocks_.data();
    args_.num_blocks = static_cast<int64_t>(src_blocks_.size());
  }

  // Runs with `args_` (after `mutate`) and checks status, field and that the
  // destination still holds the poison.
  void expect_refused(const char* what, const std::function<void(ConvertErrors&)>& mutate,
                      kvx_status_t want, const std::string& field, const std::string& also = "") {
    SCOPED_TRACE(what);
    kvx_convert_args_t saved_args = args_;
    const kvx_layout_t saved_src = src_.layout(), saved_dst = dst_.layout();
    const kvx_exec_t saved_exec = exec_;
    const std::vector<int32_t> saved_src_blocks = src_blocks_, saved_dst_blocks = dst_blocks_;
    mutate(*this);
    EXPECT_EQ(kvx_convert_blocks_supports(&args_, &exec_), want) << kvx_last_error();
    EXPECT_EQ(kvx_convert_blocks(&args_, &exec_), want) << kvx_last_error();
    const std::string message = kvx_last_error();
    EXPECT_EQ(message.rfind(field + ":", 0), 0u)
        << "message does not start with \"" << field << ":\": " << message;
    if (!also.empty()) {
      EXPECT_NE(message.find(also), std::string::npos) << message;
    }
    for (const auto& buffer : dst_.buffers())
      for (const std::byte b : buffer) ASSERT_EQ(b, kPoison) << "destination written on error";
    args_ = saved_args;
    src_.layout() = saved_src;
    dst_.layout() = saved_dst;
    exec_ = saved_exec;
    src_blocks_ = saved_src_blocks;
    dst_blocks_ = saved_dst_blocks;
  }

  Geometry g_{.dtype = KVX_DTYPE_F16, .L = 2, .NB = 6, .T = 4, .H = 2, .D = 16, .Dv = 16};
  Cache src_, dst_;
  std::vector<int32_t> src_blocks_ = {0, 5, 2};
  std::vector<int32_t> dst_blocks_ = {4, 1, 3};
  kvx_convert_args_t args_ = kvx_convert_args_init();
  kvx_exec_t exec_ = kvx_exec_init();
};

TEST_F(ConvertErrors, RefusesEachBadArgument) {
  using E = ConvertErrors;
  expect_refused(
      "struct_size", [](E& t) { t.args_.struct_size = 16; }, KVX_ERR_VERSION_MISMATCH,
      "args.struct_size");
  expect_refused(
      "major version", [](E& t) { t.args_.version = KVX_MAKE_VERSION(2, 0, 0); },
      KVX_ERR_VERSION_MISMATCH, "args.version");
  expect_refused(
      "reserved", [](E& t) { t.args_.reserved[3] = 1; }, KVX_ERR_INVALID_ARGUMENT,
      "args.reserved[3]");
  expect_refused(
      "src null", [](E& t) { t.args_.src = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.src");
  expect_refused(
      "dst null", [](E& t) { t.args_.dst = nullptr; }, KVX_ERR_INVALID_ARGUMENT, "args.dst");
  expect_refused(
      "dst reserved", [](E& t) { t.dst_.layout().reserved[7] = 1; }, KVX_ERR_INVALID_LAYOUT,
      "args.dst.reserved[7]");
  expect_refused(
      "src overlapping strides", [](E& t) { t.src_.layout().plane[0].token_stride_bytes = 4; },
      KVX_ERR_INVALID_LAYOUT, "args.src.plane[0].token_stride_bytes");
  expect_refused(
      "dtype differs", [](E& t) { t.dst_.layout().dtype = KVX_DTYPE_BF16; },
      KVX_ERR_INVALID_ARGUMENT, "args.dst.dtype");
  expect_refused(
      "block_tokens differ",
      [](E& t) {
        t.dst_.layout().block_tokens = 2;  // still a valid layout, a smaller one
      },
      KVX_ERR_INVALID_ARGUMENT, "args.dst.block_tokens");
  expect_refused(
      "layers differ", [](E& t) { t.dst_.layout().num_layers = 1; }, KVX_ERR_INVALID_ARGUMENT,
      "args.dst.num_layers");
  expect_refused(
      "head dims differ", [](E& t) { t.dst_.layout().plane[1].head_dim = 8; },
      KVX_ERR_INVALID_ARGUMENT, "args.dst.plane[1].head_dim");
  expect_refused(
      "memory kinds differ", [](E& t) { t.dst_.layout().memory = KVX_MEMORY_CUDA_DEVICE; },
      KVX_ERR_UNSUPPORTED, "args.dst.memory");
  expect_refused(
      "src base null", [](E& t) { t.src_.layout().ptrs = nullptr; }, KVX_ERR_INVALID_ARGUMENT,
      "args.src.ptrs");
  expect_refused(
      "dst base null", [](E& t) { t.dst_.layout().base = nullptr; }, KVX_ERR_INVALID_ARGUMENT,
      "args.dst.base");
  expect_refused(
      "in place", [](E& t) { t.args_.dst = t.args_.src; }, KVX_ERR_INVALID_ARGUMENT, "args.dst",
      "in-place");
  expect_refused(
      "dst inside src memory", [](E& t) { t.dst_.layout().base = t.src_.buffers()[1].data() + 64; },
      KVX_ERR_INVALID_ARGUMENT, "args.dst", "in-place");
  expect_refused(
      "num_blocks negative", [](E& t) { t.args_.num_blocks = -1; }, KVX_ERR_INVALID_ARGUMENT,
      "args.num_blocks");
  expect_refused(
      "src_blocks null", [](E& t) { t.args_.src_blocks = nullptr; }, KVX_ERR_INVALID_ARGUMENT,
      "args.src_blocks");
  expect_refused(
      "dst_blocks null", [](E& t) { t.args_.dst_blocks = nullptr; }, KVX_ERR_INVALID_ARGUMENT,
      "args.dst_blocks");
  expect_refused(
      "src block past the end", [](E& t) { t.src_blocks_[1] = 6; }, KVX_ERR_INVALID_ARGUMENT,
      "args.src_blocks[1]");
  expect_refused(
      "dst block negative", [](E& t) { t.dst_blocks_[2] = -1; }, KVX_ERR_INVALID_ARGUMENT,
      "args.dst_blocks[2]");
  expect_refused(
      "dst block is the null block", [](E& t) { t.dst_.layout().null_block = 1; },
      KVX_ERR_INVALID_ARGUMENT, "args.dst_blocks[1]", "null block");
  expect_refused(
      "src block is the null block", [](E& t) { t.src_.layout().null_block = 0; },
      KVX_ERR_INVALID_ARGUMENT, "args.src_blocks[0]", "null block");
  expect_refused(
      "duplicate destination", [](E& t) { t.dst_blocks_[2] = 4; }, KVX_ERR_INVALID_ARGUMENT,
      "args.dst_blocks[2]");
  expect_refused(
      "exec reserved", [](E& t) { t.exec_.reserved[0] = 1; }, KVX_ERR_INVALID_ARGUMENT,
      "exec.reserved");
  expect_refused(
      "CUDA backend on pageable memory", [](E& t) { t.exec_.backend = KVX_BACKEND_CUDA; },
      KVX_ERR_INVALID_ARGUMENT, "exec.backend");
}

TEST_F(ConvertErrors, NothingToDoWritesNothing) {
  args_.num_blocks = 0;
  args_.src_blocks = nullptr;
  args_.dst_blocks = nullptr;
  ASSERT_EQ(kvx_convert_blocks(&args_, nullptr), KVX_OK) << kvx_last_error();
  for (const auto& buffer : dst_.buffers())
    for (const std::byte b : buffer) ASSERT_EQ(b, kPoison);
}

TEST_F(ConvertErrors, PinnedAndPageableHostMemoryMix) {
  dst_.layout().memory = KVX_MEMORY_CUDA_HOST_PINNED;  // the CPU reads and writes both
  ASSERT_EQ(kvx_convert_blocks(&args_, &exec_), KVX_OK) << kvx_last_error();
  for (size_t i = 0; i < src_blocks_.size(); ++i)
    for_each_element_of_block(g_, src_blocks_[i], [&](const kvx_coord_t& c) {
      kvx_coord_t cd = c;
      cd.block = dst_blocks_[i];
      ASSERT_EQ(src_.value(c), dst_.value(cd));
    });
}

// Big enough to run threaded; the legacy layout takes the element-by-element
// path (its value rows are strided), the flash layouts the chunk memcpy.
TEST(Convert, ThreadsWriteWhatOneThreadWrites) {
  const Geometry g{.dtype = KVX_DTYPE_F32, .L = 2, .NB = 12, .T = 16, .H = 4, .D = 64, .Dv = 64};
  for (const auto& [from, to] : {std::pair{KVX_PRESET_VLLM_LEGACY, KVX_PRESET_FLASHINFER_HND},
                                 std::pair{KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_TGI}}) {
    SCOPED_TRACE(std::string(kvx_preset_name(from)) + " -> " + kvx_preset_name(to));
    Cache src(from, g), one(to, g), many(to, g);
    std::mt19937_64 rng(0x7d7ead5);
    src.fill_random(rng);
    one.fill(kPoison);
    many.fill(kPoison);
    std::vector<int32_t> src_blocks(static_cast<size_t>(g.NB)),
        dst_blocks(static_cast<size_t>(g.NB));
    for (int32_t i = 0; i < g.NB; ++i) src_blocks[static_cast<size_t>(i)] = i;
    dst_blocks = src_blocks;
    std::shuffle(dst_blocks.begin(), dst_blocks.end(), rng);
    kvx_convert_args_t args = kvx_convert_args_init();
    args.src = &src.layout();
    args.src_blocks = src_blocks.data();
    args.dst_blocks = dst_blocks.data();
    args.num_blocks = g.NB;
    kvx_exec_t exec = kvx_exec_init();
    exec.num_threads = 1;
    args.dst = &one.layout();
    ASSERT_EQ(kvx_convert_blocks(&args, &exec), KVX_OK) << kvx_last_error();
    exec.num_threads = 3;
    args.dst = &many.layout();
    ASSERT_EQ(kvx_convert_blocks(&args, &exec), KVX_OK) << kvx_last_error();
    EXPECT_EQ(one.buffers(), many.buffers());
    int64_t wrong = 0;
    for (int64_t i = 0; i < g.NB; ++i)
      for_each_element_of_block(g, i, [&](const kvx_coord_t& c) {
        kvx_coord_t cd = c;
        cd.block = dst_blocks[static_cast<size_t>(i)];
        wrong += src.value(c) != many.value(cd);
      });
    EXPECT_EQ(wrong, 0);
  }
}

}  // namespace
}  // namespace kvx::testing
