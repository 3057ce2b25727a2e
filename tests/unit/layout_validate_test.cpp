// kvx_layout_validate: every way a descriptor can be wrong is refused with
// the right status and a message that starts with the offending field; the
// layouts engines use (and a few hand-made ones) are accepted.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <functional>
#include <string>

#include "kvx/kvx.h"
#include "property/layout_testing.hpp"

namespace {

// A preset layout of a small geometry (null base pointers).
kvx_layout_t preset(kvx_preset_t p, kvx_dtype_t dtype = KVX_DTYPE_F16, int64_t head_dim_v = 0) {
  const kvx_preset_params_t params =
      kvx::testing::params_of({.dtype = dtype,
                               .L = 2,
                               .NB = 4,
                               .T = 16,
                               .H = 4,
                               .D = 64,
                               .Dv = head_dim_v == 0 ? 64 : head_dim_v});
  kvx_layout_t l = kvx_layout_init();
  EXPECT_EQ(kvx_layout_preset(p, &params, &l), KVX_OK) << kvx_last_error();
  return l;
}

// Status and message of validating `l`; the message must begin "field: ".
void expect_refused(const kvx_layout_t& l, kvx_status_t want, const std::string& field,
                    const std::string& also = "") {
  EXPECT_EQ(kvx_layout_validate(&l), want) << "message: " << kvx_last_error();
  const std::string message = kvx_last_error();
  EXPECT_EQ(message.rfind(field + ":", 0), 0u)
      << "message does not start with \"" << field << ":\": " << message;
  if (!also.empty()) {
    EXPECT_NE(message.find(also), std::string::npos)
        << "message lacks \"" << also << "\": " << message;
  }
}

// Stores an int a C caller could store; a C++ cast of -1 to these enums
// would itself be undefined.
template <typename Enum>
void set_raw(Enum* e, int32_t value) {
  std::memcpy(e, &value, sizeof value);
}

struct Case {
  const char* what;
  kvx_preset_t base;
  std::function<void(kvx_layout_t&)> mutate;
  kvx_status_t want;
  std::string field;
  kvx_dtype_t dtype = KVX_DTYPE_F16;
  int64_t head_dim_v = 0;
};

void* const kMisalignedPtrs[2] = {reinterpret_cast<void*>(0x1000), reinterpret_cast<void*>(0x1001)};
constexpr kvx_status_t kBad = KVX_ERR_INVALID_LAYOUT;
constexpr kvx_preset_t kNhd =
    KVX_PRESET_FLASHINFER_NHD;                       // layer pointers, K/V interleaved per block
constexpr kvx_preset_t kUni = KVX_PRESET_UNIVERSAL;  // one strided base

const Case kCases[] = {
    {"struct_size zero", kNhd, [](auto& l) { l.struct_size = 0; }, KVX_ERR_VERSION_MISMATCH,
     "layout.struct_size"},
    {"struct_size larger", kNhd, [](auto& l) { l.struct_size += 8; }, KVX_ERR_VERSION_MISMATCH,
     "layout.struct_size"},
    {"major version 2", kNhd, [](auto& l) { l.version = KVX_MAKE_VERSION(2, 0, 0); },
     KVX_ERR_VERSION_MISMATCH, "layout.version"},
    {"major version 0", kNhd, [](auto& l) { l.version = KVX_MAKE_VERSION(0, 9, 0); },
     KVX_ERR_VERSION_MISMATCH, "layout.version"},
    {"newer minor", kNhd, [](auto& l) { l.version = KVX_VERSION + 1000; }, KVX_ERR_VERSION_MISMATCH,
     "layout.version"},
    {"dtype zero", kNhd, [](auto& l) { l.dtype = static_cast<kvx_dtype_t>(0); }, kBad,
     "layout.dtype"},
    {"dtype unknown", kNhd, [](auto& l) { l.dtype = static_cast<kvx_dtype_t>(8); }, kBad,
     "layout.dtype"},
    {"dtype negative", kNhd, [](auto& l) { set_raw(&l.dtype, -1); }, kBad, "layout.dtype"},
    {"base_kind negative", kNhd, [](auto& l) { set_raw(&l.base_kind, INT32_MIN); }, kBad,
     "layout.base_kind"},
    {"memory zero", kNhd, [](auto& l) { l.memory = static_cast<kvx_memory_t>(0); }, kBad,
     "layout.memory"},
    {"memory unknown", kNhd, [](auto& l) { l.memory = static_cast<kvx_memory_t>(5); }, kBad,
     "layout.memory"},
    {"base_kind zero", kNhd, [](auto& l) { l.base_kind = static_cast<kvx_base_kind_t>(0); }, kBad,
     "layout.base_kind"},
    {"base_kind unknown", kNhd, [](auto& l) { l.base_kind = static_cast<kvx_base_kind_t>(4); },
     kBad, "layout.base_kind"},
    {"device_id negative", kNhd, [](auto& l) { l.device_id = -1; }, kBad, "layout.device_id"},
    {"scale granularity unknown", kNhd,
     [](auto& l) { l.plane[1].scale.granularity = static_cast<kvx_scale_granularity_t>(5); }, kBad,
     "layout.plane[1].scale.granularity"},
    {"scale granularity negative", kNhd,
     [](auto& l) { set_raw(&l.plane[0].scale.granularity, -1); }, kBad,
     "layout.plane[0].scale.granularity"},
    {"num_layers zero", kNhd, [](auto& l) { l.num_layers = 0; }, kBad, "layout.num_layers"},
    {"num_layers negative", kNhd, [](auto& l) { l.num_layers = -1; }, kBad, "layout.num_layers"},
    {"num_blocks zero", kNhd, [](auto& l) { l.num_blocks = 0; }, kBad, "layout.num_blocks"},
    {"num_blocks negative", kNhd, [](auto& l) { l.num_blocks = -3; }, kBad, "layout.num_blocks"},
    {"block_tokens zero", kNhd, [](auto& l) { l.block_tokens = 0; }, kBad, "layout.block_tokens"},
    {"block_tokens negative", kNhd, [](auto& l) { l.block_tokens = -16; }, kBad,
     "layout.block_tokens"},
    {"num_kv_heads zero", kNhd, [](auto& l) { l.num_kv_heads = 0; }, kBad, "layout.num_kv_heads"},
    {"num_kv_heads negative", kNhd, [](auto& l) { l.num_kv_heads = -2; }, kBad,
     "layout.num_kv_heads"},
    {"K head_dim zero", kNhd, [](auto& l) { l.plane[0].head_dim = 0; }, kBad,
     "layout.plane[0].head_dim"},
    {"V head_dim negative", kNhd, [](auto& l) { l.plane[1].head_dim = -64; }, kBad,
     "layout.plane[1].head_dim"},
    {"num_kv zero", kNhd, [](auto& l) { l.num_kv = 0; }, kBad, "layout.num_kv"},
    {"num_kv three", kNhd, [](auto& l) { l.num_kv = 3; }, kBad, "layout.num_kv"},
    {"plane[1] set with num_kv 1", kNhd, [](auto& l) { l.num_kv = 1; }, kBad, "layout.plane[1]"},
    {"head_dim_inner not a divisor", kNhd, [](auto& l) { l.plane[0].head_dim_inner = 3; }, kBad,
     "layout.plane[0].head_dim_inner"},
    {"head_dim_inner negative", kNhd, [](auto& l) { l.plane[1].head_dim_inner = -8; }, kBad,
     "layout.plane[1].head_dim_inner"},
    {"outer stride without a split", kNhd, [](auto& l) { l.plane[0].dim_outer_stride_bytes = 16; },
     kBad, "layout.plane[0].dim_outer_stride_bytes"},
    {"negative token stride", kNhd, [](auto& l) { l.plane[1].token_stride_bytes = -512; }, kBad,
     "layout.plane[1].token_stride_bytes"},
    {"negative block stride", kNhd, [](auto& l) { l.plane[0].block_stride_bytes *= -1; }, kBad,
     "layout.plane[0].block_stride_bytes"},
    {"negative head stride", kNhd, [](auto& l) { l.plane[0].head_stride_bytes = -128; }, kBad,
     "layout.plane[0].head_stride_bytes"},
    {"negative dim stride", kNhd, [](auto& l) { l.plane[1].dim_stride_bytes = -2; }, kBad,
     "layout.plane[1].dim_stride_bytes"},
    {"negative plane offset", kNhd, [](auto& l) { l.plane[0].offset_bytes = -2; }, kBad,
     "layout.plane[0].offset_bytes"},
    {"negative layer stride", kUni, [](auto& l) { l.layer_stride_bytes = -4096; }, kBad,
     "layout.layer_stride_bytes"},
    {"token stride shorter than a head row", kNhd,
     [](auto& l) { l.plane[0].token_stride_bytes = 16; }, kBad,
     "layout.plane[0].token_stride_bytes"},
    {"token stride shorter than a token's heads", kNhd,
     [](auto& l) { l.plane[0].token_stride_bytes = 256; }, kBad,
     "layout.plane[0].token_stride_bytes"},
    {"dim stride zero", kNhd, [](auto& l) { l.plane[1].dim_stride_bytes = 0; }, kBad,
     "layout.plane[1].dim_stride_bytes"},
    {"block stride zero", kNhd, [](auto& l) { l.plane[0].block_stride_bytes = 0; }, kBad,
     "layout.plane[0].block_stride_bytes"},
    {"K and V at one offset", kNhd, [](auto& l) { l.plane[1].offset_bytes = 0; }, kBad,
     "layout.plane[1].offset_bytes"},
    {"V inside a K row", kNhd, [](auto& l) { l.plane[1].offset_bytes = 2; }, kBad,
     "layout.plane[1].offset_bytes"},
    {"layers on one address", kUni, [](auto& l) { l.layer_stride_bytes = 0; }, kBad,
     "layout.layer_stride_bytes"},
    {"layers overlapping", kUni, [](auto& l) { l.layer_stride_bytes = 4096; }, kBad,
     "layout.layer_stride_bytes"},
    {"V over K with other head dims", kUni, [](auto& l) { l.plane[1].offset_bytes = 0; }, kBad,
     "layout.plane[1].offset_bytes", KVX_DTYPE_F16, 32},
    {"misaligned head stride", kNhd, [](auto& l) { l.plane[0].head_stride_bytes += 1; },
     KVX_ERR_MISALIGNED, "layout.plane[0].head_stride_bytes"},
    {"misaligned plane offset", kNhd, [](auto& l) { l.plane[1].offset_bytes += 1; },
     KVX_ERR_MISALIGNED, "layout.plane[1].offset_bytes"},
    {"misaligned layer stride", kUni, [](auto& l) { l.layer_stride_bytes += 2; },
     KVX_ERR_MISALIGNED, "layout.layer_stride_bytes", KVX_DTYPE_F32},
    {"misaligned base", kUni, [](auto& l) { l.base = reinterpret_cast<void*>(0x1001); },
     KVX_ERR_MISALIGNED, "layout.base"},
    {"misaligned layer pointer", kNhd, [](auto& l) { l.ptrs = kMisalignedPtrs; },
     KVX_ERR_MISALIGNED, "layout.ptrs[1]"},
    {"ptrs with a strided base", kUni, [](auto& l) { l.ptrs = kMisalignedPtrs; }, kBad,
     "layout.ptrs"},
    {"base with layer pointers", kNhd, [](auto& l) { l.base = reinterpret_cast<void*>(0x1000); },
     kBad, "layout.base"},
    {"layer stride with layer pointers", kNhd, [](auto& l) { l.layer_stride_bytes = 4096; }, kBad,
     "layout.layer_stride_bytes"},
    {"null_block below -1", kNhd, [](auto& l) { l.null_block = -2; }, kBad, "layout.null_block"},
    {"null_block past the end", kNhd, [](auto& l) { l.null_block = l.num_blocks; }, kBad,
     "layout.null_block"},
    {"extent overflows int64", kNhd, [](auto& l) { l.num_blocks = int64_t{1} << 58; }, kBad,
     "layout.plane[0].block_stride_bytes"},
    {"scales on f16 storage", kNhd,
     [](auto& l) { l.plane[0].scale.granularity = KVX_SCALE_TENSOR; }, kBad,
     "layout.plane[0].scale.granularity"},
    {"f16 scales", kNhd,
     [](auto& l) {
       l.plane[1].scale.granularity = KVX_SCALE_HEAD;
       l.plane[1].scale.dtype = KVX_DTYPE_F16;
     },
     kBad, "layout.plane[1].scale.dtype", KVX_DTYPE_FP8_E4M3},
    {"scale group not dividing head_dim", kNhd,
     [](auto& l) {
       l.plane[0].scale.granularity = KVX_SCALE_CHANNEL_GROUP;
       l.plane[0].scale.dtype = KVX_DTYPE_F32;
       l.plane[0].scale.group_size = 48;
     },
     kBad, "layout.plane[0].scale.group_size", KVX_DTYPE_INT8},
    {"negative scale stride", kNhd,
     [](auto& l) {
       l.plane[0].scale.granularity = KVX_SCALE_HEAD;
       l.plane[0].scale.dtype = KVX_DTYPE_F32;
       l.plane[0].scale.head_stride_bytes = -4;
     },
     kBad, "layout.plane[0].scale.head_stride_bytes", KVX_DTYPE_FP8_E5M2},
    {"misaligned scale data", kNhd,
     [](auto& l) {
       l.plane[0].scale.granularity = KVX_SCALE_TENSOR;
       l.plane[0].scale.dtype = KVX_DTYPE_F32;
       l.plane[0].scale.data = reinterpret_cast<void*>(0x1002);
     },
     KVX_ERR_MISALIGNED, "layout.plane[0].scale.data", KVX_DTYPE_FP8_E4M3},
    {"int4 with a dim stride", KVX_PRESET_FLASH_ATTN,
     [](auto& l) { l.plane[0].dim_stride_bytes = 1; }, kBad, "layout.plane[0].dim_stride_bytes",
     KVX_DTYPE_INT4},
    {"int4 with an odd head_dim", KVX_PRESET_FLASH_ATTN, [](auto& l) { l.plane[1].head_dim = 63; },
     kBad, "layout.plane[1].head_dim", KVX_DTYPE_INT4},
    {"int4 with a split head dim", KVX_PRESET_FLASH_ATTN,
     [](auto& l) { l.plane[0].head_dim_inner = 2; }, kBad, "layout.plane[0].head_dim_inner",
     KVX_DTYPE_INT4},
};

TEST(LayoutValidate, RefusesEachBadDescriptorNamingTheField) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.what);
    kvx_layout_t l = preset(c.base, c.dtype, c.head_dim_v);
    ASSERT_EQ(kvx_layout_validate(&l), KVX_OK)
        << "the unmodified layout must be valid: " << kvx_last_error();
    c.mutate(l);
    expect_refused(l, c.want, c.field);
  }
}

