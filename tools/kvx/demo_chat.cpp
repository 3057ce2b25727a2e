// kvx demo --scenario chat (demo_chat.hpp). Every conversation shares one of
// a few system prompts and grows turn by turn; the device pool holds a
// fraction of the workload, so the policies differ in what they keep. The
// K/V of a token is a fixed function of (token id, position), so a prefix
// hit is exact and every decode row can be checked against a float64
// attention over the conversation's dense history.
#include "demo_chat.hpp"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "kvx/manager.h"
#include "kvx/ops.h"

namespace kvx::tool {
namespace {

void check(kvx_status_t st, const char* what) {
  if (st != KVX_OK) throw std::runtime_error(fmt::format("{}: {} ({})", what, kvx_status_string(st), kvx_last_error()));
}

// A value in [-1, 1) determined by its coordinates only.
float kv_value(int32_t token, int64_t position, int64_t kv, int64_t head, int64_t dim) {
  uint64_t x = static_cast<uint64_t>(static_cast<uint32_t>(token)) * 0x9E3779B97F4A7C15ull ^
               static_cast<uint64_t>(position) * 0xC2B2AE3D27D4EB4Full ^
               static_cast<uint64_t>(kv * 131 + head * 17 + dim) * 0x165667B19E3779F9ull;
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  x ^= x >> 29;
  return static_cast<float>(static_cast<double>(x >> 40) / static_cast<double>(1ull << 23) - 1.0);
}

struct PolicyResult {
  const char* name;
  kvx_manager_metrics_t metrics;
  double seconds = 0;        // the whole run, reference checks included
  double serve_seconds = 0;  // decode steps: manager, copies, append, attention
  int64_t decoded = 0;
  int64_t checks = 0;
  int64_t failures = 0;
  double worst_error = 0;
};

class ChatRun {
 public:
  ChatRun(const ChatOptions& o, kvx_eviction_policy_t policy) : o_(o) {
    kvx_preset_params_t pp = kvx_preset_params_init();
    pp.dtype = KVX_DTYPE_F32;
    pp.memory = KVX_MEMORY_HOST;
    pp.num_layers = 1;
    pp.num_blocks = o.pool_blocks + 1;
    pp.block_tokens = o.block_tokens;
    pp.num_kv_heads = o.kv_heads;
    pp.head_dim = o.head_dim;
    check(kvx_layout_preset(KVX_PRESET_UNIVERSAL, &pp, &layout_), "kvx_layout_preset");
    block_bytes_ = layout_.plane[0].block_stride_bytes;
    kvx_manager_config_t c = kvx_manager_config_init();
    c.num_blocks = o.pool_blocks + 1;
    c.block_tokens = o.block_tokens;
    c.bytes_per_block = block_bytes_;
    c.memory = KVX_POOL_MEMORY_HOST;
    c.eviction = policy;
    c.host_blocks = o.host_blocks;
    c.thrash_window = 32;
    check(kvx_manager_create(&c, &m_), "kvx_manager_create");
    void* base = nullptr;
    check(kvx_manager_pool_base(m_, KVX_POOL_TIER_DEVICE, &base), "pool base");
    check(kvx_manager_pool_base(m_, KVX_POOL_TIER_HOST, &host_base_), "host base");
    layout_.base = base;
    // One CPU thread: the scenario measures the manager, not the machine's cores.
    exec_.backend = KVX_BACKEND_CPU;
    exec_.num_threads = 1;
    layout_.null_block = KVX_NULL_BLOCK;
    device_base_ = static_cast<char*>(base);
  }
  ChatRun(const ChatRun&) = delete;
  ChatRun& operator=(const ChatRun&) = delete;
  ~ChatRun() { kvx_manager_destroy(m_); }

