// Open-addressing map from a 128-bit block hash to a block reference.
// Prefix lookups do one probe sequence per block, so this sits on the
// hottest path of kvx_seq_create; the keys are already uniform hashes, which
// makes linear probing on the low bits both simple and fast.
#pragma once

#include <cstdint>
#include <vector>

#include "manager/hash.hpp"

namespace kvx::manager {

class HashTable {
 public:
  static constexpr int32_t kAbsent = INT32_MIN;

  HashTable() { slots_.resize(16); }

  // Starts loading the slot `key` probes first, so that a batch of lookups
  // overlaps its cache misses.
  void prefetch(const Hash128& key) const { __builtin_prefetch(&slots_[key.lo & mask_]); }

  int64_t size() const { return size_; }

  int32_t find(const Hash128& key) const {
    const uint64_t mask = mask_;
    for (uint64_t i = key.lo & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.value == kAbsent) return kAbsent;
      if (s.key == key) return s.value;
    }
  }

  // Inserts or overwrites.
  void put(const Hash128& key, int32_t value) {
    Slot& s = probe(key);
    if (s.value == kAbsent) {
      s.key = key;
      ++size_;
    }
    s.value = value;
  }

  // Inserts `key` -> `value` unless `key` is present; returns the value
  // present before (kAbsent when it inserted). One probe sequence where
  // find() then put() would take two.
  int32_t insert(const Hash128& key, int32_t value) {
    Slot& s = probe(key);
    if (s.value != kAbsent) return s.value;
    s.key = key;
    s.value = value;
    ++size_;
    return kAbsent;
  }

  // Removes `key` if present; backward-shift deletion keeps probe chains
  // intact without tombstones.
  bool erase(const Hash128& key) {
    const uint64_t mask = mask_;
    uint64_t i = key.lo & mask;
    for (;; i = (i + 1) & mask) {
      if (slots_[i].value == kAbsent) return false;
      if (slots_[i].key == key) break;
    }
    uint64_t hole = i;
    for (uint64_t j = (i + 1) & mask;; j = (j + 1) & mask) {
      if (slots_[j].value == kAbsent) break;
      const uint64_t home = slots_[j].key.lo & mask;
      // slots_[j] may move to the hole only if its home is not in (hole, j].
      const bool in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!in_between) {
        slots_[hole] = slots_[j];
        hole = j;
      }
    }
    slots_[hole].value = kAbsent;
    --size_;
    return true;
  }

  void clear() {
    for (Slot& s : slots_) s.value = kAbsent;
    size_ = 0;
  }

  template <typename F>
  void for_each(F&& f) const {
    for (const Slot& s : slots_) {
      if (s.value != kAbsent) f(s.key, s.value);
    }
  }

 private:
  struct Slot {
    Hash128 key;
    int32_t value = kAbsent;
  };

  // The slot holding `key`, or the empty slot where it goes (after growing
  // if one more entry would pass half the capacity).
  [[gnu::always_inline]] Slot& probe(const Hash128& key) {
    if (2 * (size_ + 1) > static_cast<int64_t>(slots_.size())) grow();
    const uint64_t mask = mask_;
    for (uint64_t i = key.lo & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.value == kAbsent || s.key == key) return s;
    }
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
    for (const Slot& s : old) {
      if (s.value != kAbsent) put(s.key, s.value);
    }
  }

  std::vector<Slot> slots_;
  uint64_t mask_ = 15;
  int64_t size_ = 0;
};

}  // namespace kvx::manager
