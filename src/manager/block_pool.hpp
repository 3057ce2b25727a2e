// Block ids of the device pool: a free stack over ids already used (their
// memory is committed) and a frontier of never-used ids (committed on first
// use). Ids never move; id 0 is the null block and is never handed out.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "manager/physical_memory.hpp"

namespace kvx::manager {

class BlockPool {
 public:
  BlockPool(int64_t capacity, uint64_t bytes_per_block, std::unique_ptr<PhysicalMemory> memory)
      : capacity_(capacity), bytes_per_block_(bytes_per_block), memory_(std::move(memory)) {
    free_.reserve(static_cast<size_t>(std::min<int64_t>(capacity, 1 << 20)));
  }

  int64_t capacity() const { return capacity_; }
  int64_t high_water() const { return high_water_; }
  // Free ids: the stack plus the frontier.
  int64_t free_count() const { return static_cast<int64_t>(free_.size()) + capacity_ - high_water_; }
  int64_t stacked() const { return static_cast<int64_t>(free_.size()); }
  const std::vector<int32_t>& free_stack() const { return free_; }

  // A free id, most recently freed first (its memory is warm), then a new
  // one; -1 when there is none. New ids must have been reserved().
  int32_t pop() {
    if (!free_.empty()) {
      const int32_t b = free_.back();
      free_.pop_back();
      return b;
    }
    if (high_water_ < capacity_) return static_cast<int32_t>(high_water_++);
    return -1;
  }
  void push(int32_t b) { free_.push_back(b); }
  // The id that the k-th pop from now returns if nothing is pushed before
  // it; -1 when there is none (a hint: for prefetching only).
  int32_t peek(int64_t k) const {
    const int64_t stacked = static_cast<int64_t>(free_.size());
    if (k < stacked) return free_[static_cast<size_t>(stacked - 1 - k)];
    const int64_t id = high_water_ + (k - stacked);
    return id < capacity_ ? static_cast<int32_t>(id) : -1;
  }

  // Commits the memory of enough new ids that `blocks` more pops succeed
  // without touching uncommitted memory.
  kvx_status_t reserve(int64_t blocks) {
    const int64_t fresh = std::max<int64_t>(0, blocks - static_cast<int64_t>(free_.size()));
    const int64_t top = std::min(capacity_, high_water_ + fresh);
    if (memory_ == nullptr || bytes_per_block_ == 0) return KVX_OK;
    return memory_->commit(static_cast<uint64_t>(top) * bytes_per_block_);
  }

  // New never-used ids [capacity, new_capacity); the caller keeps
  // new_capacity * bytes_per_block within the reserved range.
  void grow(int64_t new_capacity) { capacity_ = std::max(capacity_, new_capacity); }

  // Gives back ids [new_high_water, high_water) (all free) and their memory.
  kvx_status_t shrink_to(int64_t new_high_water) {
    std::erase_if(free_, [&](int32_t b) { return b >= new_high_water; });
    high_water_ = new_high_water;
    if (memory_ == nullptr || bytes_per_block_ == 0) return KVX_OK;
    return memory_->shrink(static_cast<uint64_t>(high_water_) * bytes_per_block_);
  }

  uint64_t committed_bytes() const {
    if (memory_ != nullptr) return memory_->committed_bytes();
    return static_cast<uint64_t>(high_water_) * bytes_per_block_;
  }
  uint64_t reserved_bytes() const {
    if (memory_ != nullptr) return memory_->reserved_bytes();
    return static_cast<uint64_t>(capacity_) * bytes_per_block_;
  }
  void* base() const { return memory_ != nullptr ? memory_->base() : nullptr; }

 private:
  int64_t capacity_;
  uint64_t bytes_per_block_;
  std::unique_ptr<PhysicalMemory> memory_;
  std::vector<int32_t> free_;
  int64_t high_water_ = 1;  // the null block is always "used"
};

}  // namespace kvx::manager
