#include "manager/manager.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "core/checked.hpp"
#include "core/status.hpp"

namespace kvx::manager {
namespace {

constexpr int32_t kNull = KVX_NULL_BLOCK;
constexpr int64_t kDefaultThrashWindow = 64;
constexpr int64_t kDefaultHybridHitSteps = 16;
constexpr int64_t kSpareBlocks = 16;  // block list entries a new sequence reserves past its prompt

int32_t host_ref(int32_t slot) { return -1 - slot; }
int32_t host_slot_of(int32_t ref) { return -1 - ref; }

}  // namespace

// ------------------------------------------------------------------ setup --

Manager::Manager(const kvx_manager_config_t& config)
    : config_(config),
      block_tokens_(config.block_tokens),
      block_mask_((config.block_tokens & (config.block_tokens - 1)) == 0 ? config.block_tokens - 1 : -1),
      hasher_(config.hash_seed),
      pool_(config.num_blocks, static_cast<uint64_t>(config.bytes_per_block), nullptr) {}

kvx_status_t Manager::create(const kvx_manager_config_t& config, std::unique_ptr<Manager>* out) {
  std::unique_ptr<PhysicalMemory> device_memory;
  const uint64_t bpb = static_cast<uint64_t>(config.bytes_per_block);
  // The range covers every capacity grow() may reach; only address space.
  const uint64_t reserve = static_cast<uint64_t>(std::max(config.num_blocks, config.max_blocks)) * bpb;
  if (config.memory == KVX_POOL_MEMORY_HOST) {
    KVX_TRY(create_host_memory(reserve, &device_memory));
  } else if (config.memory == KVX_POOL_MEMORY_CUDA_VMM) {
    KVX_TRY(create_cuda_vmm_memory(config.device_id, reserve, &device_memory));
  }
  std::unique_ptr<PhysicalMemory> host_memory;
  if (config.host_blocks > 0 && config.memory != KVX_POOL_MEMORY_NONE) {
    const uint64_t host_bytes = static_cast<uint64_t>(config.host_blocks) * bpb;
    if (config.memory == KVX_POOL_MEMORY_CUDA_VMM) {
      KVX_TRY(create_cuda_pinned_memory(config.device_id, host_bytes, &host_memory));
    } else {
      KVX_TRY(create_host_memory(host_bytes, &host_memory));
    }
    // The tier is committed whole: offloads happen inside commits that
    // must not fail half-way, and the CUDA tier is pinned whole anyway.
    KVX_TRY(host_memory->commit(host_bytes));
  }
  std::unique_ptr<Manager> m(new Manager(config));
  m->pool_ = BlockPool(config.num_blocks, bpb, std::move(device_memory));
  // The null block is read as padding by kernels, so it is backed.
  KVX_TRY(m->pool_.reserve(0));
  m->blocks_.reserve(static_cast<size_t>(std::min<int64_t>(config.num_blocks, 1 << 20)));
  m->blocks_.emplace_back();  // the null block
  m->refs_.reserve(static_cast<size_t>(std::min<int64_t>(config.num_blocks, 1 << 20)));
  m->refs_.push_back(0);
  m->tokens_.reserve(static_cast<size_t>(std::min<int64_t>(config.num_blocks, 1 << 20) * config.block_tokens));
  m->tokens_.resize(static_cast<size_t>(config.block_tokens));
  m->ref_delta_.push_back(0);
  m->host_memory_ = std::move(host_memory);
  if (config.host_blocks > 0) {
    m->host_.resize(static_cast<size_t>(config.host_blocks));
    m->host_tokens_.resize(static_cast<size_t>(config.host_blocks * config.block_tokens));
    m->host_free_.reserve(static_cast<size_t>(config.host_blocks));
    for (int64_t i = config.host_blocks - 1; i >= 0; --i) m->host_free_.push_back(static_cast<int32_t>(i));
  }
  if (m->config_.thrash_window == 0) m->config_.thrash_window = kDefaultThrashWindow;
  if (m->config_.hybrid_hit_steps == 0) m->config_.hybrid_hit_steps = kDefaultHybridHitSteps;
  *out = std::move(m);
  return KVX_OK;
}

kvx_status_t Manager::make_params(const kvx_seq_params_t* p, SeqParams* out) const {
  HashKeys keys;
  keys.model_id = config_.model_id;
  SeqParams s;
  if (p != nullptr) {
    if (p->cache_salt_bytes > 4096) return fail(KVX_ERR_INVALID_ARGUMENT, "params.cache_salt_bytes: {} > 4096", p->cache_salt_bytes);
    if (p->cache_salt_bytes > 0 && p->cache_salt == nullptr) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.cache_salt: null with cache_salt_bytes {}", p->cache_salt_bytes);
    }
    if (p->num_media < 0 || p->num_media > 65536) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.num_media: {} outside [0, 65536]", p->num_media);
    }
    if (p->num_media > 0 && p->media == nullptr) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.media: null with num_media {}", p->num_media);
    }
    for (int64_t i = 0; i < p->num_media; ++i) {
      const kvx_media_hash_t& m = p->media[i];
      if (m.offset < 0 || m.num_tokens < 1 || !checked_add(m.offset, m.num_tokens)) {
        return fail(KVX_ERR_INVALID_ARGUMENT, "params.media[{}]: offset {} num_tokens {} is not a token range", i,
                    m.offset, m.num_tokens);
      }
      if (i > 0 && m.offset < p->media[i - 1].offset + p->media[i - 1].num_tokens) {
        return fail(KVX_ERR_INVALID_ARGUMENT, "params.media[{}]: overlaps or precedes media[{}]", i, i - 1);
      }
    }
    if (p->priority < 0 || p->priority > 100) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.priority: {} outside [0, 100]", p->priority);
    }
    if ((p->flags & ~KVX_SEQ_MATCH_LAST_TOKEN) != 0) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.flags: unknown bits {:#x}", p->flags & ~KVX_SEQ_MATCH_LAST_TOKEN);
    }
    if (p->window_tokens < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "params.window_tokens: {} < 0", p->window_tokens);
    if (p->sink_tokens < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "params.sink_tokens: {} < 0", p->sink_tokens);
    if (p->sink_tokens > 0 && p->window_tokens == 0) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "params.sink_tokens: {} without a window_tokens", p->sink_tokens);
    }
    keys.adapter_id = p->adapter_id;
    const auto* salt = static_cast<const uint8_t*>(p->cache_salt);
    if (p->cache_salt_bytes > 0) keys.cache_salt.assign(salt, salt + p->cache_salt_bytes);
    if (p->num_media > 0) keys.media.assign(p->media, p->media + p->num_media);
    s.priority = p->priority;
    s.flags = p->flags;
    s.window_tokens = p->window_tokens;
    s.sink_tokens = p->sink_tokens;
  }
  s.keys = KeysRef(std::move(keys));
  *out = std::move(s);
  return KVX_OK;
}

uint64_t Manager::now() const {
  return config_.clock != nullptr ? config_.clock(config_.clock_user) : static_cast<uint64_t>(step_);
}

int64_t Manager::step() {
  if (config_.clock == nullptr) ++step_;
  return static_cast<int64_t>(now());
}

// -------------------------------------------------------------- sequences --

// Ids are (generation << 32) | slot with generation >= 1, so they are never
// 0 and a freed id is never valid again.
const Seq* Manager::lookup(kvx_seq_id_t id, bool prefix) const {
  if (id <= 0) return nullptr;
  const uint64_t slot = static_cast<uint64_t>(id) & 0xffffffffu;
  const uint64_t gen = static_cast<uint64_t>(id) >> 32;
  if (slot >= seqs_.size()) return nullptr;
  const Seq& s = seqs_[slot];
  if (!s.live || s.generation != gen || s.is_prefix != prefix) return nullptr;
  return &s;
}

