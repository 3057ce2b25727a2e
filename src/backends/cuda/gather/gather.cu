// kvx_gather on the GPU: the K/V rows of a batch's sequences copied into
// dense tensors, sequence after sequence. A CTA serves one sequence (grid.y)
// and a share of its tokens (grid.x); it finds where its sequence starts in
// the output by summing the earlier sequences' lengths itself, so the op needs
// no workspace and no host copy of the lengths.
#include <cub/block/block_reduce.cuh>

#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxGridY = 65535;

template <bool kVector>
__global__ void __launch_bounds__(kThreads) gather_kernel(const __grid_constant__ GatherLaunch a, int units_per_row) {
  using Reduce = cub::BlockReduce<int64_t, kThreads>;
  __shared__ typename Reduce::TempStorage scratch;
  __shared__ int64_t start_shared;
  const int64_t T = a.table.block_tokens;
  const int64_t per_token = a.num_kv * a.num_heads * units_per_row;
  const int cache_bytes = elem_bytes(a.cache_dtype);
  for (int64_t b = blockIdx.y; b < a.table.num_seqs; b += gridDim.y) {
    int64_t partial = 0;
    for (int64_t j = threadIdx.x; j < b; j += kThreads) partial += a.table.seq_len(j);
    const int64_t start = Reduce(scratch).Sum(partial);
    if (threadIdx.x == 0) start_shared = start;
    __syncthreads();
    const int64_t first_row = start_shared;
    const int64_t len = a.table.seq_len(b);
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < len * per_token;
         i += static_cast<int64_t>(gridDim.x) * kThreads) {
      const int64_t pos = i / per_token;
      const int rest = static_cast<int>(i % per_token);
      const int kv = rest / (static_cast<int>(a.num_heads) * units_per_row);
      const int head = (rest / units_per_row) % static_cast<int>(a.num_heads);
      const int unit = rest % units_per_row;
      const PlaneArg& p = a.plane[kv];
      const TensorArg& dst = a.dst[kv];
      const int64_t d0 = kVector ? static_cast<int64_t>(unit) * (16 / cache_bytes) : unit;
      if (d0 >= p.head_dim) continue;
      const std::byte* src = p.row(a.table.block(b, pos / T), pos % T, head) + p.dim_offset(d0);
      std::byte* out = dst.row(first_row + pos, head) + d0 * elem_bytes(dst.dtype);
      if constexpr (kVector) {
        *reinterpret_cast<uint4*>(out) = *reinterpret_cast<const uint4*>(src);
      } else {
        store_elem(out, dst.dtype, load_elem(src, a.cache_dtype));
      }
    }
    __syncthreads();  // start_shared and the reduction scratch are reused by the next sequence
  }
}

}  // namespace

cudaError_t launch_gather(const GatherLaunch& a, cudaStream_t stream) {
  if (a.table.num_seqs == 0) return cudaSuccess;
  const int64_t max_dim = a.num_kv == 2 ? std::max(a.plane[0].head_dim, a.plane[1].head_dim) : a.plane[0].head_dim;
  const int cache_bytes = a.cache_dtype == Elem::kF32 ? 4 : 2;
  const int units = static_cast<int>(a.vectorized ? (max_dim * cache_bytes + 15) / 16 : max_dim);
  const dim3 grid(static_cast<unsigned>(std::max(a.token_ctas, 1)),
                  static_cast<unsigned>(std::min(a.table.num_seqs, kMaxGridY)));
  if (a.vectorized)
    gather_kernel<true><<<grid, kThreads, 0, stream>>>(a, units);
  else
    gather_kernel<false><<<grid, kThreads, 0, stream>>>(a, units);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
