#include "ops/validate_common.hpp"

#include <algorithm>
#include <array>

#include "core/checked.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"

namespace kvx::ops {

namespace {
// Memory the CPU backend may compute on: everything but device memory
// (managed memory migrates on access).
bool cpu_accessible(kvx_memory_t memory) { return memory != KVX_MEMORY_CUDA_DEVICE; }
}  // namespace

kvx_status_t check_reserved(const uint64_t* reserved, int n, const char* name) {
  for (int i = 0; i < n; ++i)
    if (reserved[i] != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "{}[{}]: must be zero", name, i);
  return KVX_OK;
}

kvx_status_t check_cache(const kvx_layout_t* cache, int64_t layer) {
  if (cache == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.cache: null");
  KVX_TRY(validate_layout(cache, "args.cache"));
  if (!dtype_is_float16_32(cache->dtype))
    return fail(KVX_ERR_UNSUPPORTED,
                "args.cache.dtype: {} storage is not supported by this version (quantized storage "
                "arrives in a later version)",
                dtype_name(cache->dtype));
  if (layer < 0 || layer >= cache->num_layers)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.layer: {} is outside [0, {})", layer, cache->num_layers);
  switch (cache->base_kind) {
    case KVX_BASE_STRIDED:
      if (cache->base == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.cache.base: null");
      break;
    default:
      if (cache->ptrs == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.cache.ptrs: null");
      for (int64_t kv = 0; kv < cache->num_kv; ++kv) {
        const int64_t i = base_index(*cache, layer, kv);
        if (cache->ptrs[i] == nullptr)
          return fail(KVX_ERR_INVALID_ARGUMENT, "args.cache.ptrs[{}]: null (layer {})", i, layer);
      }
      break;
  }
  return KVX_OK;
}

namespace {

kvx_status_t check_dim(int64_t value, int64_t expected, const char* name, const char* field) {
  if (value < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}: {} < 0", name, field, value);
  if (expected >= 0 && value != expected)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}: {} (expected {})", name, field, value, expected);
  return KVX_OK;
}

}  // namespace

kvx_status_t check_tensor(const kvx_tensor_t& t, const TensorSpec& spec, const char* name) {
  KVX_TRY(check_reserved(t.reserved, 2, fmt::format("{}.reserved", name).c_str()));
  if (raw_enum(t.dtype) < KVX_DTYPE_F32 || raw_enum(t.dtype) > KVX_DTYPE_INT4)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.dtype: unknown value {}", name, raw_enum(t.dtype));
  if (spec.f32_only && t.dtype != KVX_DTYPE_F32)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.dtype: {} (must be f32)", name, dtype_name(t.dtype));
  if (!dtype_is_float16_32(t.dtype))
    return fail(KVX_ERR_UNSUPPORTED, "{}.dtype: {} tensors are not supported (f32, f16 or bf16)", name,
                dtype_name(t.dtype));
  if (raw_enum(t.memory) < KVX_MEMORY_HOST || raw_enum(t.memory) > KVX_MEMORY_CUDA_MANAGED)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.memory: unknown value {}", name, raw_enum(t.memory));
  KVX_TRY(check_dim(t.num_tokens, spec.num_tokens, name, "num_tokens"));
  KVX_TRY(check_dim(t.num_heads, spec.num_heads, name, "num_heads"));
  KVX_TRY(check_dim(t.head_dim, spec.head_dim, name, "head_dim"));
  if (t.num_heads == 0 || t.head_dim == 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}: num_heads and head_dim must be > 0", name);

  const int64_t elem = dtype_bytes(t.dtype);
  const bool empty = t.num_tokens == 0;
  if (t.data == nullptr) {
    if (!empty) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.data: null with {} tokens", name, t.num_tokens);
    return KVX_OK;
  }
  if (reinterpret_cast<uintptr_t>(t.data) % static_cast<uintptr_t>(elem) != 0)
    return fail(KVX_ERR_MISALIGNED, "{}.data: {} is not aligned to {} bytes", name, t.data, elem);

  struct Dim {
    int64_t count, stride;
    const char* field;
  };
  std::array<Dim, 2> dims{{{t.num_tokens, t.token_stride_bytes, "token_stride_bytes"},
                           {t.num_heads, t.head_stride_bytes, "head_stride_bytes"}}};
  for (const Dim& d : dims) {
    if (d.stride < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}: {} < 0", name, d.field, d.stride);
    if (d.stride % elem != 0)
      return fail(KVX_ERR_MISALIGNED, "{}.{}: {} is not a multiple of the element size {}", name, d.field,
                  d.stride, elem);
  }
  // The row of head_dim elements is contiguous; the token and head dims, in
  // stride order, must each step past everything the smaller one spans, so
  // that no two elements share a byte (whatever order the caller chose).
  const auto row = checked_mul(t.head_dim, elem);
  if (!row) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.head_dim: {} overflows", name, t.head_dim);
  if (t.head_stride_bytes < *row && t.num_heads > 1)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.head_stride_bytes: {} < head_dim * element size {}", name,
                t.head_stride_bytes, *row);
  std::sort(dims.begin(), dims.end(), [](const Dim& a, const Dim& b) { return a.stride < b.stride; });
  int64_t extent = *row;
  for (const Dim& d : dims) {
    if (d.count <= 1) continue;
    if (d.stride < extent)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}: {} makes elements overlap (needs >= {})", name, d.field,
                  d.stride, extent);
    const auto span = checked_mul(d.count - 1, d.stride);
    const auto next = span ? checked_add(*span, extent) : std::nullopt;
    if (!next) return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}: the tensor's extent overflows", name, d.field);
    extent = *next;
  }
  return KVX_OK;
}

kvx_status_t check_backend_memory(kvx_backend_t backend, kvx_memory_t memory, const char* name) {
  if (backend == KVX_BACKEND_CPU && !cpu_accessible(memory))
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.memory: the CPU backend cannot read CUDA device memory", name);
  if (backend == KVX_BACKEND_CUDA && memory == KVX_MEMORY_HOST)
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "{}.memory: the CUDA backend cannot read pageable host memory (use pinned or device memory)",
                name);
  return KVX_OK;
}

}  // namespace kvx::ops
