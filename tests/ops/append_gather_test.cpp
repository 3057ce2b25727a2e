// append and gather of the CPU reference: append then gather reproduces the
// inputs (exactly for f32, else after rounding), the cache holds each value
// at its logical place (read by the oracle through kvx_layout_offset), padded
// rows (negative slots) are skipped, and no byte outside the written elements
// of the target layer changes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/dtype.hpp"
#include "harness.hpp"
#include "oracle.hpp"

namespace kvx_test {
namespace {

// x rounded to `dtype` (round to nearest even), back as double.
double round_to(double x, kvx_dtype_t dtype) {
  std::byte b[4];
  kvx::store_float(b, 0, dtype, static_cast<float>(x));
  return decode_element(b, dtype);
}

struct AppendCase {
  kvx_dtype_t storage, src, out;
  kvx_preset_t preset;
  int64_t block_tokens, head_dim, head_dim_v;
  bool by_table;  // page table + positions, else slot mapping
  kvx_page_table_kind_t table;
  std::vector<int64_t> lens;
  uint64_t seed;
  std::string name() const {
    return fmt::format("APPEND_GATHER(storage={},src={},out={},layout={},T={},hd={},hdv={},place={},len={},seed={})",
                       dtype_str(storage), dtype_str(src), dtype_str(out), kvx_preset_name(preset), block_tokens,
                       head_dim, head_dim_v,
                       by_table ? (table == KVX_PAGE_TABLE_CSR ? "csr" : "dense") : "slots", fmt::join(lens, "/"),
                       seed);
  }
};

// Marks the bytes of the cache that the elements of (layer, slots) occupy:
// mask[base][byte].
std::vector<std::vector<char>> element_bytes(const kvx_layout_t& c, int64_t layer, const std::vector<int64_t>& slots,
                                             const std::vector<std::vector<std::byte>>& bases) {
  std::vector<std::vector<char>> mask;
  for (const auto& b : bases) mask.emplace_back(b.size(), 0);
  const int64_t elem = kvx_dtype_bits(c.dtype) / 8;
  for (int64_t slot : slots)
    for (int64_t kv = 0; kv < c.num_kv; ++kv)
      for (int64_t h = 0; h < c.num_kv_heads; ++h)
        for (int64_t d = 0; d < c.plane[kv].head_dim; ++d) {
          const kvx_coord_t co{layer, kv, slot / c.block_tokens, slot % c.block_tokens, h, d};
          int64_t base = 0, off = 0;
          if (kvx_layout_offset(&c, &co, &base, &off) != KVX_OK) continue;
          for (int64_t i = 0; i < elem; ++i) mask.at(base).at(off + i) = 1;
        }
  return mask;
}

void run_append_case(const AppendCase& ac) {
  SCOPED_TRACE(ac.name());
  Rng rng(ac.seed);
  const CacheGeometry g{.dtype = ac.storage,
                        .layers = 3,
                        .blocks = blocks_needed(ac.lens, ac.block_tokens) + 4,
                        .block_tokens = ac.block_tokens,
                        .kv_heads = 2,
                        .head_dim = ac.head_dim,
                        .head_dim_v = ac.head_dim_v};
  kvx_status_t st;
  auto cache = Cache::make(ac.preset, g, rng, &st);
  ASSERT_TRUE(cache) << kvx_status_string(st) << ": " << kvx_last_error();
  const kvx_layout_t& c = cache->layout();
  const int64_t layer = static_cast<int64_t>(rng() % 3);
  const Batch batch = make_batch(ac.lens, c, rng);

  // Rows in a random order; about one in five is padding (slot -1) in the
  // slot-mapping form, and is then appended by a second call.
  std::vector<std::pair<int64_t, int64_t>> tokens;  // (seq, pos)
  for (size_t s = 0; s < ac.lens.size(); ++s)
    for (int64_t p = 0; p < ac.lens[s]; ++p) tokens.emplace_back(static_cast<int64_t>(s), p);
  std::shuffle(tokens.begin(), tokens.end(), rng);
  const int64_t n = static_cast<int64_t>(tokens.size());
  Tensor k = make_tensor(ac.src, n, 2, ac.head_dim, rng, true);
  Tensor v = make_tensor(ac.src, n, 2, ac.head_dim_v, rng, true);
  fill_values(k, rng);
  fill_values(v, rng);

  std::vector<int64_t> slots(n), first_slots(n);
  std::vector<int32_t> batch_indices(n), positions(n);
  std::vector<int64_t> written;  // slots of the first call
  for (int64_t i = 0; i < n; ++i) {
    slots[i] = batch.slot(tokens[i].first, tokens[i].second);
    batch_indices[i] = static_cast<int32_t>(tokens[i].first);
    positions[i] = static_cast<int32_t>(tokens[i].second);
    first_slots[i] = (!ac.by_table && rng() % 5 == 0) ? -1 : slots[i];
    if (first_slots[i] >= 0) written.push_back(slots[i]);
  }
  const kvx_page_table_t table = batch.table(ac.table);
  kvx_append_args_t a = KVX_APPEND_ARGS_INIT;
  a.cache = &c;
  a.layer = layer;
  a.k = k.t;
  a.v = v.t;
  if (ac.by_table) {
    a.page_table = &table;
    a.batch_indices = batch_indices.data();
    a.positions = positions.data();
  } else {
    a.slot_mapping = first_slots.data();
  }
  const auto before = cache->snapshot();
  ASSERT_EQ(kvx_append(&a, nullptr), KVX_OK) << kvx_last_error();

  // Only the bytes of written elements of `layer` may change.
  const auto allowed = element_bytes(c, layer, written, before);
  const auto after = cache->snapshot();
  int64_t stray = 0;
  for (size_t b = 0; b < before.size(); ++b)
    for (size_t i = 0; i < before[b].size(); ++i)
      if (before[b][i] != after[b][i] && !allowed[b][i]) ++stray;
  EXPECT_EQ(stray, 0) << "bytes changed outside the appended rows of layer " << layer;

  if (!ac.by_table) {  // now the padded rows, alone
    std::vector<int64_t> rest(n, -1);
    for (int64_t i = 0; i < n; ++i)
      if (first_slots[i] < 0) rest[i] = slots[i];
    a.slot_mapping = rest.data();
    ASSERT_EQ(kvx_append(&a, nullptr), KVX_OK) << kvx_last_error();
  }

  // The cache holds every value at its logical place.
  const OracleTable ot = decode_page_table(table, c.block_tokens);
  int64_t misplaced = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t kv = 0; kv < 2; ++kv) {
      const kvx_tensor_t& src = kv == 0 ? k.t : v.t;
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t d = 0; d < src.head_dim; ++d) {
          const int64_t s = tokens[i].first, p = tokens[i].second;
          const kvx_coord_t co{layer, kv, ot.blocks[s][p / c.block_tokens], p % c.block_tokens, h, d};
          if (cache_element(c, co) != round_to(tensor_element(src, i, h, d), ac.storage)) ++misplaced;
        }
    }
  EXPECT_EQ(misplaced, 0) << "cache elements that differ from the appended values";

