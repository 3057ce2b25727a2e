// Property tests: random operation streams against a small model of the
// manager, with every invariant checked after every step. rapidcheck prints
// the seed of a failure; replay it with RC_PARAMS="seed=<seed>".
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "manager_test_util.hpp"

namespace {

using kvx::test::fingerprint;
using kvx::test::ManagerHandle;

struct ModelSeq {
  std::vector<int32_t> tokens;
  uint64_t adapter = 0;
  int64_t window = 0;
  int64_t sink = 0;
};

struct ModelPin {
  std::vector<int32_t> tokens;
  uint64_t adapter;
};

using Op = std::tuple<uint8_t, uint32_t, uint32_t, uint32_t>;

class Harness {
 public:
  Harness(const kvx_manager_config_t& c) : config_(c), m_(c) {
    // Shared "system prompts" make prefix hits and hash reuse common.
    uint64_t state = 12345;
    for (int i = 0; i < 3; ++i) systems_.push_back(kvx::test::random_tokens(state, 3 + 4 * i, 4));
  }

  kvx_seq_params_t params_for(const ModelSeq& s) const {
    kvx_seq_params_t p = kvx_seq_params_init();
    p.adapter_id = s.adapter;
    p.window_tokens = s.window;
    p.sink_tokens = s.sink;
    return p;
  }

  std::vector<kvx_seq_id_t> live_ids() const {
    std::vector<kvx_seq_id_t> ids;
    for (const auto& [id, s] : seqs_) ids.push_back(id);
    return ids;
  }

  // A call that may fail for lack of blocks must then change nothing.
  template <typename F>
  kvx_status_t guarded(F&& call) {
    const std::string before = fingerprint(m_, live_ids());
    const kvx_status_t st = call();
    if (st == KVX_ERR_OUT_OF_BLOCKS) {
      RC_ASSERT(fingerprint(m_, live_ids()) == before);
    } else {
      RC_ASSERT(st == KVX_OK);
    }
    return st;
  }

