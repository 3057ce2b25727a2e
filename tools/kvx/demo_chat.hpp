// kvx demo --scenario chat: a synthetic multi-user chat workload through the
// block manager and the CPU attention ops, once per eviction policy.
#pragma once

#include <cstdint>

namespace kvx::tool {

struct ChatOptions {
  int64_t users = 32;             // conversations
  int64_t turns = 4;              // turns per conversation
  int64_t system_prompts = 3;     // shared system prompts
  int64_t system_tokens = 96;
  int64_t message_tokens = 24;    // user tokens per turn
  int64_t reply_tokens = 16;      // decoded tokens per turn
  int64_t batch = 8;              // conversations served together
  int64_t block_tokens = 16;
  int64_t pool_blocks = 160;      // device pool: a fraction of the workload (32 x 16 blocks)
  int64_t host_blocks = 64;       // offload tier; 0 = none
  int64_t kv_heads = 2;
  int64_t q_heads = 4;
  int64_t head_dim = 32;
  int64_t checks_per_step = 1;    // decode rows compared with the float64 reference per step
  uint64_t seed = 1;
};

// Runs the scenario for LRU, LFU, PRIORITY and HYBRID and prints their
// figures side by side. Returns 0 when every attention check passed.
int run_chat_scenario(const ChatOptions& options);

}  // namespace kvx::tool
