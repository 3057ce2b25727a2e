// Unit tests of the block manager through its C ABI: bad input, the pinned
// prefix hash, fork and copy-on-write, prefix reuse, eviction policies,
// pins, windows with sinks, offload and reload, metrics, physical memory.
#include <gtest/gtest.h>

#include <cstring>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include <xxhash.h>

#include "manager_test_util.hpp"

namespace {

using kvx::test::fingerprint;
using kvx::test::ManagerHandle;
using kvx::test::metrics_of;
using kvx::test::small_config;

std::vector<int32_t> iota_tokens(int32_t first, size_t n) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = first + static_cast<int32_t>(i);
  return t;
}

kvx_seq_id_t create(kvx_manager_t m, const std::vector<int32_t>& tokens, kvx_seq_match_t* match = nullptr,
                    const kvx_seq_params_t* params = nullptr) {
  std::vector<int64_t> slots(tokens.size() + 1, -7);
  kvx_seq_id_t id = 0;
  const kvx_status_t st = kvx_seq_create(m, params, tokens.data(), static_cast<int64_t>(tokens.size()), slots.data(),
                                         &id, match);
  EXPECT_EQ(st, KVX_OK) << kvx_last_error();
  return id;
}

std::vector<kvx_copy_t> take_work(kvx_manager_t m) {
  int64_t n = -1;
  EXPECT_EQ(kvx_manager_take_work(m, nullptr, 0, &n), KVX_OK);
  std::vector<kvx_copy_t> work(static_cast<size_t>(n));
  int64_t got = -1;
  EXPECT_EQ(kvx_manager_take_work(m, work.data(), n, &got), KVX_OK);
  EXPECT_EQ(got, n);
  return work;
}

int64_t device_match(kvx_manager_t m, const std::vector<int32_t>& tokens) {
  kvx_seq_params_t p = kvx_seq_params_init();
  p.flags = KVX_SEQ_MATCH_LAST_TOKEN;
  int64_t all = -1, device = -1;
  EXPECT_EQ(kvx_manager_match_prefix(m, &p, tokens.data(), static_cast<int64_t>(tokens.size()), &all, &device), KVX_OK);
  return device;
}

// ------------------------------------------------------------- bad input --

