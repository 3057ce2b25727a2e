// CPU reference of kvx_append: each row of k/v is converted to the storage
// dtype and written to its slot. Rows target distinct slots (ops checked it),
// so they are written in parallel without ordering.
#include <omp.h>

#include <algorithm>

#include "backends/backend.hpp"
#include "backends/cpu/rows.hpp"
#include "layout/layout.hpp"

namespace kvx::cpu {

kvx_status_t append(const kvx_append_args_t& a, const ExecConfig& exec) {
  const kvx_layout_t& c = *a.cache;
  const int64_t n = a.k.num_tokens;
  const kvx_tensor_t* src[2] = {&a.k, &a.v};
  const int64_t max_dim = std::max(c.plane[0].head_dim, c.num_kv == 2 ? c.plane[1].head_dim : 0);
  ThreadScratch scratch(exec.num_threads, max_dim);

#pragma omp parallel for num_threads(exec.num_threads) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    int64_t block, token;
    if (a.slot_mapping != nullptr) {
      const int64_t slot = a.slot_mapping[i];
      if (slot < 0) continue;  // padding row
      block = slot / c.block_tokens;
      token = slot % c.block_tokens;
    } else {
      const PageTableView table(*a.page_table, c.block_tokens);
      const int64_t pos = a.positions[i];
      block = table.block(a.batch_indices[i], pos / c.block_tokens);
      token = pos % c.block_tokens;
    }
    float* row = scratch.of(omp_get_thread_num());
    for (int64_t kv = 0; kv < c.num_kv; ++kv)
      for (int64_t h = 0; h < c.num_kv_heads; ++h) {
        load_tensor_row(*src[kv], i, h, row);
        store_cache_row(row_address(c, a.layer, kv, block, token, h), c.plane[kv], c.dtype, row);
      }
  }
  return KVX_OK;
}

}  // namespace kvx::cpu
