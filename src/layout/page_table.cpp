// Page tables: validation against a layout, and conversion between the dense
// and CSR forms on the host.
//
// Arrays in host memory (KVX_MEMORY_HOST, KVX_MEMORY_CUDA_HOST_PINNED) are
// read and checked entry by entry. Arrays in device or managed memory are
// checked by header only (kind, counts, null pointers): reading them here
// would mean a device synchronisation in a host path, so their contents are
// the caller's promise, as with every GPU library that takes index arrays.
#include <algorithm>

#include "core/checked.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"

namespace kvx {
namespace {

kvx_status_t check_block_id(int64_t id, const kvx_layout_t& layout, const char* name,
                            const char* array, int64_t i, bool null_allowed) {
  if (id < 0 || id >= layout.num_blocks)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}[{}]: block {} not in [0, num_blocks = {})", name,
                array, i, id, layout.num_blocks);
  if (id == layout.null_block && !null_allowed)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.{}[{}]: block {} is the layout's null block", name,
                array, i, id);
  return KVX_OK;
}

kvx_status_t check_dense(const kvx_page_table_t& t, const kvx_layout_t& layout, const char* name,
                         const UnreadPage& unread) {
  if (t.max_blocks < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.max_blocks: {} < 0", name, t.max_blocks);
  if (t.block_table_stride < t.max_blocks)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.block_table_stride: {} < max_blocks {}", name,
                t.block_table_stride, t.max_blocks);
  const auto entries = checked_mul(t.num_seqs, t.block_table_stride);
  const auto capacity = checked_mul(t.max_blocks, layout.block_tokens);
  if (!entries || !capacity)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.block_table_stride: the table's size overflows int64",
                name);
  if (t.num_seqs == 0) return KVX_OK;
  if (t.seq_lens == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.seq_lens: null with num_seqs {}", name, t.num_seqs);
  if (t.block_table == nullptr && t.max_blocks > 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.block_table: null with num_seqs {}", name,
                t.num_seqs);
  if (!host_checkable(t.memory)) return KVX_OK;
  for (int64_t b = 0; b < t.num_seqs; ++b) {
    const int64_t len = t.seq_lens[b];
    if (len < 0 || len > *capacity)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "{}.seq_lens[{}]: {} not in [0, max_blocks * block_tokens = {}]", name, b, len,
                  *capacity);
    const int64_t pages = ceil_div(len, layout.block_tokens);
    for (int64_t i = 0; i < pages; ++i)
      KVX_TRY(check_block_id(t.block_table[b * t.block_table_stride + i], layout, name,
                             "block_table", b * t.block_table_stride + i,
                             unread && unread(b, i, len)));
  }
  return KVX_OK;
}

kvx_status_t check_csr(const kvx_page_table_t& t, const kvx_layout_t& layout, const char* name,
                       const UnreadPage& unread) {
  if (t.num_seqs == 0 && t.indptr == nullptr) return KVX_OK;
  if (t.indptr == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.indptr: null with num_seqs {}", name, t.num_seqs);
  if (t.num_seqs > 0 && t.last_page_len == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.last_page_len: null with num_seqs {}", name,
                t.num_seqs);
  if (!host_checkable(t.memory)) return KVX_OK;
  if (t.indptr[0] != 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.indptr[0]: {} (must be 0)", name, t.indptr[0]);
  for (int64_t b = 0; b < t.num_seqs; ++b) {
    const int64_t pages = static_cast<int64_t>(t.indptr[b + 1]) - t.indptr[b];
    if (pages < 0)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "{}.indptr[{}]: {} < indptr[{}] = {} (must be non-decreasing)", name, b + 1,
                  t.indptr[b + 1], b, t.indptr[b]);
    const int64_t last = t.last_page_len[b];
    const bool ok = pages == 0 ? last == 0 : (last >= 1 && last <= layout.block_tokens);
    if (!ok)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "{}.last_page_len[{}]: {} with {} pages (must be in 1..block_tokens = {}, and 0 "
                  "iff no pages)",
                  name, b, last, pages, layout.block_tokens);
  }
  const int64_t nnz = t.indptr[t.num_seqs];
  if (nnz > 0 && t.indices == nullptr)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.indices: null with indptr[num_seqs] = {}", name, nnz);
  const PageTableView view(t, layout.block_tokens);
  for (int64_t b = 0; b < t.num_seqs; ++b)
    for (int64_t i = t.indptr[b]; i < t.indptr[b + 1]; ++i)
      KVX_TRY(check_block_id(t.indices[i], layout, name, "indices", i,
                             unread && unread(b, i - t.indptr[b], view.seq_len(b))));
  return KVX_OK;
}

}  // namespace

