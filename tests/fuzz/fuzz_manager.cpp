// libFuzzer target: arbitrary bytes drive the block manager's C ABI, valid
// calls and invalid ones alike. Every internal invariant is checked after
// every call, and a call refused for lack of blocks must change nothing.
// The same entry runs the checked-in corpus in ordinary builds
// (fuzz_replay_main.cpp).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kvx/manager.h"
#include "manager/manager.hpp"

namespace {

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  uint8_t u8() { return p_ < end_ ? *p_++ : 0; }
  uint32_t u32() {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(u8()) << (8 * i);
    return v;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

[[noreturn]] void die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "fuzz_manager: %s: %s\n", what, detail.c_str());
  std::abort();
}

void expect(bool ok, const char* what) {
  if (!ok) die(what, kvx_last_error());
}

std::string snapshot(kvx_manager_t m) {
  kvx_manager_metrics_t x = kvx_manager_metrics_init();
  expect(kvx_manager_get_metrics(m, &x) == KVX_OK, "metrics");
  return std::string(reinterpret_cast<const char*>(&x), sizeof x);
}

// A status that is never acceptable from any entry point.
void expect_status(kvx_status_t st, const std::string& before, kvx_manager_t m) {
  if (st == KVX_ERR_INTERNAL || st == KVX_ERR_OUT_OF_MEMORY) die("unexpected status", kvx_last_error());
  if (st != KVX_OK && snapshot(m) != before) die("a refused call changed the manager", kvx_last_error());
  const std::string broken = m->impl->check_invariants();
  if (!broken.empty()) die("invariant", broken);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  kvx_manager_config_t c = kvx_manager_config_init();
  c.num_blocks = 2 + in.u8() % 48;
  c.block_tokens = 1 + in.u8() % 8;
  c.eviction = static_cast<kvx_eviction_policy_t>(in.u8() % 6);  // 0 and 5 are invalid
  c.host_blocks = in.u8() % 6;
  c.thrash_window = in.u8() % 8;
  // Growable (up to 28 more blocks) when the window is even: no extra byte,
  // so the corpus keeps its meaning.
  c.max_blocks = c.thrash_window % 2 == 0 ? c.num_blocks + 4 * c.thrash_window : 0;
  kvx_manager_t m = nullptr;
  if (kvx_manager_create(&c, &m) != KVX_OK) {
    expect(c.eviction == 0 || c.eviction == 5, "create refused a valid config");
    return 0;
  }
  std::vector<kvx_seq_id_t> ids;
  std::vector<kvx_prefix_id_t> prefixes;
  std::vector<int32_t> tokens;
  std::vector<int64_t> slots;
  int ops = 0;
  while (!in.empty() && ops++ < 256) {
    const uint8_t op = in.u8();
    const uint32_t a = in.u32();
    // Mostly live ids, sometimes anything at all.
    auto pick = [&](const std::vector<int64_t>& v) -> int64_t {
      if (v.empty() || (a & 0xf) == 0xf) return static_cast<int64_t>(a) * 977;
      return v[(a >> 4) % v.size()];
    };
    const size_t n = in.u8() % 24;
    tokens.resize(n);
    for (auto& t : tokens) t = in.u8() % 5;
    slots.assign(n + 1, -1);
    kvx_seq_params_t p = kvx_seq_params_init();
    p.adapter_id = (a >> 8) % 2;
    if ((a >> 10) % 4 == 0) {
      p.window_tokens = (a >> 12) % 9;
      p.sink_tokens = (a >> 16) % 3;
    }
    if ((a >> 20) % 5 == 0) p.flags = KVX_SEQ_MATCH_LAST_TOKEN;
    if ((a >> 24) % 31 == 0) p.priority = 200;  // invalid
    const std::string before = snapshot(m);
    kvx_status_t st = KVX_OK;
    switch (op % 12) {
      case 0:
      case 1: {
        kvx_seq_id_t id = 0;
        st = kvx_seq_create(m, &p, tokens.data(), static_cast<int64_t>(n), slots.data(), &id, nullptr);
        if (st == KVX_OK) ids.push_back(id);
        break;
      }
      case 2:
      case 3:
        st = kvx_seq_append(m, pick(ids), tokens.data(), static_cast<int64_t>(n), slots.data(), nullptr);
        break;
      case 4: {
        std::vector<kvx_seq_id_t> batch;
        for (size_t i = 0; i < ids.size() && i < 32; ++i) {
          if ((a >> i) & 1u) batch.push_back(ids[i]);
        }
        tokens.resize(batch.size());
        slots.resize(batch.size() + 1);
        st = kvx_seq_append_batch(m, batch.data(), static_cast<int64_t>(batch.size()), tokens.data(), slots.data(),
                                  nullptr);
        break;
      }
      case 5: {
        kvx_seq_id_t id = 0;
        st = kvx_seq_fork(m, pick(ids), &id);
        if (st == KVX_OK) ids.push_back(id);
        break;
      }
      case 6: {
        const kvx_seq_id_t id = pick(ids);
        st = kvx_seq_free(m, id);
        if (st == KVX_OK) std::erase(ids, id);
        break;
      }
      case 7:
        st = (a & 1) ? kvx_manager_pin(m, &p, tokens.data(), static_cast<int64_t>(n), nullptr)
                     : kvx_manager_unpin(m, &p, tokens.data(), static_cast<int64_t>(n));
        break;
      case 8: {
        kvx_prefix_id_t pid = 0;
        kvx_seq_id_t id = 0;
        if ((a >> 4) % 3 == 0) {
          st = kvx_prefix_cache(m, pick(ids), static_cast<int64_t>(n), &pid);
          if (st == KVX_OK) prefixes.push_back(pid);
        } else if ((a >> 4) % 3 == 1) {
          st = kvx_prefix_attach(m, pick(prefixes), &id);
          if (st == KVX_OK) ids.push_back(id);
        } else {
          pid = pick(prefixes);
          st = kvx_prefix_release(m, pid);
          if (st == KVX_OK) std::erase(prefixes, pid);
        }
        break;
      }
      case 9: {
        kvx_copy_t work[4];
        int64_t got = 0;
        st = kvx_manager_take_work(m, work, a % 5, &got);
        break;
      }
      case 10:
        // A grow to any capacity: refused below the capacity or past max_blocks.
        st = (a % 7 == 0)   ? kvx_manager_reset(m)
             : (a % 7 == 1) ? kvx_manager_grow(m, static_cast<int64_t>((a >> 8) % 96) - 8)
                            : kvx_manager_step(m, nullptr);
        break;
      default: {
        kvx_block_table_export_t t = kvx_block_table_export_init();
        t.kind = (a & 1) ? KVX_PAGE_TABLE_CSR : KVX_PAGE_TABLE_DENSE;
        t.seq_ids = ids.data();
        t.num_seqs = static_cast<int64_t>(ids.size());
        // Buffers as a caller sizes them: from the size query.
        st = kvx_manager_block_table(m, &t);
        if (st != KVX_OK) break;
        const int64_t stride = (a >> 8) % 8;
        std::vector<int32_t> table(static_cast<size_t>(t.num_seqs * std::max(stride, t.max_blocks) + t.nnz + 1));
        std::vector<int32_t> lens(ids.size() + 1), indptr(ids.size() + 1);
        t.block_table = t.indices = table.data();
        t.block_table_stride = stride;
        t.indices_capacity = static_cast<int64_t>(table.size());
        t.seq_lens = t.last_page_len = lens.data();
        t.indptr = indptr.data();
        st = kvx_manager_block_table(m, &t);
        break;
      }
    }
    expect_status(st, before, m);
  }
  for (const kvx_prefix_id_t pid : prefixes) expect(kvx_prefix_release(m, pid) == KVX_OK, "release");
  for (const kvx_seq_id_t id : ids) expect(kvx_seq_free(m, id) == KVX_OK, "free");
  expect(kvx_manager_reset(m) == KVX_OK, "reset");
  kvx_manager_metrics_t x = kvx_manager_metrics_init();
  expect(kvx_manager_get_metrics(m, &x) == KVX_OK, "metrics");
  if (x.blocks_free != x.blocks_total) die("leak", std::to_string(x.blocks_total - x.blocks_free) + " blocks");
  kvx_manager_destroy(m);
  return 0;
}
