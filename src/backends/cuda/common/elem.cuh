// Element conversions and 16-byte vectors for the kernels: a storage type is a
// template parameter (F16Tag, BF16Tag, F32Tag) wherever a loop runs over it,
// and a run-time Elem only where a value is touched once (queries, outputs).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/common/args.hpp"

namespace kvx::cuda {

struct F16Tag {
  static constexpr Elem kElem = Elem::kF16;
  static constexpr int kBytes = 2;
};
struct BF16Tag {
  static constexpr Elem kElem = Elem::kBF16;
  static constexpr int kBytes = 2;
};
struct F32Tag {
  static constexpr Elem kElem = Elem::kF32;
  static constexpr int kBytes = 4;
};

// Eight 16-bit values packed in a 16-byte vector, widened to float. bf16 is the
// top half of a float, so widening is a shift or a mask, no conversion unit.
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8], BF16Tag) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    f[2 * i] = __uint_as_float(w[i] << 16);
    f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack8(const uint4& v, float (&f)[8], F16Tag) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    __half2 h;
    memcpy(&h, &w[i], 4);
    const float2 x = __half22float2(h);
    f[2 * i] = x.x;
    f[2 * i + 1] = x.y;
  }
}

// Two floats rounded to one 32-bit word of the storage type (lower index in
// the low half), as the tensor-core operands want them.
__device__ __forceinline__ uint32_t pack2(float lo, float hi, BF16Tag) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
  uint32_t w;
  memcpy(&w, &h, 4);
  return w;
}
__device__ __forceinline__ uint32_t pack2(float lo, float hi, F16Tag) {
  const __half2 h = __floats2half2_rn(lo, hi);
  uint32_t w;
  memcpy(&w, &h, 4);
  return w;
}

__device__ __forceinline__ float2 unpack2(uint32_t w, BF16Tag) {
  return make_float2(__uint_as_float(w << 16), __uint_as_float(w & 0xffff0000u));
}
__device__ __forceinline__ float2 unpack2(uint32_t w, F16Tag) {
  __half2 h;
  memcpy(&h, &w, 4);
  return __half22float2(h);
}

__device__ __forceinline__ float load_elem(const std::byte* p, Elem t) {
  switch (t) {
    case Elem::kF16: return __half2float(*reinterpret_cast<const __half*>(p));
    case Elem::kBF16: return __bfloat162float(*reinterpret_cast<const __nv_bfloat16*>(p));
    default: return *reinterpret_cast<const float*>(p);
  }
}

// Round to nearest even, as the CPU reference does.
__device__ __forceinline__ void store_elem(std::byte* p, Elem t, float x) {
  switch (t) {
    case Elem::kF16: *reinterpret_cast<__half*>(p) = __float2half_rn(x); break;
    case Elem::kBF16: *reinterpret_cast<__nv_bfloat16*>(p) = __float2bfloat16_rn(x); break;
    default: *reinterpret_cast<float*>(p) = x; break;
  }
}

__device__ __forceinline__ int elem_bytes(Elem t) { return t == Elem::kF32 ? 4 : 2; }

// 16-byte asynchronous copy global -> shared; `src_bytes` 0 fills the
// destination with zeros and reads nothing (rows past a sequence's end).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// Programmatic dependent launch (sm_90): a kernel launched with the
// programmatic-serialization attribute may start while the previous kernel of
// its stream still runs; griddep_wait() blocks until that kernel has finished
// and its writes are visible, and griddep_launch_dependents() lets the next
// such kernel start once every CTA of this one has called it (or exited).
// Both are no-ops for a kernel launched the ordinary way, and below sm_90.
__device__ __forceinline__ void griddep_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void griddep_launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

}  // namespace kvx::cuda