  PolicyResult run(const char* name) {
    PolicyResult r{name, kvx_manager_metrics_init()};
    std::mt19937_64 rng(o_.seed);
    auto random_tokens = [&](int64_t n) {
      std::vector<int32_t> t(static_cast<size_t>(n));
      for (auto& v : t) v = static_cast<int32_t>(rng() % 32000);
      return t;
    };
    std::vector<std::vector<int32_t>> systems;
    for (int64_t s = 0; s < o_.system_prompts; ++s) systems.push_back(random_tokens(o_.system_tokens));
    std::vector<std::vector<int32_t>> history(static_cast<size_t>(o_.users));
    for (int64_t u = 0; u < o_.users; ++u) history[u] = systems[u % o_.system_prompts];
    const auto start = std::chrono::steady_clock::now();
    for (int64_t turn = 0; turn < o_.turns; ++turn) {
      for (int64_t first = 0; first < o_.users; first += o_.batch) {
        const int64_t last = std::min(o_.users, first + o_.batch);
        std::vector<kvx_seq_id_t> ids;
        for (int64_t u = first; u < last; ++u) {
          const auto message = random_tokens(o_.message_tokens);
          history[u].insert(history[u].end(), message.begin(), message.end());
          ids.push_back(admit(history[u], u));
        }
        for (int64_t step = 0; step < o_.reply_tokens; ++step) {
          std::vector<int32_t> next = random_tokens(static_cast<int64_t>(ids.size()));
          decode_step(ids, next, history, first, rng, r);
          check(kvx_manager_step(m_, nullptr), "step");
        }
        for (const kvx_seq_id_t id : ids) check(kvx_seq_free(m_, id), "kvx_seq_free");
      }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    check(kvx_manager_get_metrics(m_, &r.metrics), "metrics");
    return r;
  }

 private:
  // Creates the sequence of a prompt and writes the K/V the cache lacks.
  kvx_seq_id_t admit(const std::vector<int32_t>& prompt, int64_t user) {
    kvx_seq_params_t p = kvx_seq_params_init();
    p.priority = user % o_.system_prompts == 0 ? 80 : 20;  // one tenant pays for retention
    std::vector<int64_t> slots(prompt.size());
    kvx_seq_id_t id = 0;
    kvx_seq_match_t match{};
    check(kvx_seq_create(m_, &p, prompt.data(), static_cast<int64_t>(prompt.size()), slots.data(), &id, &match),
          "kvx_seq_create");
    execute_work();
    write_kv(prompt, match.matched_tokens, static_cast<int64_t>(prompt.size()), slots.data() + match.matched_tokens);
    return id;
  }

  // The copy work of the manager, done on the host pools.
  void execute_work() {
    int64_t n = 0;
    check(kvx_manager_take_work(m_, nullptr, 0, &n), "take work");
    std::vector<kvx_copy_t> work(static_cast<size_t>(n));
    check(kvx_manager_take_work(m_, work.data(), n, &n), "take work");
    char* host = static_cast<char*>(host_base_);
    for (const kvx_copy_t& w : work) {
      char* dev_src = device_base_ + w.src * block_bytes_;
      char* dev_dst = device_base_ + w.dst * block_bytes_;
      if (w.direction == KVX_COPY_DEVICE_TO_DEVICE) std::memcpy(dev_dst, dev_src, static_cast<size_t>(block_bytes_));
      if (w.direction == KVX_COPY_DEVICE_TO_HOST) {
        std::memcpy(host + w.dst * block_bytes_, dev_src, static_cast<size_t>(block_bytes_));
      }
      if (w.direction == KVX_COPY_HOST_TO_DEVICE) {
        std::memcpy(dev_dst, host + w.src * block_bytes_, static_cast<size_t>(block_bytes_));
      }
    }
  }

  void write_kv(const std::vector<int32_t>& tokens, int64_t begin, int64_t end, const int64_t* slots) {
    const int64_t n = end - begin;
    if (n <= 0) return;
    const int64_t H = o_.kv_heads, D = o_.head_dim;
    std::vector<float> k(static_cast<size_t>(n * H * D)), v(k.size());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < H; ++h) {
        for (int64_t d = 0; d < D; ++d) {
          const size_t at = static_cast<size_t>((i * H + h) * D + d);
          k[at] = kv_value(tokens[begin + i], begin + i, 0, h, d);
          v[at] = kv_value(tokens[begin + i], begin + i, 1, h, d);
        }
      }
    }
    kvx_append_args_t a = kvx_append_args_init();
    a.cache = &layout_;
    a.k = tensor(k.data(), n, H);
    a.v = tensor(v.data(), n, H);
    a.slot_mapping = slots;
    check(kvx_append(&a, &exec_), "kvx_append");
  }

  kvx_tensor_t tensor(float* data, int64_t rows, int64_t heads) const {
    kvx_tensor_t t{};
    t.data = data;
    t.dtype = KVX_DTYPE_F32;
    t.memory = KVX_MEMORY_HOST;
    t.num_tokens = rows;
    t.num_heads = heads;
    t.head_dim = o_.head_dim;
    t.head_stride_bytes = o_.head_dim * 4;
    t.token_stride_bytes = heads * o_.head_dim * 4;
    return t;
  }

