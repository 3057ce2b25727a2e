// kvx demo: one batch of random sequences in one engine's cache layout,
// converted to every other layout that can hold it, with decode and prefill
// attention checked against a float64 reference and across layouts.
//
// Everything goes through the C API of include/kvx/. The same code runs on
// the CUDA backend (device memory) when a device is present and on the CPU
// backend otherwise; with a device the CPU backend also runs once, as a
// cross-check of the two backends.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "commands.hpp"
#include "demo_chat.hpp"
#include "device.hpp"
#include "kvx/kvx.h"
#include "numeric.hpp"
#include "reference.hpp"

namespace kvx::tool {
namespace {

struct DemoOptions {
  std::string scenario = "layouts";
  std::string preset = "vllm_flash_nhd";
  std::string dtype = "bf16";
  std::string backend = "auto";
  int64_t layers = 2;
  int64_t kv_heads = 8;
  int64_t q_heads = 32;
  int64_t head_dim = 128;
  int64_t block_tokens = 16;
  int64_t batch = 8;
  int64_t min_len = 1;
  int64_t max_len = 600;
  int64_t prefill_rows = 16;
  int64_t window_left = -1;
  int64_t sink_tokens = 0;
  double softcap = 0.0;
  uint64_t seed = 20250601;
  int threads = 0;
  int repeat = 1;
};

// A failed KVX call: its status, and the library's message in what().
class KvxError : public std::runtime_error {
 public:
  KvxError(kvx_status_t status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  kvx_status_t status() const { return status_; }

 private:
  kvx_status_t status_;
};

void check(kvx_status_t s, const char* call) {
  if (s != KVX_OK) {
    throw KvxError(s, fmt::format("{}: {}: {}", call, kvx_status_string(s), kvx_last_error()));
  }
}

// Seeded, and the same numbers on every platform (no std distributions).
class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform(double lo, double hi) {
    return lo + (hi - lo) * static_cast<double>(engine_() >> 11) * 0x1.0p-53;
  }
  int64_t integer(int64_t lo, int64_t hi) {  // inclusive
    return lo + static_cast<int64_t>(engine_() % static_cast<uint64_t>(hi - lo + 1));
  }
  std::mt19937_64& engine() { return engine_; }

 private:
  std::mt19937_64 engine_;
};

// Elements in storage format and the exact values they hold.
struct Values {
  std::vector<uint8_t> bytes;
  std::vector<double> exact;
};

Values random_values(Rng& rng, kvx_dtype_t dtype, size_t count) {
  Values v;
  v.bytes.resize(count * element_bytes(dtype));
  v.exact.resize(count);
  for (size_t i = 0; i < count; ++i) {
    store_element(v.bytes.data(), i, dtype, rng.uniform(-1.0, 1.0));
    v.exact[i] = load_element(v.bytes.data(), i, dtype);
  }
  return v;
}

std::vector<double> load_all(const std::vector<uint8_t>& bytes, kvx_dtype_t dtype) {
  std::vector<double> out(bytes.size() / element_bytes(dtype));
  for (size_t i = 0; i < out.size(); ++i) out[i] = load_element(bytes.data(), i, dtype);
  return out;
}

// ------------------------------------------------------------- workload --

// The batch, in host memory: lengths, the blocks of each sequence, the K/V of
// every layer, the queries, and the float64 reference results.
struct Workload {
  kvx_dtype_t dtype = KVX_DTYPE_BF16;
  int64_t layers = 0, kv_heads = 0, q_heads = 0, head_dim = 0, block_tokens = 0;
  int64_t num_blocks = 0;
  std::vector<int64_t> lens, seq_start;
  int64_t total_tokens = 0;
  std::vector<std::vector<int32_t>> seq_blocks;
  std::vector<int32_t> used_blocks;
  std::vector<Values> k, v;  // per layer: [total_tokens][kv_heads][head_dim]
  Values q_decode;           // [batch][q_heads][head_dim]
  Values q_prefill;          // [prefill rows][q_heads][head_dim]
  std::vector<int32_t> q_indptr;
  std::vector<ReferenceResult> ref_decode, ref_prefill;  // per layer