  void apply(const Op& op) {
    const auto [kind, a, b, c] = op;
    const int64_t T = config_.block_tokens;
    std::vector<kvx_seq_id_t> ids = live_ids();
    auto pick = [&](uint32_t x) { return ids.empty() ? kvx_seq_id_t{0} : ids[x % ids.size()]; };
    switch (kind % 15) {
      case 0:
      case 1: {  // create
        ModelSeq s;
        s.tokens = systems_[a % systems_.size()];
        s.tokens.resize(std::min<size_t>(s.tokens.size(), 1 + b % 16));
        uint64_t st = c;
        const auto tail = kvx::test::random_tokens(st, c % 6, 4);
        s.tokens.insert(s.tokens.end(), tail.begin(), tail.end());
        s.adapter = (b >> 8) % 2;
        if (c % 5 == 0) {
          s.window = 1 + (c >> 4) % 7;
          s.sink = (c >> 8) % 3;
        }
        kvx_seq_params_t p = params_for(s);
        if ((c >> 12) % 3 == 0) p.flags = KVX_SEQ_MATCH_LAST_TOKEN;
        std::vector<int64_t> slots(s.tokens.size() + 1, -7);
        kvx_seq_id_t id = 0;
        kvx_seq_match_t match{};
        const int64_t evictions_before = kvx::test::metrics_of(m_).evictions_capacity;
        if (guarded([&] {
              return kvx_seq_create(m_, &p, s.tokens.data(), static_cast<int64_t>(s.tokens.size()), slots.data(), &id,
                                    &match);
            }) == KVX_OK) {
          RC_ASSERT(match.matched_tokens % T == 0);
          RC_ASSERT(match.matched_tokens <= static_cast<int64_t>(s.tokens.size()));
          for (size_t i = static_cast<size_t>(match.matched_tokens); i < s.tokens.size(); ++i) RC_ASSERT(slots[i] >= T);
          if (s.window == 0 && kvx::test::metrics_of(m_).evictions_capacity == evictions_before) {
            // Every full block just written or attached is findable on the
            // device (evictions in the call may take a published twin of a
            // block that then stays private).
            int64_t found = 0, device = 0;
            RC_ASSERT(kvx_manager_match_prefix(m_, &p, s.tokens.data(), static_cast<int64_t>(s.tokens.size()), &found,
                                               &device) == KVX_OK);
            const int64_t n = static_cast<int64_t>(s.tokens.size());
            const int64_t expect = (p.flags != 0 ? n / T : (n > 0 ? (n - 1) / T : 0)) * T;
            RC_ASSERT(device == expect);
          }
          seqs_[id] = s;
        }
        break;
      }
      case 2: {  // append
        if (ids.empty()) break;
        const kvx_seq_id_t id = pick(a);
        uint64_t st = b;
        const auto toks = kvx::test::random_tokens(st, 1 + c % 5, 4);
        std::vector<int64_t> slots(toks.size(), -7);
        if (guarded([&] {
              return kvx_seq_append(m_, id, toks.data(), static_cast<int64_t>(toks.size()), slots.data(), nullptr);
            }) == KVX_OK) {
          auto& mt = seqs_[id].tokens;
          for (size_t i = 0; i < toks.size(); ++i) RC_ASSERT(slots[i] / T != KVX_NULL_BLOCK);
          mt.insert(mt.end(), toks.begin(), toks.end());
        }
        break;
      }
      case 3: {  // batched decode step over a subset
        std::vector<kvx_seq_id_t> batch;
        for (size_t i = 0; i < ids.size(); ++i) {
          if ((a >> (i % 32)) & 1u) batch.push_back(ids[i]);
        }
        if (batch.empty()) break;
        // Sometimes the first id again at the end: refused only after every
        // other sequence of the batch was taken in, which must be undone.
        const bool repeat = (c & 3u) == 1u;
        if (repeat) batch.push_back(batch[0]);
        uint64_t st = b;
        const auto toks = kvx::test::random_tokens(st, batch.size(), 4);
        std::vector<int64_t> slots(batch.size(), -7);
        auto call = [&] {
          return kvx_seq_append_batch(m_, batch.data(), static_cast<int64_t>(batch.size()), toks.data(), slots.data(),
                                      nullptr);
        };
        if (repeat) {
          const std::string before = fingerprint(m_, live_ids());
          RC_ASSERT(call() == KVX_ERR_INVALID_ARGUMENT);
          RC_ASSERT(fingerprint(m_, live_ids()) == before);
          RC_ASSERT(std::count(slots.begin(), slots.end(), int64_t{-7}) == static_cast<std::ptrdiff_t>(slots.size()));
          break;
        }
        const kvx_status_t status = guarded(call);
        if (status != KVX_OK) {
          RC_ASSERT(std::count(slots.begin(), slots.end(), int64_t{-7}) == static_cast<std::ptrdiff_t>(slots.size()));
        } else {
          std::vector<int64_t> sorted = slots;
          std::sort(sorted.begin(), sorted.end());
          RC_ASSERT(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());  // no two writes collide
          for (size_t i = 0; i < batch.size(); ++i) seqs_[batch[i]].tokens.push_back(toks[i]);
        }
        break;
      }
      case 4: {  // fork
        if (ids.empty()) break;
        const kvx_seq_id_t id = pick(a);
        kvx_seq_id_t child = 0;
        RC_ASSERT(kvx_seq_fork(m_, id, &child) == KVX_OK);
        seqs_[child] = seqs_[id];
        break;
      }
      case 5:
      case 6: {  // free
        if (ids.empty()) break;
        const kvx_seq_id_t id = pick(a);
        RC_ASSERT(kvx_seq_free(m_, id) == KVX_OK);
        seqs_.erase(id);
        RC_ASSERT(kvx_seq_free(m_, id) == KVX_ERR_NOT_FOUND);
        break;
      }
      case 7: {  // clock
        RC_ASSERT(kvx_manager_step(m_, nullptr) == KVX_OK);
        break;
      }
      case 8: {  // pin a system prompt
        ModelPin pin{systems_[a % systems_.size()], b % 2};
        kvx_seq_params_t p = kvx_seq_params_init();
        p.adapter_id = pin.adapter;
        int64_t pinned = -1;
        RC_ASSERT(kvx_manager_pin(m_, &p, pin.tokens.data(), static_cast<int64_t>(pin.tokens.size()), &pinned) == KVX_OK);
        pin.tokens.resize(static_cast<size_t>(pinned));
        if (pinned > 0) pins_.push_back(pin);
        break;
      }
      case 9: {  // unpin
        if (pins_.empty()) break;
        const size_t i = a % pins_.size();
        kvx_seq_params_t p = kvx_seq_params_init();
        p.adapter_id = pins_[i].adapter;
        RC_ASSERT(kvx_manager_unpin(m_, &p, pins_[i].tokens.data(), static_cast<int64_t>(pins_[i].tokens.size())) ==
                  KVX_OK);
        pins_.erase(pins_.begin() + static_cast<ptrdiff_t>(i));
        break;
      }
      case 10: {  // prefix handles: cache, attach, release
        if (b % 3 == 0 && !prefixes_.empty()) {
          const size_t i = a % prefixes_.size();
          RC_ASSERT(kvx_prefix_release(m_, prefixes_[i].first) == KVX_OK);
          prefixes_.erase(prefixes_.begin() + static_cast<ptrdiff_t>(i));
        } else if (b % 3 == 1 && !prefixes_.empty()) {
          const auto& [pid, ms] = prefixes_[a % prefixes_.size()];
          kvx_seq_id_t id = 0;
          RC_ASSERT(kvx_prefix_attach(m_, pid, &id) == KVX_OK);
          seqs_[id] = ms;
        } else if (!ids.empty()) {
          const kvx_seq_id_t id = pick(a);
          const ModelSeq& ms = seqs_[id];
          const int64_t n = static_cast<int64_t>(ms.tokens.size()) / T * T;
          kvx_prefix_id_t pid = 0;
          const kvx_status_t st = kvx_prefix_cache(m_, id, n, &pid);
          if (ms.window == 0 && n > 0) RC_ASSERT(st == KVX_OK);
          if (st == KVX_OK) {
            ModelSeq copy = ms;
            copy.tokens.resize(static_cast<size_t>(n));
            prefixes_.emplace_back(pid, copy);
          }
        }
        break;
      }
      case 11: {  // weight update
        if (a % 4 != 0) break;
        RC_ASSERT(kvx_manager_reset(m_) == KVX_OK);
        pins_.clear();
        break;
      }
      case 12: {  // the caller executes pending work
        int64_t n = 0;
        RC_ASSERT(kvx_manager_take_work(m_, nullptr, 0, &n) == KVX_OK);
        std::vector<kvx_copy_t> work(static_cast<size_t>(n) + 1);
        int64_t got = 0;
        RC_ASSERT(kvx_manager_take_work(m_, work.data(), n, &got) == KVX_OK);
        RC_ASSERT(got == n);
        break;
      }
      case 14: {  // the engine grows the pool (refused past max_blocks, changing nothing)
        const kvx_manager_metrics_t x = kvx::test::metrics_of(m_);
        const int64_t want = x.blocks_total + 1 + a % 3;
        const int64_t max_blocks = config_.max_blocks != 0 ? config_.max_blocks : config_.num_blocks;
        const std::string before = fingerprint(m_, ids);
        if (want > max_blocks) {
          RC_ASSERT(kvx_manager_grow(m_, want) == KVX_ERR_INVALID_ARGUMENT);
          RC_ASSERT(fingerprint(m_, ids) == before);
        } else {
          RC_ASSERT(kvx_manager_grow(m_, want) == KVX_OK);
          RC_ASSERT(kvx::test::metrics_of(m_).blocks_total == want - 1);
        }
        break;
      }
      default: {
        RC_ASSERT(kvx_manager_trim(m_, nullptr) == KVX_OK);
        break;
      }
    }
    check();
  }

