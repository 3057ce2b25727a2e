#include "manager/hash.hpp"

#include <xxhash.h>

#include <bit>
#include <cstring>

namespace kvx::manager {
namespace {

// Format version of the serialisation: bump it if the byte layout changes,
// so that old and new hashes can never collide by accident.
constexpr uint32_t kHashFormat = 1;

// Appends integers as little-endian bytes whatever the host's byte order.
class LeWriter {
 public:
  explicit LeWriter(std::vector<uint8_t>& out) : out_(out) {}
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  void i64(int64_t v) { put(static_cast<uint64_t>(v), 8); }
  void bytes(const uint8_t* p, size_t n) { out_.insert(out_.end(), p, p + n); }
  void i32_array(const int32_t* p, size_t n) {
    const size_t at = out_.size();
    out_.resize(at + 4 * n);
    if constexpr (std::endian::native == std::endian::little) {
      std::memcpy(out_.data() + at, p, 4 * n);
    } else {
      for (size_t i = 0; i < n; ++i) write_le(out_.data() + at + 4 * i, static_cast<uint32_t>(p[i]), 4);
    }
  }

 private:
  static void write_le(uint8_t* dst, uint64_t v, int n) {
    for (int i = 0; i < n; ++i) dst[i] = static_cast<uint8_t>(v >> (8 * i));
  }
  void put(uint64_t v, int n) {
    const size_t at = out_.size();
    out_.resize(at + static_cast<size_t>(n));
    write_le(out_.data() + at, v, n);
  }
  std::vector<uint8_t>& out_;
};

}  // namespace

Hash128 BlockHasher::hash(const HashKeys& keys, const Hash128* parent, std::span<const int32_t> tokens,
                          int64_t first_token) {
  buffer_.clear();
  LeWriter w(buffer_);
  w.u32(kHashFormat);
  w.u32(parent != nullptr ? 1u : 0u);
  w.u64(parent != nullptr ? parent->lo : 0);
  w.u64(parent != nullptr ? parent->hi : 0);
  w.u64(keys.model_id);
  w.u64(keys.adapter_id);
  w.u32(static_cast<uint32_t>(tokens.size()));
  w.i32_array(tokens.data(), tokens.size());
  // The salt separates tenants; on the first block it separates the whole chain.
  if (parent == nullptr) {
    w.u32(static_cast<uint32_t>(keys.cache_salt.size()));
    w.bytes(keys.cache_salt.data(), keys.cache_salt.size());
  } else {
    w.u32(0);
  }
  const int64_t last_token = first_token + static_cast<int64_t>(tokens.size());
  uint32_t count = 0;
  for (const kvx_media_hash_t& m : keys.media) {
    if (m.offset < last_token && m.offset + m.num_tokens > first_token) ++count;
  }
  w.u32(count);
  for (const kvx_media_hash_t& m : keys.media) {
    if (m.offset < last_token && m.offset + m.num_tokens > first_token) {
      w.u64(m.hash_lo);
      w.u64(m.hash_hi);
      w.i64(m.offset - first_token);
      w.i64(m.num_tokens);
    }
  }
  const XXH128_hash_t h = XXH3_128bits_withSeed(buffer_.data(), buffer_.size(), seed_);
  return Hash128{h.low64, h.high64};
}

}  // namespace kvx::manager
