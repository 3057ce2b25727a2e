// IEEE binary16 and bfloat16 by bit manipulation (numeric.hpp).
#include "numeric.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace kvx::tool {
namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

uint16_t to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x0040u);
  const uint32_t lower = u & 0xffffu;
  uint32_t upper = u >> 16;
  if (lower > 0x8000u || (lower == 0x8000u && (upper & 1u))) ++upper;  // ties to even
  return static_cast<uint16_t>(upper);
}

uint16_t to_f16(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t mag = u & 0x7fffffffu;
  if (mag > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (mag >= 0x477ff000u) return sign | 0x7c00u;  // rounds past 65504: infinity
  if (mag < 0x38800000u) {
    // Below 2^-14 the result is subnormal: a multiple of 2^-24, and scaling by
    // 2^24 is exact, so rounding to an integer is the whole conversion.
    const float scaled = float_of(mag) * 16777216.0f;
    return sign | static_cast<uint16_t>(std::nearbyint(scaled));
  }
  uint32_t h = (((mag >> 23) - 112u) << 10) | ((mag >> 13) & 0x3ffu);
  const uint32_t rest = mag & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // carries into the exponent
  return static_cast<uint16_t>(sign | h);
}

double from_f16(uint16_t h) {
  const double sign = (h & 0x8000u) ? -1.0 : 1.0;
  const int exponent = (h >> 10) & 0x1f;
  const int mantissa = h & 0x3ff;
  if (exponent == 0) return sign * std::ldexp(mantissa, -24);
  if (exponent == 31) {
    return mantissa ? std::numeric_limits<double>::quiet_NaN()
                    : sign * std::numeric_limits<double>::infinity();
  }
  return sign * std::ldexp(mantissa + 1024, exponent - 25);
}

}  // namespace

size_t element_bytes(kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: return 4;
    case KVX_DTYPE_F16:
    case KVX_DTYPE_BF16: return 2;
    default: return 0;
  }
}

double error_bound(kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: return 1e-5;
    case KVX_DTYPE_F16: return 2e-3;
    case KVX_DTYPE_BF16: return 1e-2;
    default: return 0.0;
  }
}

void store_element(void* data, size_t i, kvx_dtype_t dtype, double x) {
  const float f = static_cast<float>(x);
  switch (dtype) {
    case KVX_DTYPE_F32: static_cast<float*>(data)[i] = f; break;
    case KVX_DTYPE_F16: static_cast<uint16_t*>(data)[i] = to_f16(f); break;
    case KVX_DTYPE_BF16: static_cast<uint16_t*>(data)[i] = to_bf16(f); break;
    default: break;
  }
}

double load_element(const void* data, size_t i, kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: return static_cast<const float*>(data)[i];
    case KVX_DTYPE_F16: return from_f16(static_cast<const uint16_t*>(data)[i]);
    case KVX_DTYPE_BF16:
      return float_of(static_cast<uint32_t>(static_cast<const uint16_t*>(data)[i]) << 16);
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

kvx_dtype_t float_dtype_from_name(const std::string& name) {
  for (kvx_dtype_t t : {KVX_DTYPE_F32, KVX_DTYPE_F16, KVX_DTYPE_BF16}) {
    if (name == kvx_dtype_name(t)) return t;
  }
  return KVX_DTYPE_FORCE_32BIT;
}

}  // namespace kvx::tool