TEST(ManagerBadInput, CreateRefusesEachBadField) {
  kvx_manager_t m = reinterpret_cast<kvx_manager_t>(0x1);
  const kvx_manager_t sentinel = m;
  EXPECT_EQ(kvx_manager_create(nullptr, &m), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("config"), std::string::npos);
  struct Case {
    const char* field;
    void (*mutate)(kvx_manager_config_t&);
    kvx_status_t status;
  };
  const Case cases[] = {
      {"config.struct_size", [](kvx_manager_config_t& c) { c.struct_size -= 8; }, KVX_ERR_VERSION_MISMATCH},
      {"config.version", [](kvx_manager_config_t& c) { c.version = KVX_MAKE_VERSION(2, 0, 0); }, KVX_ERR_VERSION_MISMATCH},
      {"config.reserved[3]", [](kvx_manager_config_t& c) { c.reserved[3] = 1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.reserved0", [](kvx_manager_config_t& c) { c.reserved0 = 1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.num_blocks", [](kvx_manager_config_t& c) { c.num_blocks = 1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.num_blocks", [](kvx_manager_config_t& c) { c.num_blocks = int64_t{1} << 31; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.block_tokens", [](kvx_manager_config_t& c) { c.block_tokens = 0; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.eviction", [](kvx_manager_config_t& c) { c.eviction = static_cast<kvx_eviction_policy_t>(0); },
       KVX_ERR_INVALID_ARGUMENT},
      {"config.eviction", [](kvx_manager_config_t& c) { c.eviction = static_cast<kvx_eviction_policy_t>(5); },
       KVX_ERR_INVALID_ARGUMENT},
      {"config.memory", [](kvx_manager_config_t& c) { c.memory = static_cast<kvx_pool_memory_t>(9); },
       KVX_ERR_INVALID_ARGUMENT},
      {"config.eviction", [](kvx_manager_config_t& c) {
         const int32_t negative = -3;  // as a C caller can store it
         std::memcpy(&c.eviction, &negative, sizeof negative);
       },
       KVX_ERR_INVALID_ARGUMENT},
      {"config.bytes_per_block", [](kvx_manager_config_t& c) { c.memory = KVX_POOL_MEMORY_HOST; },
       KVX_ERR_INVALID_ARGUMENT},
      {"config.host_blocks", [](kvx_manager_config_t& c) { c.host_blocks = -1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.thrash_window", [](kvx_manager_config_t& c) { c.thrash_window = -1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.clock_user", [](kvx_manager_config_t& c) { c.clock_user = &c; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.max_blocks", [](kvx_manager_config_t& c) { c.max_blocks = 7; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.max_blocks", [](kvx_manager_config_t& c) { c.max_blocks = int64_t{1} << 31; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.max_blocks", [](kvx_manager_config_t& c) { c.max_blocks = -1; }, KVX_ERR_INVALID_ARGUMENT},
      {"config.bytes_per_block", [](kvx_manager_config_t& c) {
         c.bytes_per_block = int64_t{1} << 40;
         c.max_blocks = int64_t{1} << 24;  // the range grow() may reach overflows, not num_blocks' own
       },
       KVX_ERR_INVALID_ARGUMENT},
  };
  for (const Case& tc : cases) {
    kvx_manager_config_t c = small_config(8, 4);
    tc.mutate(c);
    m = sentinel;
    EXPECT_EQ(kvx_manager_create(&c, &m), tc.status) << tc.field;
    EXPECT_NE(std::string(kvx_last_error()).find(tc.field), std::string::npos) << kvx_last_error();
    EXPECT_EQ(m, sentinel) << tc.field << ": output written on failure";
  }
#ifndef KVX_HAVE_CUDA
  kvx_manager_config_t c = small_config(8, 4);
  c.memory = KVX_POOL_MEMORY_CUDA_VMM;
  c.bytes_per_block = 4096;
  EXPECT_EQ(kvx_manager_create(&c, &m), KVX_ERR_UNSUPPORTED);
#endif
}

TEST(ManagerBadInput, EntryPointsRefuseAndChangeNothing) {
  ManagerHandle m(small_config(8, 4));
  const auto prompt = iota_tokens(100, 6);
  const kvx_seq_id_t a = create(m, prompt);
  const std::string before = fingerprint(m, {a});
  int64_t slots[8];
  kvx_seq_id_t out = 0;
  const int32_t tok = 5;

  EXPECT_EQ(kvx_seq_append(nullptr, a, &tok, 1, slots, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_seq_append(m, a + 1, &tok, 1, slots, nullptr), KVX_ERR_NOT_FOUND);
  EXPECT_NE(std::string(kvx_last_error()).find("seq"), std::string::npos);
  EXPECT_EQ(kvx_seq_append(m, 0, &tok, 1, slots, nullptr), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(kvx_seq_append(m, a, nullptr, 1, slots, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_seq_append(m, a, &tok, 0, slots, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("num_tokens"), std::string::npos);
  EXPECT_EQ(kvx_seq_append(m, a, &tok, 1, nullptr, nullptr), KVX_ERR_INVALID_ARGUMENT);
  const kvx_seq_id_t twice[2] = {a, a};
  const int32_t toks[2] = {1, 2};
  EXPECT_EQ(kvx_seq_append_batch(m, twice, 2, toks, slots, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("seq_ids[1]"), std::string::npos);
  EXPECT_EQ(kvx_seq_fork(m, a, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_seq_fork(m, 12345, &out), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(kvx_seq_free(m, -3), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(kvx_prefix_release(m, a), KVX_ERR_NOT_FOUND);  // a sequence is not a prefix handle
  EXPECT_EQ(kvx_prefix_cache(m, a, 3, &out), KVX_ERR_INVALID_ARGUMENT);  // not whole blocks

  kvx_seq_params_t p = kvx_seq_params_init();
  p.priority = 101;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("params.priority"), std::string::npos);
  p = kvx_seq_params_init();
  p.reserved[5] = 1;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("params.reserved[5]"), std::string::npos);
  p = kvx_seq_params_init();
  p.sink_tokens = 2;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("params.sink_tokens"), std::string::npos);
  p = kvx_seq_params_init();
  p.flags = 8;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  p = kvx_seq_params_init();
  const kvx_media_hash_t media[2] = {{1, 2, 4, 3}, {3, 4, 5, 1}};  // overlapping
  p.media = media;
  p.num_media = 2;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("params.media[1]"), std::string::npos);
  p = kvx_seq_params_init();
  p.struct_size = 8;
  EXPECT_EQ(kvx_seq_create(m, &p, prompt.data(), 6, slots, &out, nullptr), KVX_ERR_VERSION_MISMATCH);
  EXPECT_EQ(kvx_seq_create(m, nullptr, nullptr, 6, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_seq_create(m, nullptr, prompt.data(), -1, slots, &out, nullptr), KVX_ERR_INVALID_ARGUMENT);

  kvx_block_table_export_t t = kvx_block_table_export_init();
  t.kind = static_cast<kvx_page_table_kind_t>(7);
  EXPECT_EQ(kvx_manager_block_table(m, &t), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("table.kind"), std::string::npos);
  t = kvx_block_table_export_init();
  const kvx_seq_id_t bad[1] = {a + 99};
  t.seq_ids = bad;
  t.num_seqs = 1;
  EXPECT_EQ(kvx_manager_block_table(m, &t), KVX_ERR_NOT_FOUND);
  EXPECT_NE(std::string(kvx_last_error()).find("table.seq_ids[0]"), std::string::npos);
  t.seq_ids = &a;
  int32_t row[1], len[1];
  t.block_table = row;
  t.seq_lens = len;
  t.block_table_stride = 1;  // a has 2 blocks
  EXPECT_EQ(kvx_manager_block_table(m, &t), KVX_ERR_WORKSPACE_TOO_SMALL);
  EXPECT_EQ(t.max_blocks, 2);

  EXPECT_EQ(kvx_manager_take_work(m, nullptr, 0, nullptr), KVX_ERR_INVALID_ARGUMENT);
  kvx_copy_t w[1];
  int64_t n = 0;
  EXPECT_EQ(kvx_manager_take_work(m, w, -1, &n), KVX_ERR_INVALID_ARGUMENT);
  kvx_manager_metrics_t x = kvx_manager_metrics_init();
  x.struct_size = 4;
  EXPECT_EQ(kvx_manager_get_metrics(m, &x), KVX_ERR_VERSION_MISMATCH);
  void* base = nullptr;
  EXPECT_EQ(kvx_manager_pool_base(m, static_cast<kvx_pool_tier_t>(3), &base), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(kvx_manager_unpin(m, nullptr, prompt.data(), 6), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(kvx_manager_destroy(nullptr), KVX_OK);

  EXPECT_EQ(fingerprint(m, {a}), before);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// ------------------------------------------------------------------ hash --

// The prefix hash is part of the contract (docs/manager.md): these values
// were computed once and must never change, in any process or on any machine.
TEST(ManagerHash, PinnedValues) {
  const auto tokens = iota_tokens(1, 16);
  uint64_t h0[2] = {0, 0}, h1[2] = {0, 0};
  ASSERT_EQ(kvx_block_hash(0, 0, nullptr, nullptr, tokens.data(), 16, 0, h0), KVX_OK) << kvx_last_error();
  EXPECT_EQ(h0[0], 0xbd3a053628203b56ull);
  EXPECT_EQ(h0[1], 0xd60a9af229b809cdull);
  // The byte format of docs/manager.md, written out by hand.
  std::vector<uint8_t> bytes;
  auto le = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  le(1, 4);                 // format
  le(0, 4);                 // no parent
  le(0, 8), le(0, 8);       // parent lo, hi
  le(0, 8), le(0, 8);       // model id, adapter id
  le(16, 4);                // token count
  for (const int32_t t : tokens) le(static_cast<uint32_t>(t), 4);
  le(0, 4);                 // salt bytes
  le(0, 4);                 // media items
  const XXH128_hash_t direct = XXH3_128bits_withSeed(bytes.data(), bytes.size(), 0);
  EXPECT_EQ(direct.low64, h0[0]);
  EXPECT_EQ(direct.high64, h0[1]);
  kvx_seq_params_t p = kvx_seq_params_init();
  const char salt[] = "tenant-7";
  const kvx_media_hash_t media = {0x1111, 0x2222, 20, 8};
  p.adapter_id = 42;
  p.cache_salt = salt;
  p.cache_salt_bytes = 8;
  p.media = &media;
  p.num_media = 1;
  ASSERT_EQ(kvx_block_hash(7, 9, &p, h0, tokens.data(), 16, 16, h1), KVX_OK) << kvx_last_error();
  EXPECT_EQ(h1[0], 0x4af9c0a486a23c6full);
  EXPECT_EQ(h1[1], 0x9b7623b4eea7a231ull);
}

// xxh3-128 of the byte format of docs/manager.md, written out here: the
// reference the specialised hashers of the manager must agree with.
kvx::manager::Hash128 reference_hash(uint64_t seed, const kvx::manager::HashKeys& keys,
                                     const kvx::manager::Hash128* parent, std::span<const int32_t> tokens,
                                     int64_t first) {
  std::vector<uint8_t> bytes;
  auto le = [&](uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  const int64_t last = first + static_cast<int64_t>(tokens.size());
  le(1, 4);
  le(parent != nullptr ? 1 : 0, 4);
  le(parent != nullptr ? parent->lo : 0, 8);
  le(parent != nullptr ? parent->hi : 0, 8);
  le(keys.model_id, 8);
  le(keys.adapter_id, 8);
  le(tokens.size(), 4);
  for (const int32_t t : tokens) le(static_cast<uint32_t>(t), 4);
  const size_t salt = parent == nullptr ? keys.cache_salt.size() : 0;
  le(salt, 4);
  for (size_t i = 0; i < salt; ++i) bytes.push_back(keys.cache_salt[i]);
  std::vector<const kvx_media_hash_t*> media;
  for (const auto& m : keys.media) {
    if (m.offset < last && m.offset + m.num_tokens > first) media.push_back(&m);
  }
  le(media.size(), 4);
  for (const kvx_media_hash_t* m : media) {
    le(m->hash_lo, 8);
    le(m->hash_hi, 8);
    le(static_cast<uint64_t>(m->offset - first), 8);
    le(static_cast<uint64_t>(m->num_tokens), 8);
  }
  const XXH128_hash_t h = XXH3_128bits_withSeed(bytes.data(), bytes.size(), seed);
  return kvx::manager::Hash128{h.low64, h.high64};
}

// The chained hasher of prefix walks lays the shared bytes out once; it must
// give BlockHasher's hashes for every block size (the fixed-size copies of
// 16, 32 and 64 tokens, others, blocks too large for the stack buffer) and
// every key (salt on the first block only, media falling back).
TEST(ManagerHash, ChainMatchesBlockHasher) {
  const uint64_t seed = 0x5eed0003;
  uint64_t state = seed;
  for (const size_t T : {1, 7, 16, 32, 64, 100, 240, 300}) {
    for (int keys_kind = 0; keys_kind < 6; ++keys_kind) {
      // Kinds 3..5 repeat 0..2 with hash seed 0 (the default), which xxh3 runs through XXH3_128bits.
      const uint64_t hash_seed = keys_kind < 3 ? seed + T : 0;
      kvx::manager::HashKeys keys;
      keys.model_id = 11 + T;
      keys.adapter_id = keys_kind;
      if (keys_kind % 3 >= 1) keys.cache_salt = {1, 2, 3, 4, 5};
      if (keys_kind % 3 == 2) keys.media = {kvx_media_hash_t{0xaa, 0xbb, static_cast<int64_t>(T) + 1, 3}};
      const size_t blocks = 5;
      const auto tokens = kvx::test::random_tokens(state, blocks * T, 128000);
      kvx::manager::BlockHasher hasher(hash_seed);
      kvx::manager::ChainHasher chain(hasher, keys, T);
      kvx::manager::Hash128 parent;
      for (size_t b = 0; b < blocks; ++b) {
        const std::span<const int32_t> row(tokens.data() + b * T, T);
        const int64_t first = static_cast<int64_t>(b * T);
        // The byte format of docs/manager.md, through the library's generic entry point.
        const kvx::manager::Hash128 want = reference_hash(hash_seed, keys, b > 0 ? &parent : nullptr, row, first);
        kvx::manager::Hash128 got;
        chain.next(row.data(), first, 1, &got);
        ASSERT_EQ(got, want) << "seed " << seed << " block_tokens " << T << " keys " << keys_kind << " block " << b;
        ASSERT_EQ(hasher.hash(keys, b > 0 ? &parent : nullptr, row, first), want)
            << "seed " << seed << " block_tokens " << T << " keys " << keys_kind << " block " << b;
        parent = want;
      }
    }
  }
}

// A batched decode step (one token per sequence) must do exactly what the
// same appends made one at a time do: same slots, blocks, tokens, metrics.
// Plain sequences take the batch's one-pass commit; forks (copy-on-write of
// a shared partial block) and windows take the planned path.
TEST(ManagerBatch, MatchesSingleAppends) {
  const uint64_t seed = 0xba7c4001;
  for (const int64_t T : {3, 16}) {
    ManagerHandle batched(small_config(4096, T)), single(small_config(4096, T));
    uint64_t state = seed + static_cast<uint64_t>(T);
    std::vector<kvx_seq_id_t> a_ids, b_ids;
    std::vector<bool> planned;  // windowed, or one of a fork pair
    kvx_seq_params_t windowed = kvx_seq_params_init();
    windowed.window_tokens = 2 * T + 1;
    windowed.sink_tokens = 1;
    for (int i = 0; i < 24; ++i) {
      const auto prompt = kvx::test::random_tokens(state, 1 + (state >> 40) % (5 * T), 50000);
      const kvx_seq_params_t* p = i % 5 == 4 ? &windowed : nullptr;
      std::vector<int64_t> slots(prompt.size());
      kvx_seq_id_t a = 0, b = 0;
      ASSERT_EQ(kvx_seq_create(batched, p, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &a, nullptr),
                KVX_OK) << kvx_last_error();
      ASSERT_EQ(kvx_seq_create(single, p, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &b, nullptr),
                KVX_OK) << kvx_last_error();
      a_ids.push_back(a);
      b_ids.push_back(b);
      planned.push_back(p != nullptr || i % 7 == 3);
      if (i % 7 == 3) {  // a fork pair appending in the same batch
        ASSERT_EQ(kvx_seq_fork(batched, a, &a), KVX_OK) << kvx_last_error();
        ASSERT_EQ(kvx_seq_fork(single, b, &b), KVX_OK) << kvx_last_error();
        a_ids.push_back(a);
        b_ids.push_back(b);
        planned.push_back(true);
      }
    }
    for (int step = 0; step < 3 * T + 2; ++step) {
      // Two steps in three leave the windows and forks out: they take the one-pass commit.
      std::vector<kvx_seq_id_t> a_step, b_step;
      for (size_t i = 0; i < a_ids.size(); ++i) {
        if (step % 3 != 0 && planned[i]) continue;
        a_step.push_back(a_ids[i]);
        b_step.push_back(b_ids[i]);
      }
      const auto toks = kvx::test::random_tokens(state, a_step.size(), 50000);
      std::vector<int64_t> a_slots(a_step.size(), -7), b_slots(b_step.size(), -7);
      ASSERT_EQ(kvx_seq_append_batch(batched, a_step.data(), static_cast<int64_t>(a_step.size()), toks.data(),
                                     a_slots.data(), nullptr), KVX_OK) << kvx_last_error();
      for (size_t i = 0; i < b_step.size(); ++i) {
        ASSERT_EQ(kvx_seq_append(single, b_step[i], &toks[i], 1, &b_slots[i], nullptr), KVX_OK) << kvx_last_error();
      }
      ASSERT_EQ(a_slots, b_slots) << "seed " << seed << " block_tokens " << T << " step " << step;
      ASSERT_EQ(a_ids, b_ids);
      ASSERT_EQ(fingerprint(batched, a_ids), fingerprint(single, b_ids))
          << "seed " << seed << " block_tokens " << T << " step " << step;
      ASSERT_EQ(batched.impl().check_invariants(), "") << "seed " << seed << " step " << step;
    }
    EXPECT_GT(metrics_of(batched).cow_copies, 0) << "the forks never copied: the planned path was not exercised";
  }
}

// The same with content that repeats (two token values, blocks of 2) and a
// pool small enough that allocations evict: a decode step's publishes then
// find their hashes cached (an idle duplicate is freed and reused) and its
// allocations evict, so the batch must keep the order of single appends.
TEST(ManagerBatch, MatchesSingleAppendsWithDuplicatesAndEvictions) {
  int64_t evictions = 0;
  for (uint64_t seed = 1; seed <= 12; ++seed) {
    ManagerHandle batched(small_config(90, 2)), single(small_config(90, 2));
    uint64_t state = seed * 0x9e3779b97f4a7c15ull;
    auto create_both = [&](size_t len, kvx_seq_id_t* a, kvx_seq_id_t* b) {
      const auto prompt = kvx::test::random_tokens(state, len, 2);
      std::vector<int64_t> slots(prompt.size());
      ASSERT_EQ(kvx_seq_create(batched, nullptr, prompt.data(), static_cast<int64_t>(len), slots.data(), a, nullptr),
                KVX_OK) << kvx_last_error();
      ASSERT_EQ(kvx_seq_create(single, nullptr, prompt.data(), static_cast<int64_t>(len), slots.data(), b, nullptr),
                KVX_OK) << kvx_last_error();
    };
    for (int k = 0; k < 10; ++k) {  // idle cached chains, about as many blocks as the pool
      kvx_seq_id_t a = 0, b = 0;
      create_both(10 + (state >> 41) % 15, &a, &b);
      ASSERT_EQ(kvx_seq_free(batched, a), KVX_OK);
      ASSERT_EQ(kvx_seq_free(single, b), KVX_OK);
    }
    std::vector<kvx_seq_id_t> a_ids(12), b_ids(12);
    for (size_t i = 0; i < a_ids.size(); ++i) create_both(1 + (state >> 43) % 5, &a_ids[i], &b_ids[i]);
    const int64_t evictions_before = metrics_of(batched).evictions_capacity;
    for (int step = 0; step < 8; ++step) {  // at most 12 x 7 = 84 blocks live: never out of blocks
      const auto toks = kvx::test::random_tokens(state, a_ids.size(), 2);
      std::vector<int64_t> a_slots(a_ids.size(), -7), b_slots(b_ids.size(), -7);
      ASSERT_EQ(kvx_seq_append_batch(batched, a_ids.data(), static_cast<int64_t>(a_ids.size()), toks.data(),
                                     a_slots.data(), nullptr), KVX_OK) << kvx_last_error();
      for (size_t i = 0; i < b_ids.size(); ++i) {
        ASSERT_EQ(kvx_seq_append(single, b_ids[i], &toks[i], 1, &b_slots[i], nullptr), KVX_OK) << kvx_last_error();
      }
      ASSERT_EQ(a_slots, b_slots) << "seed " << seed << " step " << step;
      ASSERT_EQ(fingerprint(batched, a_ids), fingerprint(single, b_ids)) << "seed " << seed << " step " << step;
      ASSERT_EQ(batched.impl().check_invariants(), "") << "seed " << seed << " step " << step;
    }
    evictions += metrics_of(batched).evictions_capacity - evictions_before;
  }
  EXPECT_GT(evictions, 0) << "no decode step evicted: the ordered commit was not exercised";
}

TEST(ManagerHash, KeysSeparateChains) {
  ManagerHandle m(small_config(32, 4));
  const auto prompt = iota_tokens(7, 9);
  kvx_seq_params_t salted = kvx_seq_params_init();
  salted.cache_salt = "s";
  salted.cache_salt_bytes = 1;
  kvx_seq_params_t adapter = kvx_seq_params_init();
  adapter.adapter_id = 3;
  const kvx_media_hash_t image = {5, 6, 5, 2};  // tokens 5..6: the second block
  kvx_seq_params_t media = kvx_seq_params_init();
  media.media = &image;
  media.num_media = 1;
  create(m, prompt);
  kvx_seq_match_t match{};
  create(m, prompt, &match, &salted);
  EXPECT_EQ(match.matched_tokens, 0);
  create(m, prompt, &match, &adapter);
  EXPECT_EQ(match.matched_tokens, 0);
  create(m, prompt, &match, &media);
  EXPECT_EQ(match.matched_tokens, 4);  // the image only enters the second block
  create(m, prompt, &match);
  EXPECT_EQ(match.matched_tokens, 8);
}

// ----------------------------------------------------- sequences, tables --

TEST(ManagerSeq, SlotsBlockTablesAndPrefixReuse) {
  ManagerHandle m(small_config(16, 4));
  const auto prompt = iota_tokens(10, 10);
  std::vector<int64_t> slots(10, -7);
  kvx_seq_id_t a = 0;
  kvx_seq_match_t match{-1, -1, -1};
  ASSERT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 10, slots.data(), &a, &match), KVX_OK);
  EXPECT_EQ(match.matched_tokens, 0);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(slots[i] % 4, i % 4);
    EXPECT_NE(slots[i] / 4, KVX_NULL_BLOCK);
    if (i % 4 != 0) {
      EXPECT_EQ(slots[i], slots[i - 1] + 1);
    }
  }
  // A second prompt sharing two blocks reuses them; by default the match
  // stops before the last token, so exactly 8 tokens full prompt match too.
  auto second = prompt;
  second.resize(8);
  second.push_back(99);
  kvx_seq_id_t b = 0;
  ASSERT_EQ(kvx_seq_create(m, nullptr, second.data(), 9, slots.data(), &b, &match), KVX_OK);
  EXPECT_EQ(match.matched_tokens, 8);
  EXPECT_EQ(match.matched_blocks, 2);
  kvx_seq_id_t c = create(m, std::vector<int32_t>(prompt.begin(), prompt.begin() + 8), &match);
  EXPECT_EQ(match.matched_tokens, 4);  // the last token is recomputed, so the second block is not reused

  const kvx_seq_id_t ids[3] = {a, b, c};
  kvx_block_table_export_t t = kvx_block_table_export_init();
  t.seq_ids = ids;
  t.num_seqs = 3;
  ASSERT_EQ(kvx_manager_block_table(m, &t), KVX_OK);
  EXPECT_EQ(t.max_blocks, 3);
  EXPECT_EQ(t.nnz, 3 + 3 + 2);
  std::vector<int32_t> table(12, -9), lens(3, -9);
  t.block_table = table.data();
  t.block_table_stride = 4;
  t.seq_lens = lens.data();
  ASSERT_EQ(kvx_manager_block_table(m, &t), KVX_OK);
  EXPECT_EQ(lens, (std::vector<int32_t>{10, 9, 8}));
  EXPECT_EQ(table[0], table[4]);  // shared first and second blocks
  EXPECT_EQ(table[1], table[5]);
  EXPECT_EQ(table[8], table[0]);
  EXPECT_NE(table[9], table[1]);
  EXPECT_EQ(table[3], KVX_NULL_BLOCK);  // padding
  EXPECT_EQ(table[10], KVX_NULL_BLOCK);

  kvx_block_table_export_t csr = kvx_block_table_export_init();
  csr.kind = KVX_PAGE_TABLE_CSR;
  csr.seq_ids = ids;
  csr.num_seqs = 3;
  std::vector<int32_t> indptr(4, -9), indices(8, -9), last(3, -9);
  csr.indptr = indptr.data();
  csr.indices = indices.data();
  csr.indices_capacity = 7;
  csr.last_page_len = last.data();
  EXPECT_EQ(kvx_manager_block_table(m, &csr), KVX_ERR_WORKSPACE_TOO_SMALL);
  csr.indices_capacity = 8;
  ASSERT_EQ(kvx_manager_block_table(m, &csr), KVX_OK);
  EXPECT_EQ(indptr, (std::vector<int32_t>{0, 3, 6, 8}));
  EXPECT_EQ(last, (std::vector<int32_t>{2, 1, 4}));
  EXPECT_EQ(indices[6], table[8]);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

TEST(ManagerSeq, ForkSharesAndCopiesOnWrite) {
  ManagerHandle m(small_config(16, 4));
  const kvx_seq_id_t a = create(m, iota_tokens(1, 6));
  kvx_seq_id_t b = 0;
  ASSERT_EQ(kvx_seq_fork(m, a, &b), KVX_OK);
  EXPECT_EQ(metrics_of(m).blocks_used, 2);  // fork allocates nothing
  const int32_t ta = 50, tb = 60;
  int64_t sa = -1, sb = -1, pending = -1;
  ASSERT_EQ(kvx_seq_append(m, b, &tb, 1, &sb, &pending), KVX_OK);
  EXPECT_EQ(pending, 1);
  const auto work = take_work(m);
  ASSERT_EQ(work.size(), 1u);
  EXPECT_EQ(work[0].direction, KVX_COPY_DEVICE_TO_DEVICE);
  EXPECT_EQ(work[0].dst, sb / 4);
  EXPECT_EQ(sb % 4, 2);
  // The original is now the only holder of its partial block: no copy.
  ASSERT_EQ(kvx_seq_append(m, a, &ta, 1, &sa, &pending), KVX_OK);
  EXPECT_EQ(pending, 0);
  EXPECT_EQ(sa / 4, work[0].src);
  EXPECT_EQ(m.impl().block_tokens_of(static_cast<int32_t>(sb / 4))[1], 6);  // the copied token
  EXPECT_EQ(metrics_of(m).cow_copies, 1);
  // A decode batch over both forks of a fresh fork pair copies once.
  kvx_seq_id_t c = 0;
  ASSERT_EQ(kvx_seq_fork(m, a, &c), KVX_OK);
  const kvx_seq_id_t batch[2] = {a, c};
  const int32_t toks[2] = {7, 8};
  int64_t slots[2];
  ASSERT_EQ(kvx_seq_append_batch(m, batch, 2, toks, slots, &pending), KVX_OK);
  EXPECT_EQ(pending, 1);
  EXPECT_NE(slots[0], slots[1]);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

TEST(ManagerSeq, PrefixHandlesOutliveTheirSequence) {
  ManagerHandle m(small_config(6, 2));
  const auto system = iota_tokens(3, 4);
  const kvx_seq_id_t a = create(m, system);
  kvx_prefix_id_t p = 0;
  ASSERT_EQ(kvx_prefix_cache(m, a, 4, &p), KVX_OK);
  ASSERT_EQ(kvx_seq_free(m, a), KVX_OK);
  // Fill the pool: the prefix's blocks are held, so they survive.
  const kvx_seq_id_t filler = create(m, iota_tokens(100, 6));
  EXPECT_EQ(metrics_of(m).blocks_free, 0);
  kvx_seq_id_t b = 0;
  ASSERT_EQ(kvx_prefix_attach(m, p, &b), KVX_OK);
  int64_t tokens = 0;
  ASSERT_EQ(kvx_seq_length(m, b, &tokens, nullptr), KVX_OK);
  EXPECT_EQ(tokens, 4);
  ASSERT_EQ(kvx_prefix_release(m, p), KVX_OK);
  EXPECT_EQ(kvx_prefix_release(m, p), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(metrics_of(m).num_prefixes, 0);
  (void)filler;
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// -------------------------------------------------------------- eviction --

// Pool of 7 usable blocks of 2 tokens; chains A and B of 3 blocks each are
// cached; a new 2-block prompt evicts two blocks chosen by the policy.
struct EvictionCase {
  kvx_eviction_policy_t policy;
  const char* expect_survivor;  // "A" or "B": whose chain keeps all three blocks
};

// Names the case in test lists (ctest shows parameter values).
void PrintTo(const EvictionCase& c, std::ostream* os) { *os << "policy=" << static_cast<int>(c.policy); }

class ManagerEviction : public ::testing::TestWithParam<EvictionCase> {};

TEST_P(ManagerEviction, PolicyPicksVictimsLeafFirst) {
  ManagerHandle m(small_config(8, 2, GetParam().policy));
  const auto chain_a = iota_tokens(100, 6), chain_b = iota_tokens(200, 6);
  kvx_seq_params_t low = kvx_seq_params_init(), high = kvx_seq_params_init();
  low.priority = 10;
  high.priority = 90;
  low.flags = high.flags = KVX_SEQ_MATCH_LAST_TOKEN;  // whole chains hit
  // B: high priority, hit twice (LFU, HYBRID favour it) but older (LRU evicts it).
  kvx_seq_id_t b = create(m, chain_b, nullptr, &high);
  ASSERT_EQ(kvx_seq_free(m, b), KVX_OK);
  for (int i = 0; i < 2; ++i) {
    kvx_manager_step(m, nullptr);
    b = create(m, chain_b, nullptr, &high);
    ASSERT_EQ(kvx_seq_free(m, b), KVX_OK);
  }
  kvx_manager_step(m, nullptr);
  const kvx_seq_id_t a = create(m, chain_a, nullptr, &low);
  ASSERT_EQ(kvx_seq_free(m, a), KVX_OK);
  kvx_manager_step(m, nullptr);
  create(m, iota_tokens(300, 3));  // needs 2 blocks: 1 free + 1 evicted
  create(m, iota_tokens(400, 2));  // 1 more evicted
  const bool a_survives = std::string(GetParam().expect_survivor) == "A";
  // Leaf first: the loser lost its tail blocks, keeping its head.
  EXPECT_EQ(device_match(m, chain_a), a_survives ? 6 : 2);
  EXPECT_EQ(device_match(m, chain_b), a_survives ? 2 : 6);
  EXPECT_EQ(metrics_of(m).evictions_capacity, 2);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

INSTANTIATE_TEST_SUITE_P(Policies, ManagerEviction,
                         ::testing::Values(EvictionCase{KVX_EVICTION_LRU, "A"}, EvictionCase{KVX_EVICTION_LFU, "B"},
                                           EvictionCase{KVX_EVICTION_PRIORITY, "B"},
                                           EvictionCase{KVX_EVICTION_HYBRID, "B"}),
                         [](const auto& p) { return std::to_string(static_cast<int>(p.param.policy)); });

TEST(ManagerEvictionPins, PinnedBlocksAreNeverEvicted) {
  ManagerHandle m(small_config(5, 2));
  const auto system = iota_tokens(1, 4);
  ASSERT_EQ(kvx_seq_free(m, create(m, system)), KVX_OK);
  int64_t pinned = 0;
  ASSERT_EQ(kvx_manager_pin(m, nullptr, system.data(), 4, &pinned), KVX_OK);
  EXPECT_EQ(pinned, 4);
  EXPECT_EQ(metrics_of(m).blocks_pinned, 2);
  // Two blocks remain; a 3-block prompt cannot fit and changes nothing.
  const std::string before = fingerprint(m, {});
  const auto big = iota_tokens(50, 6);
  int64_t slots[6];
  kvx_seq_id_t id = 0;
  EXPECT_EQ(kvx_seq_create(m, nullptr, big.data(), 6, slots, &id, nullptr), KVX_ERR_OUT_OF_BLOCKS);
  EXPECT_NE(std::string(kvx_last_error()).find("needs 3 blocks"), std::string::npos) << kvx_last_error();
  EXPECT_EQ(fingerprint(m, {}), before);
  // A pin is undone whole: a shorter or longer chain is not that pin.
  EXPECT_EQ(kvx_manager_unpin(m, nullptr, system.data(), 2), KVX_ERR_NOT_FOUND);
  ASSERT_EQ(kvx_manager_pin(m, nullptr, system.data(), 2, &pinned), KVX_OK);
  ASSERT_EQ(kvx_manager_unpin(m, nullptr, system.data(), 2), KVX_OK);
  EXPECT_EQ(kvx_manager_unpin(m, nullptr, system.data(), 2), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(metrics_of(m).blocks_pinned, 2);
  ASSERT_EQ(kvx_manager_unpin(m, nullptr, system.data(), 4), KVX_OK);
  EXPECT_EQ(kvx_manager_unpin(m, nullptr, system.data(), 4), KVX_ERR_NOT_FOUND);
  EXPECT_EQ(kvx_seq_create(m, nullptr, big.data(), 6, slots, &id, nullptr), KVX_OK);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

TEST(ManagerEvictionPins, ResetDropsTheCache) {
  ManagerHandle m(small_config(8, 2));
  const auto prompt = iota_tokens(1, 6);
  ASSERT_EQ(kvx_seq_free(m, create(m, prompt)), KVX_OK);
  const kvx_seq_id_t held = create(m, iota_tokens(40, 4));
  ASSERT_EQ(kvx_manager_pin(m, nullptr, prompt.data(), 6, nullptr), KVX_OK);
  ASSERT_EQ(kvx_manager_reset(m), KVX_OK);
  EXPECT_EQ(device_match(m, prompt), 0);
  EXPECT_EQ(device_match(m, iota_tokens(40, 4)), 0);  // held blocks stop being published
  const auto x = metrics_of(m);
  EXPECT_EQ(x.blocks_cached, 0);
  EXPECT_EQ(x.blocks_pinned, 0);
  EXPECT_EQ(x.blocks_used, 2);
  EXPECT_EQ(x.evictions_reset, 3);
  ASSERT_EQ(kvx_seq_free(m, held), KVX_OK);
  EXPECT_EQ(metrics_of(m).blocks_free, 7);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// ---------------------------------------------------------------- window --

TEST(ManagerWindow, ReleasesBlocksBetweenSinksAndWindow) {
  ManagerHandle m(small_config(32, 2));
  kvx_seq_params_t p = kvx_seq_params_init();
  p.window_tokens = 4;
  p.sink_tokens = 1;
  const kvx_seq_id_t s = create(m, iota_tokens(0, 3), nullptr, &p);
  for (int32_t t = 3; t < 12; ++t) {
    int64_t slot = -1;
    ASSERT_EQ(kvx_seq_append(m, s, &t, 1, &slot, nullptr), KVX_OK);
    ASSERT_NE(slot / 2, KVX_NULL_BLOCK);
  }
  // 12 tokens in 6 blocks; the last append's query at 11 saw [8, 11] and the
  // sink block 0; blocks 1..3 (tokens 2..7) are released.
  kvx_block_table_export_t t = kvx_block_table_export_init();
  t.seq_ids = &s;
  t.num_seqs = 1;
  int32_t row[6], len = 0;
  t.block_table = row;
  t.block_table_stride = 6;
  t.seq_lens = &len;
  ASSERT_EQ(kvx_manager_block_table(m, &t), KVX_OK);
  EXPECT_EQ(len, 12);
  EXPECT_NE(row[0], KVX_NULL_BLOCK);
  EXPECT_EQ(row[1], KVX_NULL_BLOCK);
  EXPECT_EQ(row[2], KVX_NULL_BLOCK);
  EXPECT_EQ(row[3], KVX_NULL_BLOCK);
  EXPECT_NE(row[4], KVX_NULL_BLOCK);
  EXPECT_NE(row[5], KVX_NULL_BLOCK);
  EXPECT_EQ(metrics_of(m).window_released, 3);
  EXPECT_EQ(metrics_of(m).blocks_used, 3);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// --------------------------------------------------------------- offload --

TEST(ManagerOffload, EvictionOffloadsAndAHitReloads) {
  kvx_manager_config_t c = small_config(5, 2);
  c.host_blocks = 4;
  c.thrash_window = 10;
  ManagerHandle m(c);
  const auto prompt = iota_tokens(1, 6);
  ASSERT_EQ(kvx_seq_free(m, create(m, prompt)), KVX_OK);
  const kvx_seq_id_t other = create(m, iota_tokens(70, 8));  // evicts all 3 (4 needed, 1 free)
  auto work = take_work(m);
  ASSERT_EQ(work.size(), 3u);
  for (const auto& w : work) EXPECT_EQ(w.direction, KVX_COPY_DEVICE_TO_HOST);
  EXPECT_EQ(metrics_of(m).blocks_host, 3);
  ASSERT_EQ(kvx_seq_free(m, other), KVX_OK);
  kvx_manager_step(m, nullptr);
  kvx_seq_match_t match{};
  create(m, prompt, &match);
  EXPECT_EQ(match.matched_tokens, 4);  // the last token is recomputed
  EXPECT_EQ(match.reloaded_blocks, 2);
  work = take_work(m);
  int reloads = 0;
  for (const auto& w : work) reloads += w.direction == KVX_COPY_HOST_TO_DEVICE;
  EXPECT_EQ(reloads, 2);
  const auto x = metrics_of(m);
  EXPECT_EQ(x.reloads, 2);
  EXPECT_GE(x.thrashing, 2);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// --------------------------------------------------------------- metrics --

TEST(ManagerMetrics, HitRatesAndClock) {
  uint64_t clock = 100;
  kvx_manager_config_t c = small_config(16, 4);
  c.clock = [](void* user) { return *static_cast<uint64_t*>(user); };
  c.clock_user = &clock;
  ManagerHandle m(c);
  const auto prompt = iota_tokens(1, 9);
  create(m, prompt);
  create(m, prompt);
  const auto x = metrics_of(m);
  EXPECT_EQ(x.step, 100);
  EXPECT_EQ(x.lookup_blocks, 4);
  EXPECT_EQ(x.hit_blocks, 2);
  EXPECT_EQ(x.lookup_tokens, 18);
  EXPECT_EQ(x.hit_tokens, 8);
  EXPECT_EQ(x.num_seqs, 2);
  EXPECT_EQ(x.blocks_used + x.blocks_cached + x.blocks_free, x.blocks_total);
}

// --------------------------------------------------------- host memory --

TEST(ManagerMemory, HostPoolCommitsOnFirstUseAndTrims) {
  kvx_manager_config_t c = small_config(64, 4);
  c.memory = KVX_POOL_MEMORY_HOST;
  c.bytes_per_block = 8192;
  ManagerHandle m(c);
  auto x = metrics_of(m);
  EXPECT_EQ(x.reserved_bytes, 64u * 8192u);
  EXPECT_EQ(x.committed_bytes, 8192u);  // the null block only
  void* base = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &base), KVX_OK);
  ASSERT_NE(base, nullptr);
  std::vector<int64_t> slots(40);
  const auto prompt = iota_tokens(5, 40);
  kvx_seq_id_t id = 0;
  ASSERT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 40, slots.data(), &id, nullptr), KVX_OK);
  x = metrics_of(m);
  EXPECT_EQ(x.committed_bytes, 11u * 8192u);
  // Every slot's bytes are writable.
  for (const int64_t s : slots) std::memset(static_cast<char*>(base) + s / 4 * 8192, 0x5a, 8192);
  ASSERT_EQ(kvx_seq_free(m, id), KVX_OK);
  ASSERT_EQ(kvx_manager_reset(m), KVX_OK);
  uint64_t released = 0;
  ASSERT_EQ(kvx_manager_trim(m, &released), KVX_OK);
  EXPECT_EQ(released, 10u * 8192u);
  EXPECT_EQ(metrics_of(m).committed_bytes, 8192u);
  EXPECT_EQ(m.impl().check_invariants(), "");
}

// A growable pool: the range is reserved for max_blocks, the capacity rises
// in place (ids and addresses stay), the new ids are committed on first use,
// and a refused grow changes nothing.
TEST(ManagerMemory, HostPoolGrowsInPlace) {
  kvx_manager_config_t c = small_config(4, 4);
  c.memory = KVX_POOL_MEMORY_HOST;
  c.bytes_per_block = 8192;
  c.max_blocks = 16;
  ManagerHandle m(c);
  void* base = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &base), KVX_OK);
  auto x = metrics_of(m);
  EXPECT_EQ(x.reserved_bytes, 16u * 8192u);
  EXPECT_EQ(x.committed_bytes, 8192u);
  EXPECT_EQ(x.blocks_total, 3);
  // Three blocks hold the 12 tokens: the pool is full.
  std::vector<int64_t> slots(16);
  const auto prompt = iota_tokens(3, 12);
  kvx_seq_id_t id = 0;
  ASSERT_EQ(kvx_seq_create(m, nullptr, prompt.data(), 12, slots.data(), &id, nullptr), KVX_OK);
  const int32_t more[4] = {7, 8, 9, 10};
  EXPECT_EQ(kvx_seq_append(m, id, more, 1, slots.data(), nullptr), KVX_ERR_OUT_OF_BLOCKS);
  const std::string before = fingerprint(m, {id});
  for (const int64_t bad : {int64_t{3}, int64_t{17}, int64_t{-1}}) {
    EXPECT_EQ(kvx_manager_grow(m, bad), KVX_ERR_INVALID_ARGUMENT) << bad;
    EXPECT_NE(std::string(kvx_last_error()).find("num_blocks"), std::string::npos) << kvx_last_error();
    EXPECT_EQ(fingerprint(m, {id}), before);
    EXPECT_EQ(metrics_of(m).blocks_total, 3);
  }
  EXPECT_EQ(kvx_manager_grow(m, 4), KVX_OK);  // the capacity itself: nothing changes
  EXPECT_EQ(fingerprint(m, {id}), before);
  ASSERT_EQ(kvx_manager_grow(m, 10), KVX_OK);
  // The sequence is as it was (the fingerprint's metrics part changes: the capacity).
  EXPECT_EQ(fingerprint(m, {id}).substr(sizeof(kvx_manager_metrics_t)), before.substr(sizeof(kvx_manager_metrics_t)));
  void* base_after = nullptr;
  ASSERT_EQ(kvx_manager_pool_base(m, KVX_POOL_TIER_DEVICE, &base_after), KVX_OK);
  EXPECT_EQ(base_after, base);
  x = metrics_of(m);
  EXPECT_EQ(x.blocks_total, 9);
  EXPECT_EQ(x.blocks_free, 6);
  EXPECT_EQ(x.committed_bytes, 4u * 8192u);  // nothing committed by the grow itself
  EXPECT_EQ(x.reserved_bytes, 16u * 8192u);
  // The append now takes a new id; its bytes are committed and writable.
  ASSERT_EQ(kvx_seq_append(m, id, more, 4, slots.data(), nullptr), KVX_OK);
  for (int i = 0; i < 4; ++i) {
    EXPECT_GE(slots[i] / 4, 4) << "a block id of the grown range";
    std::memset(static_cast<char*>(base) + slots[i] / 4 * 8192, 0x5a, 8192);
  }
  EXPECT_EQ(metrics_of(m).committed_bytes, 5u * 8192u);
  EXPECT_EQ(m.impl().check_invariants(), "");
  // Cached blocks are kept while grown ids are free: a new prompt takes
  // fresh ids, nothing is evicted.
  ASSERT_EQ(kvx_seq_free(m, id), KVX_OK);
  const auto other = iota_tokens(100, 16);
  kvx_seq_id_t id2 = 0;
  ASSERT_EQ(kvx_seq_create(m, nullptr, other.data(), 16, slots.data(), &id2, nullptr), KVX_OK);
  x = metrics_of(m);
  EXPECT_EQ(x.evictions_capacity, 0);
  EXPECT_EQ(x.blocks_cached, 4);
  EXPECT_EQ(m.impl().check_invariants(), "");
  // Up to max_blocks, and no further.
  ASSERT_EQ(kvx_manager_grow(m, 16), KVX_OK);
  EXPECT_EQ(kvx_manager_grow(m, 17), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("config.max_blocks"), std::string::npos) << kvx_last_error();
  EXPECT_EQ(metrics_of(m).blocks_total, 15);
}

// Without max_blocks the capacity is fixed.
TEST(ManagerMemory, FixedPoolRefusesToGrow) {
  ManagerHandle m(small_config(8, 4));
  EXPECT_EQ(kvx_manager_grow(m, 8), KVX_OK);
  EXPECT_EQ(kvx_manager_grow(m, 9), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(kvx_last_error()).find("config.max_blocks"), std::string::npos) << kvx_last_error();
  EXPECT_EQ(kvx_manager_grow(nullptr, 9), KVX_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(metrics_of(m).blocks_total, 7);
}

}  // namespace