Seq* Manager::lookup(kvx_seq_id_t id, bool prefix) {
  return const_cast<Seq*>(static_cast<const Manager*>(this)->lookup(id, prefix));
}

kvx_status_t Manager::find(kvx_seq_id_t id, bool prefix, const char* field, Seq** out) {
  *out = lookup(id, prefix);
  if (*out == nullptr) {
    return fail(KVX_ERR_NOT_FOUND, "{}: {} is not a live {} of this manager", field, id,
                prefix ? "prefix handle" : "sequence");
  }
  return KVX_OK;
}

namespace {
// Seq::batch_key of a slot that holds no live sequence.
kvx_seq_id_t not_a_seq(uint32_t slot) { return static_cast<kvx_seq_id_t>(~static_cast<uint64_t>(slot)); }
}  // namespace

kvx_seq_id_t Manager::new_seq(bool is_prefix, Seq** out) {
  uint32_t slot;
  if (!free_seq_slots_.empty()) {
    slot = free_seq_slots_.back();
    free_seq_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(seqs_.size());
    seqs_.emplace_back();
  }
  Seq& s = seqs_[slot];
  const uint32_t gen = s.generation + 1;
  const kvx_seq_id_t id = static_cast<kvx_seq_id_t>((static_cast<uint64_t>(gen) << 32) | slot);
  s = Seq{};
  s.generation = gen;
  s.live = true;
  s.is_prefix = is_prefix;
  s.batch_key = is_prefix ? not_a_seq(slot) : id;
  *out = &s;
  return id;
}

// Releases every block of a sequence or prefix handle and retires its id.
void Manager::end_seq(kvx_seq_id_t id, Seq& s) {
  // Tail first, so that a chain's tail is older (evicted first) than its head.
  for (auto it = s.blocks.rbegin(); it != s.blocks.rend(); ++it) {
    if (*it != kNull) release_block(*it);
  }
  if (s.is_prefix) --live_prefixes_; else --live_seqs_;
  const uint32_t slot = static_cast<uint32_t>(static_cast<uint64_t>(id) & 0xffffffffu);
  s.live = false;
  s.batch_key = not_a_seq(slot);
  s.blocks = {};
  s.params = {};
  if (s.generation < 0x7fffffffu) free_seq_slots_.push_back(slot);  // else retire the slot
}

// ------------------------------------------------------------------ blocks --

EvictKey Manager::evict_key(int32_t b) const {
  const Block& k = blocks_[b];
  switch (config_.eviction) {
    case KVX_EVICTION_LFU: return {k.hits, k.last_step, k.touch, b};
    case KVX_EVICTION_PRIORITY: return {static_cast<uint64_t>(k.priority), k.last_step, k.touch, b};
    case KVX_EVICTION_HYBRID:
      return {static_cast<uint64_t>(k.priority),
              k.last_step + static_cast<uint64_t>(k.hits) * static_cast<uint64_t>(config_.hybrid_hit_steps), k.touch, b};
    default: return {0, k.last_step, k.touch, b};
  }
}

void Manager::maybe_make_evictable(int32_t b) {
  Block& k = blocks_[b];
  if (k.published && refs_[b] == 0 && k.pins == 0 && k.idle_children == 0 && !k.evictable) {
    evictable_.insert(evict_key(b));
    k.evictable = true;
  }
}

void Manager::make_unevictable(int32_t b) {
  Block& k = blocks_[b];
  if (k.evictable) {
    evictable_.erase(evict_key(b));
    k.evictable = false;
  }
}

// An idle block is counted by its parent, so the parent waits for it (leaf
// first). The parent is looked up by hash at this moment because the block
// a hash names may have changed while this one was in use.
void Manager::link_parent(int32_t b) {
  Block& k = blocks_[b];
  k.parent = -1;
  if (!k.has_parent) return;
  const int32_t p = table_.find(k.parent_hash);
  if (p == HashTable::kAbsent || p < 0) return;
  k.parent = p;
  ++blocks_[p].idle_children;
  make_unevictable(p);
}

void Manager::unlink_parent(int32_t b) {
  Block& k = blocks_[b];
  if (k.parent < 0) return;
  const int32_t p = k.parent;
  k.parent = -1;
  --blocks_[p].idle_children;
  maybe_make_evictable(p);
}

int32_t Manager::alloc_block(int32_t priority) {
  int32_t b = pool_.pop();
  if (b < 0) b = evict_one();
  if (static_cast<size_t>(b) == blocks_.size()) {
    blocks_.emplace_back();
    refs_.push_back(0);
    ref_delta_.push_back(0);
    tokens_.resize(tokens_.size() + static_cast<size_t>(block_tokens_));
  }
  Block& k = blocks_[b];
  k = Block{};
  refs_[b] = 1;
  k.priority = priority;
  k.last_step = now();
  k.touch = ++touch_;
  ++used_;
  return b;
}

void Manager::acquire_cached(int32_t b, int32_t priority) {
  Block& k = blocks_[b];
  if (refs_[b] == 0) {
    make_unevictable(b);
    unlink_parent(b);
    --cached_;
    if (k.pins == 0) --reclaimable_;
    ++used_;
  }
  ++refs_[b];
  ++k.hits;
  k.priority = std::max(k.priority, priority);
  k.last_step = now();
  k.touch = ++touch_;
}

void Manager::release_block(int32_t b) {
  Block& k = blocks_[b];
  if (--refs_[b] > 0) return;
  --used_;
  if (!k.published) {
    pool_.push(b);
    return;
  }
  k.last_step = now();
  k.touch = ++touch_;
  ++cached_;
  if (k.pins == 0) ++reclaimable_;
  link_parent(b);
  maybe_make_evictable(b);
}

void Manager::publish(int32_t b, const Hash128& hash, const Hash128* parent,
                      const KeysRef& keys, int64_t first_token) {
  Block& k = blocks_[b];
  k.hash = hash;
  k.has_parent = parent != nullptr;
  if (parent != nullptr) k.parent_hash = *parent;
  const int32_t existing = table_.insert(hash, b);
  if (existing >= 0) {
    // An equal block is published already. If nothing holds or needs it (it
    // is the next eviction candidate of its chain), this fresh block takes
    // its place, so the content stays findable; else this one stays private.
    if (!blocks_[existing].evictable) return;
    make_unevictable(existing);
    unlink_parent(existing);
    blocks_[existing].published = false;
    blocks_[existing].keys.reset();
    --cached_;
    --reclaimable_;
    pool_.push(existing);
    table_.put(hash, b);
  } else if (existing != HashTable::kAbsent) {
    // The host tier holds the same content; the device copy supersedes it.
    const int32_t slot = host_slot_of(existing);
    host_unlink(slot);
    host_free(slot);  // erases the hash
    table_.put(hash, b);
  }
  k.published = true;
  k.keys = keys;
  k.first_token = first_token;
}

int32_t Manager::evict_one() {
  // Plans guarantee a victim whenever pop() fails; this is a bug otherwise.
  if (evictable_.empty()) throw std::logic_error("block manager: allocation beyond its plan");
  const EvictKey key = *evictable_.begin();
  const int32_t b = key.block;
  evictable_.erase(evictable_.begin());
  Block& k = blocks_[b];
  k.evictable = false;
  unlink_parent(b);
  --cached_;
  --reclaimable_;
  ++m_.evictions_capacity;
  note_eviction(k.hash);
  table_.erase(k.hash);
  k.published = false;
  if (!host_.empty()) offload(b);  // maps the hash to the host copy
  k.keys.reset();
  return b;
}

