// extern "C" shims for dtypes, layouts, presets and page tables.
#include "capi/guard.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "kvx/layout.h"
#include "layout/layout.hpp"

namespace kvx {
namespace {

bool dtype_known(const kvx_dtype_t& dtype) {
  return raw_enum(dtype) >= KVX_DTYPE_F32 && raw_enum(dtype) <= KVX_DTYPE_INT4;
}

kvx_status_t check_coord(const kvx_layout_t& l, const kvx_coord_t& c) {
  const struct {
    const char* field;
    int64_t value, bound;
  } parts[] = {{"layer", c.layer, l.num_layers},
               {"kv", c.kv, l.num_kv},
               {"block", c.block, l.num_blocks},
               {"token", c.token, l.block_tokens},
               {"head", c.head, l.num_kv_heads}};
  for (const auto& p : parts)
    if (p.value < 0 || p.value >= p.bound)
      return fail(KVX_ERR_INVALID_ARGUMENT, "coord.{}: {} not in [0, {})", p.field, p.value,
                  p.bound);
  const int64_t head_dim = l.plane[c.kv].head_dim;
  if (c.dim < 0 || c.dim >= head_dim)
    return fail(KVX_ERR_INVALID_ARGUMENT, "coord.dim: {} not in [0, plane[{}].head_dim = {})",
                c.dim, c.kv, head_dim);
  return KVX_OK;
}

}  // namespace
}  // namespace kvx

extern "C" {

// These cannot fail and throw nothing, so they need no guard. A C caller may
// pass any int: it is range-checked as an int before it is used as an enum.
KVX_API uint32_t kvx_dtype_bits(kvx_dtype_t dtype) {
  return kvx::dtype_known(dtype) ? kvx::dtype_bits(dtype) : 0;
}
KVX_API const char* kvx_dtype_name(kvx_dtype_t dtype) {
  return kvx::dtype_known(dtype) ? kvx::dtype_name(dtype) : "unknown";
}
KVX_API const char* kvx_preset_name(kvx_preset_t preset) { return kvx::preset_name(preset); }

KVX_API kvx_status_t kvx_layout_validate(const kvx_layout_t* layout) {
  return kvx::capi_guard("kvx_layout_validate",
                         [&] { return kvx::validate_layout(layout, "layout"); });
}

KVX_API kvx_status_t kvx_layout_preset(kvx_preset_t preset, const kvx_preset_params_t* params,
                                       kvx_layout_t* out) {
  return kvx::capi_guard("kvx_layout_preset",
                         [&] { return kvx::make_preset(preset, params, out); });
}

KVX_API kvx_status_t kvx_preset_from_name(const char* name, kvx_preset_t* out) {
  return kvx::capi_guard("kvx_preset_from_name", [&] { return kvx::preset_from_name(name, out); });
}

KVX_API kvx_status_t kvx_layout_span_bytes(const kvx_layout_t* layout, uint64_t* out_bytes) {
  return kvx::capi_guard("kvx_layout_span_bytes", [&] {
    KVX_TRY(kvx::validate_layout(layout, "layout"));
    if (out_bytes == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_bytes: null");
    *out_bytes = static_cast<uint64_t>(kvx::layout_span_bytes(*layout));
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_layout_offset(const kvx_layout_t* layout, const kvx_coord_t* coord,
                                       int64_t* out_base_index, int64_t* out_offset_bytes) {
  return kvx::capi_guard("kvx_layout_offset", [&] {
    KVX_TRY(kvx::validate_layout(layout, "layout"));
    if (coord == nullptr) return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "coord: null");
    if (out_base_index == nullptr)
      return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_base_index: null");
    if (out_offset_bytes == nullptr)
      return kvx::fail(KVX_ERR_INVALID_ARGUMENT, "out_offset_bytes: null");
    KVX_TRY(kvx::check_coord(*layout, *coord));
    *out_base_index = kvx::base_index(*layout, coord->layer, coord->kv);
    *out_offset_bytes = kvx::element_offset_bytes(*layout, *coord);
    return KVX_OK;
  });
}

KVX_API kvx_status_t kvx_page_table_validate(const kvx_page_table_t* table,
                                             const kvx_layout_t* layout) {
  return kvx::capi_guard("kvx_page_table_validate", [&] {
    KVX_TRY(kvx::validate_layout(layout, "layout"));
    return kvx::validate_page_table(table, *layout, "table");
  });
}

}  // extern "C"
