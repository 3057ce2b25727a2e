// Test fixtures of the reference-op tests: caches in any preset with every
// byte random at start, dense tensors with random strides, batches of
// sequences on shuffled blocks with both page-table forms, poisoning and
// error measures. Randomness is seeded by each test; its seed is in the case
// name that every failure prints.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kvx/kvx.h"

namespace kvx_test {

using Rng = std::mt19937_64;

// Sanitizer builds run a smaller sample of each matrix (tests/ops/CMakeLists.txt).
#ifdef KVX_TEST_SMALL
inline constexpr bool kSmall = true;
#else
inline constexpr bool kSmall = false;
#endif

// 64-byte aligned host memory.
class HostBuffer {
 public:
  explicit HostBuffer(size_t bytes);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  size_t size() const { return bytes_; }
  void fill_random(Rng& rng);

 private:
  struct Free {
    void operator()(std::byte* p) const;
  };
  size_t bytes_;
  std::unique_ptr<std::byte[], Free> data_;
};

struct CacheGeometry {
  kvx_dtype_t dtype = KVX_DTYPE_F32;
  int64_t layers = 2;
  int64_t blocks = 8;
  int64_t block_tokens = 16;
  int64_t kv_heads = 2;
  int64_t head_dim = 64;
  int64_t head_dim_v = 0;  // 0: head_dim
};

// A host cache in one preset; every byte random until written.
class Cache {
 public:
  // Null when the preset cannot express the geometry (KVX_ERR_UNSUPPORTED);
  // any other failure is reported through *status.
  static std::unique_ptr<Cache> make(kvx_preset_t preset, const CacheGeometry& g, Rng& rng, kvx_status_t* status);
  const kvx_layout_t& layout() const { return layout_; }
  kvx_layout_t& layout() { return layout_; }
  // Copies of every base's bytes, to compare before and after an op.
  std::vector<std::vector<std::byte>> snapshot() const;
  size_t num_bases() const { return bases_.size(); }

 private:
  kvx_layout_t layout_{};
  std::vector<HostBuffer> bases_;
  std::vector<void*> ptrs_;
};

// An owned dense tensor [tokens, heads, dim]. With `padded`, strides get
// random gaps and sometimes the head-major order, so that stride handling is
// exercised.
struct Tensor {
  kvx_tensor_t t{};
  std::shared_ptr<HostBuffer> buf;
};
Tensor make_tensor(kvx_dtype_t dtype, int64_t tokens, int64_t heads, int64_t dim, Rng& rng, bool padded);
// Uniform values in [-1, 1], rounded to the dtype.
void fill_values(Tensor& t, Rng& rng);
// Every byte of the buffer set to NaN of the dtype (gaps included).
void poison(Tensor& t);
// Values of elements as double, [tokens][heads][dim].
std::vector<double> tensor_values(const kvx_tensor_t& t);

// Sequences of given lengths on shuffled blocks (never the null block).
struct Batch {
  int64_t block_tokens = 1;
  std::vector<int64_t> lens;
  std::vector<std::vector<int32_t>> pages;  // per sequence, the block of each page
  // Dense form (rows padded with -1 to a random stride >= max_blocks).
  std::vector<int32_t> block_table, seq_lens;
  int64_t max_blocks = 0, stride = 0;
  // CSR form.
  std::vector<int32_t> indptr, indices, last_page_len;

  kvx_page_table_t table(kvx_page_table_kind_t kind) const;
  int64_t total_tokens() const;
  // slot of token `pos` of sequence `seq`.
  int64_t slot(int64_t seq, int64_t pos) const;
};
int64_t blocks_needed(const std::vector<int64_t>& lens, int64_t block_tokens);
Batch make_batch(const std::vector<int64_t>& lens, const kvx_layout_t& cache, Rng& rng);

// Appends `k`, `v` (rows: the batch's tokens, sequence after sequence) into
// `layer` by slot mapping.
kvx_status_t append_batch(const kvx_layout_t& cache, int64_t layer, const Batch& batch, const Tensor& k,
                          const Tensor& v);

// max|out - ref| / max|ref| and the relative L2 norm; nan is set when the
// output holds a NaN (or the reference does).
struct ErrorStats {
  double max_rel = 0.0, rel_l2 = 0.0;
  bool nan = false;
  bool within(double bound) const { return !nan && max_rel <= bound && rel_l2 <= bound; }
};
ErrorStats compare(const std::vector<double>& out, const std::vector<double>& ref);
// Bounds of DESIGN.md section 4 for an output of this dtype.
double tolerance(kvx_dtype_t dtype);

std::string dtype_str(kvx_dtype_t dtype);
// Every preset, first to last.
std::vector<kvx_preset_t> all_presets();

}  // namespace kvx_test