  // The model and the manager agree, and every internal invariant holds.
  void check() {
    const std::string broken = m_.impl().check_invariants();
    RC_ASSERT(broken == "");
    const int64_t T = config_.block_tokens;
    for (const auto& [id, ms] : seqs_) {
      const kvx::manager::Seq* s = m_.impl().find_seq_for_test(id);
      RC_ASSERT(s != nullptr);
      RC_ASSERT(s->num_tokens == static_cast<int64_t>(ms.tokens.size()));
      // The next query sits at position len: it sees [len + 1 - window, len].
      const int64_t keep_from = ms.window > 0 ? static_cast<int64_t>(ms.tokens.size()) + 1 - ms.window : 0;
      for (size_t i = 0; i < s->blocks.size(); ++i) {
        const int32_t blk = s->blocks[i];
        const int64_t first = static_cast<int64_t>(i) * T;
        if (blk == KVX_NULL_BLOCK) {
          // Released blocks hold neither sinks nor tokens any query may still see.
          RC_ASSERT(ms.window > 0);
          RC_ASSERT(first >= ms.sink);
          RC_ASSERT(first + T <= keep_from);
          continue;
        }
        const auto stored = m_.impl().block_tokens_of(blk);
        for (int64_t j = first; j < std::min<int64_t>(first + T, s->num_tokens); ++j) {
          RC_ASSERT(stored[static_cast<size_t>(j - first)] == ms.tokens[static_cast<size_t>(j)]);
        }
      }
    }
    // The exported tables agree with the sequences, in both forms.
    std::vector<kvx_seq_id_t> ids = live_ids();
    kvx_block_table_export_t t = kvx_block_table_export_init();
    t.seq_ids = ids.data();
    t.num_seqs = static_cast<int64_t>(ids.size());
    RC_ASSERT(kvx_manager_block_table(m_, &t) == KVX_OK);
    std::vector<int32_t> table(static_cast<size_t>(t.max_blocks * t.num_seqs) + 1, -9), lens(ids.size() + 1, -9);
    t.block_table = table.data();
    t.block_table_stride = t.max_blocks;
    t.seq_lens = lens.data();
    RC_ASSERT(kvx_manager_block_table(m_, &t) == KVX_OK);
    kvx_block_table_export_t csr = kvx_block_table_export_init();
    csr.kind = KVX_PAGE_TABLE_CSR;
    csr.seq_ids = ids.data();
    csr.num_seqs = t.num_seqs;
    std::vector<int32_t> indptr(ids.size() + 1, -9), indices(static_cast<size_t>(t.nnz) + 1, -9),
        last(ids.size() + 1, -9);
    csr.indptr = indptr.data();
    csr.indices = indices.data();
    csr.indices_capacity = t.nnz;
    csr.last_page_len = last.data();
    RC_ASSERT(kvx_manager_block_table(m_, &csr) == KVX_OK);
    for (size_t i = 0; i < ids.size(); ++i) {
      const kvx::manager::Seq* s = m_.impl().find_seq_for_test(ids[i]);
      RC_ASSERT(lens[i] == s->num_tokens);
      const int64_t nb = static_cast<int64_t>(s->blocks.size());
      RC_ASSERT(indptr[i + 1] - indptr[i] == nb);
      for (int64_t j = 0; j < t.max_blocks; ++j) {
        const int32_t expect = j < nb ? s->blocks[static_cast<size_t>(j)] : KVX_NULL_BLOCK;
        RC_ASSERT(table[static_cast<size_t>(static_cast<int64_t>(i) * t.max_blocks + j)] == expect);
        if (j < nb) RC_ASSERT(indices[static_cast<size_t>(indptr[i] + j)] == expect);
      }
      RC_ASSERT(last[i] == (nb == 0 ? 0 : s->num_tokens - (nb - 1) * config_.block_tokens));
    }
  }

