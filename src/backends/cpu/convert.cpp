// CPU reference of kvx_convert_blocks: every element of every (block, layer,
// plane) is copied as raw bytes from its address in the source layout to its
// address in the destination layout, so any storage dtype converts bit for
// bit (fp8 and int8 are bytes here, never numbers). Whole head rows, or whole
// (token, head) chunks of a block, move with one memcpy where both sides
// store them contiguously in the same order.
#include <cstring>

#include "backends/backend.hpp"
#include "core/dtype.hpp"
#include "layout/layout.hpp"

namespace kvx::cpu {
namespace {

// Element copy with the element size known at compile time, so that each
// memcpy is a single load and store.
template <int64_t kBytes>
void copy_row_elements(std::byte* dst, const kvx_plane_t& dp, const std::byte* src,
                       const kvx_plane_t& sp, kvx_dtype_t dtype) {
  for (int64_t d = 0; d < sp.head_dim; ++d)
    std::memcpy(dst + dim_offset_bytes(dp, d, dtype), src + dim_offset_bytes(sp, d, dtype), kBytes);
}

// Whether the (token, head) rows of a block are one dense chunk, in
// token-major (NHD) or head-major (HND) order.
bool chunk_token_major(const kvx_layout_t& l, const kvx_plane_t& p, int64_t row_bytes) {
  return (l.block_tokens == 1 || p.token_stride_bytes == l.num_kv_heads * row_bytes) &&
         (l.num_kv_heads == 1 || p.head_stride_bytes == row_bytes);
}
bool chunk_head_major(const kvx_layout_t& l, const kvx_plane_t& p, int64_t row_bytes) {
  return (l.num_kv_heads == 1 || p.head_stride_bytes == l.block_tokens * row_bytes) &&
         (l.block_tokens == 1 || p.token_stride_bytes == row_bytes);
}

void copy_block_plane(const kvx_layout_t& s, const kvx_layout_t& d, int64_t layer, int kv,
                      int64_t src_block, int64_t dst_block) {
  const kvx_plane_t& sp = s.plane[kv];
  const kvx_plane_t& dp = d.plane[kv];
  const int64_t row_bytes = sp.head_dim * dtype_bits(s.dtype) / 8;
  // INT4 rows are always packed (validation refuses anything else), so they
  // always take a memcpy path and never need a nibble copy.
  const bool rows_contiguous = plane_dim_contiguous(s, kv) && plane_dim_contiguous(d, kv);
  if (rows_contiguous &&
      ((chunk_token_major(s, sp, row_bytes) && chunk_token_major(d, dp, row_bytes)) ||
       (chunk_head_major(s, sp, row_bytes) && chunk_head_major(d, dp, row_bytes)))) {
    std::memcpy(row_address(d, layer, kv, dst_block, 0, 0),
                row_address(s, layer, kv, src_block, 0, 0),
                static_cast<size_t>(s.block_tokens * s.num_kv_heads * row_bytes));
    return;
  }
  for (int64_t t = 0; t < s.block_tokens; ++t)
    for (int64_t h = 0; h < s.num_kv_heads; ++h) {
      std::byte* dst = row_address(d, layer, kv, dst_block, t, h);
      const std::byte* src = row_address(s, layer, kv, src_block, t, h);
      if (rows_contiguous) {
        std::memcpy(dst, src, static_cast<size_t>(row_bytes));
        continue;
      }
      switch (dtype_bytes(s.dtype)) {
        case 1: copy_row_elements<1>(dst, dp, src, sp, s.dtype); break;
        case 2: copy_row_elements<2>(dst, dp, src, sp, s.dtype); break;
        default: copy_row_elements<4>(dst, dp, src, sp, s.dtype); break;
      }
    }
}

}  // namespace

kvx_status_t convert_blocks(const kvx_convert_args_t& a, const ExecConfig& exec) {
  const kvx_layout_t& s = *a.src;
  const kvx_layout_t& d = *a.dst;
  const int64_t items = a.num_blocks * s.num_layers;
  int64_t bytes_per_item = 0;
  for (int kv = 0; kv < s.num_kv; ++kv)
    bytes_per_item +=
        s.block_tokens * s.num_kv_heads * s.plane[kv].head_dim * dtype_bits(s.dtype) / 8;
  // Below a few hundred KiB, waking threads costs more than the copy.
  const int threads = items * bytes_per_item < (int64_t{1} << 18) ? 1 : exec.num_threads;

#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t item = 0; item < items; ++item) {
    const int64_t i = item / s.num_layers;
    const int64_t layer = item % s.num_layers;
    for (int kv = 0; kv < s.num_kv; ++kv)
      copy_block_plane(s, d, layer, kv, a.src_blocks[i], a.dst_blocks[i]);
  }
  return KVX_OK;
}

}  // namespace kvx::cpu
