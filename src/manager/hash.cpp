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

// Writes integers as little-endian bytes whatever the host's byte order,
// into a buffer sized up front (one resize per block: this is the hot path
// of every prefix lookup).
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
    if constexpr (std::endian::native == std::endian::little) {
      bytes(reinterpret_cast<const uint8_t*>(src), 4 * n);
    } else {
      for (size_t i = 0; i < n; ++i) u32(static_cast<uint32_t>(src[i]));
    }
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

}  // namespace

Hash128 BlockHasher::hash(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
                          int64_t first_token) {
  const int64_t last_token = first_token + static_cast<int64_t>(tokens.size());
  uint32_t media = 0;
  for (const kvx_media_hash_t& m : keys.media) media += overlaps(m, first_token, last_token) ? 1 : 0;
  const size_t salt = parent == nullptr ? keys.cache_salt.size() : 0;
  const size_t size = 4 + 4 + 16 + 16 + 4 + 4 * tokens.size() + 4 + salt + 4 + 32 * size_t{media};
  if (buffer_.size() < size) buffer_.resize(size);
  LeWriter w(buffer_.data());
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
  for (const kvx_media_hash_t& m : keys.media) {
    if (overlaps(m, first_token, last_token)) {
      w.u64(m.hash_lo);
      w.u64(m.hash_hi);
      w.i64(m.offset - first_token);
      w.i64(m.num_tokens);
    }
  }
  const XXH128_hash_t h = XXH3_128bits_withSeed(buffer_.data(), size, seed_);
  return Hash128{h.low64, h.high64};
}

}  // namespace kvx::manager
