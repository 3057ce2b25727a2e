// Paged attention (decode and prefill) of the CPU reference against the
// float64 oracle over a sampled matrix of shapes, and across layouts: the
// same tokens in every preset give the same output bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "attention_case.hpp"

namespace kvx_test {
namespace {

// Cycles through every value of an axis in a shuffled order, so that a sample
// of at least max(axis sizes) cases covers each value of each axis while the
// combinations stay random.
template <typename T>
class Axis {
 public:
  Axis(std::vector<T> values, Rng& rng) : values_(std::move(values)) { std::shuffle(values_.begin(), values_.end(), rng); }
  const T& at(size_t i) const { return values_[i % values_.size()]; }

 private:
  std::vector<T> values_;
};

constexpr double kLseBound = 1e-4;

// Work of the oracle, in double multiply-adds: bounded so that the suite
// stays fast (lengths shrink, longest first, when a case exceeds it).
int64_t oracle_work(const AttnCase& c) {
  int64_t w = 0;
  for (size_t b = 0; b < c.lens.size(); ++b) {
    const int64_t rows = c.prefill ? c.qrows[b] : 1;
    w += c.lens[b] * c.kv_heads * (c.head_dim + c.head_dim_v) * (1 + rows * c.gqa);
  }
  return w;
}

void fit_budget(AttnCase& c) {
  const int64_t budget = kSmall ? 2'000'000 : 40'000'000;
  while (oracle_work(c) > budget) {
    if (c.prefill) {  // fewer query rows first, then shorter sequences
      auto most = std::max_element(c.qrows.begin(), c.qrows.end());
      if (*most > 8) {
        *most = *most / 2;
        continue;
      }
    }
    if (c.kv_heads > 1) {
      c.kv_heads = 1;
      continue;
    }
    const size_t longest = std::max_element(c.lens.begin(), c.lens.end()) - c.lens.begin();
    c.lens[longest] = std::max<int64_t>(1, c.lens[longest] * 2 / 3);
    if (c.prefill) c.qrows[longest] = std::min(c.qrows[longest], c.lens[longest]);
  }
}

// A length of a given kind for block size T.
int64_t length_of(int kind, int64_t t, Rng& rng) {
  switch (kind) {
    case 0: return 1;
    case 1: return std::max<int64_t>(1, t - 1);
    case 2: return t;
    case 3: return t + 1;
    case 4: return 2 * t + 1 + static_cast<int64_t>(rng() % t);
    case 5: return 1 + static_cast<int64_t>(rng() % 300);
    case 6: return 300 + static_cast<int64_t>(rng() % 1700);
    default: return 2000;
  }
}

std::vector<AttnCase> sample_cases(bool prefill, int count, uint64_t seed) {
  Rng rng(seed);
  const Axis<kvx_dtype_t> dtypes({KVX_DTYPE_F32, KVX_DTYPE_F16, KVX_DTYPE_BF16}, rng);
  const Axis<int64_t> head_dims({8, 40, 64, 96, 128, 256}, rng);
  const Axis<int64_t> gqas({1, 2, 4, 8}, rng);
  const Axis<int64_t> block_tokens({1, 16, 64}, rng);
  const Axis<int> length_kinds({0, 1, 2, 3, 4, 5, 6, 7}, rng);
  const Axis<int> windows({-1, -1, 0, 1, 2, 3, 4}, rng);     // kinds: none, 0, < T, random, > len
  const Axis<int> sinks({0, 0, 1, 2}, rng);                  // kinds: none, small, > window
  const Axis<float> caps({0.0f, 0.0f, 5.0f, 30.0f}, rng);
  const Axis<float> scales({0.0f, 0.0f, 0.25f, 1.5f}, rng);
  const Axis<int> causals({0, 1}, rng);
  const Axis<kvx_page_table_kind_t> tables({KVX_PAGE_TABLE_DENSE, KVX_PAGE_TABLE_CSR}, rng);
  const Axis<kvx_preset_t> presets(all_presets(), rng);
  const Axis<int> qrow_kinds({0, 1, 2}, rng);  // n_b == len, n_b == 1, random
  std::vector<AttnCase> cases;
  for (int i = 0; i < count; ++i) {
    AttnCase c;
    c.prefill = prefill;
    c.seed = seed * 1000 + static_cast<uint64_t>(i);
    c.dtype = dtypes.at(i);
    c.src_dtype = rng() % 3 == 0 ? KVX_DTYPE_F32 : c.dtype;
    c.head_dim = head_dims.at(i);
    c.head_dim_v = rng() % 4 == 0 ? head_dims.at(i + 1) : c.head_dim;
    c.gqa = gqas.at(i);
    c.kv_heads = 1 + static_cast<int64_t>(rng() % 2);
    c.block_tokens = block_tokens.at(i);
    c.preset = presets.at(i);
    if (c.preset == KVX_PRESET_SGLANG) c.block_tokens = 1;  // a token pool
    c.table = tables.at(i);
    const int64_t seqs = 1 + static_cast<int64_t>(rng() % 3);
    for (int64_t b = 0; b < seqs; ++b) {
      const int kind = b == 0 ? length_kinds.at(i) : static_cast<int>(rng() % 6);
      const int64_t len = length_of(kind, c.block_tokens, rng);
      c.lens.push_back(len);
      const int qk = b == 0 ? qrow_kinds.at(i) : static_cast<int>(rng() % 3);
      c.qrows.push_back(qk == 0 ? len : qk == 1 ? 1 : 1 + static_cast<int64_t>(rng() % std::min<int64_t>(len, 48)));
    }
    if (!prefill) c.qrows.clear();
    const int64_t max_len = *std::max_element(c.lens.begin(), c.lens.end());
    switch (windows.at(i)) {
      case -1: c.window = -1; break;
      case 0: c.window = 0; break;
      case 1: c.window = static_cast<int64_t>(rng() % c.block_tokens); break;  // smaller than a block
      case 2: c.window = 1 + static_cast<int64_t>(rng() % std::max<int64_t>(1, max_len)); break;
      case 3: c.window = static_cast<int64_t>(rng() % 64); break;
      default: c.window = max_len + 5; break;
    }
    switch (sinks.at(i)) {
      case 0: c.sink = 0; break;
      case 1: c.sink = 1 + static_cast<int64_t>(rng() % 4); break;
      default: c.sink = 1 + static_cast<int64_t>(rng() % std::max<int64_t>(1, max_len)); break;
    }
    c.cap = caps.at(i);
    c.scale = scales.at(i);
    c.causal = prefill ? causals.at(i) : 1;
    fit_budget(c);
    cases.push_back(std::move(c));
  }
  return cases;
}

// Runs `c`, falling back over presets (in order) when one cannot express its
// geometry (e.g. a head_dim that vLLM's legacy split does not divide).
AttnResult run_with_some_preset(AttnCase& c) {
  const std::vector<kvx_preset_t> presets = all_presets();
  for (size_t tries = 0; tries <= presets.size(); ++tries) {
    AttnResult r = run_attention_case(c, true);
    if (!r.unsupported_preset) return r;
    c.preset = presets[(std::find(presets.begin(), presets.end(), c.preset) - presets.begin() + 1) % presets.size()];
  }
  AttnResult none;
  none.status = KVX_ERR_UNSUPPORTED;
  none.message = "no preset accepts this geometry";
  return none;
}

void check_against_oracle(bool prefill, uint64_t seed) {
  const int count = kSmall ? 12 : 48;
  for (AttnCase c : sample_cases(prefill, count, seed)) {
    const AttnResult r = run_with_some_preset(c);
    SCOPED_TRACE(c.name());
    if (r.status != KVX_OK) {  // report it and go on: one broken case should not hide the others
      ADD_FAILURE() << kvx_status_string(r.status) << ": " << r.message;
      continue;
    }
    const double bound = tolerance(c.dtype);
    EXPECT_TRUE(r.out_err.within(bound)) << "out: max_rel " << r.out_err.max_rel << ", rel_l2 " << r.out_err.rel_l2
                                         << (r.out_err.nan ? ", NaN" : "") << " (bound " << bound << ")";
    EXPECT_LE(r.lse_err, kLseBound) << "lse";
    EXPECT_FALSE(r.lse_inf_mismatch) << "lse: -inf where the oracle disagrees";
  }
}

TEST(AttentionDecode, MatchesFloat64Oracle) { check_against_oracle(false, 11); }
TEST(AttentionPrefill, MatchesFloat64Oracle) { check_against_oracle(true, 23); }

// The CPU reference reads the cache logically, so the same tokens give the
// same bits whatever the preset.
void check_across_layouts(const AttnCase& base) {
  std::vector<double> first_out, first_lse;
  std::string first;
  int presets_run = 0;
  bool token_pool_run = false;
  for (kvx_preset_t p : all_presets()) {
    AttnCase c = base;
    c.preset = p;
    const AttnResult r = run_attention_case(c, presets_run == 0);
    SCOPED_TRACE(c.name());
    if (r.unsupported_preset) continue;  // the engine cannot express this geometry (kvx_layout_preset says so)
    if (r.status != KVX_OK) {
      ADD_FAILURE() << kvx_status_string(r.status) << ": " << r.message;
      continue;
    }
    token_pool_run |= p == KVX_PRESET_SGLANG;
    if (presets_run++ == 0) {
      EXPECT_TRUE(r.out_err.within(tolerance(c.dtype))) << "out against the oracle: max_rel " << r.out_err.max_rel;
      first_out = r.out;
      first_lse = r.lse;
      first = kvx_preset_name(p);
      continue;
    }
    EXPECT_TRUE(r.out == first_out) << "out differs from preset " << first;
    EXPECT_TRUE(r.lse == first_lse) << "lse differs from preset " << first;
  }
  EXPECT_GE(presets_run, 10) << "too few presets accepted " << base.name();
  if (base.block_tokens == 1) {
    EXPECT_TRUE(token_pool_run) << "the SGLang token pool refused block_tokens 1";
  }
}

TEST(AttentionAcrossLayouts, SameBitsInEveryPreset) {
  const kvx_dtype_t dtypes[] = {KVX_DTYPE_F32, KVX_DTYPE_F16, KVX_DTYPE_BF16};
  int i = 0;
  for (int64_t t : {int64_t{1}, int64_t{16}}) {
    for (bool prefill : {false, true}) {
      AttnCase c;
      c.prefill = prefill;
      c.dtype = dtypes[i % 3];
      c.src_dtype = c.dtype;
      c.head_dim = c.head_dim_v = 64;
      c.block_tokens = t;
      c.kv_heads = 2;
      c.gqa = 2;
      c.lens = {37, 5};
      c.qrows = {6, 5};
      c.window = prefill ? 9 : -1;
      c.sink = prefill ? 2 : 0;
      c.cap = prefill ? 0.0f : 20.0f;
      c.seed = 500 + static_cast<uint64_t>(i++);
      check_across_layouts(c);
    }
  }
}

}  // namespace
}  // namespace kvx_test
