// The chained prefix hash of one block (byte format in docs/manager.md):
// xxh3-128 over an explicit little-endian serialisation, so equal inputs give
// equal hashes in every process and on every machine.
#pragma once

#include <cstdint>
#include <span>
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

// Serialises and hashes blocks; owns a scratch buffer so that hashing a block
// allocates nothing once warm.
class BlockHasher {
 public:
  explicit BlockHasher(uint64_t seed) : seed_(seed) {}

  // `parent` is null for the first block of a sequence; `first_token` is the
  // position of tokens[0] in the sequence.
  Hash128 hash(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
               int64_t first_token);

 private:
  uint64_t seed_;
  std::vector<uint8_t> buffer_;
};

}  // namespace kvx::manager
