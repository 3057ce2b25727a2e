// The SM copy kernels: many copies per launch, each CTA one piece of work,
// every access as wide as alignment allows. Source or destination may be
// pinned host memory, read or written directly over the bus (unified
// addressing): there the kernel's job is to keep enough requests in flight,
// hence eight independent loads before the first store.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "backends/cuda/copy/copy_launch.hpp"

namespace kvx::cuda {
namespace {

template <int kBytes>
struct Unit;
template <>
struct Unit<16> {
  using T = uint4;
};
template <>
struct Unit<8> {
  using T = uint2;
};
template <>
struct Unit<4> {
  using T = uint32_t;
};
template <>
struct Unit<2> {
  using T = uint16_t;
};
template <>
struct Unit<1> {
  using T = uint8_t;
};

// Copies n units of a contiguous run, kRunDepth loads in flight per thread
// (a partial last round too: a CTA sized to one round of a 16 or 32 KiB
// block issues all its loads before its first store).
constexpr int kRunDepth = 8;
template <int kBytes>
__device__ __forceinline__ void copy_run(std::byte* __restrict__ dst, const std::byte* __restrict__ src, int64_t n) {
  using T = typename Unit<kBytes>::T;
  T* d = reinterpret_cast<T*>(dst);
  const T* s = reinterpret_cast<const T*>(src);
  const int64_t step = blockDim.x;
  for (int64_t i = threadIdx.x; i < n; i += kRunDepth * step) {
    T v[kRunDepth];
#pragma unroll
    for (int k = 0; k < kRunDepth; ++k)
      if (i + k * step < n) v[k] = s[i + k * step];
#pragma unroll
    for (int k = 0; k < kRunDepth; ++k)
      if (i + k * step < n) d[i + k * step] = v[k];
  }
}

// Offset of unit `u` of a plane on one side: u -> (token, head, unit j of
// the row) in the launch's order, every division a multiply and a shift.
__device__ __forceinline__ int64_t unit_offset(const BlockCopyLaunch& a, const CopySide& s, int kv, uint32_t u) {
  uint32_t t, h, j;
  if (a.tokens_fast[kv]) {
    const uint32_t r = fdiv(a.div_tokens, u);
    t = u - r * a.block_tokens;
    h = fdiv(a.div_row[kv], r);
    j = r - h * a.row_units[kv];
  } else {
    const uint32_t r = fdiv(a.div_row[kv], u);
    j = u - r * a.row_units[kv];
    t = fdiv(a.div_heads, r);
    h = r - t * a.num_heads;
  }
  int64_t off = t * s.token_stride + h * s.head_stride;
  if (s.group_units == 0) return off + j * s.unit_stride;
  const uint32_t grp = fdiv(s.div_group, j);
  return off + grp * s.dim_outer_stride + (j - grp * s.group_units) * s.unit_stride;
}

// One plane of a block unit by unit: either side may order its rows
// otherwise, and a row's units are contiguous on both (or whole groups of
// vLLM's legacy key), so each access is a full unit. kRunDepth loads in
// flight per thread, as in copy_run; the store recomputes its offset rather
// than holding kRunDepth of them in registers.
template <int kBytes>
__device__ __forceinline__ void copy_units(const BlockCopyLaunch& a, int kv, std::byte* __restrict__ dst,
                                           const std::byte* __restrict__ src) {
  using T = typename Unit<kBytes>::T;
  const CopySide& ss = a.src[kv];
  const CopySide& ds = a.dst[kv];
  const uint32_t n = static_cast<uint32_t>(a.block_tokens * a.num_heads * a.row_units[kv]);
  const uint32_t step = blockDim.x;
  for (uint32_t u0 = threadIdx.x; u0 < n; u0 += kRunDepth * step) {
    T v[kRunDepth];
#pragma unroll
    for (int k = 0; k < kRunDepth; ++k)
      if (u0 + k * step < n) v[k] = *reinterpret_cast<const T*>(src + unit_offset(a, ss, kv, u0 + k * step));
#pragma unroll
    for (int k = 0; k < kRunDepth; ++k)
      if (u0 + k * step < n) *reinterpret_cast<T*>(dst + unit_offset(a, ds, kv, u0 + k * step)) = v[k];
  }
}

// kUnits: some plane moves unit by unit (the instantiation without it keeps
// the chunk copy's register count low).
template <int kBytes, bool kUnits>
__global__ void block_copy_kernel(const __grid_constant__ BlockCopyLaunch a) {
  const auto* src_base = reinterpret_cast<const std::byte* const*>(a.payload);
  const auto* dst_base = reinterpret_cast<std::byte* const*>(a.payload + sizeof(void*) * a.num_planes);
  const auto* pairs = reinterpret_cast<const int32_t*>(a.payload + 2 * sizeof(void*) * a.num_planes);
  const int64_t per_pair = static_cast<int64_t>(a.num_planes) * a.pieces;
  const int64_t items = per_pair * a.num_pairs;
  for (int64_t item = blockIdx.x; item < items; item += gridDim.x) {
    const int64_t pair = item / per_pair;
    const int32_t rem = static_cast<int32_t>(item - pair * per_pair);
    const int32_t plane = rem / a.pieces, piece = rem % a.pieces;
    const int kv = plane % a.num_kv;
    const int64_t sb = pairs[2 * pair], db = pairs[2 * pair + 1];
    const std::byte* src = src_base[plane] + sb * a.src[kv].block_stride;
    std::byte* dst = dst_base[plane] + db * a.dst[kv].block_stride;
    if (a.chunk[kv]) {
      const int64_t begin = piece * kCopyPieceBytes;
      if (begin >= a.plane_bytes[kv]) continue;
      const int64_t bytes = min(kCopyPieceBytes, a.plane_bytes[kv] - begin);
      copy_run<kBytes>(dst + begin, src + begin, bytes / kBytes);
    } else if (kUnits && piece == 0) {
      copy_units<kBytes>(a, kv, dst, src);
    }
  }
}

// Raw runs: each run takes the widest unit its own alignment allows.
__global__ void raw_copy_kernel(const __grid_constant__ RawCopyLaunch a) {
  for (int32_t r = blockIdx.x; r < a.num_runs; r += gridDim.x) {
    const RawRun& run = a.runs[r];
    const auto bits = reinterpret_cast<uintptr_t>(run.dst) | reinterpret_cast<uintptr_t>(run.src) | run.bytes;
    if (bits % 16 == 0) copy_run<16>(run.dst, run.src, static_cast<int64_t>(run.bytes / 16));
    else if (bits % 8 == 0) copy_run<8>(run.dst, run.src, static_cast<int64_t>(run.bytes / 8));
    else if (bits % 4 == 0) copy_run<4>(run.dst, run.src, static_cast<int64_t>(run.bytes / 4));
    else copy_run<1>(run.dst, run.src, static_cast<int64_t>(run.bytes));
  }
}

int32_t grid_for(int64_t items, int32_t max_ctas) {
  int64_t g = items;
  if (max_ctas > 0 && g > max_ctas) g = max_ctas;
  return static_cast<int32_t>(g > INT_MAX ? INT_MAX : g);
}

}  // namespace

cudaError_t launch_block_copy(const BlockCopyLaunch& a, int32_t max_ctas, int32_t threads, cudaStream_t stream) {
  const int64_t items = static_cast<int64_t>(a.num_planes) * a.pieces * a.num_pairs;
  if (items == 0) return cudaSuccess;
  const int32_t grid = grid_for(items, max_ctas);
  const bool units = !a.chunk[0] || (a.num_kv == 2 && !a.chunk[1]);
  auto kernel = units ? block_copy_kernel<1, true> : block_copy_kernel<1, false>;
  switch (a.unit_bytes) {
    case 16: kernel = units ? block_copy_kernel<16, true> : block_copy_kernel<16, false>; break;
    case 8: kernel = units ? block_copy_kernel<8, true> : block_copy_kernel<8, false>; break;
    case 4: kernel = units ? block_copy_kernel<4, true> : block_copy_kernel<4, false>; break;
    case 2: kernel = units ? block_copy_kernel<2, true> : block_copy_kernel<2, false>; break;
    default: break;
  }
  kernel<<<grid, threads, 0, stream>>>(a);
  return cudaGetLastError();
}

cudaError_t launch_raw_copy(const RawCopyLaunch& a, int32_t max_ctas, cudaStream_t stream) {
  if (a.num_runs == 0) return cudaSuccess;
  raw_copy_kernel<<<grid_for(a.num_runs, max_ctas), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
