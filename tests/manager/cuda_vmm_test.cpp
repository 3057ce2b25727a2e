// The CUDA VMM pool on a real device (label gpu): the range is reserved once,
// memory is committed granule by granule as blocks are first used, every
// committed block is device-writable, and trim gives granules back. Skips,
// saying why, where no device is present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "manager_test_util.hpp"

namespace {

class CudaVmm : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      GTEST_SKIP() << "no CUDA device or driver on this machine: the VMM pool runs on the GPU machine";
    }
    // Makes device 0's primary context current, which the pool also uses.
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  }
};

TEST_F(CudaVmm, CommitsOnFirstUseWritesAndTrims) {
  constexpr int64_t kBlockBytes = 512 * 1024;  // a quarter of the usual 2 MiB granule
  kvx_manager_config_t c = kvx::test::small_config(8192, 16);  // 4 GiB reserved, never committed up front
  c.memory = KVX_POOL_MEMORY_CUDA_VMM;
  c.bytes_per_block = kBlockBytes;
  c.host_blocks = 4;
  kvx::test::ManagerHandle m(c);
  ASSERT_NE(m.m, nullptr);
  auto x = kvx::test::metrics_of(m);
  EXPECT_EQ(x.reserved_bytes % kBlockBytes, 0u);
  EXPECT_GE(x.reserved_bytes, 8192u * kBlockBytes);
  const uint64_t first = x.committed_bytes - 4u * kBlockBytes;  // minus the pinned host tier
  EXPECT_GT(first, 0u);
  EXPECT_LE(first, 4u * 1024 * 1024);  // one granule for the null block
  void* base = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &base), KVX_OK);
  ASSERT_NE(base, nullptr);

  // 40 blocks of 16 tokens: 20 MiB, committed on demand.
  std::vector<int32_t> prompt(640);
  uint64_t seed = 99;
  prompt = kvx::test::random_tokens(seed, prompt.size(), 1000);
  std::vector<int64_t> slots(prompt.size());
  kvx_seq_id_t id = 0;
  ASSERT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 640, slots.data(), &id, nullptr), KVX_OK) << kvx_last_error();
  x = kvx::test::metrics_of(m);
  const uint64_t device_committed = x.committed_bytes - 4u * kBlockBytes;
  EXPECT_GE(device_committed, 41u * kBlockBytes);
  EXPECT_LT(device_committed, 41u * kBlockBytes + 4u * 1024 * 1024);

  // Each block is device memory: fill it and read its last byte back.
  for (size_t i = 0; i < slots.size(); i += 16) {
    unsigned char* block = static_cast<unsigned char*>(base) + slots[i] / 16 * kBlockBytes;
    const unsigned char value = static_cast<unsigned char>(i / 16 + 1);
    ASSERT_EQ(cudaMemset(block, value, kBlockBytes), cudaSuccess);
    unsigned char back = 0;
    ASSERT_EQ(cudaMemcpy(&back, block + kBlockBytes - 1, 1, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(back, value);
  }
  ASSERT_EQ(kvx_seq_free(m, id), KVX_OK);
  ASSERT_EQ(kvx_manager_reset(m), KVX_OK);
  uint64_t released = 0;
  ASSERT_EQ(kvx_manager_trim(m, &released), KVX_OK);
  EXPECT_GE(released, 40u * kBlockBytes - 4u * 1024 * 1024);
  x = kvx::test::metrics_of(m);
  EXPECT_EQ(x.committed_bytes - 4u * kBlockBytes, first);
}

// A growable VMM pool: the range is reserved for max_blocks, the capacity
// rises without moving the base, and blocks of the grown range are backed
// on first use and device-writable.
TEST_F(CudaVmm, GrowsInPlace) {
  constexpr int64_t kBlockBytes = 2 * 1024 * 1024;
  kvx_manager_config_t c = kvx::test::small_config(4, 16);
  c.memory = KVX_POOL_MEMORY_CUDA_VMM;
  c.bytes_per_block = kBlockBytes;
  c.max_blocks = 1024;  // 2 GiB of address space, nothing committed
  kvx::test::ManagerHandle m(c);
  ASSERT_NE(m.m, nullptr);
  auto x = kvx::test::metrics_of(m);
  EXPECT_GE(x.reserved_bytes, 1024u * kBlockBytes);
  EXPECT_LE(x.committed_bytes, 2u * kBlockBytes);
  void* base = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &base), KVX_OK);
  std::vector<int32_t> prompt(16 * 8);
  uint64_t seed = 7;
  prompt = kvx::test::random_tokens(seed, prompt.size(), 1000);
  std::vector<int64_t> slots(prompt.size());
  kvx_seq_id_t id = 0;
  EXPECT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 128, slots.data(), &id, nullptr), KVX_ERR_OUT_OF_BLOCKS);
  ASSERT_EQ(kvx_manager_grow(m, 16), KVX_OK) << kvx_last_error();
  void* after = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &after), KVX_OK);
  EXPECT_EQ(after, base);
  ASSERT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 128, slots.data(), &id, nullptr), KVX_OK) << kvx_last_error();
  x = kvx::test::metrics_of(m);
  EXPECT_GE(x.committed_bytes, 9u * kBlockBytes);
  EXPECT_LE(x.committed_bytes, 9u * kBlockBytes + 4u * 1024 * 1024);
  for (size_t i = 0; i < slots.size(); i += 16) {
    unsigned char* block = static_cast<unsigned char*>(base) + slots[i] / 16 * kBlockBytes;
    const unsigned char value = static_cast<unsigned char>(0x40 + i / 16);
    ASSERT_EQ(cudaMemset(block, value, kBlockBytes), cudaSuccess);
    unsigned char back = 0;
    ASSERT_EQ(cudaMemcpy(&back, block + kBlockBytes - 1, 1, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(back, value);
  }
  EXPECT_EQ(kvx_manager_grow(m, 1025), KVX_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(kvx_seq_free(m, id), KVX_OK);
}

}  // namespace
