// Head rows as float: the CPU reference reads and writes one (token, head)
// row of a cache plane or of a dense tensor at a time, through the layout
// value of layout/layout.hpp (no stride arithmetic of its own).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/dtype.hpp"
#include "kvx/ops.h"
#include "layout/layout.hpp"

namespace kvx::cpu {

// Reads the head_dim elements of a cache row (the address of its dim 0).
inline void load_cache_row(const std::byte* row, const kvx_plane_t& p, kvx_dtype_t dtype, float* dst) {
  const int64_t elem = dtype_bytes(dtype);
  if (p.head_dim_inner == 0 && p.dim_stride_bytes == elem) {
    for (int64_t d = 0; d < p.head_dim; ++d) dst[d] = load_float(row, d, dtype);
    return;
  }
  for (int64_t d = 0; d < p.head_dim; ++d) dst[d] = load_float(row + dim_offset_bytes(p, d, dtype), 0, dtype);
}

// Writes a cache row, rounding to the storage dtype (round to nearest even).
inline void store_cache_row(std::byte* row, const kvx_plane_t& p, kvx_dtype_t dtype, const float* src) {
  for (int64_t d = 0; d < p.head_dim; ++d) store_float(row + dim_offset_bytes(p, d, dtype), 0, dtype, src[d]);
}

// The address of row (token, head) of a dense tensor.
inline std::byte* tensor_row(const kvx_tensor_t& t, int64_t token, int64_t head) {
  return static_cast<std::byte*>(t.data) + token * t.token_stride_bytes + head * t.head_stride_bytes;
}

inline void load_tensor_row(const kvx_tensor_t& t, int64_t token, int64_t head, float* dst) {
  const std::byte* row = tensor_row(t, token, head);
  for (int64_t d = 0; d < t.head_dim; ++d) dst[d] = load_float(row, d, t.dtype);
}

inline void store_tensor_row(const kvx_tensor_t& t, int64_t token, int64_t head, const float* src) {
  std::byte* row = tensor_row(t, token, head);
  for (int64_t d = 0; d < t.head_dim; ++d) store_float(row, d, t.dtype, src[d]);
}

// Float scratch for each OpenMP thread, allocated before the parallel region
// (an allocation failure inside one could not be reported as a status).
class ThreadScratch {
 public:
  ThreadScratch(int num_threads, int64_t floats_per_thread)
      : per_thread_(floats_per_thread), data_(static_cast<size_t>(num_threads * floats_per_thread)) {}
  float* of(int thread) { return data_.data() + thread * per_thread_; }

 private:
  int64_t per_thread_;
  std::vector<float> data_;
};

}  // namespace kvx::cpu