// ------------------------------------------------------------ host tier --

void Manager::host_unlink(int32_t slot) {
  HostSlot& h = host_[slot];
  if (h.prev >= 0) host_[h.prev].next = h.next; else host_head_ = h.next;
  if (h.next >= 0) host_[h.next].prev = h.prev; else host_tail_ = h.prev;
  h.prev = h.next = -1;
}

void Manager::host_free(int32_t slot) {
  HostSlot& h = host_[slot];
  table_.erase(h.hash);
  h = HostSlot{};
  host_free_.push_back(slot);
  --host_used_;
}

int32_t Manager::host_take_slot() {
  // Every used slot may be claimed by the reloads of the call in progress.
  if (host_free_.empty() && host_tail_ < 0) return -1;
  if (host_free_.empty()) {
    // The host tier is an LRU of its own: its oldest block is dropped.
    const int32_t victim = host_tail_;
    host_unlink(victim);
    host_free(victim);
    ++m_.evictions_host;
  }
  const int32_t slot = host_free_.back();
  host_free_.pop_back();
  ++host_used_;
  return slot;
}

void Manager::offload(int32_t b) {
  const Block& k = blocks_[b];
  const int32_t slot = host_take_slot();
  if (slot < 0) return;  // the block is dropped instead
  HostSlot& h = host_[slot];
  h.hash = k.hash;
  h.parent_hash = k.parent_hash;
  h.has_parent = k.has_parent;
  h.keys = k.keys;
  h.first_token = k.first_token;
  h.used = true;
  h.prev = -1;
  h.next = host_head_;
  if (host_head_ >= 0) host_[host_head_].prev = slot; else host_tail_ = slot;
  host_head_ = slot;
  std::copy_n(block_tokens_of(b).data(), block_tokens_, host_tokens_.data() + slot * block_tokens_);
  table_.put(k.hash, host_ref(slot));
  work_.push_back(kvx_copy_t{b, slot, KVX_COPY_DEVICE_TO_HOST, 0});
  ++m_.offloads;
}

void Manager::note_eviction(const Hash128& hash) {
  const uint64_t t = now();
  evicted_at_[hash] = t;
  evicted_order_.emplace_back(hash, t);
  const uint64_t window = static_cast<uint64_t>(config_.thrash_window);
  while (!evicted_order_.empty() && evicted_order_.front().second + window < t) {
    auto it = evicted_at_.find(evicted_order_.front().first);
    if (it != evicted_at_.end() && it->second == evicted_order_.front().second) evicted_at_.erase(it);
    evicted_order_.pop_front();
  }
}

void Manager::note_need(const Hash128& hash) {
  auto it = evicted_at_.find(hash);
  if (it == evicted_at_.end()) return;
  if (now() - it->second <= static_cast<uint64_t>(config_.thrash_window)) ++m_.thrashing;
  evicted_at_.erase(it);
}

// --------------------------------------------------------------- planning --

kvx_status_t Manager::reserve_physical(int64_t needed) { return pool_.reserve(needed); }

kvx_status_t Manager::out_of_blocks(const char* function, int64_t needed, int64_t avail) const {
  return fail(KVX_ERR_OUT_OF_BLOCKS,
              "{}: needs {} blocks, {} can be had (pool of {}: {} in use, {} pinned or cached with pins)", function,
              needed, avail, config_.num_blocks - 1, used_, cached_ - reclaimable_);
}

void Manager::walk(const SeqParams& params, std::span<const int32_t> tokens, int64_t max_blocks, bool device_only) {
  // Sized once: the loop below writes by index, with no capacity checks.
  hashes_.resize(static_cast<size_t>(max_blocks));
  hits_.resize(static_cast<size_t>(max_blocks));
  ChainHasher chain(hasher_, *params.keys, static_cast<size_t>(block_tokens_));
  const size_t T = static_cast<size_t>(block_tokens_);
  // Hashes do not depend on what the table holds, so a group of them is
  // computed (and its slots prefetched) before the group is looked up: the
  // lookups' cache misses overlap instead of queueing. A miss wastes at most
  // one group of hashes.
  constexpr int64_t kGroup = 16;
  for (int64_t start = 0; start < max_blocks; start += kGroup) {
    const int64_t end = std::min(max_blocks, start + kGroup);
    chain.next(tokens.data() + static_cast<size_t>(start) * T, start * block_tokens_, end - start,
               hashes_.data() + start);
    for (int64_t i = start; i < end; ++i) table_.prefetch(hashes_[static_cast<size_t>(i)]);
    for (int64_t i = start; i < end; ++i) {
      const int32_t v = table_.find(hashes_[static_cast<size_t>(i)]);
      if (v == HashTable::kAbsent || (device_only && v < 0)) {
        hashes_.resize(static_cast<size_t>(i + 1));  // keep the first miss, for the thrash signal
        hits_.resize(static_cast<size_t>(i));
        return;
      }
      hits_[static_cast<size_t>(i)] = v;
    }
  }
}

// The first block that sequence `s` still needs when its first query is at
// `first_query`: blocks [sink_blocks, end) hold only tokens before every
// query's window and after the sinks.
int64_t Manager::release_end(const Seq& s, int64_t first_query) const {
  if (s.params.window_tokens == 0) return 0;
  const int64_t keep_from = first_query + 1 - s.params.window_tokens;
  const int64_t sink_blocks = ceil_div(s.params.sink_tokens, block_tokens_);
  if (keep_from <= 0) return sink_blocks;
  return std::max(sink_blocks, keep_from / block_tokens_);
}

// ----------------------------------------------------------------- create --

