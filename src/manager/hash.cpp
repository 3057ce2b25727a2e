#include "manager/hash.hpp"

// Inlined: the hash of a block sits on the serial chain of every prefix
// lookup, and a call into the shared library costs a visible share of it.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <bit>
#include <cstring>

namespace kvx::manager {
namespace {

// Format version of the serialisation: bump it if the byte layout changes,
// so that old and new hashes can never collide by accident.
constexpr uint32_t kHashFormat = 1;

// Block sizes engines use; their token rows are copied with a fixed-size
// memcpy (a few vector moves) instead of a call into libc.
void copy_le_tokens(uint8_t* out, const int32_t* src, size_t n) {
  if constexpr (std::endian::native == std::endian::little) {
    switch (n) {
      case 16: std::memcpy(out, src, 64); return;
      case 32: std::memcpy(out, src, 128); return;
      case 64: std::memcpy(out, src, 256); return;
      default: if (n > 0) std::memcpy(out, src, 4 * n); return;
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const uint32_t v = static_cast<uint32_t>(src[i]);
      for (int j = 0; j < 4; ++j) out[4 * i + j] = static_cast<uint8_t>(v >> (8 * j));
    }
  }
}

// Writes integers as little-endian bytes whatever the host's byte order,
// into a buffer sized up front.
class LeWriter {
 public:
  explicit LeWriter(uint8_t* out) : p_(out) {}
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i64(int64_t v) { put(static_cast<uint64_t>(v), 8); }
  void bytes(const uint8_t* src, size_t n) {
    if (n > 0) std::memcpy(p_, src, n);
    p_ += n;
  }
  void i32_array(const int32_t* src, size_t n) {
    copy_le_tokens(p_, src, n);
    p_ += 4 * n;
  }

 private:
  void put(uint64_t v, int n) {
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(p_, &v, static_cast<size_t>(n));
    } else {
      for (int i = 0; i < n; ++i) p_[i] = static_cast<uint8_t>(v >> (8 * i));
    }
    p_ += n;
  }
  uint8_t* p_;
};

bool overlaps(const kvx_media_hash_t& m, int64_t first, int64_t last) {
  return m.offset < last && m.offset + m.num_tokens > first;
}

// Bytes of a block of 16 tokens after the first, without media: the block
// size most engines use.
constexpr size_t kBytes16 = 4 + 4 + 16 + 16 + 4 + 4 * 16 + 4 + 4;

// xxh3-128 of a block's bytes. XXH3_128bits is XXH3_128bits_withSeed with
// seed 0 (the default), and a constant length of 116 bytes lets the compiler
// fold the seed into the secret and drop the length branches: the same
// function of the same bytes, in fewer instructions.
inline XXH128_hash_t xxh3_128(const uint8_t* bytes, size_t size, uint64_t seed) {
  if (seed != 0) return XXH3_128bits_withSeed(bytes, size, seed);
  if (size == kBytes16) return XXH3_128bits(bytes, kBytes16);
  return XXH3_128bits(bytes, size);
}

// Serialises one block into `out` (`size` bytes, computed by the caller) and
// hashes it. Inlined into both callers so that the writes to a stack buffer
// are known not to alias the keys.
inline Hash128 serialise_and_hash(uint8_t* out, size_t size, uint64_t seed, const HashKeys& keys,
                                  const Hash128* parent, std::span<const int32_t> tokens, int64_t first_token,
                                  size_t salt, uint32_t media) {
  const int64_t last_token = first_token + static_cast<int64_t>(tokens.size());
  LeWriter w(out);
  w.u32(kHashFormat);
  w.u32(parent != nullptr ? 1u : 0u);
  w.u64(parent != nullptr ? parent->lo : 0);
  w.u64(parent != nullptr ? parent->hi : 0);
  w.u64(keys.model_id);
  w.u64(keys.adapter_id);
  w.u32(static_cast<uint32_t>(tokens.size()));
  w.i32_array(tokens.data(), tokens.size());
  // The salt separates tenants; on the first block it separates the whole chain.
  w.u32(static_cast<uint32_t>(salt));
  w.bytes(keys.cache_salt.data(), salt);
  w.u32(media);
  if (media > 0) {
    for (const kvx_media_hash_t& m : keys.media) {
      if (overlaps(m, first_token, last_token)) {
        w.u64(m.hash_lo);
        w.u64(m.hash_hi);
        w.i64(m.offset - first_token);
        w.i64(m.num_tokens);
      }
    }
  }
  const XXH128_hash_t h = xxh3_128(out, size, seed);
  return Hash128{h.low64, h.high64};
}

// Blocks whose bytes fit here (up to about 240 tokens without salt or media)
// are serialised on the stack: no buffer to size, nothing shared to reload.
constexpr size_t kStackBytes = 1024;

}  // namespace

