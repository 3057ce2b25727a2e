#include "oracle.hpp"

#include <cmath>
#include <cstring>
#include <limits>

namespace kvx_test {

double decode_element(const void* p, kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: {
      float f;
      std::memcpy(&f, p, sizeof f);
      return f;
    }
    case KVX_DTYPE_BF16: {
      uint16_t h;
      std::memcpy(&h, p, sizeof h);
      const uint32_t u = static_cast<uint32_t>(h) << 16;
      float f;
      std::memcpy(&f, &u, sizeof f);
      return f;
    }
    case KVX_DTYPE_F16: {
      uint16_t h;
      std::memcpy(&h, p, sizeof h);
      const double sign = (h & 0x8000u) ? -1.0 : 1.0;
      const int exp = (h >> 10) & 0x1f;
      const int mant = h & 0x3ff;
      if (exp == 0x1f) return mant ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
      if (exp == 0) return sign * std::ldexp(mant, -24);
      return sign * std::ldexp(1024 + mant, exp - 25);
    }
    default: return std::numeric_limits<double>::quiet_NaN();
  }
}

double cache_element(const kvx_layout_t& cache, const kvx_coord_t& coord) {
  int64_t base = 0, offset = 0;
  if (kvx_layout_offset(&cache, &coord, &base, &offset) != KVX_OK) return std::numeric_limits<double>::quiet_NaN();
  const auto* origin = static_cast<const unsigned char*>(cache.base_kind == KVX_BASE_STRIDED ? cache.base
                                                                                             : cache.ptrs[base]);
  return decode_element(origin + offset, cache.dtype);
}

double tensor_element(const kvx_tensor_t& t, int64_t token, int64_t head, int64_t dim) {
  const int64_t elem = kvx_dtype_bits(t.dtype) / 8;
  const auto* p = static_cast<const unsigned char*>(t.data) + token * t.token_stride_bytes +
                  head * t.head_stride_bytes + dim * elem;
  return decode_element(p, t.dtype);
}

OracleTable decode_page_table(const kvx_page_table_t& t, int64_t block_tokens) {
  OracleTable out;
  for (int64_t b = 0; b < t.num_seqs; ++b) {
    std::vector<int64_t> blocks;
    int64_t len;
    if (t.kind == KVX_PAGE_TABLE_DENSE) {
      len = t.seq_lens[b];
      for (int64_t i = 0; i * block_tokens < len; ++i) blocks.push_back(t.block_table[b * t.block_table_stride + i]);
    } else {
      for (int64_t i = t.indptr[b]; i < t.indptr[b + 1]; ++i) blocks.push_back(t.indices[i]);
      len = blocks.empty() ? 0 : (static_cast<int64_t>(blocks.size()) - 1) * block_tokens + t.last_page_len[b];
    }
    out.lens.push_back(len);
    out.blocks.push_back(std::move(blocks));
  }
  return out;
}

std::vector<double> sequence_plane(const kvx_layout_t& cache, const OracleTable& table, int64_t layer,
                                   int64_t seq, int64_t kv) {
  const int64_t len = table.lens[seq], heads = cache.num_kv_heads, dim = cache.plane[kv].head_dim;
  std::vector<double> out(static_cast<size_t>(len * heads * dim));
  for (int64_t j = 0; j < len; ++j)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t d = 0; d < dim; ++d) {
        const kvx_coord_t c{.layer = layer,
                            .kv = kv,
                            .block = table.blocks[seq][j / cache.block_tokens],
                            .token = j % cache.block_tokens,
                            .head = h,
                            .dim = d};
        out[(j * heads + h) * dim + d] = cache_element(cache, c);
      }
  return out;
}

AttentionRef attention_oracle(const kvx_attention_args_t& a) {
  const kvx_layout_t& cache = *a.cache;
  const OracleTable table = decode_page_table(*a.page_table, cache.block_tokens);
  const int64_t hq = a.q.num_heads, hkv = cache.num_kv_heads;
  const int64_t dk = cache.plane[0].head_dim, dv = cache.plane[1].head_dim;
  const double scale = a.scale == 0.0f ? 1.0 / std::sqrt(static_cast<double>(dk)) : static_cast<double>(a.scale);
  const double cap = a.logit_softcap;
  AttentionRef ref;
  ref.out.assign(static_cast<size_t>(a.q.num_tokens * hq * dv), 0.0);
  ref.lse.assign(static_cast<size_t>(a.q.num_tokens * hq), -INFINITY);

  for (int64_t b = 0; b < a.page_table->num_seqs; ++b) {
    const int64_t first = a.q_indptr ? a.q_indptr[b] : b;
    const int64_t n = a.q_indptr ? a.q_indptr[b + 1] - a.q_indptr[b] : 1;
    const int64_t len = table.lens[b];
    const std::vector<double> k = sequence_plane(cache, table, a.layer, b, 0);
    const std::vector<double> v = sequence_plane(cache, table, a.layer, b, 1);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = first + i, p = len - n + i;
      for (int64_t h = 0; h < hq; ++h) {
        const int64_t kvh = h / (hq / hkv);
        std::vector<double> q(static_cast<size_t>(dk));
        for (int64_t d = 0; d < dk; ++d) q[d] = tensor_element(a.q, row, h, d);
        std::vector<double> logits;
        std::vector<int64_t> keys;
        for (int64_t j = 0; j < len; ++j) {
          const bool visible = (a.causal == 0 || j <= p) &&
                               (a.window_left < 0 || j >= p - a.window_left || j < a.sink_tokens);
          if (!visible) continue;
          double s = 0.0;
          for (int64_t d = 0; d < dk; ++d) s += q[d] * k[(j * hkv + kvh) * dk + d];
          s *= scale;
          if (cap > 0.0) s = cap * std::tanh(s / cap);
          logits.push_back(s);
          keys.push_back(j);
        }
        if (keys.empty()) continue;
        double mx = -INFINITY;
        for (double s : logits) mx = std::fmax(mx, s);
        double sum = 0.0;
        for (double s : logits) sum += std::exp(s - mx);
        double* out = &ref.out[static_cast<size_t>((row * hq + h) * dv)];
        for (size_t t = 0; t < keys.size(); ++t) {
          const double w = std::exp(logits[t] - mx) / sum;
          for (int64_t d = 0; d < dv; ++d) out[d] += w * v[(keys[t] * hkv + kvh) * dv + d];
        }
        ref.lse[static_cast<size_t>(row * hq + h)] = mx + std::log(sum);
      }
    }
  }
  return ref;
}

}  // namespace kvx_test
