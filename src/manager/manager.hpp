// The block manager (docs/manager.md): a reference-counted block pool with a
// null block and lazy physical memory, sequences with fork and copy-on-write,
// a prefix cache under chained hashes, leaf-first eviction by policy, an
// offload tier, sliding windows with sinks, and metrics.
//
// Every mutating entry point plans first (how many blocks it needs, how many
// it may take) and commits only when the plan fits, so a failure leaves the
// manager exactly as it was.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "kvx/manager.h"
#include "manager/block_pool.hpp"
#include "manager/hash.hpp"
#include "manager/hash_table.hpp"
#include "manager/physical_memory.hpp"

namespace kvx::manager {

// Validated per-sequence settings. The window comes first: batched appends
// read it from the same cache line as the sequence's hot fields.
struct SeqParams {
  int64_t window_tokens = 0;
  int64_t sink_tokens = 0;
  KeysRef keys;
  int32_t priority = 35;
  uint32_t flags = 0;
};

struct Block {
  Hash128 hash;         // valid when published
  Hash128 parent_hash;  // valid when has_parent
  KeysRef keys;  // of the publisher, so the hash can be re-derived
  int64_t first_token = 0;               // position of the block's first token in its publisher
  uint64_t last_step = 0;
  uint64_t touch = 0;                    // tie-break for LRU within a step
  int32_t pins = 0;
  int32_t parent = -1;                   // device block of parent_hash while this one is idle
  int32_t idle_children = 0;             // published unreferenced blocks linked to this one
  int32_t priority = 0;
  uint32_t hits = 0;
  bool has_parent = false;
  bool published = false;                // the prefix table maps hash to this block
  bool evictable = false;                // in the eviction set
};

// A sequence or prefix handle. Batched appends touch only the first cache
// line (id check, duplicate mark, length, last block, window), so it leads.
struct alignas(64) Seq {
  // The id that a batched append accepts for this record: its id while it
  // is a live sequence; else the complement of its slot, whose low half is
  // not the slot, so that no id equals it (one comparison checks an id).
  kvx_seq_id_t batch_key = -1;
  uint64_t batch_mark = 0;              // duplicate detection in batched appends
  int64_t num_tokens = 0;
  int32_t last_block = KVX_NULL_BLOCK;  // blocks.back() (null when empty), read without the list
  uint32_t generation = 0;
  std::vector<int32_t> blocks;          // KVX_NULL_BLOCK where a window released a block
  SeqParams params;                     // window_tokens at byte 56
  Hash128 last_hash;                    // hash of the last full block
  int64_t released_end = 0;             // blocks [sink_blocks, released_end) are released
  bool live = false;
  bool is_prefix = false;
};

static_assert(offsetof(Seq, params) + offsetof(SeqParams, window_tokens) + sizeof(int64_t) <= 64,
              "a batched append reads the window from the first cache line of a sequence");

struct HostSlot {
  Hash128 hash;
  Hash128 parent_hash;
  KeysRef keys;
  int64_t first_token = 0;
  int32_t prev = -1;  // LRU list, most recent at the head
  int32_t next = -1;
  bool has_parent = false;
  bool used = false;
};

struct EvictKey {
  uint64_t a = 0, b = 0, c = 0;
  int32_t block = 0;
  friend auto operator<=>(const EvictKey&, const EvictKey&) = default;
};

struct Hash128Hasher {
  size_t operator()(const Hash128& h) const { return static_cast<size_t>(h.lo); }
};

class Manager {
 public:
  // `config` has been validated by the C entry point.
  static kvx_status_t create(const kvx_manager_config_t& config, std::unique_ptr<Manager>* out);

  kvx_status_t make_params(const kvx_seq_params_t* params, SeqParams* out) const;

