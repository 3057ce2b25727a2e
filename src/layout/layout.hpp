// The layout value: byte offsets of (layer, kv, block, token, head, dim) in a
// kvx_layout_t, and the host-side views that the ops and backends share. All
// stride arithmetic of the project goes through here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <vector>

#include "core/abi.hpp"
#include "kvx/layout.h"
#include "kvx/ops.h"

namespace kvx {

// Byte offset of element `dim` of a head row within a plane. For INT4 the
// offset is of the byte that holds the element (low nibble for even dims).
inline int64_t dim_offset_bytes(const kvx_plane_t& p, int64_t dim, kvx_dtype_t dtype) {
  if (dtype == KVX_DTYPE_INT4) return dim / 2;
  if (p.head_dim_inner == 0) return dim * p.dim_stride_bytes;
  return (dim / p.head_dim_inner) * p.dim_outer_stride_bytes +
         (dim % p.head_dim_inner) * p.dim_stride_bytes;
}

// Byte offset of a head row's origin (dim 0) within a plane's base.
inline int64_t row_offset_bytes(const kvx_plane_t& p, int64_t block, int64_t token, int64_t head) {
  return p.offset_bytes + block * p.block_stride_bytes + token * p.token_stride_bytes +
         head * p.head_stride_bytes;
}

// Which base pointer (layer, kv) lives behind, and the offset of that base
// origin from it (the layer stride for STRIDED layouts).
inline int64_t base_index(const kvx_layout_t& l, int64_t layer, int64_t kv) {
  switch (l.base_kind) {
    case KVX_BASE_LAYER_PTRS: return layer;
    case KVX_BASE_PLANE_PTRS: return layer * l.num_kv + kv;
    default: return 0;
  }
}
inline int64_t layer_offset_bytes(const kvx_layout_t& l, int64_t layer) {
  return l.base_kind == KVX_BASE_STRIDED ? layer * l.layer_stride_bytes : 0;
}

// Offset of a whole element from its base pointer.
inline int64_t element_offset_bytes(const kvx_layout_t& l, const kvx_coord_t& c) {
  const kvx_plane_t& p = l.plane[c.kv];
  return layer_offset_bytes(l, c.layer) + row_offset_bytes(p, c.block, c.token, c.head) +
         dim_offset_bytes(p, c.dim, l.dtype);
}

// The base pointer of (layer, kv); null when the layout carries none.
inline std::byte* base_pointer(const kvx_layout_t& l, int64_t layer, int64_t kv) {
  if (l.base_kind == KVX_BASE_STRIDED) return static_cast<std::byte*>(l.base);
  if (l.ptrs == nullptr) return nullptr;
  return static_cast<std::byte*>(l.ptrs[base_index(l, layer, kv)]);
}

// The address of a head row (dim 0) of one plane of one layer.
inline std::byte* row_address(const kvx_layout_t& l, int64_t layer, int64_t kv, int64_t block,
                              int64_t token, int64_t head) {
  return base_pointer(l, layer, kv) + layer_offset_bytes(l, layer) +
         row_offset_bytes(l.plane[kv], block, token, head);
}

// True when a plane's head rows are contiguous in memory (the fast-kernel case).
inline bool plane_dim_contiguous(const kvx_layout_t& l, int kv) {
  const kvx_plane_t& p = l.plane[kv];
  return l.dtype == KVX_DTYPE_INT4 ||
         (p.head_dim_inner == 0 && p.dim_stride_bytes == (int64_t)(kvx_dtype_bits(l.dtype) / 8));
}

// Validation of a descriptor (struct_size/version, enums, dims, reserved
// fields, overlap, alignment, overflow). `name` prefixes messages
// ("layout", "args.cache", "args.src"). Implemented in layout/validate.cpp.
kvx_status_t validate_layout(const kvx_layout_t* layout, const char* name);

// Bytes addressable behind the largest base pointer. Requires a valid layout.
int64_t layout_span_bytes(const kvx_layout_t& layout);
// Bytes addressable behind base pointer `base` (an index as base_index()
// gives: planes of other pointers do not count). Requires a valid layout.
int64_t base_span_bytes(const kvx_layout_t& layout, int64_t base);
// How many base pointers the layout has: 1, num_layers or num_layers * num_kv.
inline int64_t num_bases(const kvx_layout_t& l) {
  switch (l.base_kind) {
    case KVX_BASE_LAYER_PTRS: return l.num_layers;
    case KVX_BASE_PLANE_PTRS: return l.num_layers * l.num_kv;
    default: return 1;
  }
}

// Fills *out for an engine preset. Implemented in layout/presets.cpp.
kvx_status_t make_preset(kvx_preset_t preset, const kvx_preset_params_t* params, kvx_layout_t* out);
const char* preset_name(kvx_preset_t preset);
// Looks a preset up by its preset_name(). Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT
// (a null argument) or KVX_ERR_NOT_FOUND.
kvx_status_t preset_from_name(const char* name, kvx_preset_t* out);


// A host view of either page-table form (arrays must be host-readable).
class PageTableView {
 public:
  PageTableView(const kvx_page_table_t& t, int64_t block_tokens) : t_(t), block_tokens_(block_tokens) {}
  int64_t num_seqs() const { return t_.num_seqs; }
  int64_t seq_len(int64_t b) const {
    if (t_.kind == KVX_PAGE_TABLE_DENSE) return t_.seq_lens[b];
    const int64_t pages = t_.indptr[b + 1] - t_.indptr[b];
    return pages == 0 ? 0 : (pages - 1) * block_tokens_ + t_.last_page_len[b];
  }
  int64_t num_pages(int64_t b) const {
    if (t_.kind == KVX_PAGE_TABLE_DENSE) return (seq_len(b) + block_tokens_ - 1) / block_tokens_;
    return t_.indptr[b + 1] - t_.indptr[b];
  }
  // The block holding page i of sequence b.
  int64_t block(int64_t b, int64_t i) const {
    if (t_.kind == KVX_PAGE_TABLE_DENSE) return t_.block_table[b * t_.block_table_stride + i];
    return t_.indices[t_.indptr[b] + i];
  }
  int64_t block_tokens() const { return block_tokens_; }