  void decode_step(const std::vector<kvx_seq_id_t>& ids, const std::vector<int32_t>& next,
                   std::vector<std::vector<int32_t>>& history, int64_t first_user, std::mt19937_64& rng,
                   PolicyResult& r) {
    const auto served = std::chrono::steady_clock::now();
    const int64_t B = static_cast<int64_t>(ids.size());
    std::vector<int64_t> slots(static_cast<size_t>(B));
    check(kvx_seq_append_batch(m_, ids.data(), B, next.data(), slots.data(), nullptr), "kvx_seq_append_batch");
    execute_work();
    for (int64_t b = 0; b < B; ++b) {
      auto& h = history[first_user + b];
      h.push_back(next[b]);
      write_kv(h, static_cast<int64_t>(h.size()) - 1, static_cast<int64_t>(h.size()), &slots[b]);
    }
    r.decoded += B;
    // The batch's attention over the paged cache.
    kvx_block_table_export_t t = kvx_block_table_export_init();
    t.seq_ids = ids.data();
    t.num_seqs = B;
    check(kvx_manager_block_table(m_, &t), "block table size");
    std::vector<int32_t> table(static_cast<size_t>(B * t.max_blocks)), lens(static_cast<size_t>(B));
    t.block_table = table.data();
    t.block_table_stride = t.max_blocks;
    t.seq_lens = lens.data();
    check(kvx_manager_block_table(m_, &t), "block table");
    kvx_page_table_t pt = kvx_page_table_init();
    pt.kind = KVX_PAGE_TABLE_DENSE;
    pt.memory = KVX_MEMORY_HOST;
    pt.num_seqs = B;
    pt.block_table = table.data();
    pt.block_table_stride = t.max_blocks;
    pt.max_blocks = t.max_blocks;
    pt.seq_lens = lens.data();
    const int64_t QH = o_.q_heads, D = o_.head_dim;
    std::uniform_real_distribution<float> uni(-1.f, 1.f);
    std::vector<float> q(static_cast<size_t>(B * QH * D)), out(q.size(), NAN);
    for (auto& x : q) x = uni(rng);
    kvx_attention_args_t a = kvx_attention_args_init();
    a.cache = &layout_;
    a.page_table = &pt;
    a.q = tensor(q.data(), B, QH);
    a.out = tensor(out.data(), B, QH);
    check(kvx_attention_decode(&a, &exec_), "kvx_attention_decode");
    r.serve_seconds += seconds_since(served);
    for (int64_t c = 0; c < std::min(o_.checks_per_step, B); ++c) {
      const int64_t b = static_cast<int64_t>(rng() % static_cast<uint64_t>(B));
      const double err = check_row(history[first_user + b], q.data() + b * QH * D, out.data() + b * QH * D);
      ++r.checks;
      r.worst_error = std::max(r.worst_error, err);
      if (!(err <= 1e-5)) ++r.failures;
    }
  }

  // max|out - ref| / max|ref| of one decode row against float64 attention
  // over the dense history.
  double check_row(const std::vector<int32_t>& tokens, const float* q, const float* out) const {
    const int64_t QH = o_.q_heads, H = o_.kv_heads, D = o_.head_dim, n = static_cast<int64_t>(tokens.size());
    double worst = 0, peak = 0;
    for (int64_t qh = 0; qh < QH; ++qh) {
      const int64_t kh = qh / (QH / H);
      std::vector<double> logits(static_cast<size_t>(n));
      double top = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        double dot = 0;
        for (int64_t d = 0; d < D; ++d) dot += static_cast<double>(q[qh * D + d]) * kv_value(tokens[j], j, 0, kh, d);
        logits[j] = dot / std::sqrt(static_cast<double>(D));
        top = std::max(top, logits[j]);
      }
      double sum = 0;
      for (auto& l : logits) sum += (l = std::exp(l - top));
      for (int64_t d = 0; d < D; ++d) {
        double ref = 0;
        for (int64_t j = 0; j < n; ++j) ref += logits[j] / sum * kv_value(tokens[j], j, 1, kh, d);
        worst = std::max(worst, std::abs(static_cast<double>(out[qh * D + d]) - ref));
        peak = std::max(peak, std::abs(ref));
      }
    }
    return worst / std::max(peak, 1e-30);
  }

