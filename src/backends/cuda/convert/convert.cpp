// kvx_convert_blocks on the CUDA backend: the block copy of copy/ with its
// layout conversion fused in (one pass, every access as wide as both
// layouts allow), on the SM kernel: conversions move whole head rows or
// single elements, which the copy engines serve badly.
#include "backends/backend.hpp"
#include "ops/transfer.hpp"

namespace kvx::cuda {

kvx_status_t convert_blocks(const kvx_convert_args_t& a, const ExecConfig& exec) {
  kvx_block_copy_args_t copy = KVX_BLOCK_COPY_ARGS_INIT;
  copy.src = a.src;
  copy.dst = a.dst;
  copy.src_blocks = a.src_blocks;
  copy.dst_blocks = a.dst_blocks;
  copy.num_blocks = a.num_blocks;
  TransferConfig cfg;
  cfg.engine = KVX_COPY_ENGINE_SM_KERNEL;
  cfg.device_id = a.src->memory == KVX_MEMORY_CUDA_HOST_PINNED ? a.dst->device_id : a.src->device_id;
  cfg.exec = exec;
  TransferStats stats;
  return copy_blocks(copy, cfg, &stats);
}

}  // namespace kvx::cuda
