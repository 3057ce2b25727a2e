// kvx_merge_states on the GPU: two partial attention states over disjoint key
// sets combined by their log-sum-exp. One warp per (token, head) row: every
// lane reads the row's two lse values before lane 0 writes the merged one, so
// lse may alias lse_a (and out may alias out_a: each element is read and
// written by the same lane).
#include "backends/cuda/common/elem.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda {
namespace {

constexpr int kWarps = 4;

__global__ void __launch_bounds__(32 * kWarps) merge_states_kernel(const __grid_constant__ MergeLaunch a) {
  const int64_t row = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= a.out.num_tokens * a.out.num_heads) return;
  const int64_t t = row / a.out.num_heads, h = row % a.out.num_heads;
  const float la = *reinterpret_cast<const float*>(a.lse_a.row(t, h));
  const float lb = *reinterpret_cast<const float*>(a.lse_b.row(t, h));
  __syncwarp();
  const float mx = fmaxf(la, lb);
  const float m_use = mx == -INFINITY ? 0.0f : mx;
  const float wa = expf(la - m_use), wb = expf(lb - m_use);
  const float sum = wa + wb;
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const std::byte* ra = a.out_a.row(t, h);
  const std::byte* rb = a.out_b.row(t, h);
  std::byte* ro = a.out.row(t, h);
  const int ea = elem_bytes(a.out_a.dtype), eb = elem_bytes(a.out_b.dtype), eo = elem_bytes(a.out.dtype);
  for (int64_t d = lane; d < a.out.head_dim; d += 32) {
    // A state with weight 0 (lse -inf) contributes nothing, whatever its out holds.
    const float xa = wa > 0.0f ? wa * load_elem(ra + d * ea, a.out_a.dtype) : 0.0f;
    const float xb = wb > 0.0f ? wb * load_elem(rb + d * eb, a.out_b.dtype) : 0.0f;
    store_elem(ro + d * eo, a.out.dtype, (xa + xb) * inv);
  }
  if (lane == 0 && a.lse.data != nullptr)
    *reinterpret_cast<float*>(a.lse.row(t, h)) = sum > 0.0f ? m_use + logf(sum) : -INFINITY;
}

}  // namespace

cudaError_t launch_merge_states(const MergeLaunch& a, cudaStream_t stream) {
  const int64_t rows = a.out.num_tokens * a.out.num_heads;
  if (rows == 0) return cudaSuccess;
  merge_states_kernel<<<static_cast<unsigned>((rows + kWarps - 1) / kWarps), 32 * kWarps, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
