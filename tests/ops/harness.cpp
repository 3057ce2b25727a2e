#include "harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "core/dtype.hpp"
#include "oracle.hpp"

namespace kvx_test {

HostBuffer::HostBuffer(size_t bytes)
    : bytes_(bytes),
      data_(static_cast<std::byte*>(std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64))) {}

void HostBuffer::Free::operator()(std::byte* p) const { std::free(p); }

void HostBuffer::fill_random(Rng& rng) {
  size_t i = 0;
  for (; i + 8 <= bytes_; i += 8) {
    const uint64_t x = rng();
    std::memcpy(data_.get() + i, &x, 8);
  }
  for (; i < bytes_; ++i) data_[i] = static_cast<std::byte>(rng());
}

std::unique_ptr<Cache> Cache::make(kvx_preset_t preset, const CacheGeometry& g, Rng& rng, kvx_status_t* status) {
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = g.dtype;
  p.memory = KVX_MEMORY_HOST;
  p.num_layers = g.layers;
  p.num_blocks = g.blocks;
  p.block_tokens = g.block_tokens;
  p.num_kv_heads = g.kv_heads;
  p.head_dim = g.head_dim;
  p.head_dim_v = g.head_dim_v;
  auto cache = std::unique_ptr<Cache>(new Cache);
  *status = kvx_layout_preset(preset, &p, &cache->layout_);
  if (*status != KVX_OK) return nullptr;
  uint64_t span = 0;
  *status = kvx_layout_span_bytes(&cache->layout_, &span);
  if (*status != KVX_OK) return nullptr;
  kvx_layout_t& l = cache->layout_;
  const int64_t bases = l.base_kind == KVX_BASE_STRIDED    ? 1
                        : l.base_kind == KVX_BASE_LAYER_PTRS ? l.num_layers
                                                             : l.num_layers * l.num_kv;
  for (int64_t i = 0; i < bases; ++i) {
    cache->bases_.emplace_back(span);
    cache->bases_.back().fill_random(rng);
    cache->ptrs_.push_back(cache->bases_.back().data());
  }
  if (l.base_kind == KVX_BASE_STRIDED)
    l.base = cache->ptrs_[0];
  else
    l.ptrs = cache->ptrs_.data();
  return cache;
}

std::vector<std::vector<std::byte>> Cache::snapshot() const {
  std::vector<std::vector<std::byte>> out;
  for (const HostBuffer& b : bases_) out.emplace_back(b.data(), b.data() + b.size());
  return out;
}

Tensor make_tensor(kvx_dtype_t dtype, int64_t tokens, int64_t heads, int64_t dim, Rng& rng, bool padded) {
  const int64_t elem = kvx_dtype_bits(dtype) / 8;
  const int64_t gap_h = padded ? static_cast<int64_t>(rng() % 3) : 0;
  const int64_t gap_t = padded ? static_cast<int64_t>(rng() % 3) : 0;
  Tensor t;
  t.t.dtype = dtype;
  t.t.memory = KVX_MEMORY_HOST;
  t.t.num_tokens = tokens;
  t.t.num_heads = heads;
  t.t.head_dim = dim;
  if (padded && rng() % 4 == 0) {  // head-major: [heads][tokens][dim]
    t.t.token_stride_bytes = (dim + gap_h) * elem;
    t.t.head_stride_bytes = tokens * t.t.token_stride_bytes + gap_t * elem;
  } else {
    t.t.head_stride_bytes = (dim + gap_h) * elem;
    t.t.token_stride_bytes = heads * t.t.head_stride_bytes + gap_t * elem;
  }
  const int64_t bytes = tokens == 0 ? 0
                                    : (tokens - 1) * t.t.token_stride_bytes + (heads - 1) * t.t.head_stride_bytes +
                                          dim * elem;
  t.buf = std::make_shared<HostBuffer>(static_cast<size_t>(bytes));
  t.buf->fill_random(rng);
  t.t.data = t.buf->data();
  return t;
}

void fill_values(Tensor& t, Rng& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto* base = static_cast<std::byte*>(t.t.data);
  for (int64_t i = 0; i < t.t.num_tokens; ++i)
    for (int64_t h = 0; h < t.t.num_heads; ++h)
      for (int64_t d = 0; d < t.t.head_dim; ++d)
        kvx::store_float(base + i * t.t.token_stride_bytes + h * t.t.head_stride_bytes, d, t.t.dtype, u(rng));
}

void poison(Tensor& t) {
  const int64_t elem = kvx_dtype_bits(t.t.dtype) / 8;
  std::byte nan[4];
  kvx::store_float(nan, 0, t.t.dtype, std::nanf(""));
  for (size_t i = 0; i + elem <= t.buf->size(); i += elem) std::memcpy(t.buf->data() + i, nan, elem);
}

std::vector<double> tensor_values(const kvx_tensor_t& t) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(t.num_tokens * t.num_heads * t.head_dim));
  for (int64_t i = 0; i < t.num_tokens; ++i)
    for (int64_t h = 0; h < t.num_heads; ++h)
      for (int64_t d = 0; d < t.head_dim; ++d) out.push_back(tensor_element(t, i, h, d));
  return out;
}

