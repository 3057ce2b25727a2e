// Fixtures of the GPU differential tests: every CUDA op is run on device
// copies of random inputs and compared with the CPU backend (the oracle) run
// through the same public entry points on the host copies. Each case has a
// stable name (its gtest name, the key of bench/results/gpu-tests.json) that
// also carries its seed.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kvx/kvx.h"

namespace kvx_gpu {

using Rng = std::mt19937_64;

// The reduced matrix of the compute-sanitizer binary (tests/gpu/CMakeLists.txt).
#ifdef KVX_GPU_REDUCED
inline constexpr bool kReduced = true;
#else
inline constexpr bool kReduced = false;
#endif

// Why GPU tests cannot run here, or nullptr when a CUDA device is present.
const char* no_device_reason();

#define KVX_REQUIRE_GPU()                                                      \
  do {                                                                         \
    if (const char* why = ::kvx_gpu::no_device_reason()) GTEST_SKIP() << why; \
  } while (0)

#define CUDA_ASSERT(expr)                                                                      \
  do {                                                                                         \
    const cudaError_t kvx_e_ = (expr);                                                         \
    ASSERT_EQ(kvx_e_, cudaSuccess) << #expr << ": " << cudaGetErrorString(kvx_e_);             \
  } while (0)

#define KVX_ASSERT_OK(expr) ASSERT_EQ((expr), KVX_OK) << #expr << ": " << kvx_last_error()

// Device memory, freed on scope exit.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer();
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void upload(const void* host, size_t bytes);
  void download(void* host, size_t bytes) const;
  void poison();  // every byte 0xff: NaN in f32, f16 and bf16

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Random finite values in [-2, 2] stored as `dtype` elements over `bytes`.
void fill_random(void* host, size_t bytes, kvx_dtype_t dtype, Rng& rng);
size_t dtype_size(kvx_dtype_t dtype);
float element(const void* p, kvx_dtype_t dtype);

// A cache in one preset, with a host copy (the oracle's) and a device copy.
class Cache {
 public:
  // Fails the test (and returns false) on an unexpected status; *expressible
  // is false when the preset cannot express the geometry.
  bool make(kvx_preset_t preset, const kvx_preset_params_t& params, Rng& rng, bool* expressible);
  const kvx_layout_t& host() const { return host_; }
  const kvx_layout_t& device() const { return device_; }
  void upload();
  void download();  // device bytes into the host copy
  const std::vector<std::vector<std::byte>>& host_bytes() const { return host_bytes_; }

 private:
  kvx_layout_t host_{}, device_{};
  std::vector<std::vector<std::byte>> host_bytes_;
  std::vector<DeviceBuffer> device_bytes_;
  std::vector<void*> host_ptrs_, device_ptrs_;
};

// A batch's page table in one form, on the host (the oracle's and the plan's)
// and on the device. Sequences own distinct, shuffled blocks.
class PageTable {
 public:
  void make(const std::vector<int64_t>& lens, int64_t block_tokens, int64_t num_blocks, bool csr, Rng& rng);
  // New lengths that need no new pages beyond those given at make().
  void set_lens(const std::vector<int64_t>& lens);
  const kvx_page_table_t& host() const { return host_; }
  const kvx_page_table_t& device() const { return device_; }
  int64_t block(int64_t seq, int64_t page) const { return blocks_[seq][page]; }
  static int64_t pages_needed(const std::vector<int64_t>& lens, int64_t block_tokens);

 private:
  void publish();
  kvx_page_table_t host_{}, device_{};
  int64_t block_tokens_ = 1;
  bool csr_ = false;
  std::vector<int64_t> lens_;
  std::vector<std::vector<int32_t>> blocks_;
  std::vector<int32_t> table_, seq_lens_, indptr_, indices_, last_page_len_;
  DeviceBuffer d_table_, d_seq_lens_, d_indptr_, d_indices_, d_last_page_len_;
};

// A dense [tokens, heads, dim] tensor with host and device copies.
struct Tensor {
  kvx_tensor_t host{}, device{};
  std::vector<std::byte> host_bytes;
  DeviceBuffer device_bytes;
  void make(int64_t tokens, int64_t heads, int64_t dim, kvx_dtype_t dtype, Rng& rng);
  void upload();
  void download();
  float at(int64_t token, int64_t head, int64_t d) const;
};

// max|out - ref| / max|ref| over every element; NaN anywhere in out fails.
struct Error {
  double rel = 0.0;
  int64_t nans = 0;
};
Error compare(const Tensor& out, const Tensor& ref);

// The bound of DESIGN.md section 4 for results computed from `dtype` storage.
double tolerance(kvx_dtype_t dtype);

// exec structs for the two backends.
kvx_exec_t cpu_exec();
kvx_exec_t cuda_exec(cudaStream_t stream, void* workspace, uint64_t workspace_bytes);

// Presets whose head dim is contiguous (what the CUDA decode kernel serves).
std::vector<kvx_preset_t> contiguous_presets();

}  // namespace kvx_gpu