  static double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  }

  ChatOptions o_;
  kvx_exec_t exec_ = kvx_exec_init();
  kvx_layout_t layout_ = kvx_layout_init();
  kvx_manager_t m_ = nullptr;
  char* device_base_ = nullptr;
  void* host_base_ = nullptr;
  int64_t block_bytes_ = 0;
};

}  // namespace

int run_chat_scenario(const ChatOptions& o) {
  if (o.users < 1 || o.turns < 1 || o.system_prompts < 1 || o.batch < 1 || o.block_tokens < 1 || o.pool_blocks < 2 ||
      o.kv_heads < 1 || o.q_heads < o.kv_heads || o.q_heads % o.kv_heads != 0 || o.head_dim < 1 ||
      o.system_tokens < 1 || o.message_tokens < 1 || o.reply_tokens < 1 || o.host_blocks < 0) {
    fmt::print(stderr, "kvx demo --scenario chat: invalid options\n");
    return 2;
  }
  const struct {
    kvx_eviction_policy_t policy;
    const char* name;
  } policies[] = {{KVX_EVICTION_LRU, "LRU"}, {KVX_EVICTION_LFU, "LFU"}, {KVX_EVICTION_PRIORITY, "PRIORITY"},
                  {KVX_EVICTION_HYBRID, "HYBRID"}};
  std::vector<PolicyResult> results;
  try {
    for (const auto& p : policies) {
      ChatRun run(o, p.policy);
      results.push_back(run.run(p.name));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "kvx demo --scenario chat: {}\n", e.what());
    return 1;
  }
  // A dense cache reserves every conversation's longest context up front.
  const int64_t max_len = o.system_tokens + o.turns * (o.message_tokens + o.reply_tokens);
  const double token_bytes = 2.0 * static_cast<double>(o.kv_heads * o.head_dim * 4);
  const double dense_mib = static_cast<double>(o.users * max_len) * token_bytes / (1 << 20);
  fmt::print("kvx demo --scenario chat: {} users x {} turns, {} system prompts of {} tokens, pool of {} blocks x {} "
             "tokens, host tier {} blocks\n",
             o.users, o.turns, o.system_prompts, o.system_tokens, o.pool_blocks, o.block_tokens, o.host_blocks);
  fmt::print("{:<28}", "policy");
  for (const auto& r : results) fmt::print("{:>12}", r.name);
  auto row = [&](const char* label, auto value) {
    fmt::print("\n{:<28}", label);
    for (const auto& r : results) fmt::print("{:>12}", value(r));
  };
  row("prefix hit rate (tokens)", [](const PolicyResult& r) {
    return fmt::format("{:.1f}%", 100.0 * static_cast<double>(r.metrics.hit_tokens) /
                                      static_cast<double>(std::max<int64_t>(1, r.metrics.lookup_tokens)));
  });
  row("prefix hit rate (blocks)", [](const PolicyResult& r) {
    return fmt::format("{:.1f}%", 100.0 * static_cast<double>(r.metrics.hit_blocks) /
                                      static_cast<double>(std::max<int64_t>(1, r.metrics.lookup_blocks)));
  });
  row("evictions", [](const PolicyResult& r) { return fmt::format("{}", r.metrics.evictions_capacity); });
  row("offloads / reloads", [](const PolicyResult& r) {
    return fmt::format("{}/{}", r.metrics.offloads, r.metrics.reloads);
  });
  row("thrashing", [](const PolicyResult& r) { return fmt::format("{}", r.metrics.thrashing); });
  row("committed MiB", [](const PolicyResult& r) {
    return fmt::format("{:.2f}", static_cast<double>(r.metrics.committed_bytes) / (1 << 20));
  });
  row("dense cache MiB", [&](const PolicyResult&) { return fmt::format("{:.2f}", dense_mib); });
  row("decode tokens/s (1 thread)", [](const PolicyResult& r) {
    return fmt::format("{:.0f}", static_cast<double>(r.decoded) / std::max(r.serve_seconds, 1e-9));
  });
  row("attention checks (failed)", [](const PolicyResult& r) { return fmt::format("{}({})", r.checks, r.failures); });
  row("worst rel. error", [](const PolicyResult& r) { return fmt::format("{:.1e}", r.worst_error); });
  fmt::print("\n");
  int64_t failures = 0;
  for (const auto& r : results) failures += r.failures;
  fmt::print("kvx demo --scenario chat: {}\n", failures == 0 ? "all attention checks passed" : "FAILED");
  return failures == 0 ? 0 : 1;
}

}  // namespace kvx::tool
