// Engine presets: the descriptor of each engine's cache (docs/layouts.md has
// the engines' tensor shapes and the source files they come from).
//
// Every preset is a dense row-major tensor (or one per plane) of the engine's
// physical shape, with null base pointers and no null block: which block is
// reserved as the null block is the block manager's decision (it sets
// layout.null_block), not the layout's. Engine kernel constraints that do not
// change the bytes (vLLM's FlashAttention backend wants block_tokens % 16 == 0,
// TensorRT-LLM a power of two) are not enforced here: the layout is
// well-defined without them, and conversion into it is still useful.
#include <array>
#include <cstring>
#include <initializer_list>
#include <optional>

#include "core/checked.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"

namespace kvx {
namespace {

enum Axis { kLayer, kKv, kBlock, kToken, kHead, kDim, kDimOuter, kDimInner, kNumAxes };

struct Extent {
  Axis axis;
  int64_t n;
};

// Byte strides of a row-major tensor of `shape` (outermost first) and its
// total bytes. Counted in bits, so that packed INT4 (head dim innermost)
// gets its dim stride of 0 and rows of D / 2 bytes with no special case.
struct RowMajor {
  std::array<int64_t, kNumAxes> stride{};
  int64_t bytes = 0;
};

std::optional<RowMajor> row_major(std::initializer_list<Extent> shape, kvx_dtype_t dtype) {
  RowMajor r;
  int64_t running_bits = dtype_bits(dtype);
  for (auto it = std::rbegin(shape); it != std::rend(shape); ++it) {
    r.stride[it->axis] = running_bits / 8;
    const auto next = checked_mul(running_bits, it->n);
    if (!next) return std::nullopt;
    running_bits = *next;
  }
  r.bytes = running_bits / 8;
  return r;
}

void set_plane(kvx_plane_t* p, const RowMajor& r, int64_t head_dim, int64_t head_dim_inner,
               int64_t offset) {
  p->head_dim = head_dim;
  p->head_dim_inner = head_dim_inner;
  p->offset_bytes = offset;
  p->block_stride_bytes = r.stride[kBlock];
  p->token_stride_bytes = r.stride[kToken];
  p->head_stride_bytes = r.stride[kHead];
  if (head_dim_inner == 0) {
    p->dim_stride_bytes = r.stride[kDim];
  } else {
    p->dim_stride_bytes = r.stride[kDimInner];
    p->dim_outer_stride_bytes = r.stride[kDimOuter];
  }
}

struct Geometry {
  kvx_dtype_t dtype;
  int64_t L, NB, T, H, D, Dv;
};

// One tensor shape holding K and V (kv axis inside): both planes share every
// stride and differ by the kv axis' stride.
kvx_status_t interleaved(const Geometry& g, kvx_layout_t* l, std::initializer_list<Extent> shape) {
  const auto r = row_major(shape, g.dtype);
  if (!r) return fail(KVX_ERR_INVALID_ARGUMENT, "params: the cache's byte size overflows int64");
  set_plane(&l->plane[0], *r, g.D, 0, 0);
  set_plane(&l->plane[1], *r, g.D, 0, r->stride[kKv]);
  if (l->base_kind == KVX_BASE_STRIDED) l->layer_stride_bytes = r->stride[kLayer];
  return KVX_OK;
}

// K and V in tensors of their own (pointer per plane).
kvx_status_t separate(const Geometry& g, kvx_layout_t* l, std::initializer_list<Extent> k_shape,
                      std::initializer_list<Extent> v_shape, int64_t k_inner = 0) {
  const auto k = row_major(k_shape, g.dtype);
  const auto v = row_major(v_shape, g.dtype);
  if (!k || !v)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params: the cache's byte size overflows int64");
  set_plane(&l->plane[0], *k, g.D, k_inner, 0);
  set_plane(&l->plane[1], *v, g.Dv, 0, 0);
  return KVX_OK;
}

// KVX's universal block: per block, per layer, all of K then all of V, each
// [T][H][D]; K and V head dims may differ.
kvx_status_t universal(const Geometry& g, kvx_layout_t* l) {
  const auto k = row_major({{kToken, g.T}, {kHead, g.H}, {kDim, g.D}}, g.dtype);
  const auto v = row_major({{kToken, g.T}, {kHead, g.H}, {kDim, g.Dv}}, g.dtype);
  const auto layer = k && v ? checked_add(k->bytes, v->bytes) : std::nullopt;
  const auto block = layer ? checked_mul(*layer, g.L) : std::nullopt;
  if (!block || !checked_mul(*block, g.NB))
    return fail(KVX_ERR_INVALID_ARGUMENT, "params: the cache's byte size overflows int64");
  set_plane(&l->plane[0], *k, g.D, 0, 0);
  set_plane(&l->plane[1], *v, g.Dv, 0, k->bytes);
  l->plane[0].block_stride_bytes = l->plane[1].block_stride_bytes = *block;
  l->layer_stride_bytes = *layer;
  return KVX_OK;
}

bool is_interleaved(kvx_preset_t preset) {
  switch (preset) {
    case KVX_PRESET_UNIVERSAL:
    case KVX_PRESET_VLLM_LEGACY:
    case KVX_PRESET_FLASH_ATTN:
    case KVX_PRESET_TGI:
    case KVX_PRESET_SGLANG: return false;
    default: return true;
  }
}

kvx_base_kind_t base_kind_of(kvx_preset_t preset) {
  switch (preset) {
    case KVX_PRESET_UNIVERSAL:
    case KVX_PRESET_VLLM_CROSS_LAYER:
    case KVX_PRESET_TRTLLM_POOL:
    case KVX_PRESET_DYNAMO_UNIVERSAL:
    case KVX_PRESET_LMCACHE: return KVX_BASE_STRIDED;
    case KVX_PRESET_VLLM_FLASH_NHD:
    case KVX_PRESET_VLLM_FLASH_HND:
    case KVX_PRESET_FLASHINFER_NHD:
    case KVX_PRESET_FLASHINFER_HND: return KVX_BASE_LAYER_PTRS;
    default: return KVX_BASE_PLANE_PTRS;
  }
}

kvx_status_t check_params(kvx_preset_t preset, const kvx_preset_params_t& p) {
  KVX_TRY(check_abi_header(p.struct_size, p.version, sizeof(kvx_preset_params_t), "params"));
  if (p.reserved0 != 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params.reserved0: must be zero (is {})", p.reserved0);
  for (size_t i = 0; i < std::size(p.reserved); ++i)
    if (p.reserved[i] != 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.reserved[{}]: must be zero (is {:#x})", i,
                  p.reserved[i]);
  if (raw_enum(preset) < KVX_PRESET_FIRST || raw_enum(preset) > KVX_PRESET_LAST)
    return fail(KVX_ERR_INVALID_ARGUMENT, "preset: unknown value {}", raw_enum(preset));
  if (raw_enum(p.dtype) < KVX_DTYPE_F32 || raw_enum(p.dtype) > KVX_DTYPE_INT4)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params.dtype: unknown value {}", raw_enum(p.dtype));
  if (raw_enum(p.memory) < KVX_MEMORY_HOST || raw_enum(p.memory) > KVX_MEMORY_CUDA_MANAGED)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params.memory: unknown value {}", raw_enum(p.memory));
  if (p.device_id < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params.device_id: {} < 0", p.device_id);
  const std::pair<const char*, int64_t> dims[] = {{"num_layers", p.num_layers},
                                                  {"num_blocks", p.num_blocks},
                                                  {"block_tokens", p.block_tokens},
                                                  {"num_kv_heads", p.num_kv_heads},
                                                  {"head_dim", p.head_dim}};
  for (const auto& [field, value] : dims)
    if (value < 1) return fail(KVX_ERR_INVALID_ARGUMENT, "params.{}: {} < 1", field, value);
  if (p.head_dim_v < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "params.head_dim_v: {} < 0 (0 means head_dim)",
                p.head_dim_v);
  return KVX_OK;
}

// Geometry the engine's layout cannot hold.
kvx_status_t check_expressible(kvx_preset_t preset, const Geometry& g) {
  const char* name = preset_name(preset);
  if (g.dtype == KVX_DTYPE_INT4 && (g.D % 2 != 0 || g.Dv % 2 != 0))
    return fail(KVX_ERR_UNSUPPORTED,
                "params.head_dim: int4 packs element pairs; head dims {} and {} must be even", g.D,
                g.Dv);
  if (g.D != g.Dv && is_interleaved(preset))
    return fail(KVX_ERR_UNSUPPORTED,
                "params.head_dim_v: {} differs from head_dim {}, but preset {} keeps K and V in "
                "one tensor shape",
                g.Dv, g.D, name);
  if (preset == KVX_PRESET_SGLANG && g.T != 1)
    return fail(KVX_ERR_UNSUPPORTED,
                "params.block_tokens: {} (preset sglang is a token pool: block_tokens must be 1)",
                g.T);
  if (preset == KVX_PRESET_VLLM_LEGACY) {
    if (g.dtype == KVX_DTYPE_INT4)
      return fail(KVX_ERR_UNSUPPORTED, "params.dtype: preset vllm_legacy has no packed int4 form");
    const int64_t x = 16 / dtype_bytes(g.dtype);
    if (g.D % x != 0)
      return fail(KVX_ERR_UNSUPPORTED,
                  "params.head_dim: {} is not a multiple of x = {} (vllm_legacy packs 16-byte "
                  "groups of the key)",
                  g.D, x);
  }
  return KVX_OK;
}

kvx_status_t fill(kvx_preset_t preset, const Geometry& g, kvx_layout_t* l) {
  switch (preset) {
    case KVX_PRESET_UNIVERSAL: return universal(g, l);
    case KVX_PRESET_VLLM_FLASH_NHD:
      return interleaved(g, l,
                         {{kKv, 2}, {kBlock, g.NB}, {kToken, g.T}, {kHead, g.H}, {kDim, g.D}});
    case KVX_PRESET_VLLM_FLASH_HND:
      return interleaved(g, l,
                         {{kKv, 2}, {kBlock, g.NB}, {kHead, g.H}, {kToken, g.T}, {kDim, g.D}});
    case KVX_PRESET_VLLM_LEGACY: {
      const int64_t x = 16 / dtype_bytes(g.dtype);
      return separate(
          g, l, {{kBlock, g.NB}, {kHead, g.H}, {kDimOuter, g.D / x}, {kToken, g.T}, {kDimInner, x}},
          {{kBlock, g.NB}, {kHead, g.H}, {kDim, g.Dv}, {kToken, g.T}}, x);
    }
    case KVX_PRESET_VLLM_CROSS_LAYER:
      return interleaved(
          g, l,
          {{kBlock, g.NB}, {kLayer, g.L}, {kKv, 2}, {kToken, g.T}, {kHead, g.H}, {kDim, g.D}});
    case KVX_PRESET_FLASHINFER_NHD:
      return interleaved(g, l,
                         {{kBlock, g.NB}, {kKv, 2}, {kToken, g.T}, {kHead, g.H}, {kDim, g.D}});
    case KVX_PRESET_FLASHINFER_HND:
      return interleaved(g, l,
                         {{kBlock, g.NB}, {kKv, 2}, {kHead, g.H}, {kToken, g.T}, {kDim, g.D}});
    case KVX_PRESET_FLASH_ATTN:
    case KVX_PRESET_TGI:
      return separate(g, l, {{kBlock, g.NB}, {kToken, g.T}, {kHead, g.H}, {kDim, g.D}},
                      {{kBlock, g.NB}, {kToken, g.T}, {kHead, g.H}, {kDim, g.Dv}});
    case KVX_PRESET_TRTLLM_POOL:
      return interleaved(
          g, l,
          {{kBlock, g.NB}, {kLayer, g.L}, {kKv, 2}, {kHead, g.H}, {kToken, g.T}, {kDim, g.D}});
    case KVX_PRESET_SGLANG:
      // Slot s of the (S, H, D) pool is block s; the token axis has extent 1.
      return separate(g, l, {{kBlock, g.NB}, {kToken, 1}, {kHead, g.H}, {kDim, g.D}},
                      {{kBlock, g.NB}, {kToken, 1}, {kHead, g.H}, {kDim, g.Dv}});
    case KVX_PRESET_DYNAMO_UNIVERSAL:
      return interleaved(
          g, l,
          {{kBlock, g.NB}, {kHead, g.H}, {kLayer, g.L}, {kKv, 2}, {kToken, g.T}, {kDim, g.D}});
    case KVX_PRESET_LMCACHE:
      // [2, L, T, H*D] per chunk: the hidden dim is heads then head dim.
      return interleaved(
          g, l,
          {{kBlock, g.NB}, {kKv, 2}, {kLayer, g.L}, {kToken, g.T}, {kHead, g.H}, {kDim, g.D}});
    default: return fail(KVX_ERR_INVALID_ARGUMENT, "preset: unknown value {}", raw_enum(preset));
  }
}

struct PresetName {
  kvx_preset_t preset;
  const char* name;
};

constexpr PresetName kPresetNames[] = {
    {KVX_PRESET_UNIVERSAL, "universal"},
    {KVX_PRESET_VLLM_FLASH_NHD, "vllm_flash_nhd"},
    {KVX_PRESET_VLLM_FLASH_HND, "vllm_flash_hnd"},
    {KVX_PRESET_VLLM_LEGACY, "vllm_legacy"},
    {KVX_PRESET_VLLM_CROSS_LAYER, "vllm_cross_layer"},
    {KVX_PRESET_FLASHINFER_NHD, "flashinfer_nhd"},
    {KVX_PRESET_FLASHINFER_HND, "flashinfer_hnd"},
    {KVX_PRESET_FLASH_ATTN, "flash_attn"},
    {KVX_PRESET_TRTLLM_POOL, "trtllm_pool"},
    {KVX_PRESET_TGI, "tgi"},
    {KVX_PRESET_SGLANG, "sglang"},
    {KVX_PRESET_DYNAMO_UNIVERSAL, "dynamo_universal"},
    {KVX_PRESET_LMCACHE, "lmcache"},
};

}  // namespace

const char* preset_name(kvx_preset_t preset) {
  for (const PresetName& p : kPresetNames)
    if (p.preset == raw_enum(preset)) return p.name;
  return "unknown";
}

kvx_status_t preset_from_name(const char* name, kvx_preset_t* out) {
  if (name == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "name: null");
  if (out == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
  for (const PresetName& p : kPresetNames) {
    if (std::strcmp(p.name, name) == 0) {
      *out = p.preset;
      return KVX_OK;
    }
  }
  return fail(KVX_ERR_NOT_FOUND, "name: no preset is called \"{}\"", name);
}

kvx_status_t make_preset(kvx_preset_t preset, const kvx_preset_params_t* params,
                         kvx_layout_t* out) {
  if (params == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "params: null");
  if (out == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
  KVX_TRY(check_params(preset, *params));
  const kvx_preset_params_t& p = *params;
  const Geometry g{.dtype = p.dtype,
                   .L = p.num_layers,
                   .NB = p.num_blocks,
                   .T = p.block_tokens,
                   .H = p.num_kv_heads,
                   .D = p.head_dim,
                   .Dv = p.head_dim_v == 0 ? p.head_dim : p.head_dim_v};
  KVX_TRY(check_expressible(preset, g));

  kvx_layout_t l = kvx_layout_init();
  l.dtype = p.dtype;
  l.memory = p.memory;
  l.device_id = p.device_id;
  l.base_kind = base_kind_of(preset);
  l.num_layers = g.L;
  l.num_kv = 2;
  l.num_blocks = g.NB;
  l.block_tokens = g.T;
  l.num_kv_heads = g.H;
  KVX_TRY(fill(preset, g, &l));
  // A preset that fails validation is a bug here, not the caller's.
  if (validate_layout(&l, "preset") != KVX_OK)
    return fail(KVX_ERR_INTERNAL, "preset {}: built an invalid layout: {}", preset_name(preset),
                last_error());
  *out = l;
  return KVX_OK;
}

}  // namespace kvx