Hash128 BlockHasher::hash(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
                          int64_t first_token) {
  if (parent != nullptr && tokens.size() == 16 && keys.media.empty()) {
    // A block after the first, of the usual size, without media (every
    // block a decode step fills, as a rule): the same bytes at offsets known
    // to the compiler, which drops the size and key branches.
    alignas(16) uint8_t buffer[kBytes16];
    return serialise_and_hash(buffer, kBytes16, seed_, keys, parent, std::span<const int32_t>(tokens.data(), 16),
                              first_token, 0, 0);
  }
  uint32_t media = 0;
  if (!keys.media.empty()) {
    const int64_t last_token = first_token + static_cast<int64_t>(tokens.size());
    for (const kvx_media_hash_t& m : keys.media) media += overlaps(m, first_token, last_token) ? 1 : 0;
  }
  const size_t salt = parent == nullptr ? keys.cache_salt.size() : 0;
  const size_t size = 4 + 4 + 16 + 16 + 4 + 4 * tokens.size() + 4 + salt + 4 + 32 * size_t{media};
  if (size <= kStackBytes) {
    alignas(16) uint8_t buffer[kStackBytes];
    return serialise_and_hash(buffer, size, seed_, keys, parent, tokens, first_token, salt, media);
  }
  if (buffer_.size() < size) buffer_.resize(size);
  return serialise_and_hash(buffer_.data(), size, seed_, keys, parent, tokens, first_token, salt, media);
}

// Offsets in the byte format (docs/manager.md) of a block with a parent.
constexpr size_t kParentOffset = 8;
constexpr size_t kTokensOffset = 44;

ChainHasher::ChainHasher(BlockHasher& hasher, const HashKeys& keys, size_t block_tokens)
    : hasher_(hasher), keys_(keys), block_tokens_(block_tokens) {
  const size_t size = kTokensOffset + 4 * block_tokens + 4 + 4;
  if (!keys.media.empty() || size > kBytes) return;
  LeWriter w(bytes_);
  w.u32(kHashFormat);
  w.u32(1);  // has_parent
  w.u64(0);  // parent, written per block
  w.u64(0);
  w.u64(keys.model_id);
  w.u64(keys.adapter_id);
  w.u32(static_cast<uint32_t>(block_tokens));
  std::memset(bytes_ + kTokensOffset, 0, 4 * block_tokens);  // tokens, written per block
  LeWriter tail(bytes_ + kTokensOffset + 4 * block_tokens);
  tail.u32(0);  // no salt after the first block
  tail.u32(0);  // no media
  size_ = size;
}

void ChainHasher::next(const int32_t* tokens, int64_t first_token, int64_t count, Hash128* out) {
  const size_t T = block_tokens_;
  int64_t i = 0;
  if (first_ || size_ == 0) {
    // The first block (salt, no parent) and untemplated chains: the general path.
    for (; i < count && (first_ || size_ == 0); ++i) {
      out[i] = hasher_.hash(keys_, first_ ? nullptr : &parent_, std::span<const int32_t>(tokens + i * T, T),
                            first_token + i * static_cast<int64_t>(T));
      first_ = false;
      parent_ = out[i];
    }
  }
  // One loop over the chain keeps the parent in registers and xxh3 inlined.
  Hash128 parent = parent_;
  const uint64_t seed = hasher_.seed();
  for (; i < count; ++i) {
    LeWriter w(bytes_ + kParentOffset);
    w.u64(parent.lo);
    w.u64(parent.hi);
    copy_le_tokens(bytes_ + kTokensOffset, tokens + i * T, T);
    const XXH128_hash_t x = xxh3_128(bytes_, size_, seed);
    parent = Hash128{x.low64, x.high64};
    out[i] = parent;
  }
  parent_ = parent;
}

}  // namespace kvx::manager