kvx_status_t Manager::seq_create(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_slots,
                                 kvx_seq_id_t* out_seq, kvx_seq_match_t* out_match) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t T = block_tokens_;
  const int64_t max_match = (params.flags & KVX_SEQ_MATCH_LAST_TOKEN) != 0 ? n / T : (n > 0 ? (n - 1) / T : 0);
  walk(params, tokens, max_match, false);
  const int64_t matched = static_cast<int64_t>(hits_.size());

  // Matched blocks that the window already excludes are neither attached nor reloaded.
  Seq probe;
  probe.params = params;
  const int64_t sink_blocks = params.window_tokens > 0 ? ceil_div(params.sink_tokens, T) : 0;
  const int64_t rel_end = std::min(matched, release_end(probe, matched * T));
  auto skipped = [&](int64_t i) { return params.window_tokens > 0 && i >= sink_blocks && i < rel_end; };

  int64_t reloads = 0, attach_reclaimable = 0;
  for (int64_t i = 0; i < matched; ++i) {
    if (skipped(i)) continue;
    const int32_t v = hits_[i];
    if (v < 0) {
      ++reloads;
    } else if (refs_[v] == 0 && blocks_[v].pins == 0) {
      ++attach_reclaimable;
    }
  }
  const int64_t fresh = ceil_div(n, T) - matched;
  const int64_t needed = reloads + fresh;
  const int64_t avail = available() - attach_reclaimable;
  if (needed > avail) return out_of_blocks("kvx_seq_create", needed, avail);
  KVX_TRY(reserve_physical(needed));

  // Commit.
  Seq* s;
  const kvx_seq_id_t id = new_seq(false, &s);
  s->params = params;
  // Room for the decode steps that follow: doubling from the prompt's size
  // would reallocate the list on every few new blocks at first.
  s->blocks.reserve(static_cast<size_t>(ceil_div(n, T) + kSpareBlocks));
  s->blocks.assign(static_cast<size_t>(matched), kNull);
  s->released_end = params.window_tokens > 0 ? std::max(rel_end, sink_blocks) : 0;
  for (int64_t i = 0; i < matched; ++i) {
    if (!skipped(i) && hits_[i] >= 0) {
      acquire_cached(hits_[i], params.priority);
      s->blocks[i] = hits_[i];
    }
  }
  // Host hits: claim them all first so that offloads made room for by the
  // allocations below cannot drop them.
  for (int64_t i = 0; i < matched; ++i) {
    if (!skipped(i) && hits_[i] < 0) host_unlink(host_slot_of(hits_[i]));
  }
  for (int64_t i = 0; i < matched; ++i) {
    if (skipped(i) || hits_[i] >= 0) continue;
    const int32_t slot = host_slot_of(hits_[i]);
    const int32_t b = alloc_block(params.priority);
    const HostSlot& h = host_[slot];
    std::copy_n(host_tokens_.data() + slot * T, T, const_cast<int32_t*>(block_tokens_of(b).data()));
    note_need(h.hash);
    const Hash128 hash = h.hash;
    const Hash128 parent = h.parent_hash;
    const bool has_parent = h.has_parent;
    const auto keys = h.keys;
    const int64_t first = h.first_token;
    host_free(slot);
    publish(b, hash, has_parent ? &parent : nullptr, keys, first);
    work_.push_back(kvx_copy_t{slot, b, KVX_COPY_HOST_TO_DEVICE, 0});
    ++m_.reloads;
    s->blocks[i] = b;
  }
  if (matched < static_cast<int64_t>(hashes_.size())) note_need(hashes_[matched]);
  if (matched > 0) s->last_hash = hashes_[matched - 1];
  s->num_tokens = matched * T;
  m_.lookup_blocks += max_match;
  m_.hit_blocks += matched;
  m_.lookup_tokens += n;
  m_.hit_tokens += matched * T;
  ++live_seqs_;

  if (out_slots != nullptr) {
    for (int64_t i = 0; i < matched * T; ++i) {
      const int32_t b = s->blocks[i / T];
      out_slots[i] = b == kNull ? -1 : static_cast<int64_t>(b) * T + i % T;
    }
  }
  write_tokens(*s, tokens.subspan(static_cast<size_t>(matched * T)),  // sets last_block
               out_slots != nullptr ? out_slots + matched * T : nullptr);
  *out_seq = id;
  if (out_match != nullptr) *out_match = kvx_seq_match_t{matched * T, matched, reloads};
  return KVX_OK;
}

// Writes tokens at the end of `s`, allocating blocks (the plan has made sure
// they exist) and publishing every block that becomes full.
void Manager::write_tokens(Seq& s, std::span<const int32_t> tokens, int64_t* out_slots) {
  const int64_t T = block_tokens_;
  size_t i = 0;
  while (i < tokens.size()) {
    const int64_t off = s.num_tokens % T;
    if (off == 0) s.blocks.push_back(alloc_block(s.params.priority));
    const int32_t b = s.blocks.back();
    const size_t take = std::min(tokens.size() - i, static_cast<size_t>(T - off));
    int32_t* dst = const_cast<int32_t*>(block_tokens_of(b).data()) + off;
    std::copy_n(tokens.data() + i, take, dst);
    if (out_slots != nullptr) {
      const int64_t base = static_cast<int64_t>(b) * T + off;
      for (size_t j = 0; j < take; ++j) out_slots[i + j] = base + static_cast<int64_t>(j);
    }
    s.num_tokens += static_cast<int64_t>(take);
    i += take;
    if (s.num_tokens % T == 0) publish_full(s, b);
  }
  sync_last_block(s);
}

// Hashes and publishes `b`, the last block of `s`, which has just filled.
void Manager::publish_full(Seq& s, int32_t b) { publish_full(s, b, full_hash(s, b)); }

Hash128 Manager::full_hash(const Seq& s, int32_t b) {
  const int64_t first = s.num_tokens - block_tokens_;
  return hash_block(*s.params.keys, first > 0 ? &s.last_hash : nullptr, block_tokens_of(b), first);
}

void Manager::publish_full(Seq& s, int32_t b, const Hash128& h) {
  const int64_t first = s.num_tokens - block_tokens_;
  publish(b, h, first > 0 ? &s.last_hash : nullptr, s.params.keys, first);
  s.last_hash = h;
}

// ----------------------------------------------------------------- append --

// Releases the blocks of `s` that no query can see any more.
void Manager::release_window(Seq& s) {
  if (s.params.window_tokens == 0) return;
  const int64_t end = std::min<int64_t>(release_end(s, s.num_tokens), static_cast<int64_t>(s.blocks.size()));
  const int64_t sink_blocks = ceil_div(s.params.sink_tokens, block_tokens_);
  for (int64_t i = std::max(s.released_end, sink_blocks); i < end; ++i) {
    if (s.blocks[i] != kNull) {
      release_block(s.blocks[i]);
      s.blocks[i] = kNull;
      ++m_.window_released;
    }
  }
  s.released_end = std::max(s.released_end, end);
  sync_last_block(s);
}

void Manager::append_commit(Seq& s, std::span<const int32_t> tokens, int64_t* out_slots) {
  const int64_t T = block_tokens_;
  if (s.num_tokens % T != 0) {
    const int32_t last = s.blocks.back();
    if (refs_[last] > 1) {
      const int32_t copy = alloc_block(s.params.priority);
      std::copy_n(block_tokens_of(last).data(), s.num_tokens % T, const_cast<int32_t*>(block_tokens_of(copy).data()));
      work_.push_back(kvx_copy_t{last, copy, KVX_COPY_DEVICE_TO_DEVICE, 0});
      ++m_.cow_copies;
      release_block(last);
      s.blocks.back() = copy;
    }
  }
  write_tokens(s, tokens, out_slots);
}

// Plans a batch of appends (blocks needed: new blocks and copies of shared
// partial blocks; blocks gained: window releases), then commits it.
// ref_delta_ simulates the reference drops of earlier items so that the
// plan of a batch is exact: a fork pair appending together copies once.
kvx_status_t Manager::append_items(std::span<const AppendItem> items, const char* function) {
  const int64_t T = block_tokens_;
  int64_t needed = 0, gained = 0;
  delta_touched_.clear();
  auto effective_ref = [&](int32_t b) { return refs_[b] + ref_delta_[b]; };
  auto drop = [&](int32_t b) {
    if (ref_delta_[b] == 0) delta_touched_.push_back(b);
    --ref_delta_[b];
  };
  // Two passes, in the order of the commit: every window release of the
  // batch first, then copies and new blocks.
  for (const AppendItem& it : items) {
    const Seq& s = *it.seq;
    if (s.params.window_tokens > 0) {
      const int64_t end = std::min<int64_t>(release_end(s, s.num_tokens), static_cast<int64_t>(s.blocks.size()));
      const int64_t sink_blocks = ceil_div(s.params.sink_tokens, T);
      for (int64_t i = std::max(s.released_end, sink_blocks); i < end; ++i) {
        const int32_t b = s.blocks[i];
        if (b == kNull) continue;
        if (effective_ref(b) == 1 && (!blocks_[b].published || blocks_[b].pins == 0)) ++gained;
        drop(b);
      }
    }
  }
  for (const AppendItem& it : items) {
    const Seq& s = *it.seq;
    if (s.num_tokens % T != 0 && effective_ref(s.blocks.back()) > 1) {
      ++needed;
      drop(s.blocks.back());
    }
    needed += ceil_div(s.num_tokens + static_cast<int64_t>(it.tokens.size()), T) - ceil_div(s.num_tokens, T);
  }
  for (const int32_t b : delta_touched_) ref_delta_[b] = 0;
  const int64_t avail = available() + gained;
  if (needed > avail) return out_of_blocks(function, needed, avail);
  KVX_TRY(reserve_physical(needed));
  for (const AppendItem& it : items) release_window(*it.seq);
  for (const AppendItem& it : items) append_commit(*it.seq, it.tokens, it.out_slots);
  return KVX_OK;
}