  int64_t step();
  kvx_status_t seq_create(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_slots,
                          kvx_seq_id_t* out_seq, kvx_seq_match_t* out_match);
  kvx_status_t seq_append(kvx_seq_id_t seq, std::span<const int32_t> tokens, int64_t* out_slots);
  kvx_status_t seq_append_batch(std::span<const kvx_seq_id_t> seqs, const int32_t* tokens, int64_t* out_slots);
  kvx_status_t seq_fork(kvx_seq_id_t seq, kvx_seq_id_t* out_seq);
  kvx_status_t seq_free(kvx_seq_id_t seq);
  kvx_status_t seq_length(kvx_seq_id_t seq, int64_t* out_tokens, int64_t* out_blocks);
  kvx_status_t block_table(kvx_block_table_export_t* table);
  void match_prefix(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_tokens,
                    int64_t* out_device_tokens);
  kvx_status_t prefix_cache(kvx_seq_id_t seq, int64_t num_tokens, kvx_prefix_id_t* out_prefix);
  kvx_status_t prefix_attach(kvx_prefix_id_t prefix, kvx_seq_id_t* out_seq);
  kvx_status_t prefix_release(kvx_prefix_id_t prefix);
  void pin(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_pinned_tokens);
  kvx_status_t unpin(const SeqParams& params, std::span<const int32_t> tokens);
  void reset();
  kvx_status_t grow(int64_t num_blocks);
  kvx_status_t trim(uint64_t* out_released_bytes);
  int64_t pending_work() const { return static_cast<int64_t>(work_.size()); }
  int64_t take_work(kvx_copy_t* out, int64_t capacity);
  void metrics(kvx_manager_metrics_t* m) const;
  void* pool_base(kvx_pool_tier_t tier) const;

  // For tests: "" when every invariant of docs/manager.md holds, else the
  // first one broken.
  std::string check_invariants() const;
  const kvx_manager_config_t& config() const { return config_; }
  std::span<const int32_t> block_tokens_of(int32_t block) const;
  const Seq* find_seq_for_test(kvx_seq_id_t id) const { return lookup(id, false); }
  // Pool-level allocate/free (the benchmark of the pool's own cost).
  BlockPool& pool() { return pool_; }

 private:
  explicit Manager(const kvx_manager_config_t& config);

  uint64_t now() const;
  Seq* lookup(kvx_seq_id_t id, bool prefix);
  const Seq* lookup(kvx_seq_id_t id, bool prefix) const;
  kvx_status_t find(kvx_seq_id_t id, bool prefix, const char* field, Seq** out);
  kvx_seq_id_t new_seq(bool is_prefix, Seq** out);
  void end_seq(kvx_seq_id_t id, Seq& s);
  kvx_seq_id_t clone_seq(const Seq& src, bool is_prefix);

  // Longest cached chain of `tokens`: appends to hashes_ and hits_ (table values).
  void walk(const SeqParams& params, std::span<const int32_t> tokens, int64_t max_blocks, bool device_only);
  Hash128 hash_block(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
                     int64_t first_token) {
    return hasher_.hash(keys, parent, tokens, first_token);
  }

  // Blocks obtainable now without failing: free, never used, evictable.
  int64_t available() const { return pool_.free_count() + reclaimable_; }
  kvx_status_t reserve_physical(int64_t needed);
  kvx_status_t out_of_blocks(const char* function, int64_t needed, int64_t available) const;

  int32_t alloc_block(int32_t priority);
  int32_t evict_one();
  void acquire_cached(int32_t b, int32_t priority);
  void release_block(int32_t b);
  void publish(int32_t b, const Hash128& hash, const Hash128* parent, const KeysRef& keys,
               int64_t first_token);
  void link_parent(int32_t b);
  void unlink_parent(int32_t b);
  void maybe_make_evictable(int32_t b);
  void make_unevictable(int32_t b);
  EvictKey evict_key(int32_t b) const;

  void offload(int32_t b);
  int32_t host_take_slot();
  void host_unlink(int32_t slot);
  void host_free(int32_t slot);
  void note_eviction(const Hash128& hash);
  void note_need(const Hash128& hash);