TEST(LayoutValidate, RefusesNull) {
  EXPECT_EQ(kvx_layout_validate(nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(kvx_last_error(), "layout: null");
}

TEST(LayoutValidate, RefusesEveryNonZeroReservedField) {
  for (const uint64_t junk : {uint64_t{1}, uint64_t{1} << 63}) {
    for (size_t i = 0; i < 8; ++i) {
      kvx_layout_t l = preset(kNhd);
      l.reserved[i] = junk;
      expect_refused(l, kBad, "layout.reserved[" + std::to_string(i) + "]");
    }
    for (int kv = 0; kv < 2; ++kv) {
      for (size_t i = 0; i < 4; ++i) {
        kvx_layout_t l = preset(kNhd);
        l.plane[kv].reserved[i] = junk;
        expect_refused(
            l, kBad,
            "layout.plane[" + std::to_string(kv) + "].reserved[" + std::to_string(i) + "]");
      }
      for (size_t i = 0; i < 2; ++i) {
        kvx_layout_t l = preset(kNhd);
        l.plane[kv].scale.reserved[i] = junk;
        expect_refused(
            l, kBad,
            "layout.plane[" + std::to_string(kv) + "].scale.reserved[" + std::to_string(i) + "]");
      }
    }
  }
}

// Layouts no preset makes, valid under the nested-stride rule.
TEST(LayoutValidate, AcceptsHandMadeLayouts) {
  // A single latent cache (MLA): num_kv 1, (NB, T, 576) f16, one base.
  kvx_layout_t mla = kvx_layout_init();
  mla.dtype = KVX_DTYPE_F16;
  mla.memory = KVX_MEMORY_HOST;
  mla.base_kind = KVX_BASE_STRIDED;
  mla.num_layers = 3;
  mla.num_kv = 1;
  mla.num_blocks = 10;
  mla.block_tokens = 64;
  mla.num_kv_heads = 1;
  mla.layer_stride_bytes = 10 * 64 * 576 * 2;
  mla.plane[0] = {.head_dim = 576,
                  .block_stride_bytes = 64 * 576 * 2,
                  .token_stride_bytes = 576 * 2,
                  .head_stride_bytes = 576 * 2,
                  .dim_stride_bytes = 2};
  EXPECT_EQ(kvx_layout_validate(&mla), KVX_OK) << kvx_last_error();

  // K and V interleaved per token, (NB, T, 2, H, D): V sits in the gap after each K token row.
  kvx_layout_t per_token = preset(kNhd);
  for (kvx_plane_t& p : per_token.plane) {
    p.token_stride_bytes = 2 * 4 * 64 * 2;
    p.block_stride_bytes = 16 * p.token_stride_bytes;
  }
  per_token.plane[1].offset_bytes = 4 * 64 * 2;
  EXPECT_EQ(kvx_layout_validate(&per_token), KVX_OK) << kvx_last_error();

  // Padding between blocks is allowed.
  kvx_layout_t padded = preset(KVX_PRESET_FLASH_ATTN);
  padded.plane[0].block_stride_bytes += 256;
  EXPECT_EQ(kvx_layout_validate(&padded), KVX_OK) << kvx_last_error();

  // fp8 with per-head f32 scales.
  kvx_layout_t scaled = preset(kNhd, KVX_DTYPE_FP8_E4M3);
  for (kvx_plane_t& p : scaled.plane) {
    p.scale.granularity = KVX_SCALE_HEAD;
    p.scale.dtype = KVX_DTYPE_F32;
    p.scale.layer_stride_bytes = 4 * 4;
    p.scale.head_stride_bytes = 4;
  }
  EXPECT_EQ(kvx_layout_validate(&scaled), KVX_OK) << kvx_last_error();
}

}  // namespace
