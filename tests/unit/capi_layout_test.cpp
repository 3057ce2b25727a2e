// The C entry points of layouts, page tables and convert: null pointers and
// out-of-range coordinates return KVX_ERR_INVALID_ARGUMENT with a message
// naming the argument, and outputs stay untouched.
#include <gtest/gtest.h>

#include <string>

#include "kvx/kvx.h"
#include "property/layout_testing.hpp"

namespace {

kvx_layout_t valid_layout() {
  const kvx_preset_params_t p = kvx::testing::params_of(
      {.dtype = KVX_DTYPE_F16, .L = 2, .NB = 4, .T = 16, .H = 2, .D = 64, .Dv = 32});
  kvx_layout_t l = kvx_layout_init();
  EXPECT_EQ(kvx_layout_preset(KVX_PRESET_VLLM_LEGACY, &p, &l), KVX_OK) << kvx_last_error();
  return l;
}

void expect_named(kvx_status_t got, const std::string& argument) {
  EXPECT_EQ(got, KVX_ERR_INVALID_ARGUMENT) << kvx_last_error();
  const std::string message = kvx_last_error();
  EXPECT_EQ(message.rfind(argument + ":", 0), 0u)
      << "message does not start with \"" << argument << ":\": " << message;
}

TEST(CapiLayout, NullPointers) {
  const kvx_layout_t l = valid_layout();
  const kvx_preset_params_t params = kvx_preset_params_init();
  kvx_layout_t out = kvx_layout_init();
  kvx_preset_t preset = KVX_PRESET_TGI;
  uint64_t bytes = 77;
  const kvx_coord_t coord{};
  int64_t base = -77, offset = -77;
  const kvx_page_table_t table = kvx_page_table_init();

  expect_named(kvx_layout_validate(nullptr), "layout");
  expect_named(kvx_layout_preset(KVX_PRESET_UNIVERSAL, nullptr, &out), "params");
  expect_named(kvx_layout_preset(KVX_PRESET_UNIVERSAL, &params, nullptr), "out");
  expect_named(kvx_preset_from_name(nullptr, &preset), "name");
  expect_named(kvx_preset_from_name("universal", nullptr), "out");
  EXPECT_EQ(preset, KVX_PRESET_TGI);
  expect_named(kvx_layout_span_bytes(nullptr, &bytes), "layout");
  expect_named(kvx_layout_span_bytes(&l, nullptr), "out_bytes");
  EXPECT_EQ(bytes, 77u);
  expect_named(kvx_layout_offset(nullptr, &coord, &base, &offset), "layout");
  expect_named(kvx_layout_offset(&l, nullptr, &base, &offset), "coord");
  expect_named(kvx_layout_offset(&l, &coord, nullptr, &offset), "out_base_index");
  expect_named(kvx_layout_offset(&l, &coord, &base, nullptr), "out_offset_bytes");
  EXPECT_EQ(base, -77);
  EXPECT_EQ(offset, -77);
  expect_named(kvx_page_table_validate(nullptr, &l), "table");
  expect_named(kvx_page_table_validate(&table, nullptr), "layout");
  expect_named(kvx_convert_blocks(nullptr, nullptr), "args");
}

TEST(CapiLayout, OffsetRefusesCoordinatesOutOfRange) {
  const kvx_layout_t l = valid_layout();
  const struct {
    const char* field;
    kvx_coord_t coord;
  } cases[] = {
      {"coord.layer", {.layer = 2}},  {"coord.layer", {.layer = -1}},
      {"coord.kv", {.kv = 2}},        {"coord.block", {.block = 4}},
      {"coord.token", {.token = 16}}, {"coord.head", {.head = -1}},
      {"coord.dim", {.dim = 64}},     {"coord.dim", {.kv = 1, .dim = 32}},  // V is narrower than K
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.field);
    int64_t base = -77, offset = -77;
    expect_named(kvx_layout_offset(&l, &c.coord, &base, &offset), c.field);
    EXPECT_EQ(base, -77);
    EXPECT_EQ(offset, -77);
  }
  // The last element of V in the last layer: base pointer 3 of the plane-pointer table.
  const kvx_coord_t last{.layer = 1, .kv = 1, .block = 3, .token = 15, .head = 1, .dim = 31};
  int64_t base = -1, offset = -1;
  ASSERT_EQ(kvx_layout_offset(&l, &last, &base, &offset), KVX_OK) << kvx_last_error();
  EXPECT_EQ(base, 3);
  uint64_t span = 0;
  ASSERT_EQ(kvx_layout_span_bytes(&l, &span), KVX_OK);
  EXPECT_LT(static_cast<uint64_t>(offset), span);
}

TEST(CapiLayout, SuccessClearsTheLastError) {
  const kvx_layout_t l = valid_layout();
  EXPECT_EQ(kvx_layout_validate(nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_STRNE(kvx_last_error(), "");
  EXPECT_EQ(kvx_layout_validate(&l), KVX_OK);
  EXPECT_STREQ(kvx_last_error(), "");
}

}  // namespace
