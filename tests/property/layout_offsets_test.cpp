// Laws of the layout value over random geometry: every preset's offsets agree
// with the engine's own index formula, distinct elements never share a byte,
// and the span covers exactly the engine's tensor.
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <set>
#include <utility>

#include "layout_testing.hpp"

namespace kvx::testing {
namespace {

// Random geometry in the ranges engines use; block_tokens 1 for SGLang.
rc::Gen<Geometry> gen_geometry(kvx_preset_t preset) {
  return rc::gen::exec([preset] {
    Geometry g;
    g.dtype = *rc::gen::element(KVX_DTYPE_F32, KVX_DTYPE_F16, KVX_DTYPE_BF16, KVX_DTYPE_FP8_E4M3,
                                KVX_DTYPE_INT8);
    g.L = *rc::gen::inRange<int64_t>(1, 5);
    g.NB = *rc::gen::inRange<int64_t>(1, 17);
    g.T = preset == KVX_PRESET_SGLANG ? 1 : *rc::gen::element<int64_t>(1, 2, 16, 64);
    g.H = *rc::gen::inRange<int64_t>(1, 9);
    g.D = 8 * *rc::gen::inRange<int64_t>(1, 33);
    g.Dv = allows_head_dim_v(preset) && *rc::gen::arbitrary<bool>()
               ? 8 * *rc::gen::inRange<int64_t>(1, 33)
               : g.D;
    return g;
  });
}

TEST(LayoutOffsets, AgreeWithEngineFormulaOnRandomCoordinates) {
  for (const kvx_preset_t preset : all_presets()) {
    SCOPED_TRACE(kvx_preset_name(preset));
    check_property(
        std::string("offsets/") + kvx_preset_name(preset), 0x6b7678a1 + preset, 60, [preset] {
          const Geometry g = *gen_geometry(preset);
          const kvx_preset_params_t params = params_of(g);
          kvx_layout_t layout = kvx_layout_init();
          const kvx_status_t s = kvx_layout_preset(preset, &params, &layout);
          const std::string reason = unsupported_reason(preset, g);
          if (!reason.empty()) {
            RC_ASSERT(s == KVX_ERR_UNSUPPORTED);
            RC_ASSERT(std::string(kvx_last_error()).find("params.") != std::string::npos);
            return;
          }
          RC_ASSERT(s == KVX_OK);
          RC_ASSERT(kvx_layout_validate(&layout) == KVX_OK);
          uint64_t span = 0;
          RC_ASSERT(kvx_layout_span_bytes(&layout, &span) == KVX_OK);
          RC_ASSERT(static_cast<int64_t>(span) == naive_span(preset, g));
          for (int i = 0; i < 64; ++i) {
            kvx_coord_t c{};
            c.layer = *rc::gen::inRange<int64_t>(0, g.L);
            c.kv = *rc::gen::inRange<int64_t>(0, 2);
            c.block = *rc::gen::inRange<int64_t>(0, g.NB);
            c.token = *rc::gen::inRange<int64_t>(0, g.T);
            c.head = *rc::gen::inRange<int64_t>(0, g.H);
            c.dim = *rc::gen::inRange<int64_t>(0, g.head_dim(c.kv));
            Where got{};
            RC_ASSERT(kvx_layout_offset(&layout, &c, &got.base, &got.offset) == KVX_OK);
            RC_ASSERT(got == naive_offset(preset, g, c));
          }
        });
  }
}

// Every element of a small cache, for every preset and dtype (int4 included):
// addresses are distinct, in bounds, and the last byte of the span is used.
TEST(LayoutOffsets, DistinctElementsNeverShareBytes) {
  const Geometry shapes[] = {{.L = 2, .NB = 3, .T = 4, .H = 3, .D = 32, .Dv = 32},
                             {.L = 3, .NB = 2, .T = 1, .H = 2, .D = 16, .Dv = 48}};
  for (const kvx_dtype_t dtype : {KVX_DTYPE_F32, KVX_DTYPE_BF16, KVX_DTYPE_INT8, KVX_DTYPE_INT4})
    for (const Geometry& shape : shapes)
      for (const kvx_preset_t preset : all_presets()) {
        Geometry g = shape;
        g.dtype = dtype;
        if (preset == KVX_PRESET_SGLANG) g.T = 1;
        if (!unsupported_reason(preset, g).empty()) continue;  // covered by the UNSUPPORTED tests
        SCOPED_TRACE(std::string(kvx_preset_name(preset)) + " " + g.str());
        const kvx_preset_params_t params = params_of(g);
        kvx_layout_t layout = kvx_layout_init();
        ASSERT_EQ(kvx_layout_preset(preset, &params, &layout), KVX_OK) << kvx_last_error();
        uint64_t span = 0;
        ASSERT_EQ(kvx_layout_span_bytes(&layout, &span), KVX_OK);
        // Keys are (base, nibble): every byte an element covers, or its nibble for int4.
        std::set<std::pair<int64_t, int64_t>> seen;
        int64_t last_byte = -1;
        const int64_t bits = kvx_dtype_bits(dtype);
        for (int64_t b = 0; b < g.NB; ++b)
          for_each_element_of_block(g, b, [&](const kvx_coord_t& c) {
            Where w{};
            ASSERT_EQ(kvx_layout_offset(&layout, &c, &w.base, &w.offset), KVX_OK);
            if (bits == 4) {
              ASSERT_TRUE(seen.insert({w.base, w.offset * 2 + c.dim % 2}).second)
                  << "two int4 elements at base " << w.base << " offset " << w.offset;
            } else {
              for (int64_t k = 0; k < elem_bytes(dtype); ++k)
                ASSERT_TRUE(seen.insert({w.base, (w.offset + k) * 2}).second)
                    << "two elements share byte " << w.offset + k << " of base " << w.base;
            }
            ASSERT_LE(w.offset + elem_bytes(dtype), static_cast<int64_t>(span));
            last_byte = std::max(last_byte, w.offset + elem_bytes(dtype) - 1);
          });
        EXPECT_EQ(last_byte + 1, static_cast<int64_t>(span));
      }
}

}  // namespace
}  // namespace kvx::testing
