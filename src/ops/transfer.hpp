// Block and raw transfers (include/kvx/transfer.h): the op entry points, the
// contract with the backends that move the bytes, and the block geometry that
// both the plan and the engines read. Validation happens once, in
// ops/transfer.cpp; the backends trust what reaches them.
#pragma once

#include <cstdint>
#include <vector>

#include "backends/backend.hpp"
#include "kvx/transfer.h"

namespace kvx {

// A validated transfer: the engine resolved (never AUTO) and where it runs.
struct TransferConfig {
  kvx_copy_engine_t engine = KVX_COPY_ENGINE_CPU;
  kvx_dma_mode_t dma_mode = KVX_DMA_BATCHED_WITH_FALLBACK;
  kvx_transfer_direction_t direction = KVX_TRANSFER_H2H;
  int32_t max_ctas = 0;
  int32_t device_id = 0;  // the CUDA device that runs the copy (of the device-side memory)
  ExecConfig exec;
};

// What an engine did (copied into kvx_transfer_report_t).
struct TransferStats {
  kvx_dma_path_t dma_path = KVX_DMA_PATH_NONE;
  int64_t bytes = 0;
  int64_t runs = 0;
  int64_t launches = 0;
};

// How one plane (K or V) of one block moves between two layouts of the same
// logical dims: as one contiguous run (both sides store the block's (token,
// head) rows densely in the same order), as one run per head row (rows
// contiguous on both sides), or element by element (a split or strided head
// dim on either side: vLLM's legacy cache).
enum class PlaneMove : int32_t { kChunk = 0, kRows = 1, kElements = 2 };

struct BlockGeometry {
  int32_t num_kv = 2;
  int64_t num_layers = 0;
  int64_t block_tokens = 0;
  int64_t num_heads = 0;
  int64_t elem_bytes = 0;
  PlaneMove move[2] = {PlaneMove::kChunk, PlaneMove::kChunk};
  int64_t row_bytes[2] = {0, 0};    // one head row of the plane
  int64_t plane_bytes[2] = {0, 0};  // one block of the plane (block_tokens * heads * row)

  int64_t block_bytes() const;  // all planes of one layer
  // The contiguous run each move copies: the whole plane, a row, or an element.
  int64_t run_bytes(int kv) const;
  // Mean contiguous run over the planes (what the AUTO plan compares).
  int64_t mean_run_bytes() const;
  bool rows_contiguous() const;  // the DMA engine can serve it
};

// Requires two layouts that validate and share logical dims and dtype.
BlockGeometry block_geometry(const kvx_layout_t& src, const kvx_layout_t& dst);

// One contiguous run; `dst`/`src` are addresses the engine can use.
struct CopyRun {
  std::byte* dst;
  const std::byte* src;
  uint64_t bytes;
};

// Every run of a block copy whose rows are contiguous on both sides, in
// (pair, layer, plane, token, head) order, with runs that continue each
// other on both sides merged into one.
std::vector<CopyRun> block_copy_runs(const kvx_block_copy_args_t& args, const BlockGeometry& g);
// Appends `run` to `runs`, merged into the last run when it continues it on
// both sides (consecutive blocks of a block-major pool become one run).
void append_run(std::vector<CopyRun>* runs, const CopyRun& run);

namespace cpu {
kvx_status_t copy_blocks(const kvx_block_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats);
kvx_status_t copy_raw(const kvx_raw_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats);
}  // namespace cpu

// Without CUDA in the build these refuse with KVX_ERR_UNSUPPORTED (the stubs
// are in backends/cpu/transfer.cpp); with it, backends/cuda/copy/ has them.
namespace cuda {
kvx_status_t copy_blocks(const kvx_block_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats);
kvx_status_t copy_raw(const kvx_raw_copy_args_t& args, const TransferConfig& cfg, TransferStats* stats);

// Events of the offload data path. An event handle is opaque (a cudaEvent_t).
kvx_status_t event_record(int32_t device_id, void* stream, void** out_event);
kvx_status_t event_query(void* event, bool* out_done);
kvx_status_t event_synchronize(void* event);
kvx_status_t stream_wait_event(void* stream, void* event);
void event_destroy(void* event);
}  // namespace cuda

namespace ops {
kvx_status_t transfer_plan_default(kvx_transfer_plan_t* out);
kvx_status_t copy_blocks(const kvx_block_copy_args_t* args, const kvx_exec_t* exec, bool run);
kvx_status_t copy_raw(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec, bool run);

// Validates a block copy and resolves its engine without copying (the
// offload path validates a whole submission before enqueuing any of it).
kvx_status_t validate_block_copy(const kvx_block_copy_args_t* args, const kvx_exec_t* exec, TransferConfig* cfg);
// Runs a block copy that validate_block_copy accepted.
kvx_status_t run_block_copy(const kvx_block_copy_args_t& args, const TransferConfig& cfg);
}  // namespace ops

}  // namespace kvx
