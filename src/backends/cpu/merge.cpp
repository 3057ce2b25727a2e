// CPU reference of kvx_merge_states. The weights are taken relative to the
// larger lse so that neither exp() overflows; a side with lse = -inf (no
// visible key) has weight 0, and two such sides give out 0, lse -inf.
#include <omp.h>

#include <cmath>
#include <limits>

#include "backends/backend.hpp"
#include "backends/cpu/rows.hpp"

namespace kvx::cpu {

kvx_status_t merge_states(const kvx_merge_args_t& a, const ExecConfig& exec) {
  const int64_t rows = a.out_a.num_tokens, heads = a.out_a.num_heads, dim = a.out_a.head_dim;
  const bool has_lse = a.lse.data != nullptr;
  ThreadScratch scratch(exec.num_threads, 2 * dim);

#pragma omp parallel for num_threads(exec.num_threads) schedule(static)
  for (int64_t item = 0; item < rows * heads; ++item) {
    const int64_t r = item / heads, h = item % heads;
    float* xa = scratch.of(omp_get_thread_num());
    float* xb = xa + dim;
    float la, lb;
    load_tensor_row(a.lse_a, r, h, &la);
    load_tensor_row(a.lse_b, r, h, &lb);
    const float m = std::fmax(la, lb);
    float lse;
    if (m == -std::numeric_limits<float>::infinity()) {
      for (int64_t d = 0; d < dim; ++d) xa[d] = 0.0f;
      lse = m;
    } else {
      const float wa = std::exp(la - m), wb = std::exp(lb - m), sum = wa + wb;
      load_tensor_row(a.out_a, r, h, xa);
      load_tensor_row(a.out_b, r, h, xb);
      for (int64_t d = 0; d < dim; ++d) {
        // A side of weight 0 adds nothing, even if its row holds garbage.
        const float pa = wa > 0.0f ? xa[d] * wa : 0.0f, pb = wb > 0.0f ? xb[d] * wb : 0.0f;
        xa[d] = (pa + pb) / sum;
      }
      lse = m + std::log(sum);
    }
    // Both inputs are read before anything is stored: out may alias out_a.
    store_tensor_row(a.out, r, h, xa);
    if (has_lse) store_tensor_row(a.lse, r, h, &lse);
  }
  return KVX_OK;
}

}  // namespace kvx::cpu