namespace {
// Sequence lengths travel as int32 in page tables.
constexpr int64_t kMaxSeqTokens = INT32_MAX;
}  // namespace

kvx_status_t Manager::seq_append(kvx_seq_id_t id, std::span<const int32_t> tokens, int64_t* out_slots) {
  Seq* s;
  KVX_TRY(find(id, false, "seq", &s));
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > kMaxSeqTokens - s->num_tokens) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "num_tokens: {} more tokens take sequence {} past {} tokens", n, id,
                kMaxSeqTokens);
  }
  const AppendItem item{s, tokens, out_slots};
  return append_items(std::span<const AppendItem>(&item, 1), "kvx_seq_append");
}

// write_tokens for a decode step's token that starts a block.
void Manager::append_token_new_block(Seq& s, int32_t token, int64_t* out_slot) {
  const int32_t b = alloc_block(s.params.priority);
  s.blocks.push_back(b);
  s.last_block = b;
  const int64_t slot = static_cast<int64_t>(b) * block_tokens_;
  tokens_[static_cast<size_t>(slot)] = token;
  *out_slot = slot;
  ++s.num_tokens;
  if (block_tokens_ == 1) publish_full(s, b);
}

namespace {

// seq_ids[i] of a batched append names a live sequence that this batch
// (`epoch`) has not seen yet and that has room for one more token.
inline bool batch_member(const Seq* seqs, uint64_t num_slots, kvx_seq_id_t id, uint64_t epoch) {
  const uint64_t slot = static_cast<uint64_t>(id) & 0xffffffffu;
  if (slot >= num_slots) return false;
  const Seq& s = seqs[slot];
  return s.batch_key == id && s.batch_mark != epoch && s.num_tokens < kMaxSeqTokens;
}

}  // namespace

// Why batch_member refused seq_ids[i] (off the hot loop).
kvx_status_t Manager::batch_member_error(size_t i, kvx_seq_id_t id, uint64_t epoch) const {
  const Seq* s = lookup(id, false);
  if (s == nullptr) return fail(KVX_ERR_NOT_FOUND, "seq_ids[{}]: {} is not a live sequence of this manager", i, id);
  if (s->batch_mark == epoch) return fail(KVX_ERR_INVALID_ARGUMENT, "seq_ids[{}]: {} appears twice", i, id);
  return fail(KVX_ERR_INVALID_ARGUMENT, "seq_ids[{}]: sequence {} is at {} tokens", i, id, kMaxSeqTokens);
}

kvx_status_t Manager::seq_append_batch(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, int64_t* out_slots) {
  kvx_status_t st = KVX_OK;
  const bool done = block_mask_ >= 0 ? append_decode<true>(ids, tokens, out_slots, &st)
                                     : append_decode<false>(ids, tokens, out_slots, &st);
  return done ? st : append_batch_planned(ids, tokens, out_slots);
}

// A decode step: one token per sequence, usually into an unshared partial
// block or a fresh one. Such a batch needs exactly one new block per
// sequence at a block boundary (append_items' plan, with no window gains and
// no copies), and is done in one pass over the sequences: each is checked
// and its token written and counted at once, so its record is read once per
// step; allocations and publishes (about one sequence in block_tokens each)
// wait in two lists until the whole batch is known to fit, and a refusal
// undoes the counts (token ids written past a sequence's length are no
// state). Returns false, with nothing changed, when a sequence needs the
// planned path (a window, or a shared partial last block: copy-on-write).
// The loop reads the manager's arrays through locals: the stores to the
// sequences could alias the vectors' own pointers otherwise, and they would
// be reloaded for every sequence.
template <bool kPow2>
bool Manager::append_decode(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, int64_t* out_slots,
                            kvx_status_t* st) {
  const size_t n = ids.size();
  // Sized before anything changes: nothing below allocates until the commit.
  batch_slots_.resize(n);
  if (fresh_.size() < n + 1) fresh_.resize(n + 1);
  if (full_.size() < n + 1) full_.resize(n + 1);
  const uint64_t epoch = ++batch_epoch_;
  Seq* const seqs = seqs_.data();
  const uint64_t num_slots = seqs_.size();
  const int32_t* const refs = refs_.data();
  int32_t* const rows = tokens_.data();
  int64_t* const slots = batch_slots_.data();  // -1: waits for a new block
  uint32_t* const fresh = fresh_.data();
  uint32_t* const full = full_.data();
  const int64_t T = block_tokens_, mask = block_mask_;
  auto offset = [&](int64_t num_tokens) {
    if constexpr (kPow2) return num_tokens & mask;
    else return num_tokens % T;
  };
  auto undo = [&](size_t end) {
    for (size_t j = 0; j < end; ++j) {
      if (slots[j] >= 0) --seqs[static_cast<uint64_t>(ids[j]) & 0xffffffffu].num_tokens;
    }
  };
  size_t num_fresh = 0, num_full = 0;
  // Sequence records are fetched a few ids ahead: their slots are scattered
  // when sequences come and go.
  constexpr size_t kAhead = 8;
  size_t i = 0;
  for (; i < n; ++i) {
    if (i + kAhead < n) {
      // Through an integer: the slot is not checked yet, and a prefetch of
      // any address is harmless.
      const uint64_t ahead = static_cast<uint64_t>(ids[i + kAhead]) & 0xffffffffu;
      __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(seqs) + ahead * sizeof(Seq)));
    }
    const kvx_seq_id_t id = ids[i];
    if (!batch_member(seqs, num_slots, id, epoch)) [[unlikely]] {
      *st = batch_member_error(i, id, epoch);
      undo(i);
      return true;
    }
    Seq& s = seqs[static_cast<uint64_t>(id) & 0xffffffffu];
    s.batch_mark = epoch;
    if (s.params.window_tokens > 0) [[unlikely]] break;
    const int64_t off = offset(s.num_tokens);
    if (off == 0) [[unlikely]] {
      slots[i] = -1;
      fresh[num_fresh++] = static_cast<uint32_t>(i);
      continue;
    }
    const int32_t last = s.last_block;
    if (refs[last] != 1) [[unlikely]] break;
    const int64_t at = static_cast<int64_t>(last) * T + off;  // a block's row starts at last * T
    rows[at] = tokens[i];
    slots[i] = at;
    ++s.num_tokens;
    // Without a branch: which sequences fill their block is a coin toss.
    full[num_full] = static_cast<uint32_t>(i);
    num_full += off + 1 == T ? 1 : 0;
  }
  if (i < n) {
    undo(i);
    return false;
  }
  const int64_t avail = available();
  if (static_cast<int64_t>(num_fresh) > avail) {
    *st = out_of_blocks("kvx_seq_append_batch", static_cast<int64_t>(num_fresh), avail);
    undo(n);
    return true;
  }
  if (const kvx_status_t r = reserve_physical(static_cast<int64_t>(num_fresh)); r != KVX_OK) {
    *st = r;
    undo(n);
    return true;
  }
  commit_fresh_and_full(ids, tokens, num_fresh, num_full);
  std::copy_n(slots, n, out_slots);
  return true;
}

