// manager.h promises that distinct managers may be used from different
// threads at once (a manager itself is not thread-safe): each thread here
// owns a manager and drives it through every kind of call, while all of them
// share the library's globals (last-error slots, the hash function). Run
// under ThreadSanitizer by the tsan preset (ctest -L manager).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "manager_test_util.hpp"

namespace {

using kvx::test::ManagerHandle;
using kvx::test::small_config;

// One thread's work; returns "" or the first thing that went wrong.
std::string drive(uint64_t seed, uint64_t* out_hash) {
  ManagerHandle m(small_config(64, 4));
  uint64_t state = seed;
  const auto prompt = kvx::test::random_tokens(state, 18, 50);  // shared by every sequence of this thread
  std::vector<kvx_seq_id_t> ids;
  for (int round = 0; round < 40; ++round) {
    std::vector<int64_t> slots(prompt.size());
    kvx_seq_id_t id = 0;
    if (kvx_seq_create(m, nullptr, prompt.data(), 18, slots.data(), &id, nullptr) != KVX_OK) return kvx_last_error();
    ids.push_back(id);
    if (round % 3 == 0) {
      kvx_seq_id_t child = 0;
      if (kvx_seq_fork(m, id, &child) != KVX_OK) return kvx_last_error();
      ids.push_back(child);
    }
    const auto toks = kvx::test::random_tokens(state, ids.size(), 50);
    std::vector<int64_t> out(ids.size());
    if (kvx_seq_append_batch(m, ids.data(), static_cast<int64_t>(ids.size()), toks.data(), out.data(), nullptr) !=
        KVX_OK) {
      return kvx_last_error();
    }
    // A refusal sets this thread's last error, and only this thread's.
    if (kvx_seq_free(m, -1) != KVX_ERR_NOT_FOUND) return "a bad id was accepted";
    if (std::string(kvx_last_error()).find("seq") == std::string::npos) return "last error lost: " + std::string(kvx_last_error());
    while (ids.size() > 6) {
      if (kvx_seq_free(m, ids.front()) != KVX_OK) return kvx_last_error();
      ids.erase(ids.begin());
    }
    if (round % 10 == 9 && kvx_manager_reset(m) != KVX_OK) return kvx_last_error();
    const std::string broken = m.impl().check_invariants();
    if (!broken.empty()) return broken;
  }
  uint64_t h[2] = {0, 0};
  if (kvx_block_hash(0, 1, nullptr, nullptr, prompt.data(), 4, 0, h) != KVX_OK) return kvx_last_error();
  *out_hash = h[0];
  return "";
}

TEST(ManagerThreads, DistinctManagersRunConcurrently) {
  constexpr int kThreads = 4;
  std::vector<std::string> errors(kThreads);
  std::vector<uint64_t> hashes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { errors[t] = drive(0x7ead0000u + static_cast<uint64_t>(t), &hashes[t]); });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t << " (seed " << 0x7ead0000u + t << ")";
  // Each thread hashed its own prompt's first block: the same function of different tokens.
  uint64_t again = 0;
  ASSERT_EQ(drive(0x7ead0000u, &again), "");
  EXPECT_EQ(again, hashes[0]);
}

}  // namespace