kvx_status_t validate_page_table(const kvx_page_table_t* table, const kvx_layout_t& layout,
                                 const char* name, const UnreadPage& unread) {
  if (table == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "{}: null", name);
  const kvx_page_table_t& t = *table;
  KVX_TRY(check_abi_header(t.struct_size, t.version, sizeof(kvx_page_table_t), name));
  for (size_t i = 0; i < std::size(t.reserved); ++i)
    if (t.reserved[i] != 0)
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}.reserved[{}]: must be zero (is {:#x})", name, i,
                  t.reserved[i]);
  if (raw_enum(t.memory) < KVX_MEMORY_HOST || raw_enum(t.memory) > KVX_MEMORY_CUDA_MANAGED)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.memory: unknown value {}", name, raw_enum(t.memory));
  if (t.num_seqs < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}.num_seqs: {} < 0", name, t.num_seqs);
  switch (raw_enum(t.kind)) {
    case KVX_PAGE_TABLE_DENSE: return check_dense(t, layout, name, unread);
    case KVX_PAGE_TABLE_CSR: return check_csr(t, layout, name, unread);
    default:
      return fail(KVX_ERR_INVALID_ARGUMENT, "{}.kind: unknown value {}", name, raw_enum(t.kind));
  }
}

kvx_page_table_t CsrPageTable::view() const {
  kvx_page_table_t t = kvx_page_table_init();
  t.kind = KVX_PAGE_TABLE_CSR;
  t.memory = KVX_MEMORY_HOST;
  t.num_seqs = num_seqs;
  t.indptr = indptr.data();
  t.indices = indices.data();
  t.last_page_len = last_page_len.data();
  return t;
}

kvx_page_table_t DensePageTable::view() const {
  kvx_page_table_t t = kvx_page_table_init();
  t.kind = KVX_PAGE_TABLE_DENSE;
  t.memory = KVX_MEMORY_HOST;
  t.num_seqs = num_seqs;
  t.block_table = block_table.data();
  t.block_table_stride = max_blocks;
  t.max_blocks = max_blocks;
  t.seq_lens = seq_lens.data();
  return t;
}

CsrPageTable page_table_to_csr(const kvx_page_table_t& table, int64_t block_tokens) {
  const PageTableView v(table, block_tokens);
  CsrPageTable csr;
  csr.num_seqs = v.num_seqs();
  csr.indptr.assign(1, 0);
  for (int64_t b = 0; b < v.num_seqs(); ++b) {
    const int64_t pages = v.num_pages(b);
    for (int64_t i = 0; i < pages; ++i) csr.indices.push_back(static_cast<int32_t>(v.block(b, i)));
    csr.indptr.push_back(static_cast<int32_t>(csr.indices.size()));
    const int64_t len = v.seq_len(b);
    csr.last_page_len.push_back(
        static_cast<int32_t>(pages == 0 ? 0 : len - (pages - 1) * block_tokens));
  }
  return csr;
}

DensePageTable page_table_to_dense(const kvx_page_table_t& table, int64_t block_tokens,
                                   int64_t min_max_blocks) {
  const PageTableView v(table, block_tokens);
  DensePageTable dense;
  dense.num_seqs = v.num_seqs();
  dense.max_blocks = min_max_blocks;
  for (int64_t b = 0; b < v.num_seqs(); ++b)
    dense.max_blocks = std::max(dense.max_blocks, v.num_pages(b));
  dense.block_table.assign(static_cast<size_t>(dense.num_seqs * dense.max_blocks), -1);
  for (int64_t b = 0; b < v.num_seqs(); ++b) {
    dense.seq_lens.push_back(static_cast<int32_t>(v.seq_len(b)));
    for (int64_t i = 0; i < v.num_pages(b); ++i)
      dense.block_table[static_cast<size_t>(b * dense.max_blocks + i)] =
          static_cast<int32_t>(v.block(b, i));
  }
  return dense;
}

}  // namespace kvx
