// Storage dtypes: sizes and names through the C ABI, and the host
// conversions of the 16-bit floats (every bit pattern round-trips; rounding
// from float matches a float64 round-to-nearest-even reference).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "core/dtype.hpp"
#include "kvx/kvx.h"

namespace kvx {
namespace {

TEST(Dtype, BitsAndNames) {
  const struct {
    kvx_dtype_t dtype;
    uint32_t bits;
    const char* name;
  } cases[] = {{KVX_DTYPE_F32, 32, "f32"},          {KVX_DTYPE_F16, 16, "f16"},
               {KVX_DTYPE_BF16, 16, "bf16"},        {KVX_DTYPE_FP8_E4M3, 8, "fp8_e4m3"},
               {KVX_DTYPE_FP8_E5M2, 8, "fp8_e5m2"}, {KVX_DTYPE_INT8, 8, "int8"},
               {KVX_DTYPE_INT4, 4, "int4"}};
  for (const auto& c : cases) {
    EXPECT_EQ(kvx_dtype_bits(c.dtype), c.bits);
    EXPECT_STREQ(kvx_dtype_name(c.dtype), c.name);
  }
  for (const int32_t bad : {0, 8, -1, 1000}) {
    kvx_dtype_t dtype;  // stored as a C caller would: a C++ cast of -1 is undefined
    std::memcpy(&dtype, &bad, sizeof bad);
    EXPECT_EQ(kvx_dtype_bits(dtype), 0u) << bad;
    EXPECT_STREQ(kvx_dtype_name(dtype), "unknown") << bad;
  }
}

template <typename ToFloat, typename FromFloat>
void expect_all_patterns_round_trip(ToFloat to_float, FromFloat from_float, const char* what) {
  int64_t failures = 0;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = to_float(static_cast<uint16_t>(h));
    const uint16_t back = from_float(f);
    if (std::isnan(f)) {
      failures += !std::isnan(to_float(back));  // NaN stays NaN (payload may be quieted)
    } else if (back != h) {
      if (++failures <= 5)
        ADD_FAILURE() << what << " pattern " << std::hex << h << " came back as " << back;
    }
  }
  EXPECT_EQ(failures, 0) << what;
}

TEST(Dtype, F16EveryBitPatternRoundTrips) {
  expect_all_patterns_round_trip(f16_to_float, float_to_f16, "f16");
}

TEST(Dtype, Bf16EveryBitPatternRoundTrips) {
  expect_all_patterns_round_trip(bf16_to_float, float_to_bf16, "bf16");
}

// Round to nearest, ties to even, computed in float64 from the list of all
// finite non-negative codes of a 16-bit format (which are ordered like their
// values): an oracle independent of the bit tricks under test.
template <typename ToFloat>
uint16_t reference_round(double x, ToFloat to_float, uint16_t max_finite, uint16_t inf) {
  const uint16_t sign = std::signbit(x) ? 0x8000u : 0u;
  const double a = std::fabs(x);
  const double max = to_float(max_finite);
  const double overflow = max + (max - static_cast<double>(to_float(max_finite - 1))) / 2;
  if (a >= overflow) return sign | inf;  // the tie at `overflow` goes to inf: max_finite is odd
  uint32_t lo = 0, hi = max_finite;      // find the last code with value <= a
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) / 2;
    if (static_cast<double>(to_float(static_cast<uint16_t>(mid))) <= a)
      lo = mid;
    else
      hi = mid - 1;
  }
  if (lo == max_finite) return static_cast<uint16_t>(sign | lo);
  const double below = to_float(static_cast<uint16_t>(lo));
  const double above = to_float(static_cast<uint16_t>(lo + 1));
  const bool up = a - below > above - a || (a - below == above - a && (lo & 1u));
  return static_cast<uint16_t>(sign | (up ? lo + 1 : lo));
}

template <typename ToFloat, typename FromFloat>
void expect_rounding_matches_reference(ToFloat to_float, FromFloat from_float, uint16_t max_finite,
                                       uint16_t inf, uint64_t seed, const char* what) {
  std::mt19937_64 rng(seed);
  // Random bit patterns reach every exponent (subnormals, overflow, NaN);
  // values near the format's range and exact ties are drawn on purpose.
  std::uniform_real_distribution<float> near(-70000.0f, 70000.0f);
  int64_t failures = 0;
  for (int i = 0; i < 200000; ++i) {
    float f;
    switch (i % 4) {
      case 0: {
        const uint32_t bits = static_cast<uint32_t>(rng());
        std::memcpy(&f, &bits, sizeof f);
        break;
      }
      case 1: f = near(rng); break;
      case 2: f = std::ldexp(near(rng) / 70000.0f, -static_cast<int>(rng() % 30)); break;
      default: {  // the midpoint of two neighbouring codes: a tie
        const auto code = static_cast<uint16_t>(rng() % max_finite);
        f = static_cast<float>(
            (static_cast<double>(to_float(code)) + to_float(static_cast<uint16_t>(code + 1))) / 2);
        break;
      }
    }
    const uint16_t got = from_float(f);
    if (std::isnan(f)) {
      failures += !std::isnan(to_float(got));
      continue;
    }
    const uint16_t want = reference_round(static_cast<double>(f), to_float, max_finite, inf);
    if (got != want && ++failures <= 5)
      ADD_FAILURE() << what << " of " << f << " (bits " << std::hex << float_to_bits(f) << "): got "
                    << got << ", float64 reference " << want << " (seed " << std::dec << seed
                    << ")";
  }
  EXPECT_EQ(failures, 0) << what << " seed " << seed;
}

TEST(Dtype, FloatToF16RoundsToNearestEven) {
  expect_rounding_matches_reference(f16_to_float, float_to_f16, 0x7bff, 0x7c00, 0xf16f16,
                                    "float_to_f16");
}

TEST(Dtype, FloatToBf16RoundsToNearestEven) {
  expect_rounding_matches_reference(bf16_to_float, float_to_bf16, 0x7f7f, 0x7f80, 0xbf16bf16,
                                    "float_to_bf16");
}

}  // namespace
}  // namespace kvx
