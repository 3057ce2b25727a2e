// The chained prefix hash of one block (byte format in docs/manager.md):
// xxh3-128 over an explicit little-endian serialisation, so equal inputs give
// equal hashes in every process and on every machine.
#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "kvx/manager.h"

namespace kvx::manager {

struct Hash128 {
  uint64_t lo = 0;
  uint64_t hi = 0;
  friend bool operator==(const Hash128&, const Hash128&) = default;
};

// The keys of a sequence that enter every block hash besides its tokens.
struct HashKeys {
  uint64_t model_id = 0;
  uint64_t adapter_id = 0;
  std::vector<uint8_t> cache_salt;      // first block only
  std::vector<kvx_media_hash_t> media;  // sorted by offset
};

// A sequence's keys, shared by its handles and by the blocks it published
// (so that their hashes can be re-derived). The count is not atomic: keys
// never leave their manager, which one thread uses at a time (manager.h),
// and a decode step takes one reference per published block, where
// std::shared_ptr would take a locked (store-ordering) increment.
class KeysRef {
 public:
  KeysRef() = default;
  explicit KeysRef(HashKeys keys) : box_(new Box{std::move(keys), 1}) {}
  KeysRef(const KeysRef& o) : box_(o.box_) {
    if (box_ != nullptr) ++box_->refs;
  }
  KeysRef(KeysRef&& o) noexcept : box_(std::exchange(o.box_, nullptr)) {}
  KeysRef& operator=(KeysRef o) noexcept {
    std::swap(box_, o.box_);
    return *this;
  }
  ~KeysRef() {
    if (box_ != nullptr && --box_->refs == 0) delete box_;
  }
  void reset() { *this = KeysRef(); }
  const HashKeys& operator*() const { return box_->keys; }
  const HashKeys* operator->() const { return &box_->keys; }
  const HashKeys* get() const { return box_ != nullptr ? &box_->keys : nullptr; }

 private:
  struct Box {
    HashKeys keys;
    int64_t refs;
  };
  Box* box_ = nullptr;
};

// Serialises and hashes blocks. Blocks of usual sizes are serialised on the
// stack; larger ones (long salts, many media items) in a scratch buffer kept
// between calls, so that hashing allocates nothing once warm.
class BlockHasher {
 public:
  explicit BlockHasher(uint64_t seed) : seed_(seed) {}
  uint64_t seed() const { return seed_; }

  // `parent` is null for the first block of a sequence; `first_token` is the
  // position of tokens[0] in the sequence.
  Hash128 hash(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
               int64_t first_token);

 private:
  uint64_t seed_;
  std::vector<uint8_t> buffer_;
};

// Hashes the whole blocks of one token list in order, each chained to the
// previous one (a prefix walk). The bytes that every block after the first
// shares (format, keys, token count, empty salt) are laid out once, so each
// further block writes only its parent's hash and its tokens: the same bytes,
// so the same hashes, as BlockHasher::hash. Blocks with media items, or too
// large for the stack buffer, go through BlockHasher::hash.
class ChainHasher {
 public:
  ChainHasher(BlockHasher& hasher, const HashKeys& keys, size_t block_tokens);
  ChainHasher(const ChainHasher&) = delete;
  ChainHasher& operator=(const ChainHasher&) = delete;

  // The hashes of the next `count` blocks, whose tokens follow each other
  // from `tokens` (count * block_tokens of them) and whose first token is
  // at `first_token`, into out[0, count).
  void next(const int32_t* tokens, int64_t first_token, int64_t count, Hash128* out);

 private:
  static constexpr size_t kBytes = 1024;
  BlockHasher& hasher_;
  const HashKeys& keys_;
  size_t block_tokens_;
  size_t size_ = 0;        // bytes of a block after the first; 0: no template
  bool first_ = true;
  Hash128 parent_;
  alignas(16) uint8_t bytes_[kBytes];
};

}  // namespace kvx::manager
