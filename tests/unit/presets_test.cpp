// kvx_layout_preset and preset names: every preset builds a valid layout for
// every dtype it can hold; bad parameters are refused naming the field, and
// *out is left untouched on every error.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>

#include "kvx/kvx.h"
#include "property/layout_testing.hpp"

namespace kvx::testing {
namespace {

constexpr kvx_dtype_t kAllDtypes[] = {KVX_DTYPE_F32,      KVX_DTYPE_F16,      KVX_DTYPE_BF16,
                                      KVX_DTYPE_FP8_E4M3, KVX_DTYPE_FP8_E5M2, KVX_DTYPE_INT8,
                                      KVX_DTYPE_INT4};

kvx_preset_params_t small_params(kvx_dtype_t dtype = KVX_DTYPE_F16) {
  return params_of({.dtype = dtype, .L = 2, .NB = 3, .T = 16, .H = 2, .D = 64, .Dv = 64});
}

TEST(Presets, EveryPresetValidatesForEveryDtypeItHolds) {
  for (const kvx_preset_t preset : all_presets())
    for (const kvx_dtype_t dtype : kAllDtypes) {
      SCOPED_TRACE(std::string(kvx_preset_name(preset)) + " " + kvx_dtype_name(dtype));
      kvx_preset_params_t params = small_params(dtype);
      params.memory = KVX_MEMORY_CUDA_DEVICE;
      params.device_id = 1;
      if (preset == KVX_PRESET_SGLANG) params.block_tokens = 1;
      kvx_layout_t l;
      const kvx_status_t s = kvx_layout_preset(preset, &params, &l);
      if (preset == KVX_PRESET_VLLM_LEGACY && dtype == KVX_DTYPE_INT4) {
        EXPECT_EQ(s, KVX_ERR_UNSUPPORTED);
        EXPECT_EQ(std::string(kvx_last_error()).rfind("params.dtype:", 0), 0u) << kvx_last_error();
        continue;
      }
      ASSERT_EQ(s, KVX_OK) << kvx_last_error();
      EXPECT_EQ(kvx_layout_validate(&l), KVX_OK) << kvx_last_error();
      EXPECT_EQ(l.struct_size, sizeof(kvx_layout_t));
      EXPECT_EQ(l.version, KVX_VERSION);
      EXPECT_EQ(l.dtype, dtype);
      EXPECT_EQ(l.memory, KVX_MEMORY_CUDA_DEVICE);
      EXPECT_EQ(l.device_id, 1);
      EXPECT_EQ(l.num_kv, 2);
      EXPECT_EQ(l.null_block, -1) << "presets reserve no null block; the manager does";
      EXPECT_EQ(l.base, nullptr);
      EXPECT_EQ(l.ptrs, nullptr);
      EXPECT_EQ(l.plane[0].head_dim, 64);
      EXPECT_EQ(l.plane[1].head_dim, 64);
    }
}

TEST(Presets, LegacyKeySplitsSixteenByteGroups) {
  for (const auto& [dtype, x] :
       {std::pair{KVX_DTYPE_F32, 4}, {KVX_DTYPE_F16, 8}, {KVX_DTYPE_FP8_E4M3, 16}}) {
    const kvx_preset_params_t params = small_params(dtype);
    kvx_layout_t l;
    ASSERT_EQ(kvx_layout_preset(KVX_PRESET_VLLM_LEGACY, &params, &l), KVX_OK) << kvx_last_error();
    EXPECT_EQ(l.plane[0].head_dim_inner, x);
    EXPECT_EQ(l.plane[0].dim_stride_bytes * x, 16);
    EXPECT_EQ(l.plane[1].head_dim_inner, 0) << "the value cache is not split";
    EXPECT_EQ(l.base_kind, KVX_BASE_PLANE_PTRS);
  }
}

TEST(Presets, SeparatePlanesTakeTheirOwnHeadDimV) {
  for (const kvx_preset_t preset : all_presets()) {
    SCOPED_TRACE(kvx_preset_name(preset));
    kvx_preset_params_t params = small_params();
    params.head_dim_v = 32;
    if (preset == KVX_PRESET_SGLANG) params.block_tokens = 1;
    kvx_layout_t l;
    std::memset(&l, 0x5a, sizeof l);
    const kvx_layout_t before = l;
    const kvx_status_t s = kvx_layout_preset(preset, &params, &l);
    if (allows_head_dim_v(preset)) {
      ASSERT_EQ(s, KVX_OK) << kvx_last_error();
      EXPECT_EQ(l.plane[0].head_dim, 64);
      EXPECT_EQ(l.plane[1].head_dim, 32);
    } else {
      EXPECT_EQ(s, KVX_ERR_UNSUPPORTED);
      EXPECT_EQ(std::string(kvx_last_error()).rfind("params.head_dim_v:", 0), 0u)
          << kvx_last_error();
      EXPECT_EQ(std::memcmp(&l, &before, sizeof l), 0) << "*out written on error";
    }
  }
}

TEST(Presets, NamesRoundTrip) {
  for (const kvx_preset_t preset : all_presets()) {
    const std::string name = kvx_preset_name(preset);
    EXPECT_NE(name, "unknown");
    for (const char c : name) EXPECT_TRUE(c == '_' || (c >= 'a' && c <= 'z')) << name;
    kvx_preset_t back = static_cast<kvx_preset_t>(0);
    ASSERT_EQ(kvx_preset_from_name(name.c_str(), &back), KVX_OK) << kvx_last_error();
    EXPECT_EQ(back, preset);
  }
  EXPECT_STREQ(kvx_preset_name(KVX_PRESET_VLLM_FLASH_NHD), "vllm_flash_nhd");
  EXPECT_STREQ(kvx_preset_name(static_cast<kvx_preset_t>(0)), "unknown");
  EXPECT_STREQ(kvx_preset_name(static_cast<kvx_preset_t>(KVX_PRESET_LAST + 1)), "unknown");
  for (const char* bad : {"", "VLLM_FLASH_NHD", "vllm", "vllm_flash_nhd "}) {
    kvx_preset_t out = KVX_PRESET_TGI;
    EXPECT_EQ(kvx_preset_from_name(bad, &out), KVX_ERR_NOT_FOUND) << bad;
    EXPECT_EQ(std::string(kvx_last_error()).rfind("name:", 0), 0u) << kvx_last_error();
    EXPECT_EQ(out, KVX_PRESET_TGI) << "out written on error";
  }
}

struct ParamCase {
  const char* what;
  kvx_preset_t preset;
  std::function<void(kvx_preset_params_t&)> mutate;
  kvx_status_t want;
  const char* field;
};

const ParamCase kParamCases[] = {
    {"struct_size", KVX_PRESET_UNIVERSAL, [](auto& p) { p.struct_size -= 8; },
     KVX_ERR_VERSION_MISMATCH, "params.struct_size"},
    {"major version", KVX_PRESET_UNIVERSAL, [](auto& p) { p.version = KVX_MAKE_VERSION(2, 0, 0); },
     KVX_ERR_VERSION_MISMATCH, "params.version"},
    {"reserved0", KVX_PRESET_UNIVERSAL, [](auto& p) { p.reserved0 = 1; }, KVX_ERR_INVALID_ARGUMENT,
     "params.reserved0"},
    {"reserved[0]", KVX_PRESET_UNIVERSAL, [](auto& p) { p.reserved[0] = 1; },
     KVX_ERR_INVALID_ARGUMENT, "params.reserved[0]"},
    {"reserved[5]", KVX_PRESET_UNIVERSAL, [](auto& p) { p.reserved[5] = ~uint64_t{0}; },
     KVX_ERR_INVALID_ARGUMENT, "params.reserved[5]"},
    {"preset zero", static_cast<kvx_preset_t>(0), [](auto&) {}, KVX_ERR_INVALID_ARGUMENT, "preset"},
    {"preset past the last", static_cast<kvx_preset_t>(KVX_PRESET_LAST + 1), [](auto&) {},
     KVX_ERR_INVALID_ARGUMENT, "preset"},
    {"dtype zero", KVX_PRESET_TGI, [](auto& p) { p.dtype = static_cast<kvx_dtype_t>(0); },
     KVX_ERR_INVALID_ARGUMENT, "params.dtype"},
    {"dtype unknown", KVX_PRESET_TGI, [](auto& p) { p.dtype = static_cast<kvx_dtype_t>(99); },
     KVX_ERR_INVALID_ARGUMENT, "params.dtype"},
    {"memory unknown", KVX_PRESET_TGI, [](auto& p) { p.memory = static_cast<kvx_memory_t>(9); },
     KVX_ERR_INVALID_ARGUMENT, "params.memory"},
    {"device_id negative", KVX_PRESET_TGI, [](auto& p) { p.device_id = -1; },
     KVX_ERR_INVALID_ARGUMENT, "params.device_id"},
    {"num_layers zero", KVX_PRESET_FLASHINFER_HND, [](auto& p) { p.num_layers = 0; },
     KVX_ERR_INVALID_ARGUMENT, "params.num_layers"},
    {"num_blocks negative", KVX_PRESET_FLASHINFER_HND, [](auto& p) { p.num_blocks = -1; },
     KVX_ERR_INVALID_ARGUMENT, "params.num_blocks"},
    {"block_tokens zero", KVX_PRESET_FLASHINFER_HND, [](auto& p) { p.block_tokens = 0; },
     KVX_ERR_INVALID_ARGUMENT, "params.block_tokens"},
    {"num_kv_heads negative", KVX_PRESET_FLASHINFER_HND, [](auto& p) { p.num_kv_heads = -8; },
     KVX_ERR_INVALID_ARGUMENT, "params.num_kv_heads"},
    {"head_dim zero", KVX_PRESET_FLASHINFER_HND, [](auto& p) { p.head_dim = 0; },
     KVX_ERR_INVALID_ARGUMENT, "params.head_dim"},
    {"head_dim_v negative", KVX_PRESET_FLASH_ATTN, [](auto& p) { p.head_dim_v = -64; },
     KVX_ERR_INVALID_ARGUMENT, "params.head_dim_v"},
    {"size overflows", KVX_PRESET_TRTLLM_POOL, [](auto& p) { p.num_blocks = int64_t{1} << 60; },
     KVX_ERR_INVALID_ARGUMENT, "params"},
    {"sglang with pages", KVX_PRESET_SGLANG, [](auto& p) { p.block_tokens = 16; },
     KVX_ERR_UNSUPPORTED, "params.block_tokens"},
    {"legacy with head_dim not a multiple of x", KVX_PRESET_VLLM_LEGACY,
     [](auto& p) {
       p.dtype = KVX_DTYPE_FP8_E4M3;
       p.head_dim = 8;
     },
     KVX_ERR_UNSUPPORTED, "params.head_dim"},
    {"int4 with an odd head_dim", KVX_PRESET_FLASH_ATTN,
     [](auto& p) {
       p.dtype = KVX_DTYPE_INT4;
       p.head_dim = 63;
     },
     KVX_ERR_UNSUPPORTED, "params.head_dim"},
    {"head_dim_v in one tensor shape", KVX_PRESET_LMCACHE, [](auto& p) { p.head_dim_v = 128; },
     KVX_ERR_UNSUPPORTED, "params.head_dim_v"},
};

TEST(Presets, RefusesBadParamsAndLeavesOutUntouched) {
  for (const ParamCase& c : kParamCases) {
    SCOPED_TRACE(c.what);
    kvx_preset_params_t params = small_params();
    c.mutate(params);
    kvx_layout_t out;
    std::memset(&out, 0x5a, sizeof out);
    const kvx_layout_t before = out;
    EXPECT_EQ(kvx_layout_preset(c.preset, &params, &out), c.want) << kvx_last_error();
    const std::string message = kvx_last_error();
    EXPECT_EQ(
        message.rfind(std::string(c.field) + (std::string(c.field) == "params" ? "" : ":"), 0), 0u)
        << "message does not start with " << c.field << ": " << message;
    EXPECT_EQ(std::memcmp(&out, &before, sizeof out), 0) << "*out written on error";
  }
}

TEST(Presets, RefusesNullPointers) {
  const kvx_preset_params_t params = small_params();
  kvx_layout_t out;
  std::memset(&out, 0x5a, sizeof out);
  const kvx_layout_t before = out;
  EXPECT_EQ(kvx_layout_preset(KVX_PRESET_UNIVERSAL, nullptr, &out), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(kvx_last_error(), "params: null");
  EXPECT_EQ(std::memcmp(&out, &before, sizeof out), 0);
  EXPECT_EQ(kvx_layout_preset(KVX_PRESET_UNIVERSAL, &params, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_STREQ(kvx_last_error(), "out: null");
}

}  // namespace
}  // namespace kvx::testing
