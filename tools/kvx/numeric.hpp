// Storage formats for the demo, written independently of the library's own
// conversions so that its float64 reference shares no code with what it checks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kvx/kvx.h"

namespace kvx::tool {

// Bytes per element of the float storage types the demo uses (f32, f16, bf16).
size_t element_bytes(kvx_dtype_t dtype);

// Error bound of DESIGN.md's correctness protocol: max|out - ref| / max|ref|.
double error_bound(kvx_dtype_t dtype);

// Rounds x to `dtype` (nearest even) and stores it as element i of `data`.
void store_element(void* data, size_t i, kvx_dtype_t dtype, double x);
// Element i of `data`, exactly.
double load_element(const void* data, size_t i, kvx_dtype_t dtype);

// f32, f16 or bf16 by name (kvx_dtype_name); KVX_DTYPE_FORCE_32BIT when not one of them.
kvx_dtype_t float_dtype_from_name(const std::string& name);

}  // namespace kvx::tool