// The allocations (fresh_[0, num_fresh)) and publishes (full_[0,
// num_full)) of a decode step. Each touches records that the step has not
// (a block, its hash table slot, the sequence's keys and chain hash, a free
// block's token row), most of them out of cache: they are fetched for the
// whole step first, and the hashes computed before any table lookup, so
// that the misses overlap instead of following one another.
void Manager::commit_fresh_and_full(std::span<const kvx_seq_id_t> ids, const int32_t* tokens, size_t num_fresh,
                          size_t num_full) {
  const uint32_t* const fresh = fresh_.data();
  const uint32_t* const full = full_.data();
  int64_t* const slots = batch_slots_.data();
  auto seq_of = [&](uint32_t j) -> Seq& { return seqs_[static_cast<uint64_t>(ids[j]) & 0xffffffffu]; };
  // Prefetches through integers: a peeked id may lie past the arrays' ends.
  auto prefetch_w = [](const void* base, size_t offset) {
    __builtin_prefetch(reinterpret_cast<const void*>(reinterpret_cast<uintptr_t>(base) + offset), 1);
  };
  for (size_t k = 0; k < num_fresh; ++k) {
    const Seq& s = seq_of(fresh[k]);
    // The block the allocation takes if no publish frees one first.
    const int32_t b = pool_.peek(static_cast<int64_t>(k));
    if (b >= 0) {
      prefetch_w(blocks_.data(), sizeof(Block) * static_cast<size_t>(b));
      prefetch_w(refs_.data(), sizeof(int32_t) * static_cast<size_t>(b));
      prefetch_w(tokens_.data(), sizeof(int32_t) * static_cast<size_t>(b * block_tokens_));
    }
    prefetch_w(s.blocks.data(), sizeof(int32_t) * s.blocks.size());
  }
  for (size_t k = 0; k < num_full; ++k) {
    const Seq& s = seq_of(full[k]);
    __builtin_prefetch(&s.last_hash);
    __builtin_prefetch(s.params.keys.get());
    __builtin_prefetch(blocks_.data() + s.last_block, 1);
  }
  if (full_hashes_.size() < num_full) full_hashes_.resize(num_full);
  Hash128* const hashes = full_hashes_.data();
  for (size_t k = 0; k < num_full; ++k) {
    const Seq& s = seq_of(full[k]);
    hashes[k] = full_hash(s, s.last_block);
    table_.prefetch(hashes[k]);
  }
  // Publishes and allocations are independent unless a publish finds its
  // hash already in the table (it may then free an idle duplicate block) or
  // an allocation evicts (it then removes a hash): without either, all
  // publishes go first, then all allocations, with no branch on which is
  // which. Otherwise they go in batch order, as single appends would.
  bool independent = pool_.free_count() >= static_cast<int64_t>(num_fresh);
  for (size_t k = 0; k < num_full && independent; ++k) independent = table_.find(hashes[k]) == HashTable::kAbsent;
  if (independent) {
    for (size_t k = 0; k < num_full; ++k) {
      Seq& s = seq_of(full[k]);
      publish_full(s, s.last_block, hashes[k]);
    }
    for (size_t k = 0; k < num_fresh; ++k) {
      const uint32_t j = fresh[k];
      append_token_new_block(seq_of(j), tokens[j], &slots[j]);
    }
    return;
  }
  size_t a = 0, p = 0;
  while (a < num_fresh || p < num_full) {
    if (p == num_full || (a < num_fresh && fresh[a] < full[p])) {
      const uint32_t j = fresh[a++];
      append_token_new_block(seq_of(j), tokens[j], &slots[j]);
    } else {
      Seq& s = seq_of(full[p]);
      publish_full(s, s.last_block, hashes[p++]);
    }
  }
}

// Batches with windows or shared partial blocks: append_items' plan.
kvx_status_t Manager::append_batch_planned(std::span<const kvx_seq_id_t> ids, const int32_t* tokens,
                                           int64_t* out_slots) {
  const size_t n = ids.size();
  const uint64_t epoch = ++batch_epoch_;
  items_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const kvx_seq_id_t id = ids[i];
    if (!batch_member(seqs_.data(), seqs_.size(), id, epoch)) return batch_member_error(i, id, epoch);
    Seq& s = seqs_[static_cast<uint64_t>(id) & 0xffffffffu];
    s.batch_mark = epoch;
    items_[i] = AppendItem{&s, std::span<const int32_t>(tokens + i, 1), out_slots + i};
  }
  return append_items(items_, "kvx_seq_append_batch");
}

// A new sequence (or prefix handle) sharing every block of `src`.
kvx_seq_id_t Manager::clone_seq(const Seq& src, bool is_prefix) {
  Seq copy = src;  // new_seq() may move every sequence, `src` included
  Seq* c;
  const kvx_seq_id_t id = new_seq(is_prefix, &c);
  // The new record's identity, the rest from `src`.
  copy.batch_key = c->batch_key;
  copy.generation = c->generation;
  copy.live = true;
  copy.is_prefix = is_prefix;
  copy.batch_mark = 0;
  *c = std::move(copy);
  for (const int32_t b : c->blocks) {
    if (b != kNull) ++refs_[b];
  }
  if (is_prefix) ++live_prefixes_; else ++live_seqs_;
  return id;
}

kvx_status_t Manager::seq_fork(kvx_seq_id_t id, kvx_seq_id_t* out_seq) {
  Seq* s;
  KVX_TRY(find(id, false, "seq", &s));
  *out_seq = clone_seq(*s, false);
  return KVX_OK;
}

kvx_status_t Manager::seq_free(kvx_seq_id_t id) {
  Seq* s;
  KVX_TRY(find(id, false, "seq", &s));
  end_seq(id, *s);
  return KVX_OK;
}

kvx_status_t Manager::seq_length(kvx_seq_id_t id, int64_t* out_tokens, int64_t* out_blocks) {
  Seq* s;
  KVX_TRY(find(id, false, "seq", &s));
  if (out_tokens != nullptr) *out_tokens = s->num_tokens;
  if (out_blocks != nullptr) *out_blocks = static_cast<int64_t>(s->blocks.size());
  return KVX_OK;
}

kvx_status_t Manager::block_table(kvx_block_table_export_t* t) {
  int64_t max_blocks = 0, nnz = 0;
  for (int64_t i = 0; i < t->num_seqs; ++i) {
    const Seq* s = lookup(t->seq_ids[i], false);
    if (s == nullptr) {
      return fail(KVX_ERR_NOT_FOUND, "table.seq_ids[{}]: {} is not a live sequence of this manager", i, t->seq_ids[i]);
    }
    max_blocks = std::max<int64_t>(max_blocks, static_cast<int64_t>(s->blocks.size()));
    nnz += static_cast<int64_t>(s->blocks.size());
  }
  if (nnz > INT32_MAX) return fail(KVX_ERR_INVALID_ARGUMENT, "table.seq_ids: {} blocks overflow int32 indptr", nnz);
  t->max_blocks = max_blocks;
  t->nnz = nnz;
  const int64_t T = block_tokens_;
  if (t->kind == KVX_PAGE_TABLE_DENSE) {
    if (t->block_table == nullptr) return KVX_OK;
    if (t->block_table_stride < max_blocks) {
      return fail(KVX_ERR_WORKSPACE_TOO_SMALL, "table.block_table_stride: {} < max_blocks {}", t->block_table_stride,
                  max_blocks);
    }
    for (int64_t i = 0; i < t->num_seqs; ++i) {
      const Seq& s = *lookup(t->seq_ids[i], false);
      int32_t* row = t->block_table + i * t->block_table_stride;
      std::copy(s.blocks.begin(), s.blocks.end(), row);
      std::fill(row + s.blocks.size(), row + t->block_table_stride, kNull);
      t->seq_lens[i] = static_cast<int32_t>(s.num_tokens);
    }
    return KVX_OK;
  }
  if (t->indices == nullptr) return KVX_OK;
  if (t->indices_capacity < nnz) {
    return fail(KVX_ERR_WORKSPACE_TOO_SMALL, "table.indices_capacity: {} < nnz {}", t->indices_capacity, nnz);
  }
  int32_t at = 0;
  t->indptr[0] = 0;
  for (int64_t i = 0; i < t->num_seqs; ++i) {
    const Seq& s = *lookup(t->seq_ids[i], false);
    std::copy(s.blocks.begin(), s.blocks.end(), t->indices + at);
    at += static_cast<int32_t>(s.blocks.size());
    t->indptr[i + 1] = at;
    const int64_t nb = static_cast<int64_t>(s.blocks.size());
    t->last_page_len[i] = nb == 0 ? 0 : static_cast<int32_t>(s.num_tokens - (nb - 1) * T);
  }
  return KVX_OK;
}

