// CPU reference of kvx_gather: sequence after sequence, token after token,
// each cache row converted to the output tensor's dtype.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "backends/backend.hpp"
#include "backends/cpu/rows.hpp"
#include "layout/layout.hpp"

namespace kvx::cpu {

kvx_status_t gather(const kvx_gather_args_t& a, const ExecConfig& exec) {
  const kvx_layout_t& c = *a.cache;
  const PageTableView table(*a.page_table, c.block_tokens);
  // First output row of each sequence.
  std::vector<int64_t> first(static_cast<size_t>(table.num_seqs()) + 1, 0);
  for (int64_t b = 0; b < table.num_seqs(); ++b) first[b + 1] = first[b] + table.seq_len(b);
  const kvx_tensor_t* dst[2] = {&a.k_out, &a.v_out};
  const int64_t max_dim = std::max(c.plane[0].head_dim, c.num_kv == 2 ? c.plane[1].head_dim : 0);
  ThreadScratch scratch(exec.num_threads, max_dim);

#pragma omp parallel for num_threads(exec.num_threads) schedule(static)
  for (int64_t r = 0; r < first.back(); ++r) {
    const int64_t b = std::upper_bound(first.begin(), first.end(), r) - first.begin() - 1;
    const int64_t pos = r - first[b];
    const int64_t block = table.block(b, pos / c.block_tokens);
    float* row = scratch.of(omp_get_thread_num());
    for (int64_t kv = 0; kv < c.num_kv; ++kv)
      for (int64_t h = 0; h < c.num_kv_heads; ++h) {
        load_cache_row(row_address(c, a.layer, kv, block, pos % c.block_tokens, h), c.plane[kv], c.dtype, row);
        store_tensor_row(*dst[kv], r, h, row);
      }
  }
  return KVX_OK;
}

}  // namespace kvx::cpu