  size_t row_bytes() const {
    return static_cast<size_t>(kv_heads * head_dim) * element_bytes(dtype);
  }
  int64_t batch() const { return static_cast<int64_t>(lens.size()); }
};

kvx_preset_params_t preset_params(const Workload& w, Place place) {
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = w.dtype;
  p.memory = memory_of(place);
  p.device_id = 0;
  p.num_layers = w.layers;
  p.num_blocks = w.num_blocks;
  p.block_tokens = w.block_tokens;
  p.num_kv_heads = w.kv_heads;
  p.head_dim = w.head_dim;
  p.head_dim_v = 0;
  return p;
}

// Block ids that some preset reserves as its null block: the demo's page
// tables never reference them, so one page table serves every layout.
std::vector<int64_t> reserved_null_blocks(const Workload& w) {
  std::vector<int64_t> nulls;
  const kvx_preset_params_t params = preset_params(w, Place::kHost);
  for (int p = KVX_PRESET_FIRST; p <= KVX_PRESET_LAST; ++p) {
    kvx_layout_t layout;
    if (kvx_layout_preset(static_cast<kvx_preset_t>(p), &params, &layout) == KVX_OK &&
        layout.null_block >= 0) {
      nulls.push_back(layout.null_block);
    }
  }
  return nulls;
}

ReferenceAttention reference_problem(const Workload& w, int64_t layer, const DemoOptions& o) {
  ReferenceAttention r;
  r.num_q_heads = w.q_heads;
  r.num_kv_heads = w.kv_heads;
  r.head_dim = w.head_dim;
  r.head_dim_v = w.head_dim;
  r.k = &w.k[static_cast<size_t>(layer)].exact;
  r.v = &w.v[static_cast<size_t>(layer)].exact;
  r.seq_start = w.seq_start;
  r.seq_len = w.lens;
  r.logit_softcap = o.softcap;
  r.causal = true;
  r.window_left = o.window_left;
  r.sink_tokens = o.sink_tokens;
  return r;
}

Workload make_workload(const DemoOptions& o, kvx_dtype_t dtype) {
  Rng rng(o.seed);
  Workload w;
  w.dtype = dtype;
  w.layers = o.layers;
  w.kv_heads = o.kv_heads;
  w.q_heads = o.q_heads;
  w.head_dim = o.head_dim;
  w.block_tokens = o.block_tokens;

  int64_t blocks_needed = 0;
  for (int64_t b = 0; b < o.batch; ++b) {
    w.lens.push_back(rng.integer(o.min_len, o.max_len));
    w.seq_start.push_back(w.total_tokens);
    w.total_tokens += w.lens.back();
    blocks_needed += (w.lens.back() + w.block_tokens - 1) / w.block_tokens;
  }
  // Room for every preset's null block besides the blocks in use.
  w.num_blocks = blocks_needed + (KVX_PRESET_LAST - KVX_PRESET_FIRST + 1);
  const std::vector<int64_t> nulls = reserved_null_blocks(w);
  std::vector<int32_t> ids;
  for (int64_t id = 0; id < w.num_blocks; ++id) {
    if (std::find(nulls.begin(), nulls.end(), id) == nulls.end())
      ids.push_back(static_cast<int32_t>(id));
  }
  // Shuffled, so that sequences own scattered blocks as they do in an engine.
  std::shuffle(ids.begin(), ids.end(), rng.engine());
  size_t next = 0;
  for (int64_t b = 0; b < o.batch; ++b) {
    const int64_t n = (w.lens[static_cast<size_t>(b)] + w.block_tokens - 1) / w.block_tokens;
    w.seq_blocks.emplace_back(
        ids.begin() + static_cast<std::ptrdiff_t>(next),
        ids.begin() + static_cast<std::ptrdiff_t>(next + static_cast<size_t>(n)));
    next += static_cast<size_t>(n);
    w.used_blocks.insert(w.used_blocks.end(), w.seq_blocks.back().begin(),
                         w.seq_blocks.back().end());
  }

  const size_t kv_count = static_cast<size_t>(w.total_tokens * w.kv_heads * w.head_dim);
  for (int64_t l = 0; l < w.layers; ++l) {
    w.k.push_back(random_values(rng, dtype, kv_count));
    w.v.push_back(random_values(rng, dtype, kv_count));
  }
  // Prefill queries are the last rows of each sequence: a chunk whose own K/V
  // is already cached, after a cached prefix of len - rows tokens.
  w.q_indptr.push_back(0);
  for (int64_t b = 0; b < o.batch; ++b) {
    const int64_t rows = std::min(w.lens[static_cast<size_t>(b)], o.prefill_rows);
    w.q_indptr.push_back(w.q_indptr.back() + static_cast<int32_t>(rows));
  }
  w.q_decode = random_values(rng, dtype, static_cast<size_t>(o.batch * w.q_heads * w.head_dim));
  w.q_prefill =
      random_values(rng, dtype, static_cast<size_t>(w.q_indptr.back() * w.q_heads * w.head_dim));

  for (int64_t l = 0; l < w.layers; ++l) {
    ReferenceAttention decode = reference_problem(w, l, o);
    decode.q = &w.q_decode.exact;
    for (int64_t b = 0; b < o.batch; ++b) {
      decode.row_seq.push_back(b);
      decode.row_pos.push_back(w.lens[static_cast<size_t>(b)] - 1);
    }
    w.ref_decode.push_back(reference_attention(decode));

    ReferenceAttention prefill = reference_problem(w, l, o);
    prefill.q = &w.q_prefill.exact;
    for (int64_t b = 0; b < o.batch; ++b) {
      const int64_t rows =
          w.q_indptr[static_cast<size_t>(b) + 1] - w.q_indptr[static_cast<size_t>(b)];
      for (int64_t i = 0; i < rows; ++i) {
        prefill.row_seq.push_back(b);
        prefill.row_pos.push_back(w.lens[static_cast<size_t>(b)] - rows + i);
      }
    }
    w.ref_prefill.push_back(reference_attention(prefill));
  }
  return w;
}

// --------------------------------------------------------------- inputs --

// The workload's index arrays and queries in the memory of one backend, and
// the two forms of the same page table (decode reads the dense one, prefill
// and gather the CSR one, to show that they are interchangeable).
struct PlacedInputs {
  Place place = Place::kHost;
  Buffer block_table, seq_lens, indptr, indices, last_page_len;
  Buffer q_decode, q_prefill, q_indptr;
  Buffer prefix_slots;               // append phase 1: every token but the last
  Buffer last_batch, last_position;  // append phase 2: the last token of each sequence
  kvx_page_table_t dense = KVX_PAGE_TABLE_INIT;
  kvx_page_table_t csr = KVX_PAGE_TABLE_INIT;
  int64_t prefix_rows = 0;