 private:
  const kvx_page_table_t& t_;
  int64_t block_tokens_;
};

// Index arrays (page tables, slot mappings, q_indptr) that validation reads
// element by element: pageable or pinned host memory. Device and managed
// arrays are checked by header only: reading them on the host would
// synchronise or migrate pages (docs/spec/kvx-v1.md section 3.3).
inline bool host_checkable(kvx_memory_t m) {
  return m == KVX_MEMORY_HOST || m == KVX_MEMORY_CUDA_HOST_PINNED;
}

// Page i of sequence b (of len tokens) is never read by the op: the layout's
// null block may stand there (a sliding window's released pages, as the block
// manager exports them). Empty: every page is read.
using UnreadPage = std::function<bool(int64_t seq, int64_t page, int64_t len)>;

// Validation of a page table against a layout (host arrays: every length and
// block id is checked; device arrays: only the header). Implemented in
// layout/page_table.cpp.
kvx_status_t validate_page_table(const kvx_page_table_t* table, const kvx_layout_t& layout,
                                 const char* name, const UnreadPage& unread = {});

// Host copies of a page table in each form, owning their arrays; view()
// returns a kvx_page_table_t (memory HOST) that points into them and stays
// valid while the owner lives and is not modified.
struct CsrPageTable {
  int64_t num_seqs = 0;
  std::vector<int32_t> indptr;         // [num_seqs + 1]
  std::vector<int32_t> indices;        // [indptr.back()]
  std::vector<int32_t> last_page_len;  // [num_seqs]
  kvx_page_table_t view() const;
};
struct DensePageTable {
  int64_t num_seqs = 0;
  int64_t max_blocks = 0;            // also the row stride
  std::vector<int32_t> block_table;  // [num_seqs * max_blocks], unused entries -1
  std::vector<int32_t> seq_lens;     // [num_seqs]
  kvx_page_table_t view() const;
};

// Converts a host page table of either form (one that validate_page_table
// accepted) into each form. Dense rows get exactly the columns the longest
// sequence needs (at least `min_max_blocks`).
CsrPageTable page_table_to_csr(const kvx_page_table_t& table, int64_t block_tokens);
DensePageTable page_table_to_dense(const kvx_page_table_t& table, int64_t block_tokens,
                                   int64_t min_max_blocks = 0);

}  // namespace kvx