  // gather returns the sequences in order.
  Tensor ko = make_tensor(ac.out, batch.total_tokens(), 2, ac.head_dim, rng, true);
  Tensor vo = make_tensor(ac.out, batch.total_tokens(), 2, ac.head_dim_v, rng, true);
  poison(ko);
  poison(vo);
  kvx_gather_args_t ga = KVX_GATHER_ARGS_INIT;
  ga.cache = &c;
  ga.layer = layer;
  ga.page_table = &table;
  ga.k_out = ko.t;
  ga.v_out = vo.t;
  ASSERT_EQ(kvx_gather(&ga, nullptr), KVX_OK) << kvx_last_error();
  std::vector<int64_t> row_of(static_cast<size_t>(n));  // gathered row of appended row i
  std::vector<int64_t> first{0};
  for (int64_t len : ac.lens) first.push_back(first.back() + len);
  for (int64_t i = 0; i < n; ++i) row_of[i] = first[tokens[i].first] + tokens[i].second;
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t kv = 0; kv < 2; ++kv) {
      const kvx_tensor_t& src = kv == 0 ? k.t : v.t;
      const kvx_tensor_t& dst = kv == 0 ? ko.t : vo.t;
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t d = 0; d < src.head_dim; ++d) {
          const double want = round_to(round_to(tensor_element(src, i, h, d), ac.storage), ac.out);
          const double got = tensor_element(dst, row_of[i], h, d);
          if (!(got == want)) ++wrong;  // NaN (unwritten) counts
        }
    }
  EXPECT_EQ(wrong, 0) << "gathered elements that differ from the appended values";
}

TEST(AppendGather, RoundTripInEveryDtypeAndPlacement) {
  Rng rng(77);
  const kvx_dtype_t dtypes[] = {KVX_DTYPE_F32, KVX_DTYPE_F16, KVX_DTYPE_BF16};
  const std::vector<kvx_preset_t> presets = all_presets();
  int i = 0;
  for (kvx_dtype_t storage : dtypes)
    for (kvx_dtype_t src : dtypes)
      for (int form = 0; form < 3; ++form) {
        if (kSmall && (i % 3) != 0) {
          ++i;
          continue;
        }
        AppendCase ac;
        ac.storage = storage;
        ac.src = src;
        ac.out = (i % 2) ? KVX_DTYPE_F32 : storage;
        ac.preset = presets[static_cast<size_t>(i) % presets.size()];
        const int64_t ts[] = {1, 16, 64};
        ac.block_tokens = ac.preset == KVX_PRESET_SGLANG ? 1 : ts[i % 3];
        ac.head_dim = (i % 4 == 0) ? 40 : 64;
        ac.head_dim_v = (i % 5 == 0) ? 32 : ac.head_dim;
        ac.by_table = form > 0;
        ac.table = form == 1 ? KVX_PAGE_TABLE_DENSE : KVX_PAGE_TABLE_CSR;
        for (int64_t s = 0, seqs = 1 + static_cast<int64_t>(rng() % 3); s < seqs; ++s)
          ac.lens.push_back(1 + static_cast<int64_t>(rng() % 150));
        ac.seed = 900 + static_cast<uint64_t>(i++);
        // A preset that cannot express this geometry falls back to the next one.
        kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
        p.dtype = storage;
        p.memory = KVX_MEMORY_HOST;
        p.num_layers = 3;
        p.num_blocks = 64;
        p.block_tokens = ac.block_tokens;
        p.num_kv_heads = 2;
        p.head_dim = ac.head_dim;
        p.head_dim_v = ac.head_dim_v;
        kvx_layout_t probe;
        for (size_t t = 0; t < presets.size() && kvx_layout_preset(ac.preset, &p, &probe) == KVX_ERR_UNSUPPORTED; ++t)
          ac.preset = presets[(static_cast<size_t>(ac.preset) - 1 + 1) % presets.size()];
        if (ac.preset == KVX_PRESET_SGLANG) ac.block_tokens = 1;
        run_append_case(ac);
      }
}

}  // namespace
}  // namespace kvx_test