  PlacedInputs(const Workload& w, Place where) : place(where) {
    const int64_t batch = w.batch();
    int64_t max_blocks = 0;
    for (const auto& blocks : w.seq_blocks)
      max_blocks = std::max<int64_t>(max_blocks, static_cast<int64_t>(blocks.size()));
    // Padding with -1 shows that entries past a sequence's blocks are never read.
    std::vector<int32_t> table(static_cast<size_t>(batch * max_blocks), -1);
    std::vector<int32_t> lens, ptr{0}, idx, last;
    for (int64_t b = 0; b < batch; ++b) {
      const auto& blocks = w.seq_blocks[static_cast<size_t>(b)];
      std::copy(blocks.begin(), blocks.end(), table.begin() + b * max_blocks);
      const int64_t len = w.lens[static_cast<size_t>(b)];
      lens.push_back(static_cast<int32_t>(len));
      idx.insert(idx.end(), blocks.begin(), blocks.end());
      ptr.push_back(static_cast<int32_t>(idx.size()));
      last.push_back(
          static_cast<int32_t>(len - (static_cast<int64_t>(blocks.size()) - 1) * w.block_tokens));
    }
    block_table = Buffer::from(place, table);
    seq_lens = Buffer::from(place, lens);
    indptr = Buffer::from(place, ptr);
    indices = Buffer::from(place, idx);
    last_page_len = Buffer::from(place, last);

    dense.kind = KVX_PAGE_TABLE_DENSE;
    dense.memory = memory_of(place);
    dense.num_seqs = batch;
    dense.block_table = static_cast<const int32_t*>(block_table.data());
    dense.block_table_stride = max_blocks;
    dense.max_blocks = max_blocks;
    dense.seq_lens = static_cast<const int32_t*>(seq_lens.data());
    csr.kind = KVX_PAGE_TABLE_CSR;
    csr.memory = memory_of(place);
    csr.num_seqs = batch;
    csr.indptr = static_cast<const int32_t*>(indptr.data());
    csr.indices = static_cast<const int32_t*>(indices.data());
    csr.last_page_len = static_cast<const int32_t*>(last_page_len.data());

    q_decode = Buffer::from(place, w.q_decode.bytes);
    q_prefill = Buffer::from(place, w.q_prefill.bytes);
    q_indptr = Buffer::from(place, w.q_indptr);

    std::vector<int64_t> slots;
    std::vector<int32_t> batch_idx, positions;
    for (int64_t b = 0; b < batch; ++b) {
      const auto& blocks = w.seq_blocks[static_cast<size_t>(b)];
      const int64_t len = w.lens[static_cast<size_t>(b)];
      for (int64_t t = 0; t + 1 < len; ++t) {
        slots.push_back(blocks[static_cast<size_t>(t / w.block_tokens)] * w.block_tokens +
                        t % w.block_tokens);
      }
      batch_idx.push_back(static_cast<int32_t>(b));
      positions.push_back(static_cast<int32_t>(len - 1));
    }
    prefix_rows = static_cast<int64_t>(slots.size());
    prefix_slots = Buffer::from(place, slots);
    last_batch = Buffer::from(place, batch_idx);
    last_position = Buffer::from(place, positions);
  }
};

kvx_exec_t exec_for(Place place, int threads) {
  kvx_exec_t e = KVX_EXEC_INIT;
  e.backend = backend_of(place);
  e.num_threads = threads;
  return e;
}

kvx_tensor_t tensor(const Buffer& b, kvx_dtype_t dtype, int64_t rows, int64_t heads, int64_t dim) {
  const int64_t esize = static_cast<int64_t>(element_bytes(dtype));
  kvx_tensor_t t;
  std::memset(&t, 0, sizeof t);
  t.data = b.data();
  t.dtype = dtype;
  t.memory = memory_of(b.place());
  t.num_tokens = rows;
  t.num_heads = heads;
  t.head_dim = dim;
  t.token_stride_bytes = heads * dim * esize;
  t.head_stride_bytes = dim * esize;
  return t;
}

// ---------------------------------------------------------------- cache --

// One cache in one preset: its descriptor and the memory behind its bases,
// poisoned (all bits set: NaN in every float format) so that a slot an op
// forgot to write, or one it reads by mistake, shows up in the results.
struct Cache {
  kvx_preset_t preset = KVX_PRESET_UNIVERSAL;
  kvx_layout_t layout = KVX_LAYOUT_INIT;
  std::vector<Buffer> bases;
  std::vector<void*> ptrs;
  uint64_t bytes = 0;
};

// nullptr, with the library's reason, when the preset cannot express the geometry.
std::unique_ptr<Cache> make_cache(kvx_preset_t preset, const Workload& w, Place place,
                                  std::string* why_not) {
  const kvx_preset_params_t params = preset_params(w, place);
  auto cache = std::make_unique<Cache>();
  cache->preset = preset;
  const kvx_status_t s = kvx_layout_preset(preset, &params, &cache->layout);
  if (s == KVX_ERR_UNSUPPORTED) {
    *why_not = kvx_last_error();
    return nullptr;
  }
  check(s, "kvx_layout_preset");
  uint64_t span = 0;
  check(kvx_layout_span_bytes(&cache->layout, &span), "kvx_layout_span_bytes");
  kvx_layout_t& l = cache->layout;
  const int64_t num_bases = l.base_kind == KVX_BASE_STRIDED      ? 1
                            : l.base_kind == KVX_BASE_LAYER_PTRS ? l.num_layers
                                                                 : l.num_layers * l.num_kv;
  for (int64_t i = 0; i < num_bases; ++i) {
    cache->bases.emplace_back(place, span);
    cache->bases.back().fill(0xff);
    cache->ptrs.push_back(cache->bases.back().data());
  }
  if (l.base_kind == KVX_BASE_STRIDED) {
    l.base = cache->ptrs[0];
  } else {
    l.ptrs = cache->ptrs.data();
  }
  check(kvx_layout_validate(&l), "kvx_layout_validate");
  cache->bytes = span * static_cast<uint64_t>(num_bases);
  return cache;
}

// A copy of a cache in host memory (same descriptor), for an op that the
// primary backend does not serve.
std::unique_ptr<Cache> host_copy(const Cache& c) {
  auto h = std::make_unique<Cache>();
  h->preset = c.preset;
  h->layout = c.layout;
  h->layout.memory = KVX_MEMORY_HOST;
  h->layout.device_id = 0;
  h->bytes = c.bytes;
  for (const Buffer& b : c.bases) {
    h->bases.emplace_back(Place::kHost, b.bytes());
    b.download(h->bases.back().data(), b.bytes());
    h->ptrs.push_back(h->bases.back().data());
  }
  if (h->layout.base_kind == KVX_BASE_STRIDED) {
    h->layout.base = h->ptrs[0];
  } else {
    h->layout.ptrs = h->ptrs.data();
  }
  return h;
}

void copy_back(const Cache& host, Cache& c) {
  for (size_t i = 0; i < c.bases.size(); ++i) {
    c.bases[i].upload(host.bases[i].data(), host.bases[i].bytes());
  }
}

// The backends an op may run on: the primary one (CUDA with a device, else
// the CPU) and, for an op that the primary does not serve yet, the CPU
// backend over host copies, so that the demo runs whole on any build.
struct Runner {
  Place place = Place::kHost;
  const PlacedInputs* in = nullptr;
  const PlacedInputs* host_in = nullptr;
  kvx_exec_t exec = KVX_EXEC_INIT;
  kvx_exec_t host_exec = KVX_EXEC_INIT;
  std::vector<std::string>* fallbacks = nullptr;  // why ops ran on the CPU instead

