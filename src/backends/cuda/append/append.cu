// kvx_append on the GPU: new K/V rows written into their cache slots.
// The fast path moves 16-byte vectors (one per thread) when the tensors and
// the cache share a dtype and every row is made of aligned 16-byte runs; the
// general path converts element by element (any f32/f16/bf16 pair, any
// strided head dimension, vLLM's split key rows included).
#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;

// The cache slot (block, token) of a new row; false when the row is skipped.
__device__ __forceinline__ bool slot_of(const AppendLaunch& a, int64_t row, int64_t* block, int64_t* token) {
  const int64_t T = a.table.block_tokens;
  int64_t slot;
  if (a.slot_mapping != nullptr) {
    slot = __ldg(a.slot_mapping + row);
    if (slot < 0) return false;
    *block = slot / T;
    *token = slot - *block * T;
    return true;
  }
  const int64_t b = __ldg(a.batch_indices + row);
  const int64_t pos = __ldg(a.positions + row);
  *block = a.table.block(b, pos / T);
  *token = pos % T;
  return true;
}

// grid.y walks rows; grid.x * blockDim covers (plane, head, unit) of one row,
// where a unit is a 16-byte vector (kVector) or one element. The vector path
// takes kRowsPerCta rows per CTA and issues all their loads before any store,
// so each thread keeps kRowsPerCta x 16 bytes in flight (docs/perf-notes.md).
constexpr int kRowsPerCta = 4;

template <bool kVector>
__global__ void __launch_bounds__(kThreads) append_kernel(const __grid_constant__ AppendLaunch a, int units_per_row) {
  const int i = blockIdx.x * kThreads + threadIdx.x;
  const int per_plane = static_cast<int>(a.num_heads) * units_per_row;
  if (i >= a.num_kv * per_plane) return;
  const int kv = i / per_plane;
  const int head = (i % per_plane) / units_per_row;
  const int unit = i % units_per_row;
  const PlaneArg& p = a.plane[kv];
  const TensorArg& src = a.src[kv];
  const int cache_bytes = elem_bytes(a.cache_dtype);
  const int src_bytes = elem_bytes(src.dtype);
  const int64_t d0 = kVector ? static_cast<int64_t>(unit) * (16 / cache_bytes) : unit;
  if (d0 >= p.head_dim) return;
  if constexpr (kVector) {
    for (int64_t first = static_cast<int64_t>(blockIdx.y) * kRowsPerCta; first < a.num_rows;
         first += static_cast<int64_t>(gridDim.y) * kRowsPerCta) {
      uint4 v[kRowsPerCta];
      std::byte* dst[kRowsPerCta];
#pragma unroll
      for (int k = 0; k < kRowsPerCta; ++k) {
        const int64_t row = first + k;
        int64_t block, token;
        dst[k] = nullptr;
        if (row < a.num_rows && slot_of(a, row, &block, &token)) {
          dst[k] = p.row(block, token, head) + p.dim_offset(d0);
          v[k] = __ldg(reinterpret_cast<const uint4*>(src.row(row, head) + d0 * src_bytes));
        }
      }
#pragma unroll
      for (int k = 0; k < kRowsPerCta; ++k)
        if (dst[k] != nullptr) *reinterpret_cast<uint4*>(dst[k]) = v[k];
    }
  } else {
    for (int64_t row = blockIdx.y; row < a.num_rows; row += gridDim.y) {
      int64_t block, token;
      if (!slot_of(a, row, &block, &token)) continue;
      std::byte* dst = p.row(block, token, head) + p.dim_offset(d0);
      const std::byte* s = src.row(row, head) + d0 * src_bytes;
      store_elem(dst, a.cache_dtype, load_elem(s, src.dtype));
    }
  }
}

}  // namespace

cudaError_t launch_append(const AppendLaunch& a, cudaStream_t stream) {
  const int64_t max_dim = a.num_kv == 2 ? std::max(a.plane[0].head_dim, a.plane[1].head_dim) : a.plane[0].head_dim;
  const int cache_bytes = a.cache_dtype == Elem::kF32 ? 4 : 2;
  const int units = static_cast<int>(a.vectorized ? (max_dim * cache_bytes + 15) / 16 : max_dim);
  const int64_t per_row = a.num_kv * a.num_heads * units;
  const int64_t row_groups = a.vectorized ? (a.num_rows + kRowsPerCta - 1) / kRowsPerCta : a.num_rows;
  const dim3 grid(static_cast<unsigned>((per_row + kThreads - 1) / kThreads),
                  static_cast<unsigned>(std::max<int64_t>(1, std::min(row_groups, kMaxGridY))));
  if (a.vectorized)
    append_kernel<true><<<grid, kThreads, 0, stream>>>(a, units);
  else
    append_kernel<false><<<grid, kThreads, 0, stream>>>(a, units);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