  struct AppendItem {
    Seq* seq;
    std::span<const int32_t> tokens;
    int64_t* out_slots;
  };
  kvx_status_t append_items(std::span<const AppendItem> items, const char* function);
  int64_t release_end(const Seq& s, int64_t first_query) const;
  void release_window(Seq& s);
  void append_commit(Seq& s, std::span<const int32_t> tokens, int64_t* out_slots);
  void write_tokens(Seq& s, std::span<const int32_t> tokens, int64_t* out_slots);
  void publish_full(Seq& s, int32_t b);
  Hash128 full_hash(const Seq& s, int32_t b);  // of `b`, the last block of `s`, just filled
  void publish_full(Seq& s, int32_t b, const Hash128& h);
  void commit_fresh_and_full(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, size_t num_fresh, size_t num_full);
  static void sync_last_block(Seq& s) { s.last_block = s.blocks.empty() ? KVX_NULL_BLOCK : s.blocks.back(); }
  kvx_status_t batch_member_error(size_t i, kvx_seq_id_t id, uint64_t epoch) const;
  template <bool kPow2>
  bool append_decode(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, int64_t* out_slots, kvx_status_t* st);
  kvx_status_t append_batch_planned(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, int64_t* out_slots);
  void append_token_new_block(Seq& s, int32_t token, int64_t* out_slot);

  kvx_manager_config_t config_;
  int64_t block_tokens_;
  // block_tokens_ - 1 when a power of two, else -1: a token's offset in its
  // block is then a mask (a division costs more than the rest of a decode append).
  int64_t block_mask_;
  BlockHasher hasher_;
  BlockPool pool_;
  std::vector<Block> blocks_;
  // Holders of each block (sequences and prefix handles), apart from the
  // other fields: a decode step reads the count of every sequence's last
  // block, and a dense array keeps those reads in a few cache lines.
  std::vector<int32_t> refs_;
  std::vector<int32_t> tokens_;  // block_tokens_ token ids per block
  HashTable table_;  // hash -> device block (>= 0) or host slot (-1 - slot)
  std::set<EvictKey> evictable_;
  int64_t reclaimable_ = 0;   // published, unreferenced, unpinned device blocks
  int64_t cached_ = 0;        // published, unreferenced device blocks
  int64_t used_ = 0;          // referenced device blocks
  int64_t pinned_ = 0;        // blocks with pins > 0
  uint64_t touch_ = 0;
  int64_t step_ = 0;

  // Dense: a sequence id's low half indexes it directly. Adding a sequence
  // may move the others, so no Seq reference is held across new_seq().
  std::vector<Seq> seqs_;
  std::vector<uint32_t> free_seq_slots_;
  int64_t live_seqs_ = 0;
  int64_t live_prefixes_ = 0;
  uint64_t batch_epoch_ = 0;

  std::vector<HostSlot> host_;
  std::vector<int32_t> host_tokens_;
  std::vector<int32_t> host_free_;
  int32_t host_head_ = -1;
  int32_t host_tail_ = -1;
  int64_t host_used_ = 0;
  std::unique_ptr<PhysicalMemory> host_memory_;

  std::unordered_map<Hash128, int64_t, Hash128Hasher> pin_chains_;  // pinned chains by last block hash
  std::deque<kvx_copy_t> work_;
  std::unordered_map<Hash128, uint64_t, Hash128Hasher> evicted_at_;
  std::deque<std::pair<Hash128, uint64_t>> evicted_order_;

  // Scratch of planning (kept to avoid allocation per call).
  std::vector<Hash128> hashes_;
  std::vector<int32_t> hits_;
  std::vector<int32_t> ref_delta_;
  std::vector<int32_t> delta_touched_;
  std::vector<AppendItem> items_;
  std::vector<int64_t> batch_slots_;  // a decode step's slots, copied out once it commits
  std::vector<uint32_t> fresh_;       // its sequences that start a block (by batch index)
  std::vector<uint32_t> full_;        // and those that fill one
  std::vector<Hash128> full_hashes_;  // the hashes of the blocks they fill

  kvx_manager_metrics_t m_{};
};

}  // namespace kvx::manager

// The C handle.
struct kvx_manager {
  std::unique_ptr<kvx::manager::Manager> impl;
};
