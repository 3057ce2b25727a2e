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

__device__ __forceinline__ uint32_t word(const uint4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

// Row j of the transpose of the square of kN x kN elements of kElem bytes
// (kN = 16 / kElem) held as kN rows of 16 bytes: element j of every row.
// Its word i packs elements of rows kN/4 * i on: one byte permute (2-byte
// elements) or a move (4-byte). Computed as each row is stored, so the
// square is held once.
template <int kElem>
__device__ __forceinline__ uint4 square_row(const uint4 (&v)[16 / kElem], int j) {
  if constexpr (kElem == 4) {
    return make_uint4(word(v[0], j), word(v[1], j), word(v[2], j), word(v[3], j));
  } else {
    static_assert(kElem == 2, "squares of 2- or 4-byte elements");
    // Element j of a row: half j % 2 of word j / 2.
    const uint32_t sel = j % 2 ? 0x7632 : 0x5410;
    const int w = j / 2;
    return make_uint4(__byte_perm(word(v[0], w), word(v[1], w), sel), __byte_perm(word(v[2], w), word(v[3], w), sel),
                      __byte_perm(word(v[4], w), word(v[5], w), sel), __byte_perm(word(v[6], w), word(v[7], w), sel));
  }
}

// One plane of a block as squares (BlockCopyLaunch::transpose): each thread
// loads kN 16-byte units of a square (kN consecutive head dims of 16 bytes of
// tokens on the token side, or kN consecutive tokens' 16 bytes of the head
// dim on the other), transposes it in registers and stores kN units on the
// other side: no shared memory, no barrier. A warp's loads and stores fill
// whole 32-byte sectors on both sides (two token groups of a dim row of 16
// tokens, 16 dim groups of a token's head row). kRunDepth loads in flight.
template <int kElem>
__device__ __forceinline__ void copy_squares(const BlockCopyLaunch& a, int kv, std::byte* __restrict__ dst,
                                             const std::byte* __restrict__ src) {
  constexpr int kN = 16 / kElem;
  constexpr int kSquares = kRunDepth / kN > 0 ? kRunDepth / kN : 1;  // squares a thread holds at once
  const CopySide& ss = a.src[kv];
  const CopySide& ds = a.dst[kv];
  // Between the kN units of a square: the next head dim on the token side
  // (unit_stride covers kN dims), the next token on the other.
  const int64_t s_step = a.src_tokens[kv] ? ss.unit_stride / kN : ss.token_stride;
  const int64_t d_step = a.src_tokens[kv] ? ds.token_stride : ds.unit_stride / kN;
  const uint32_t n = static_cast<uint32_t>(a.num_heads * a.row_units[kv] * a.token_groups);
  const uint32_t step = blockDim.x;
  for (uint32_t i0 = threadIdx.x; i0 < n; i0 += kSquares * step) {
    uint4 v[kSquares][kN];
    int64_t doff[kSquares];
#pragma unroll
    for (int r = 0; r < kSquares; ++r) {
      const uint32_t i = i0 + r * step;
      if (i >= n) break;
      const uint32_t q = fdiv(a.div_token_groups, i), tg = i - q * a.token_groups;
      const uint32_t h = fdiv(a.div_row[kv], q), g = q - h * a.row_units[kv];
      const int64_t soff = h * ss.head_stride + g * ss.unit_stride + static_cast<int64_t>(tg) * kN * ss.token_stride;
      doff[r] = h * ds.head_stride + g * ds.unit_stride + static_cast<int64_t>(tg) * kN * ds.token_stride;
#pragma unroll
      for (int k = 0; k < kN; ++k) v[r][k] = *reinterpret_cast<const uint4*>(src + soff + k * s_step);
    }
#pragma unroll
    for (int r = 0; r < kSquares; ++r) {
      if (i0 + r * step >= n) break;
#pragma unroll
      for (int k = 0; k < kN; ++k) *reinterpret_cast<uint4*>(dst + doff[r] + k * d_step) = square_row<kElem>(v[r], k);
    }
  }
}

// Item `item` (pair, plane, piece) of a launch. kUnits: 0 where every plane
// moves as whole chunks (that instantiation keeps the chunk copy's register
// count low), 1 where some plane moves unit by unit, 2 or 4 where some plane
// also moves as squares of 2- or 4-byte elements (then kBytes is 16). Items
// number under 2^31 a launch (the host cuts launches so): 32-bit divisions
// by multiply and shift.
template <int kBytes, int kUnits>
__device__ __forceinline__ void copy_item(const BlockCopyLaunch& a, const unsigned char* payload, uint32_t item) {
  const auto* src_base = reinterpret_cast<const std::byte* const*>(payload);
  const auto* dst_base = reinterpret_cast<std::byte* const*>(payload + sizeof(void*) * a.num_planes);
  const auto* pairs = reinterpret_cast<const int32_t*>(payload + 2 * sizeof(void*) * a.num_planes);
  const uint32_t per_pair = static_cast<uint32_t>(a.num_planes * a.pieces);
  const uint32_t pair = fdiv(a.div_per_pair, item);
  const uint32_t rem = item - pair * per_pair;
  const uint32_t plane = fdiv(a.div_pieces, rem), piece = rem - plane * a.pieces;
  const int kv = a.num_kv == 2 ? static_cast<int>(plane & 1) : 0;
  const int64_t sb = pairs[2 * pair], db = pairs[2 * pair + 1];
  const std::byte* src = src_base[plane] + sb * a.src[kv].block_stride;
  std::byte* dst = dst_base[plane] + db * a.dst[kv].block_stride;
  if (a.chunk[kv]) {
    const int64_t begin = static_cast<int64_t>(piece) * kCopyPieceBytes;
    if (begin >= a.plane_bytes[kv]) return;
    const int64_t bytes = min(kCopyPieceBytes, a.plane_bytes[kv] - begin);
    copy_run<kBytes>(dst + begin, src + begin, bytes / kBytes);
  } else if (kUnits != 0 && piece == 0) {
    if constexpr (kUnits >= 2) {
      if (a.transpose[kv]) {
        copy_squares<kUnits>(a, kv, dst, src);
        return;
      }
    }
    copy_units<kBytes>(a, kv, dst, src);
  }
}

// CTAs walk the launch's items (a grid capped by max_ctas walks them all).
// With squares 104-122 registers (2 CTAs of 256 threads an SM): capped at
// 80 or 64 it spilled and lost 4-14 points; one item a CTA without the
// loop took 64 and lost 1-3 points against this (H100, round 3).
template <int kBytes, int kUnits, int kCap>
__global__ void block_copy_kernel(const __grid_constant__ BlockCopyParams<kCap> p) {
  const BlockCopyLaunch& a = p.h;
  const uint32_t items = static_cast<uint32_t>(a.num_planes * a.pieces) * static_cast<uint32_t>(a.num_pairs);
  for (uint32_t item = blockIdx.x; item < items; item += gridDim.x) copy_item<kBytes, kUnits>(a, p.payload, item);
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

template <int kCap>
cudaError_t launch_sized(const BlockCopyFull& p, int32_t grid, int32_t threads, cudaStream_t stream) {
  const BlockCopyLaunch& a = p.h;
  const bool units = !a.chunk[0] || (a.num_kv == 2 && !a.chunk[1]);
  auto kernel = units ? block_copy_kernel<1, 1, kCap> : block_copy_kernel<1, 0, kCap>;
  switch (a.unit_bytes) {
    case 16: kernel = units ? block_copy_kernel<16, 1, kCap> : block_copy_kernel<16, 0, kCap>; break;
    case 8: kernel = units ? block_copy_kernel<8, 1, kCap> : block_copy_kernel<8, 0, kCap>; break;
    case 4: kernel = units ? block_copy_kernel<4, 1, kCap> : block_copy_kernel<4, 0, kCap>; break;
    case 2: kernel = units ? block_copy_kernel<2, 1, kCap> : block_copy_kernel<2, 0, kCap>; break;
    default: break;
  }
  if (a.transpose[0] || (a.num_kv == 2 && a.transpose[1])) {
    if (a.unit_bytes != 16 || (a.elem_bytes != 2 && a.elem_bytes != 4)) return cudaErrorInvalidValue;
    kernel = a.elem_bytes == 2 ? block_copy_kernel<16, 2, kCap> : block_copy_kernel<16, 4, kCap>;
  }
  // The kernel's parameters are the first sizeof(BlockCopyParams<kCap>)
  // bytes of p (the payload begins at the same offset in every size).
  void* args[] = {const_cast<BlockCopyFull*>(&p)};
  return cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(static_cast<unsigned>(grid)),
                          dim3(static_cast<unsigned>(threads)), args, 0, stream);
}

}  // namespace

cudaError_t launch_block_copy(const BlockCopyFull& p, int64_t payload_bytes, int32_t max_ctas, int32_t threads,
                              cudaStream_t stream) {
  const BlockCopyLaunch& a = p.h;
  const int64_t items = static_cast<int64_t>(a.num_planes) * a.pieces * a.num_pairs;
  if (items == 0) return cudaSuccess;
  const int32_t grid = grid_for(items, max_ctas);
  if (payload_bytes <= kCopyPayloadCaps[0]) return launch_sized<kCopyPayloadCaps[0]>(p, grid, threads, stream);
  if (payload_bytes <= kCopyPayloadCaps[1]) return launch_sized<kCopyPayloadCaps[1]>(p, grid, threads, stream);
  return launch_sized<kCopyPayloadBytes>(p, grid, threads, stream);
}

cudaError_t launch_raw_copy(const RawCopyLaunch& a, int32_t max_ctas, cudaStream_t stream) {
  if (a.num_runs == 0) return cudaSuccess;
  raw_copy_kernel<<<grid_for(a.num_runs, max_ctas), 256, 0, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
