// CPU reference of the transfers: host memcpy. A block copy is the CPU
// layout conversion itself (backends/cpu/convert.cpp: raw bytes from each
// element's address in one layout to its address in the other), so the GPU
// engines are checked against the very function that kvx_convert_blocks uses.
#include <cstring>

#include "backends/backend.hpp"
#include "core/status.hpp"
#include "ops/transfer.hpp"

namespace kvx {
namespace cpu {

kvx_status_t copy_blocks(const kvx_block_copy_args_t& a, const TransferConfig& cfg, TransferStats* stats) {
  kvx_convert_args_t c = KVX_CONVERT_ARGS_INIT;
  c.src = a.src;
  c.dst = a.dst;
  c.src_blocks = a.src_blocks;
  c.dst_blocks = a.dst_blocks;
  c.num_blocks = a.num_blocks;
  KVX_TRY(convert_blocks(c, cfg.exec));
  const BlockGeometry g = block_geometry(*a.src, *a.dst);
  stats->bytes = a.num_blocks * g.num_layers * g.block_bytes();
  stats->runs = a.num_blocks * g.num_layers * g.num_kv;
  return KVX_OK;
}

kvx_status_t copy_raw(const kvx_raw_copy_args_t& a, const TransferConfig& cfg, TransferStats* stats) {
  int64_t total = 0;
  for (int64_t i = 0; i < a.num_copies; ++i) total += static_cast<int64_t>(a.copies[i].bytes);
  // Below a few hundred KiB, waking threads costs more than the copy.
  const int threads = total < (int64_t{1} << 18) ? 1 : cfg.exec.num_threads;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 16)
  for (int64_t i = 0; i < a.num_copies; ++i)
    if (a.copies[i].bytes > 0) std::memcpy(a.copies[i].dst, a.copies[i].src, a.copies[i].bytes);
  stats->bytes = total;
  stats->runs = a.num_copies;
  return KVX_OK;
}

}  // namespace cpu

#ifndef KVX_HAVE_CUDA
// Without CUDA in the build the GPU engines refuse (validation already
// refuses them through resolve_exec; these keep the link whole).
namespace cuda {
namespace {
kvx_status_t no_cuda(const char* what) {
  return fail(KVX_ERR_UNSUPPORTED, "{}: this build of KVX has no CUDA backend", what);
}
}  // namespace
kvx_status_t copy_blocks(const kvx_block_copy_args_t&, const TransferConfig&, TransferStats*) {
  return no_cuda("kvx_copy_blocks");
}
kvx_status_t copy_raw(const kvx_raw_copy_args_t&, const TransferConfig&, TransferStats*) {
  return no_cuda("kvx_copy_raw");
}
kvx_status_t event_record(int32_t, void*, void** out_event) {
  *out_event = nullptr;
  return no_cuda("event_record");
}
kvx_status_t event_query(void*, bool* out_done) {
  *out_done = true;
  return KVX_OK;
}
kvx_status_t event_synchronize(void*) { return KVX_OK; }
kvx_status_t stream_wait_event(void*, void*) { return KVX_OK; }
void event_destroy(void*) {}
}  // namespace cuda
#endif

}  // namespace kvx
