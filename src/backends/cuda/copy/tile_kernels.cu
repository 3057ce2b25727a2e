// The tiled block copy: a layout conversion that moves (token, dim) tiles of
// one head through shared memory, so that both the reads and the writes run
// along whichever axis is contiguous on their own side (the head dim on
// NHD/HND rows and on vLLM's legacy key groups, the token axis on vLLM's
// legacy value), each as wide as alignment allows. A CTA holds several
// tiles at once (every thread several loads in flight) and walks the tiles
// of its launch (a persistent grid).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "backends/cuda/copy/copy_launch.hpp"

namespace kvx::cuda {
namespace {

// 16, 8, 4, 2 or 1 bytes (the side's unit) as the low bytes of a uint4.
__device__ __forceinline__ uint4 load_unit(const std::byte* p, int unit) {
  uint4 v = make_uint4(0, 0, 0, 0);
  switch (unit) {
    case 16: v = *reinterpret_cast<const uint4*>(p); break;
    case 8: {
      const uint2 w = *reinterpret_cast<const uint2*>(p);
      v.x = w.x;
      v.y = w.y;
      break;
    }
    case 4: v.x = *reinterpret_cast<const uint32_t*>(p); break;
    case 2: v.x = *reinterpret_cast<const uint16_t*>(p); break;
    default: v.x = *reinterpret_cast<const uint8_t*>(p); break;
  }
  return v;
}

__device__ __forceinline__ void store_unit(std::byte* p, int unit, const uint4& v) {
  switch (unit) {
    case 16: *reinterpret_cast<uint4*>(p) = v; break;
    case 8: *reinterpret_cast<uint2*>(p) = make_uint2(v.x, v.y); break;
    case 4: *reinterpret_cast<uint32_t*>(p) = v.x; break;
    case 2: *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(v.x); break;
    default: *reinterpret_cast<uint8_t*>(p) = static_cast<uint8_t>(v.x); break;
  }
}

// Element e (of kElem bytes) of the 16 bytes in v; e is a compile-time
// constant after unrolling, so v stays in registers.
template <int kElem>
__device__ __forceinline__ uint32_t element(const uint4& v, int e) {
  const uint32_t w = e * kElem / 4 == 0 ? v.x : e * kElem / 4 == 1 ? v.y : e * kElem / 4 == 2 ? v.z : v.w;
  constexpr uint32_t mask = kElem == 4 ? ~0u : (1u << (8 * (kElem % 4))) - 1;
  return (w >> (8 * ((e * kElem) % 4))) & mask;
}

template <int kElem>
__device__ __forceinline__ void set_element(uint4* v, int e, uint32_t x) {
  uint32_t* w = e * kElem / 4 == 0 ? &v->x : e * kElem / 4 == 1 ? &v->y : e * kElem / 4 == 2 ? &v->z : &v->w;
  constexpr uint32_t mask = kElem == 4 ? ~0u : (1u << (8 * (kElem % 4))) - 1;
  const int sh = 8 * ((e * kElem) % 4);
  *w = (*w & ~(mask << sh)) | (x << sh);
}

template <int kElem>
__device__ __forceinline__ uint32_t lds(const std::byte* p) {
  if (kElem == 4) return *reinterpret_cast<const uint32_t*>(p);
  if (kElem == 2) return *reinterpret_cast<const uint16_t*>(p);
  return *reinterpret_cast<const uint8_t*>(p);
}
template <int kElem>
__device__ __forceinline__ void sts(std::byte* p, uint32_t x) {
  if (kElem == 4) *reinterpret_cast<uint32_t*>(p) = x;
  else if (kElem == 2) *reinterpret_cast<uint16_t*>(p) = static_cast<uint16_t>(x);
  else *reinterpret_cast<uint8_t*>(p) = static_cast<uint8_t>(x);
}

// Unit i of a tile on one side: its byte offset from the tile's origin in
// global memory and in the shared tile ([token][dim], `pitch` bytes a token).
struct UnitAt {
  int64_t global;
  int32_t shared;
};

__device__ __forceinline__ UnitAt unit_at(const TileSide& s, const TileLaunch& a, uint32_t i) {
  if (s.token_axis) {  // units run along tokens; i -> (dim d, unit k of the token run)
    const uint32_t d = fdiv(s.div_inner, i), k = i - d * s.per_inner;
    const int64_t doff = s.group_units == 0 ? static_cast<int64_t>(d) * s.dim_stride
                                            : static_cast<int64_t>(d / s.group_units) * s.group_stride +
                                                  static_cast<int64_t>(d % s.group_units) * s.dim_stride;
    return {doff + static_cast<int64_t>(k) * s.unit, static_cast<int32_t>(k * (s.unit / a.elem) * a.pitch + d * a.elem)};
  }
  // units run along the head dim; i -> (token t, unit j of the row), or
  // (j, t) when consecutive tokens lie closer than consecutive units.
  const uint32_t q = fdiv(s.div_inner, i), r = i - q * s.per_inner;
  const uint32_t t = s.tokens_fast ? r : q, j = s.tokens_fast ? q : r;
  const int64_t joff = s.group_units == 0 ? static_cast<int64_t>(j) * s.unit
                                          : static_cast<int64_t>(j / s.group_units) * s.group_stride +
                                                static_cast<int64_t>(j % s.group_units) * s.unit;
  return {static_cast<int64_t>(t) * s.token_stride + joff, static_cast<int32_t>(t * a.pitch + j * s.unit)};
}

// Origin of tile `tile` of the launch on one side: (pair, plane, head, token chunk).
struct TileAt {
  const std::byte* src;
  std::byte* dst;
};

__device__ __forceinline__ TileAt tile_at(const TileLaunch& a, uint32_t tile) {
  const auto* src_base = reinterpret_cast<const std::byte* const*>(a.payload);
  const auto* dst_base = reinterpret_cast<std::byte* const*>(a.payload + sizeof(void*) * a.num_planes);
  const auto* pairs = reinterpret_cast<const int32_t*>(a.payload + 2 * sizeof(void*) * a.num_planes);
  const uint32_t per_head = a.token_chunks;
  const uint32_t rest = fdiv(a.div_chunks, tile), chunk = tile - rest * per_head;
  const uint32_t rest2 = fdiv(a.div_heads, rest), head = rest - rest2 * a.num_heads;
  const uint32_t pair = fdiv(a.div_planes, rest2), plane = rest2 - pair * a.num_planes;
  const int64_t t0 = static_cast<int64_t>(chunk) * a.chunk_tokens;
  TileAt at;
  at.src = src_base[plane] + pairs[2 * pair] * a.src.block_stride + head * a.src.head_stride + t0 * a.src.token_stride;
  at.dst = dst_base[plane] + pairs[2 * pair + 1] * a.dst.block_stride + head * a.dst.head_stride + t0 * a.dst.token_stride;
  return at;
}

constexpr int kDepth = 4;

template <int kElem>
__global__ void tile_copy_kernel(const __grid_constant__ TileLaunch a) {
  extern __shared__ __align__(16) std::byte tiles[];
  __shared__ TileAt origin[kMaxTilesPerCta];
  const uint32_t tile_bytes = a.chunk_tokens * a.pitch;
  // An even share of the tiles for each CTA, in batches of tiles_per_cta:
  // batches dealt round-robin left the last round of a small call (1k
  // blocks: 1.5 batches a CTA) to a third of the CTAs.
  const uint32_t end = static_cast<uint32_t>(static_cast<uint64_t>(a.num_tiles) * (blockIdx.x + 1) / gridDim.x);
  for (uint32_t first = static_cast<uint32_t>(static_cast<uint64_t>(a.num_tiles) * blockIdx.x / gridDim.x); first < end;
       first += a.tiles_per_cta) {
    const uint32_t tiles_here = min(a.tiles_per_cta, end - first);
    // Each tile's origin once per batch, not once per piece.
    for (uint32_t b = threadIdx.x; b < tiles_here; b += blockDim.x) origin[b] = tile_at(a, first + b);
    __syncthreads();
    // Load: global (source side) -> shared, kDepth pieces in flight.
    const uint32_t n_src = a.src.tile_units * tiles_here;
    for (uint32_t i0 = threadIdx.x; i0 < n_src; i0 += kDepth * blockDim.x) {
      uint4 v[kDepth];
      int32_t sh[kDepth];
#pragma unroll
      for (int k = 0; k < kDepth; ++k) {
        const uint32_t i = i0 + k * blockDim.x;
        if (i < n_src) {
          const uint32_t b = fdiv(a.src.div_tile, i), u = i - b * a.src.tile_units;
          const UnitAt at = unit_at(a.src, a, u);
          v[k] = load_unit(origin[b].src + at.global, a.src.unit);
          sh[k] = static_cast<int32_t>(b * tile_bytes) + at.shared;
        }
      }
#pragma unroll
      for (int k = 0; k < kDepth; ++k) {
        if (i0 + k * blockDim.x >= n_src) break;
        if (!a.src.token_axis) {
          store_unit(tiles + sh[k], a.src.unit, v[k]);
        } else {
#pragma unroll
          for (int e = 0; e < 16 / kElem; ++e)
            if (e < a.src.unit / kElem) sts<kElem>(tiles + sh[k] + e * a.pitch, element<kElem>(v[k], e));
        }
      }
    }
    __syncthreads();
    // Store: shared -> global (destination side).
    const uint32_t n_dst = a.dst.tile_units * tiles_here;
    for (uint32_t i = threadIdx.x; i < n_dst; i += blockDim.x) {
      const uint32_t b = fdiv(a.dst.div_tile, i), u = i - b * a.dst.tile_units;
      const UnitAt at = unit_at(a.dst, a, u);
      const std::byte* s = tiles + b * tile_bytes + at.shared;
      uint4 v = make_uint4(0, 0, 0, 0);
      if (!a.dst.token_axis) {
        v = load_unit(s, a.dst.unit);
      } else {
#pragma unroll
        for (int e = 0; e < 16 / kElem; ++e)
          if (e < a.dst.unit / kElem) set_element<kElem>(&v, e, lds<kElem>(s + e * a.pitch));
      }
      store_unit(origin[b].dst + at.global, a.dst.unit, v);
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t launch_tile_copy(const TileLaunch& a, int32_t max_ctas, cudaStream_t stream) {
  if (a.num_tiles == 0) return cudaSuccess;
  const size_t smem = static_cast<size_t>(a.tiles_per_cta) * a.chunk_tokens * a.pitch;
  const int threads = kTileThreads;
  auto kernel = a.elem == 4 ? tile_copy_kernel<4> : a.elem == 2 ? tile_copy_kernel<2> : tile_copy_kernel<1>;
  // Resident CTAs of this kernel and tile size, asked once per thread and
  // device (the occupancy query cost microseconds per launch).
  struct Resident {
    int device, elem;
    size_t smem;
    int ctas;
  };
  thread_local std::vector<Resident> known;
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  int ctas = 0;
  for (const Resident& r : known)
    if (r.device == device && r.elem == a.elem && r.smem == smem) ctas = r.ctas;
  if (ctas == 0) {
    int sms = 0, per_sm = 0;
    e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem);
    if (e != cudaSuccess) return e;
    ctas = std::max(per_sm, 1) * sms;
    known.push_back({device, a.elem, smem, ctas});
  }
  int64_t grid = (static_cast<int64_t>(a.num_tiles) + a.tiles_per_cta - 1) / a.tiles_per_cta;
  grid = std::min<int64_t>(grid, ctas);
  if (max_ctas > 0) grid = std::min<int64_t>(grid, max_ctas);
  kernel<<<static_cast<int>(grid), threads, smem, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace kvx::cuda
