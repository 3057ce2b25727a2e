// The offload tier's data path behind kvx_offload_t (include/kvx/transfer.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "kvx/transfer.h"

namespace kvx::ops {

class Offload {
 public:
  // Validates the config (both layouts, same dims and dtype, the engine).
  static kvx_status_t create(const kvx_offload_config_t* config, std::unique_ptr<Offload>* out);
  ~Offload();  // waits for every submission in flight
  Offload(const Offload&) = delete;
  Offload& operator=(const Offload&) = delete;

  kvx_status_t submit(const kvx_copy_t* items, int64_t n, void* stream, uint64_t* out_ticket);
  kvx_status_t query(uint64_t ticket, bool* done);
  kvx_status_t wait(uint64_t ticket);
  kvx_status_t block_busy(kvx_pool_tier_t tier, int64_t block, bool* busy);
  kvx_status_t stream_wait_blocks(kvx_pool_tier_t tier, const int32_t* blocks, int64_t n, void* stream);

 private:
  Offload() = default;
  kvx_block_copy_args_t args(const kvx_layout_t& src, const kvx_layout_t& dst) const;
  kvx_status_t ticket_of(kvx_pool_tier_t tier, int64_t block, const char* name, uint64_t* out) const;

  kvx_layout_t device_{}, host_{};
  std::vector<void*> device_ptrs_, host_ptrs_;
  kvx_copy_engine_t engine_ = KVX_COPY_ENGINE_AUTO;
  kvx_dma_mode_t dma_mode_ = KVX_DMA_BATCHED_WITH_FALLBACK;
  int32_t max_ctas_ = 0;
  // Per block of each tier: the last submission that read or wrote it (0: none).
  std::vector<uint64_t> device_ticket_, host_ticket_;
  std::map<uint64_t, void*> events_;  // submissions on a GPU engine not yet seen complete
  uint64_t next_ticket_ = 1;
};

}  // namespace kvx::ops