  // True when the primary backend answered KVX_ERR_UNSUPPORTED and the CPU
  // can take over; any other failure is rethrown.
  bool falls_back(const KvxError& e) const {
    if (e.status() != KVX_ERR_UNSUPPORTED || place == Place::kHost) return false;
    if (std::find(fallbacks->begin(), fallbacks->end(), e.what()) == fallbacks->end()) {
      fallbacks->push_back(e.what());
    }
    return true;
  }

  // Runs op(cache, inputs, exec) on the primary backend or, where it is not
  // served there, on the CPU over a host copy of `cache`, copied back when the
  // op writes the cache. Returns where it ran.
  template <typename Op>
  Place run(Cache& cache, bool writes, Op&& op) const {
    try {
      op(cache, *in, exec);
      return place;
    } catch (const KvxError& e) {
      if (!falls_back(e)) throw;
    }
    const std::unique_ptr<Cache> host = host_copy(cache);
    op(*host, *host_in, host_exec);
    if (writes) copy_back(*host, cache);
    return Place::kHost;
  }
};

// Writes every layer's K/V the way an engine does: the prompt by slot mapping,
// then one decode step (the last token of each sequence) by page table and
// position.
void append_tokens(const Cache& cache, const Workload& w, const PlacedInputs& in,
                   const kvx_exec_t& exec) {
  const size_t row = w.row_bytes();
  for (int64_t layer = 0; layer < w.layers; ++layer) {
    const Values& k = w.k[static_cast<size_t>(layer)];
    const Values& v = w.v[static_cast<size_t>(layer)];
    std::vector<uint8_t> k_prefix, v_prefix, k_last, v_last;
    for (int64_t b = 0; b < w.batch(); ++b) {
      const size_t start = static_cast<size_t>(w.seq_start[static_cast<size_t>(b)]);
      const size_t len = static_cast<size_t>(w.lens[static_cast<size_t>(b)]);
      k_prefix.insert(k_prefix.end(), k.bytes.begin() + start * row,
                      k.bytes.begin() + (start + len - 1) * row);
      v_prefix.insert(v_prefix.end(), v.bytes.begin() + start * row,
                      v.bytes.begin() + (start + len - 1) * row);
      k_last.insert(k_last.end(), k.bytes.begin() + (start + len - 1) * row,
                    k.bytes.begin() + (start + len) * row);
      v_last.insert(v_last.end(), v.bytes.begin() + (start + len - 1) * row,
                    v.bytes.begin() + (start + len) * row);
    }
    if (in.prefix_rows > 0) {
      const Buffer kb = Buffer::from(in.place, k_prefix), vb = Buffer::from(in.place, v_prefix);
      kvx_append_args_t a = KVX_APPEND_ARGS_INIT;
      a.cache = &cache.layout;
      a.layer = layer;
      a.k = tensor(kb, w.dtype, in.prefix_rows, w.kv_heads, w.head_dim);
      a.v = tensor(vb, w.dtype, in.prefix_rows, w.kv_heads, w.head_dim);
      a.slot_mapping = static_cast<const int64_t*>(in.prefix_slots.data());
      check(kvx_append(&a, &exec), "kvx_append (slot mapping)");
    }
    const Buffer kb = Buffer::from(in.place, k_last), vb = Buffer::from(in.place, v_last);
    kvx_append_args_t a = KVX_APPEND_ARGS_INIT;
    a.cache = &cache.layout;
    a.layer = layer;
    a.k = tensor(kb, w.dtype, w.batch(), w.kv_heads, w.head_dim);
    a.v = tensor(vb, w.dtype, w.batch(), w.kv_heads, w.head_dim);
    a.page_table = &in.dense;
    a.batch_indices = static_cast<const int32_t*>(in.last_batch.data());
    a.positions = static_cast<const int32_t*>(in.last_position.data());
    check(kvx_append(&a, &exec), "kvx_append (page table + positions)");
  }
  synchronize(in.place);
}

// Whether gathering every sequence back out of the cache returns exactly the
// bytes that were appended (the layout round trip, bit for bit).
bool gather_matches(const Cache& cache, const Workload& w, const PlacedInputs& in,
                    const kvx_exec_t& exec) {
  const size_t bytes = static_cast<size_t>(w.total_tokens) * w.row_bytes();
  Buffer k_out(in.place, bytes), v_out(in.place, bytes);
  for (int64_t layer = 0; layer < w.layers; ++layer) {
    k_out.fill(0xff);
    v_out.fill(0xff);
    kvx_gather_args_t a = KVX_GATHER_ARGS_INIT;
    a.cache = &cache.layout;
    a.layer = layer;
    a.page_table = &in.csr;
    a.k_out = tensor(k_out, w.dtype, w.total_tokens, w.kv_heads, w.head_dim);
    a.v_out = tensor(v_out, w.dtype, w.total_tokens, w.kv_heads, w.head_dim);
    check(kvx_gather(&a, &exec), "kvx_gather");
    synchronize(in.place);
    if (k_out.to_vector<uint8_t>() != w.k[static_cast<size_t>(layer)].bytes ||
        v_out.to_vector<uint8_t>() != w.v[static_cast<size_t>(layer)].bytes) {
      return false;
    }
  }
  return true;
}

// ------------------------------------------------------------ attention --

struct AttentionResults {
  std::vector<std::vector<double>> out, lse;  // per layer
  double seconds = 0.0;                       // median over repeats, all layers
};

AttentionResults run_attention(const Cache& cache, const Workload& w, const PlacedInputs& in,
                               const kvx_exec_t& exec, const DemoOptions& o, bool prefill) {
  const int64_t rows = prefill ? w.q_indptr.back() : w.batch();
  Buffer out(in.place, static_cast<size_t>(rows * w.q_heads * w.head_dim) * element_bytes(w.dtype));
  Buffer lse(in.place, static_cast<size_t>(rows * w.q_heads) * sizeof(float));
  kvx_attention_args_t a = KVX_ATTENTION_ARGS_INIT;
  a.cache = &cache.layout;
  a.page_table = prefill ? &in.csr : &in.dense;
  a.q_indptr = prefill ? static_cast<const int32_t*>(in.q_indptr.data()) : nullptr;
  a.q = tensor(prefill ? in.q_prefill : in.q_decode, w.dtype, rows, w.q_heads, w.head_dim);
  a.out = tensor(out, w.dtype, rows, w.q_heads, w.head_dim);
  a.lse = tensor(lse, KVX_DTYPE_F32, rows, w.q_heads, 1);
  a.logit_softcap = static_cast<float>(o.softcap);
  a.causal = 1;
  a.window_left = o.window_left;
  a.sink_tokens = o.sink_tokens;
  auto call = [&](int64_t layer) {
    a.layer = layer;
    check(prefill ? kvx_attention_prefill(&a, &exec) : kvx_attention_decode(&a, &exec),
          prefill ? "kvx_attention_prefill" : "kvx_attention_decode");
  };

  // Run 0 is the checked one. On the CPU it is also the first timed run; on a
  // GPU it only warms up (first launches load modules), and --repeat runs follow.
  const int first_timed = in.place == Place::kDevice ? 1 : 0;
  AttentionResults r;
  std::vector<double> times;
  for (int rep = 0; rep < o.repeat + first_timed; ++rep) {
    double seconds = 0.0;
    for (int64_t layer = 0; layer < w.layers; ++layer) {
      if (rep == 0) {
        out.fill(0xff);
        lse.fill(0xff);
        synchronize(in.place);
      }
      const auto t0 = std::chrono::steady_clock::now();
      call(layer);
      synchronize(in.place);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (rep == 0) {
        r.out.push_back(load_all(out.to_vector<uint8_t>(), w.dtype));
        r.lse.push_back(load_all(lse.to_vector<uint8_t>(), KVX_DTYPE_F32));
      }
    }
    if (rep >= first_timed) times.push_back(seconds);
  }
  std::sort(times.begin(), times.end());
  r.seconds = times[times.size() / 2];
  return r;
}

// max|got - want| / max|want| over every layer; NaN when anything is NaN
// (a NaN never passes a bound).
double relative_error(const std::vector<std::vector<double>>& got,
                      const std::vector<std::vector<double>>& want) {
  double diff = 0.0, scale = 0.0;
  for (size_t l = 0; l < got.size(); ++l) {
    for (size_t i = 0; i < got[l].size(); ++i) {
      const double d = std::abs(got[l][i] - want[l][i]);
      if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
      diff = std::max(diff, d);
      scale = std::max(scale, std::abs(want[l][i]));
    }
  }
  return scale > 0.0 ? diff / scale : diff;
}

// Largest log-sum-exp error, relative to max(1, |ref|); -inf must match -inf.
double lse_error(const std::vector<std::vector<double>>& got,
                 const std::vector<std::vector<double>>& want) {
  double worst = 0.0;
  for (size_t l = 0; l < got.size(); ++l) {
    for (size_t i = 0; i < got[l].size(); ++i) {
      if (std::isinf(want[l][i]) || std::isinf(got[l][i])) {
        if (got[l][i] != want[l][i]) return std::numeric_limits<double>::infinity();
        continue;
      }
      const double d = std::abs(got[l][i] - want[l][i]) / std::max(1.0, std::abs(want[l][i]));
      if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
      worst = std::max(worst, d);
    }
  }
  return worst;
}

std::vector<std::vector<double>> reference_outputs(const std::vector<ReferenceResult>& refs,
                                                   bool lse) {
  std::vector<std::vector<double>> r;
  for (const auto& ref : refs) r.push_back(lse ? ref.lse : ref.out);
  return r;
}

// ------------------------------------------------------------- the table --

struct Row {
  std::string name;
  bool skipped = false;
  bool ok = true;
  std::string note;  // why skipped, or what failed
  uint64_t bytes = 0;
  bool kv_exact = false;
  double decode_err = 0.0, prefill_err = 0.0;
  double vs_source = -1.0;  // < 0: this row is the source
  double convert_ms = -1.0, decode_ms = 0.0, prefill_ms = 0.0;
  AttentionResults decode, prefill;
  // Where each op ran: the primary backend, or the CPU as a fallback.
  Place primary = Place::kHost;
  Place append_on = Place::kHost, convert_on = Place::kHost, gather_on = Place::kHost;
  Place decode_on = Place::kHost, prefill_on = Place::kHost;
};

void fail_row(Row& row, const std::string& why) {
  row.ok = false;
  row.note += row.note.empty() ? why : "; " + why;
}

// Appends or converts into `cache`, then checks it: the round trip of the K/V
// bytes, decode and prefill against the float64 reference and, when given,
// against the source preset's results.
void evaluate(Row& row, Cache& cache, const Workload& w, const Runner& runner, const DemoOptions& o,
              const Row* source) {
  const double bound = error_bound(w.dtype);
  row.bytes = cache.bytes;
  row.primary = runner.place;
  row.gather_on =
      runner.run(cache, false, [&](Cache& c, const PlacedInputs& in, const kvx_exec_t& e) {
        row.kv_exact = gather_matches(c, w, in, e);
      });
  if (!row.kv_exact) fail_row(row, "gathered K/V differ from the appended bytes");

  row.decode_on =
      runner.run(cache, false, [&](Cache& c, const PlacedInputs& in, const kvx_exec_t& e) {
        row.decode = run_attention(c, w, in, e, o, false);
      });
  row.prefill_on =
      runner.run(cache, false, [&](Cache& c, const PlacedInputs& in, const kvx_exec_t& e) {
        row.prefill = run_attention(c, w, in, e, o, true);
      });
  row.decode_ms = row.decode.seconds * 1e3;
  row.prefill_ms = row.prefill.seconds * 1e3;
  row.decode_err = relative_error(row.decode.out, reference_outputs(w.ref_decode, false));
  row.prefill_err = relative_error(row.prefill.out, reference_outputs(w.ref_prefill, false));
  if (!(row.decode_err <= bound))
    fail_row(row, fmt::format("decode error {:.2e} > {:.0e}", row.decode_err, bound));
  if (!(row.prefill_err <= bound))
    fail_row(row, fmt::format("prefill error {:.2e} > {:.0e}", row.prefill_err, bound));
  const double lse_err =
      std::max(lse_error(row.decode.lse, reference_outputs(w.ref_decode, true)),
               lse_error(row.prefill.lse, reference_outputs(w.ref_prefill, true)));
  if (!(lse_err <= bound))
    fail_row(row, fmt::format("log-sum-exp error {:.2e} > {:.0e}", lse_err, bound));

  if (source != nullptr) {
    row.vs_source = std::max(relative_error(row.decode.out, source->decode.out),
                             relative_error(row.prefill.out, source->prefill.out));
    if (!(row.vs_source <= bound)) {
      fail_row(row, fmt::format("differs from {} by {:.2e} > {:.0e}", source->name, row.vs_source,
                                bound));
    }
  }
}

// Copies every used block of `src` into `dst` (the same block ids).
void convert_into(Cache& dst, const Cache& src, const Runner& runner, Row& row,
                  const std::vector<int32_t>& blocks) {
  const auto num_blocks = static_cast<int64_t>(blocks.size());
  auto convert = [&](const Cache& d, const Cache& s, const PlacedInputs& in, const kvx_exec_t& e) {
    kvx_convert_args_t a = KVX_CONVERT_ARGS_INIT;
    a.src = &s.layout;
    a.dst = &d.layout;
    // Convert's block lists are host arrays for every backend (docs/spec/kvx-v1.md).
    a.src_blocks = blocks.data();
    a.dst_blocks = blocks.data();
    a.num_blocks = num_blocks;
    const auto t0 = std::chrono::steady_clock::now();
    check(kvx_convert_blocks(&a, &e), "kvx_convert_blocks");
    synchronize(in.place);
    row.convert_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  try {
    convert(dst, src, *runner.in, runner.exec);
    row.convert_on = runner.place;
    return;
  } catch (const KvxError& e) {
    if (!runner.falls_back(e)) throw;
  }
  const std::unique_ptr<Cache> host_src = host_copy(src), host_dst = host_copy(dst);
  convert(*host_dst, *host_src, *runner.host_in, runner.host_exec);
  copy_back(*host_dst, dst);
  row.convert_on = Place::kHost;
}

std::string format_bytes(uint64_t b) {
  if (b >= (1ull << 30)) return fmt::format("{:.2f} GiB", static_cast<double>(b) / (1ull << 30));
  if (b >= (1ull << 20)) return fmt::format("{:.2f} MiB", static_cast<double>(b) / (1ull << 20));
  return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024.0);
}

void print_table(const std::vector<Row>& rows) {
  fmt::print("\n{:<26} {:>11} {:>7} {:>11} {:>11} {:>11} {:>10} {:>10} {:>10}\n", "preset", "cache",
             "K/V", "decode err", "prefill err", "vs source", "convert ms", "decode ms",
             "prefill ms");
  for (const Row& r : rows) {
    if (r.skipped) {
      fmt::print("{:<26} skipped: {}\n", r.name, r.note);
      continue;
    }
    if (r.bytes == 0) {  // failed before it held any data
      fmt::print("{:<26} FAILED: {}\n", r.name, r.note);
      continue;
    }
    // '*': ran on the CPU backend because the primary one does not serve it.
    auto mark = [&](Place on) { return on != r.primary ? "*" : ""; };
    const std::string convert =
        r.convert_ms < 0 ? "-" : fmt::format("{:.2f}{}", r.convert_ms, mark(r.convert_on));
    const std::string vs = r.vs_source < 0.0    ? "(source)"
                           : r.vs_source == 0.0 ? "0 (exact)"
                                                : fmt::format("{:.2e}", r.vs_source);
    fmt::print("{:<26} {:>11} {:>7} {:>11.2e} {:>11.2e} {:>11} {:>10} {:>10} {:>10}{}\n", r.name,
               format_bytes(r.bytes),
               fmt::format("{}{}", r.kv_exact ? "exact" : "DIFF", mark(r.gather_on)), r.decode_err,
               r.prefill_err, vs, convert, fmt::format("{:.3f}{}", r.decode_ms, mark(r.decode_on)),
               fmt::format("{:.3f}{}", r.prefill_ms, mark(r.prefill_on)),
               r.ok ? "" : "  FAILED: " + r.note);
  }
}

// -------------------------------------------------------------- the demo --

Place choose_place(const std::string& backend) {
  int32_t cuda = 0;
  check(kvx_backend_available(KVX_BACKEND_CUDA, &cuda), "kvx_backend_available");
  if (backend == "cpu") return Place::kHost;
  if (backend == "cuda") {
    if (!cuda) {
      std::string why;
      cuda_devices(&why);
      throw std::runtime_error("--backend cuda: the CUDA backend is not available (" + why + ")");
    }
    return Place::kDevice;
  }
  return cuda ? Place::kDevice : Place::kHost;
}

// Runs every preset on one backend; the source preset is rows[0].
std::vector<Row> run_presets(const Workload& w, Place place, kvx_preset_t source_preset,
                             const DemoOptions& o, bool all_presets,
                             std::vector<std::string>* fallbacks) {
  const PlacedInputs in(w, place);
  std::unique_ptr<PlacedInputs> host_in;
  if (place != Place::kHost) host_in = std::make_unique<PlacedInputs>(w, Place::kHost);
  Runner runner;
  runner.place = place;
  runner.in = &in;
  runner.host_in = host_in ? host_in.get() : &in;
  runner.exec = exec_for(place, o.threads);
  runner.host_exec = exec_for(Place::kHost, o.threads);
  runner.fallbacks = fallbacks;
  std::vector<Row> rows;
  std::string why;
  const std::unique_ptr<Cache> source = make_cache(source_preset, w, place, &why);
  Row src_row{.name = fmt::format("{} ({})", kvx_preset_name(source_preset), place_name(place))};
  if (!source) {
    throw std::runtime_error(fmt::format("--preset {}: cannot hold this geometry: {}",
                                         kvx_preset_name(source_preset), why));
  }
  src_row.append_on = runner.run(
      *source, true,
      [&](Cache& c, const PlacedInputs& pin, const kvx_exec_t& e) { append_tokens(c, w, pin, e); });
  evaluate(src_row, *source, w, runner, o, nullptr);
  rows.push_back(std::move(src_row));
  if (!all_presets) return rows;

  for (int p = KVX_PRESET_FIRST; p <= KVX_PRESET_LAST; ++p) {
    const auto preset = static_cast<kvx_preset_t>(p);
    if (preset == source_preset) continue;
    Row row{.name = kvx_preset_name(preset)};
    try {
      const std::unique_ptr<Cache> cache = make_cache(preset, w, place, &why);
      if (!cache) {
        row.skipped = true;
        row.note = why;
      } else {
        convert_into(*cache, *source, runner, row, w.used_blocks);
        evaluate(row, *cache, w, runner, o, &rows[0]);
      }
    } catch (const KvxError& e) {
      // A backend may leave a layout unserved (KVX_ERR_UNSUPPORTED): a gap to
      // show, not a wrong result.
      if (e.status() == KVX_ERR_UNSUPPORTED) {
        row.skipped = true;
        row.note = fmt::format("not supported by the {} backend: {}", place_name(place), e.what());
      } else {
        fail_row(row, e.what());
      }
    } catch (const std::exception& e) {
      fail_row(row, e.what());
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

void run_demo(const DemoOptions& o) {
  const kvx_dtype_t dtype = float_dtype_from_name(o.dtype);
  if (dtype == KVX_DTYPE_FORCE_32BIT)
    throw CLI::ValidationError("--dtype", "one of f32, f16, bf16");
  if (o.q_heads % o.kv_heads != 0)
    throw CLI::ValidationError("--q-heads", "a multiple of --kv-heads");
  if (o.min_len > o.max_len) throw CLI::ValidationError("--min-len", "at most --max-len");
  kvx_preset_t source_preset;
  if (kvx_preset_from_name(o.preset.c_str(), &source_preset) != KVX_OK) {
    throw CLI::ValidationError("--preset", "unknown preset '" + o.preset + "' (see kvx info)");
  }
  const Place place = choose_place(o.backend);

  fmt::print("kvx demo: {} layers, {} kv heads, {} q heads, head_dim {}, {} tokens per block, {}\n",
             o.layers, o.kv_heads, o.q_heads, o.head_dim, o.block_tokens, o.dtype);
  const auto t0 = std::chrono::steady_clock::now();
  const Workload w = make_workload(o, dtype);
  const double ref_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::string lens;
  for (int64_t len : w.lens) lens += fmt::format("{}{}", lens.empty() ? "" : " ", len);
  fmt::print("batch of {} sequences (seed {}), lengths {}: {} tokens in {} of {} blocks\n",
             w.batch(), o.seed, lens, w.total_tokens, w.used_blocks.size(), w.num_blocks);
  fmt::print(
      "prefill: the last min(len, {}) tokens of each sequence ({} query rows); "
      "window {}, sinks {}, softcap {}\n",
      o.prefill_rows, w.q_indptr.back(), o.window_left, o.sink_tokens, o.softcap);
  fmt::print("float64 reference computed in {:.2f} s; backend: {}", ref_s, place_name(place));
  if (place == Place::kDevice) {
    const auto devices = cuda_devices(nullptr);
    if (!devices.empty()) fmt::print(" ({})", devices[0].name);
  }
  fmt::print("\n");

  std::vector<std::string> fallbacks;
  std::vector<Row> rows = run_presets(w, place, source_preset, o, true, &fallbacks);
  if (place == Place::kDevice) {
    // The CPU reference backend on the same data, compared with the GPU's results.
    std::vector<Row> cpu = run_presets(w, Place::kHost, source_preset, o, false, &fallbacks);
    Row& r = cpu[0];
    r.vs_source = std::max(relative_error(r.decode.out, rows[0].decode.out),
                           relative_error(r.prefill.out, rows[0].prefill.out));
    if (!(r.vs_source <= error_bound(dtype))) {
      fail_row(r, fmt::format("CPU and CUDA backends differ by {:.2e}", r.vs_source));
    }
    rows.push_back(std::move(r));
  }
  print_table(rows);
  if (rows[0].append_on != place) {
    fmt::print("\nK/V appended on the CPU backend (a host copy of the cache, copied back)\n");
  }
  for (const std::string& why : fallbacks) {
    fmt::print("* ran on the CPU backend over a host copy of the cache; the {} backend said: {}\n",
               place_name(place), why);
  }

  int failed = 0, passed = 0, skipped = 0;
  for (const Row& r : rows) (r.skipped ? skipped : r.ok ? passed : failed)++;
  fmt::print(
      "\nerrors: max|out - ref| / max|ref| against the float64 reference (bound for {}: {:.0e});\n"
      "'vs source': the same measure against {}{}; K/V: gather returns the appended bytes.\n",
      o.dtype, error_bound(dtype), rows[0].name,
      place == Place::kDevice ? " (CPU row: against the CUDA backend)" : "");
  fmt::print("kvx demo: {} passed, {} failed, {} skipped", passed, failed, skipped);
  fmt::print(
      " (skipped: a preset that cannot hold this geometry, or a backend that does not serve it)\n");
  if (failed > 0) throw CLI::RuntimeError(1);
}

}  // namespace

void add_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* demo = app.add_subcommand(
      "demo", "Build a cache in one preset, convert it to every other, check attention everywhere");
  demo->add_option("--scenario", o->scenario,
                   "layouts: one cache in every preset; chat: the block manager under a "
                   "multi-user chat workload, per eviction policy")
      ->check(CLI::IsMember({"layouts", "chat"}))
      ->capture_default_str();
  demo->add_option("--preset", o->preset, "Source preset (names: kvx info)")->capture_default_str();
  demo->add_option("--dtype", o->dtype, "Storage dtype: f32, f16 or bf16")->capture_default_str();
  demo->add_option("--backend", o->backend, "auto (CUDA when a device is present), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  demo->add_option("--layers", o->layers, "Layers")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  demo->add_option("--kv-heads", o->kv_heads, "KV heads")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  demo->add_option("--q-heads", o->q_heads, "Query heads (a multiple of --kv-heads)")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  demo->add_option("--head-dim", o->head_dim, "Head dim")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  demo->add_option("--block-tokens", o->block_tokens, "Tokens per block")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  demo->add_option("--batch", o->batch, "Sequences")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  demo->add_option("--min-len", o->min_len, "Shortest sequence")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  demo->add_option("--max-len", o->max_len, "Longest sequence")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  demo->add_option("--prefill-rows", o->prefill_rows, "Query rows per sequence in prefill")
      ->check(CLI::Range(1, 1 << 20))
      ->capture_default_str();
  demo->add_option("--window", o->window_left, "Left sliding window (-1: none)")
      ->capture_default_str();
  demo->add_option("--sinks", o->sink_tokens, "Sink tokens kept regardless of the window")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  demo->add_option("--softcap", o->softcap, "Logit soft-cap (0: none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  demo->add_option("--seed", o->seed, "Seed of every random number")->capture_default_str();
  demo->add_option("--threads", o->threads, "CPU threads (0: all)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  demo->add_option("--repeat", o->repeat,
                   "Timed runs of each op over all layers (the median is shown)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  demo->callback([o, demo] {
    if (o->scenario == "chat") {
      // The block manager under a multi-user chat workload (demo_chat.cpp).
      ChatOptions chat;
      if (demo->get_option("--seed")->count() > 0) chat.seed = o->seed;
      const int rc = run_chat_scenario(chat);
      if (rc != 0) throw CLI::RuntimeError(rc);
      return;
    }
    run_demo(*o);
  });
}

}  // namespace kvx::tool