kvx_page_table_t Batch::table(kvx_page_table_kind_t kind) const {
  kvx_page_table_t t = KVX_PAGE_TABLE_INIT;
  t.kind = kind;
  t.memory = KVX_MEMORY_HOST;
  t.num_seqs = static_cast<int64_t>(lens.size());
  if (kind == KVX_PAGE_TABLE_DENSE) {
    t.block_table = block_table.data();
    t.block_table_stride = stride;
    t.max_blocks = max_blocks;
    t.seq_lens = seq_lens.data();
  } else {
    t.indptr = indptr.data();
    t.indices = indices.data();
    t.last_page_len = last_page_len.data();
  }
  return t;
}

int64_t Batch::total_tokens() const { return std::accumulate(lens.begin(), lens.end(), int64_t{0}); }

int64_t Batch::slot(int64_t seq, int64_t pos) const {
  return pages[seq][pos / block_tokens] * block_tokens + pos % block_tokens;
}

int64_t blocks_needed(const std::vector<int64_t>& lens, int64_t block_tokens) {
  int64_t n = 0;
  for (int64_t len : lens) n += (len + block_tokens - 1) / block_tokens;
  return n;
}

Batch make_batch(const std::vector<int64_t>& lens, const kvx_layout_t& cache, Rng& rng) {
  Batch b;
  b.block_tokens = cache.block_tokens;
  b.lens = lens;
  std::vector<int32_t> free;
  for (int64_t i = 0; i < cache.num_blocks; ++i)
    if (i != cache.null_block) free.push_back(static_cast<int32_t>(i));
  std::shuffle(free.begin(), free.end(), rng);
  size_t next = 0;
  b.indptr.push_back(0);
  for (int64_t len : lens) {
    std::vector<int32_t> pages;
    for (int64_t i = 0; i * b.block_tokens < len; ++i) pages.push_back(free.at(next++));
    b.max_blocks = std::max<int64_t>(b.max_blocks, static_cast<int64_t>(pages.size()));
    b.indices.insert(b.indices.end(), pages.begin(), pages.end());
    b.indptr.push_back(static_cast<int32_t>(b.indices.size()));
    b.last_page_len.push_back(len == 0 ? 0 : static_cast<int32_t>((len - 1) % b.block_tokens + 1));
    b.seq_lens.push_back(static_cast<int32_t>(len));
    b.pages.push_back(std::move(pages));
  }
  b.stride = b.max_blocks + static_cast<int64_t>(rng() % 3);
  b.block_table.assign(static_cast<size_t>(std::max<int64_t>(1, b.stride * static_cast<int64_t>(lens.size()))), -1);
  for (size_t s = 0; s < lens.size(); ++s)
    std::copy(b.pages[s].begin(), b.pages[s].end(), b.block_table.begin() + static_cast<int64_t>(s) * b.stride);
  return b;
}

kvx_status_t append_batch(const kvx_layout_t& cache, int64_t layer, const Batch& batch, const Tensor& k,
                          const Tensor& v) {
  std::vector<int64_t> slots;
  for (size_t s = 0; s < batch.lens.size(); ++s)
    for (int64_t p = 0; p < batch.lens[s]; ++p) slots.push_back(batch.slot(static_cast<int64_t>(s), p));
  kvx_append_args_t a = KVX_APPEND_ARGS_INIT;
  a.cache = &cache;
  a.layer = layer;
  a.k = k.t;
  a.v = v.t;
  a.slot_mapping = slots.data();
  return kvx_append(&a, nullptr);
}

ErrorStats compare(const std::vector<double>& out, const std::vector<double>& ref) {
  ErrorStats e;
  if (out.size() != ref.size()) {
    e.nan = true;
    return e;
  }
  double max_ref = 0.0, max_diff = 0.0, diff2 = 0.0, ref2 = 0.0;
  for (size_t i = 0; i < out.size(); ++i) {
    if (std::isnan(out[i]) || std::isnan(ref[i])) e.nan = true;
    const double d = std::fabs(out[i] - ref[i]);
    max_diff = std::fmax(max_diff, d);
    max_ref = std::fmax(max_ref, std::fabs(ref[i]));
    diff2 += d * d;
    ref2 += ref[i] * ref[i];
  }
  // An all-zero reference (every query saw no key) must be matched exactly.
  e.max_rel = max_ref > 0.0 ? max_diff / max_ref : max_diff;
  e.rel_l2 = ref2 > 0.0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  return e;
}

double tolerance(kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: return 1e-5;
    case KVX_DTYPE_F16: return 2e-3;
    case KVX_DTYPE_BF16: return 1e-2;
    default: return 0.0;
  }
}

std::string dtype_str(kvx_dtype_t dtype) { return kvx_dtype_name(dtype); }

std::vector<kvx_preset_t> all_presets() {
  std::vector<kvx_preset_t> out;
  for (int p = KVX_PRESET_FIRST; p <= KVX_PRESET_LAST; ++p) out.push_back(static_cast<kvx_preset_t>(p));
  return out;
}

}  // namespace kvx_test
