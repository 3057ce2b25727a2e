// Element types: sizes, names, and host conversion of the 16-bit floats to
// and from float (round to nearest even, NaN preserved).
#pragma once

#include <cstdint>
#include <cstring>

#include "kvx/layout.h"

namespace kvx {

constexpr uint32_t dtype_bits(kvx_dtype_t t) {
  switch (t) {
    case KVX_DTYPE_F32: return 32;
    case KVX_DTYPE_F16: return 16;
    case KVX_DTYPE_BF16: return 16;
    case KVX_DTYPE_FP8_E4M3: return 8;
    case KVX_DTYPE_FP8_E5M2: return 8;
    case KVX_DTYPE_INT8: return 8;
    case KVX_DTYPE_INT4: return 4;
    default: return 0;
  }
}

// Bytes per element, with INT4 rounded up to 1 (its pairs share a byte).
constexpr int64_t dtype_bytes(kvx_dtype_t t) { return dtype_bits(t) <= 8 ? (dtype_bits(t) ? 1 : 0) : dtype_bits(t) / 8; }

constexpr bool dtype_valid(kvx_dtype_t t) { return dtype_bits(t) != 0; }

// Floating-point storage read directly by the v1 reference ops.
constexpr bool dtype_is_float16_32(kvx_dtype_t t) {
  return t == KVX_DTYPE_F32 || t == KVX_DTYPE_F16 || t == KVX_DTYPE_BF16;
}

const char* dtype_name(kvx_dtype_t t);

inline float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint32_t float_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

inline float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);

// Reads element i of a contiguous row of `t` as float (f32, f16, bf16).
inline float load_float(const void* row, int64_t i, kvx_dtype_t t) {
  switch (t) {
    case KVX_DTYPE_F32: return static_cast<const float*>(row)[i];
    case KVX_DTYPE_F16: return f16_to_float(static_cast<const uint16_t*>(row)[i]);
    case KVX_DTYPE_BF16: return bf16_to_float(static_cast<const uint16_t*>(row)[i]);
    default: return 0.0f;
  }
}

inline void store_float(void* row, int64_t i, kvx_dtype_t t, float x) {
  switch (t) {
    case KVX_DTYPE_F32: static_cast<float*>(row)[i] = x; break;
    case KVX_DTYPE_F16: static_cast<uint16_t*>(row)[i] = float_to_f16(x); break;
    case KVX_DTYPE_BF16: static_cast<uint16_t*>(row)[i] = float_to_bf16(x); break;
    default: break;
  }
}

}  // namespace kvx