// ----------------------------------------------------------- prefix cache --

void Manager::match_prefix(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_tokens,
                           int64_t* out_device_tokens) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t T = block_tokens_;
  const int64_t max_match = (params.flags & KVX_SEQ_MATCH_LAST_TOKEN) != 0 ? n / T : (n > 0 ? (n - 1) / T : 0);
  walk(params, tokens, max_match, false);
  int64_t device = 0;
  while (device < static_cast<int64_t>(hits_.size()) && hits_[device] >= 0) ++device;
  *out_tokens = static_cast<int64_t>(hits_.size()) * T;
  if (out_device_tokens != nullptr) *out_device_tokens = device * T;
}

kvx_status_t Manager::prefix_cache(kvx_seq_id_t id, int64_t num_tokens, kvx_prefix_id_t* out_prefix) {
  Seq* s;
  KVX_TRY(find(id, false, "seq", &s));
  const int64_t T = block_tokens_;
  if (num_tokens < T || num_tokens % T != 0 || num_tokens > s->num_tokens) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "num_tokens: {} is not a positive multiple of block_tokens {} within the {} "
                "tokens of the sequence", num_tokens, T, s->num_tokens);
  }
  const int64_t nb = num_tokens / T;
  for (int64_t i = 0; i < nb; ++i) {
    if (s->blocks[i] == kNull) {
      return fail(KVX_ERR_INVALID_ARGUMENT, "num_tokens: block {} of the sequence was released by its window", i);
    }
  }
  Seq prefix;
  prefix.blocks.assign(s->blocks.begin(), s->blocks.begin() + nb);
  sync_last_block(prefix);
  prefix.num_tokens = num_tokens;
  prefix.last_hash = blocks_[prefix.blocks.back()].hash;
  prefix.params = s->params;
  const kvx_prefix_id_t pid = clone_seq(prefix, true);
  *out_prefix = pid;
  return KVX_OK;
}

kvx_status_t Manager::prefix_attach(kvx_prefix_id_t prefix, kvx_seq_id_t* out_seq) {
  Seq* p;
  KVX_TRY(find(prefix, true, "prefix", &p));
  *out_seq = clone_seq(*p, false);
  return KVX_OK;
}

kvx_status_t Manager::prefix_release(kvx_prefix_id_t prefix) {
  Seq* p;
  KVX_TRY(find(prefix, true, "prefix", &p));
  end_seq(prefix, *p);
  return KVX_OK;
}

void Manager::pin(const SeqParams& params, std::span<const int32_t> tokens, int64_t* out_pinned_tokens) {
  walk(params, tokens, static_cast<int64_t>(tokens.size()) / block_tokens_, true);
  for (const int32_t b : hits_) {
    Block& k = blocks_[b];
    if (k.pins++ == 0) {
      ++pinned_;
      if (refs_[b] == 0) {
        --reclaimable_;
        make_unevictable(b);
      }
    }
  }
  // Pins are recorded by chain (the hash of its last block), and unpin takes
  // a recorded chain whole: so a parent always has at least its children's
  // pins, and every unpinned cached block stays reachable by eviction.
  if (!hits_.empty()) ++pin_chains_[hashes_[hits_.size() - 1]];
  if (out_pinned_tokens != nullptr) *out_pinned_tokens = static_cast<int64_t>(hits_.size()) * block_tokens_;
}

kvx_status_t Manager::unpin(const SeqParams& params, std::span<const int32_t> tokens) {
  const int64_t nb = static_cast<int64_t>(tokens.size()) / block_tokens_;
  walk(params, tokens, nb, true);
  if (static_cast<int64_t>(hits_.size()) < nb) {
    return fail(KVX_ERR_NOT_FOUND, "tokens: block {} of the prefix is not in the device cache", hits_.size());
  }
  if (nb == 0) return KVX_OK;
  const auto chain = pin_chains_.find(hashes_[nb - 1]);
  if (chain == pin_chains_.end()) {
    return fail(KVX_ERR_NOT_FOUND, "tokens: no pin covers exactly these {} blocks (pass the tokens that "
                "kvx_manager_pin reported)", nb);
  }
  if (--chain->second == 0) pin_chains_.erase(chain);
  // Children first, so that a parent becomes evictable only after them.
  for (int64_t i = nb - 1; i >= 0; --i) {
    const int32_t b = hits_[i];
    Block& k = blocks_[b];
    if (--k.pins == 0) {
      --pinned_;
      if (refs_[b] == 0) {
        ++reclaimable_;
        maybe_make_evictable(b);
      }
    }
  }
  return KVX_OK;
}

void Manager::reset() {
  for (size_t b = 1; b < blocks_.size(); ++b) {
    Block& k = blocks_[b];
    if (k.published) {
      table_.erase(k.hash);
      k.published = false;
      k.keys.reset();
      if (refs_[b] == 0) {
        pool_.push(static_cast<int32_t>(b));
        ++m_.evictions_reset;
      }
    }
    k.pins = 0;
    k.parent = -1;
    k.idle_children = 0;
    k.evictable = false;
  }
  evictable_.clear();
  reclaimable_ = cached_ = pinned_ = 0;
  for (int32_t slot = 0; slot < static_cast<int32_t>(host_.size()); ++slot) {
    if (host_[slot].used) {
      host_unlink(slot);
      host_free(slot);
    }
  }
  evicted_at_.clear();
  evicted_order_.clear();
  pin_chains_.clear();
}

// config_.num_blocks is the capacity now; max_blocks bounds it (the range
// reserved at creation).
kvx_status_t Manager::grow(int64_t num_blocks) {
  const int64_t max_blocks = config_.max_blocks != 0 ? config_.max_blocks : config_.num_blocks;
  if (num_blocks < config_.num_blocks || num_blocks > max_blocks) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "num_blocks: {} outside [{} (the capacity), {} (config.max_blocks)]",
                num_blocks, config_.num_blocks, max_blocks);
  }
  pool_.grow(num_blocks);
  config_.num_blocks = num_blocks;
  return KVX_OK;
}

kvx_status_t Manager::trim(uint64_t* out_released_bytes) {
  int64_t top = pool_.high_water();
  while (top > 1 && refs_[top - 1] == 0 && !blocks_[top - 1].published) --top;
  const uint64_t before = pool_.committed_bytes();
  const kvx_status_t st = pool_.shrink_to(top);
  blocks_.resize(static_cast<size_t>(top));
  refs_.resize(static_cast<size_t>(top));
  ref_delta_.resize(static_cast<size_t>(top));
  tokens_.resize(static_cast<size_t>(top * block_tokens_));
  if (out_released_bytes != nullptr) *out_released_bytes = before - pool_.committed_bytes();
  return st;
}

int64_t Manager::take_work(kvx_copy_t* out, int64_t capacity) {
  const int64_t n = std::min<int64_t>(capacity, static_cast<int64_t>(work_.size()));
  std::copy_n(work_.begin(), n, out);
  work_.erase(work_.begin(), work_.begin() + n);
  return n;
}