  // Ending everything returns every block: unreferenced ones stay cached
  // until a reset, after which the whole pool is free.
  void drain() {
    for (const auto& [pid, ms] : prefixes_) RC_ASSERT(kvx_prefix_release(m_, pid) == KVX_OK);
    prefixes_.clear();
    for (const kvx_seq_id_t id : live_ids()) RC_ASSERT(kvx_seq_free(m_, id) == KVX_OK);
    seqs_.clear();
    check();
    kvx_manager_metrics_t x = kvx::test::metrics_of(m_);
    RC_ASSERT(x.blocks_used == 0);
    RC_ASSERT(x.blocks_cached + x.blocks_free == x.blocks_total);
    RC_ASSERT(kvx_manager_reset(m_) == KVX_OK);
    check();
    x = kvx::test::metrics_of(m_);
    RC_ASSERT(x.blocks_free == x.blocks_total);
    RC_ASSERT(x.blocks_pinned == 0);
    RC_ASSERT(x.blocks_host == 0);
  }

 private:
  kvx_manager_config_t config_;
  ManagerHandle m_;
  std::vector<std::vector<int32_t>> systems_;
  std::map<kvx_seq_id_t, ModelSeq> seqs_;
  std::vector<ModelPin> pins_;
  std::vector<std::pair<kvx_prefix_id_t, ModelSeq>> prefixes_;
};

RC_GTEST_PROP(ManagerProperty, RandomStreamsKeepInvariants, (std::vector<Op> ops, uint8_t shape)) {
  kvx_manager_config_t c = kvx_manager_config_init();
  c.num_blocks = 4 + shape % 29;
  // 3 is not a power of two: positions in a block are then a division.
  constexpr int64_t kBlockTokens[] = {1, 2, 4, 3};
  c.block_tokens = kBlockTokens[(shape >> 5) % 4];
  c.eviction = static_cast<kvx_eviction_policy_t>(1 + (shape >> 1) % 4);
  c.host_blocks = (shape >> 3) % 2 == 0 ? 0 : 3;
  c.memory = (shape >> 4) % 4 == 0 ? KVX_POOL_MEMORY_HOST : KVX_POOL_MEMORY_NONE;
  c.bytes_per_block = 64;
  c.thrash_window = 3;
  c.max_blocks = (shape >> 2) % 2 == 0 ? 0 : c.num_blocks + 9;
  RC_TAG(c.eviction);
  Harness h(c);
  for (const Op& op : ops) h.apply(op);
  h.drain();
}

// A pool with nothing evictable fails cleanly, then recovers once blocks return.
RC_GTEST_PROP(ManagerProperty, FullPoolFailsAndChangesNothing, (uint8_t blocks, uint8_t extra)) {
  const int64_t nb = 2 + blocks % 16;
  ManagerHandle m(kvx::test::small_config(nb, 2));
  std::vector<int32_t> prompt(static_cast<size_t>((nb - 1) * 2));
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>(i * 7 + extra);
  std::vector<int64_t> slots(prompt.size() + 2);
  kvx_seq_id_t a = 0;
  RC_ASSERT(kvx_seq_create(m, nullptr, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &a, nullptr) ==
            KVX_OK);
  const std::string before = fingerprint(m, {a});
  const int32_t more[2] = {1, 2};
  RC_ASSERT(kvx_seq_append(m, a, more, 1 + extra % 2, slots.data(), nullptr) == KVX_ERR_OUT_OF_BLOCKS);
  kvx_seq_id_t b = 0;
  RC_ASSERT(kvx_seq_create(m, nullptr, more, 2, slots.data(), &b, nullptr) == KVX_ERR_OUT_OF_BLOCKS);
  RC_ASSERT(fingerprint(m, {a}) == before);
  RC_ASSERT(m.impl().check_invariants() == "");
  RC_ASSERT(kvx_seq_free(m, a) == KVX_OK);
  RC_ASSERT(kvx_seq_create(m, nullptr, more, 2, slots.data(), &b, nullptr) == KVX_OK);
}

}  // namespace
