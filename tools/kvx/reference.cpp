// The float64 oracle of the demo (reference.hpp): one query row and head at a
// time, every visible key, a max-subtracted softmax.
#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace kvx::tool {

ReferenceResult reference_attention(const ReferenceAttention& p) {
  const int64_t rows = static_cast<int64_t>(p.row_seq.size());
  const int64_t group = p.num_q_heads / p.num_kv_heads;
  const double scale = p.scale != 0.0 ? p.scale : 1.0 / std::sqrt(static_cast<double>(p.head_dim));
  ReferenceResult r;
  r.out.assign(static_cast<size_t>(rows * p.num_q_heads * p.head_dim_v), 0.0);
  r.lse.assign(static_cast<size_t>(rows * p.num_q_heads), 0.0);

#pragma omp parallel for schedule(dynamic)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t b = p.row_seq[row];
    const int64_t pos = p.row_pos[row];
    std::vector<double> logits;
    std::vector<int64_t> keys;
    for (int64_t j = 0; j < p.seq_len[b]; ++j) {
      const bool causal_ok = !p.causal || j <= pos;
      const bool window_ok = p.window_left < 0 || j >= pos - p.window_left || j < p.sink_tokens;
      if (causal_ok && window_ok) keys.push_back(j);
    }
    for (int64_t h = 0; h < p.num_q_heads; ++h) {
      const int64_t kvh = h / group;
      const double* q = p.q->data() + (row * p.num_q_heads + h) * p.head_dim;
      double* out = r.out.data() + (row * p.num_q_heads + h) * p.head_dim_v;
      double& lse = r.lse[static_cast<size_t>(row * p.num_q_heads + h)];
      if (keys.empty()) {
        lse = -std::numeric_limits<double>::infinity();
        continue;
      }
      logits.assign(keys.size(), 0.0);
      double max_logit = -std::numeric_limits<double>::infinity();
      for (size_t i = 0; i < keys.size(); ++i) {
        const int64_t token = p.seq_start[b] + keys[i];
        const double* k = p.k->data() + (token * p.num_kv_heads + kvh) * p.head_dim;
        double dot = 0.0;
        for (int64_t d = 0; d < p.head_dim; ++d) dot += q[d] * k[d];
        double logit = scale * dot;
        if (p.logit_softcap > 0.0) logit = p.logit_softcap * std::tanh(logit / p.logit_softcap);
        logits[i] = logit;
        max_logit = std::max(max_logit, logit);
      }
      double sum = 0.0;
      for (size_t i = 0; i < keys.size(); ++i) {
        const double w = std::exp(logits[i] - max_logit);
        sum += w;
        const int64_t token = p.seq_start[b] + keys[i];
        const double* v = p.v->data() + (token * p.num_kv_heads + kvh) * p.head_dim_v;
        for (int64_t d = 0; d < p.head_dim_v; ++d) out[d] += w * v[d];
      }
      for (int64_t d = 0; d < p.head_dim_v; ++d) out[d] /= sum;
      lse = max_logit + std::log(sum);
    }
  }
  return r;
}

}  // namespace kvx::tool