void Manager::metrics(kvx_manager_metrics_t* out) const {
  kvx_manager_metrics_t m = m_;
  m.struct_size = out->struct_size;
  m.version = out->version;
  m.step = static_cast<int64_t>(now());
  m.blocks_total = config_.num_blocks - 1;
  m.blocks_used = used_;
  m.blocks_cached = cached_;
  m.blocks_pinned = pinned_;
  m.blocks_free = pool_.free_count();
  m.blocks_host = host_used_;
  m.committed_bytes = pool_.committed_bytes() + (host_memory_ != nullptr ? host_memory_->committed_bytes() : 0);
  m.reserved_bytes = pool_.reserved_bytes();
  m.num_seqs = live_seqs_;
  m.num_prefixes = live_prefixes_;
  m.pending_work = static_cast<int64_t>(work_.size());
  *out = m;
}

void* Manager::pool_base(kvx_pool_tier_t tier) const {
  if (tier == KVX_POOL_TIER_DEVICE) return pool_.base();
  return host_memory_ != nullptr ? host_memory_->base() : nullptr;
}

std::span<const int32_t> Manager::block_tokens_of(int32_t block) const {
  return std::span<const int32_t>(tokens_.data() + static_cast<size_t>(block) * static_cast<size_t>(block_tokens_),
                                  static_cast<size_t>(block_tokens_));
}

// ------------------------------------------------------------- invariants --

std::string Manager::check_invariants() const {
  const int64_t T = block_tokens_;
  const size_t nb = blocks_.size();
  if (static_cast<int64_t>(nb) != pool_.high_water()) return fmt::format("blocks_ {} != high water {}", nb, pool_.high_water());
  // References: count holders.
  std::vector<int32_t> holders(nb, 0);
  for (size_t slot = 0; slot < seqs_.size(); ++slot) {
    const Seq& s = seqs_[slot];
    const kvx_seq_id_t id = static_cast<kvx_seq_id_t>((static_cast<uint64_t>(s.generation) << 32) | slot);
    if (s.batch_key != (s.live && !s.is_prefix ? id : not_a_seq(static_cast<uint32_t>(slot)))) {
      return fmt::format("sequence slot {}: batch key {:#x} does not match its state", slot, s.batch_key);
    }
    if (!s.live) continue;
    if (static_cast<int64_t>(s.blocks.size()) != ceil_div(s.num_tokens, T)) {
      return fmt::format("a sequence of {} tokens has {} blocks", s.num_tokens, s.blocks.size());
    }
    if (s.last_block != (s.blocks.empty() ? kNull : s.blocks.back())) {
      return fmt::format("a sequence's last_block {} is not its last block", s.last_block);
    }
    const int64_t sink_blocks = s.params.window_tokens > 0 ? ceil_div(s.params.sink_tokens, T) : 0;
    for (size_t i = 0; i < s.blocks.size(); ++i) {
      const int32_t b = s.blocks[i];
      if (b == kNull) {
        if (s.params.window_tokens == 0 || static_cast<int64_t>(i) < sink_blocks ||
            static_cast<int64_t>(i) >= s.released_end) {
          return fmt::format("null block at index {} outside the released range", i);
        }
        continue;
      }
      if (b < 0 || static_cast<size_t>(b) >= nb) return fmt::format("block id {} out of range", b);
      ++holders[b];
    }
  }
  std::vector<char> in_free(nb, 0);
  for (const int32_t b : pool_.free_stack()) {
    if (b <= 0 || static_cast<size_t>(b) >= nb) return fmt::format("free block id {} out of range", b);
    if (in_free[b]) return fmt::format("block {} twice in the free list", b);
    in_free[b] = 1;
  }
  int64_t used = 0, cached = 0, reclaimable = 0, pinned = 0, published = 0;
  std::vector<int32_t> idle_children(nb, 0);
  for (size_t b = 1; b < nb; ++b) {
    const Block& k = blocks_[b];
    if (refs_[b] != holders[b]) return fmt::format("block {}: ref {} but {} holders", b, refs_[b], holders[b]);
    if (in_free[b] && (refs_[b] != 0 || k.published)) return fmt::format("block {} is free and used or cached", b);
    if (!in_free[b] && refs_[b] == 0 && !k.published) return fmt::format("block {} is neither free, used nor cached", b);
    if (refs_[b] > 0) ++used;
    if (k.pins > 0) ++pinned;
    if (k.published) {
      ++published;
      if (table_.find(k.hash) != static_cast<int32_t>(b)) return fmt::format("block {} published but not in the table", b);
      const Hash128 h = const_cast<Manager*>(this)->hash_block(*k.keys, k.has_parent ? &k.parent_hash : nullptr,
                                                               block_tokens_of(static_cast<int32_t>(b)), k.first_token);
      if (!(h == k.hash)) return fmt::format("block {}: hash does not reproduce from its tokens", b);
      if (refs_[b] == 0) {
        ++cached;
        if (k.pins == 0) ++reclaimable;
        if (k.parent >= 0) {
          const Block& p = blocks_[k.parent];
          if (!p.published || !(p.hash == k.parent_hash)) return fmt::format("block {}: stale parent link", b);
          ++idle_children[k.parent];
          if (k.pins > 0 && p.pins == 0) return fmt::format("block {} pinned but its parent is not", b);
        }
      }
    } else if (k.pins > 0) {
      return fmt::format("block {} pinned but not cached", b);
    }
  }
  for (size_t b = 1; b < nb; ++b) {
    const Block& k = blocks_[b];
    if (k.idle_children != idle_children[b]) {
      return fmt::format("block {}: idle_children {} but {} counted", b, k.idle_children, idle_children[b]);
    }
    const bool eligible = k.published && refs_[b] == 0 && k.pins == 0 && k.idle_children == 0;
    if (eligible != k.evictable || (eligible && evictable_.count(evict_key(static_cast<int32_t>(b))) != 1)) {
      return fmt::format("block {}: evictable flag {} but eligible {}", b, k.evictable, eligible);
    }
  }
  if (static_cast<int64_t>(evictable_.size()) > reclaimable) return "eviction set larger than the reclaimable blocks";
  if (reclaimable > 0 && evictable_.empty()) return "reclaimable blocks but nothing evictable";
  if (used != used_ || cached != cached_ || reclaimable != reclaimable_ || pinned != pinned_) {
    return fmt::format("counters: used {}/{} cached {}/{} reclaimable {}/{} pinned {}/{}", used, used_, cached, cached_,
                       reclaimable, reclaimable_, pinned, pinned_);
  }
  if (used + cached + pool_.free_count() != config_.num_blocks - 1) {
    return fmt::format("used {} + cached {} + free {} != {} blocks", used, cached, pool_.free_count(),
                       config_.num_blocks - 1);
  }
  int64_t host_used = 0;
  for (size_t slot = 0; slot < host_.size(); ++slot) {
    const HostSlot& h = host_[slot];
    if (!h.used) continue;
    ++host_used;
    if (table_.find(h.hash) != host_ref(static_cast<int32_t>(slot))) return fmt::format("host slot {} not in the table", slot);
    const Hash128 hh = const_cast<Manager*>(this)->hash_block(
        *h.keys, h.has_parent ? &h.parent_hash : nullptr,
        std::span<const int32_t>(host_tokens_.data() + slot * T, static_cast<size_t>(T)), h.first_token);
    if (!(hh == h.hash)) return fmt::format("host slot {}: hash does not reproduce from its tokens", slot);
  }
  if (host_used != host_used_ || published + host_used != table_.size()) {
    return fmt::format("table holds {} entries for {} published and {} host blocks", table_.size(), published, host_used);
  }
  return "";
}

}  // namespace kvx::manager
