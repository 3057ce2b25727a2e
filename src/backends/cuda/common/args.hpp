// Plain argument structs handed from the host side of the CUDA backend
// (backend.cpp, compiled by the host compiler) to the kernel launchers (.cu
// files). They hold device-usable pointers and byte strides only, resolved
// once on the host from a kvx_layout_t through layout/layout.hpp, so that no
// kernel redoes the descriptor arithmetic.
#pragma once

#include <cstddef>
#include <cstdint>

#ifdef __CUDACC__
#define KVX_HD __host__ __device__ __forceinline__
#else
#define KVX_HD inline
#endif

namespace kvx::cuda {

// Storage and tensor element types as the kernels see them (values of kvx_dtype_t).
enum class Elem : int32_t { kF32 = 1, kF16 = 2, kBF16 = 3 };

// One plane (K or V) of one layer: `base` already includes the layer offset
// and the plane's offset_bytes.
struct PlaneArg {
  std::byte* base = nullptr;
  int64_t block_stride = 0, token_stride = 0, head_stride = 0;
  int64_t dim_stride = 0, dim_outer_stride = 0, head_dim_inner = 0;
  int64_t head_dim = 0;

  KVX_HD std::byte* row(int64_t block, int64_t token, int64_t head) const {
    return base + block * block_stride + token * token_stride + head * head_stride;
  }
  // Byte offset of element d within a row (the split head dim of vLLM's legacy key cache included).
  KVX_HD int64_t dim_offset(int64_t d) const {
    if (head_dim_inner == 0) return d * dim_stride;
    return (d / head_dim_inner) * dim_outer_stride + (d % head_dim_inner) * dim_stride;
  }
};

// Either page-table form, in memory the device can read.
struct PageTableArg {
  int32_t csr = 0;  // 0: dense (block_table, seq_lens); 1: CSR (indptr, indices, last_page_len)
  int32_t block_tokens = 1;
  int64_t num_seqs = 0;
  const int32_t* block_table = nullptr;
  int64_t block_table_stride = 0;
  const int32_t* seq_lens = nullptr;
  const int32_t* indptr = nullptr;
  const int32_t* indices = nullptr;
  const int32_t* last_page_len = nullptr;

#ifdef __CUDACC__
  __device__ __forceinline__ int64_t seq_len(int64_t b) const {
    if (!csr) return __ldg(seq_lens + b);
    const int64_t pages = __ldg(indptr + b + 1) - __ldg(indptr + b);
    return pages == 0 ? 0 : (pages - 1) * block_tokens + __ldg(last_page_len + b);
  }
  __device__ __forceinline__ int64_t block(int64_t b, int64_t page) const {
    if (!csr) return __ldg(block_table + b * block_table_stride + page);
    return __ldg(indices + __ldg(indptr + b) + page);
  }
#endif
};

// A dense [tokens, heads, dim] tensor with a contiguous last dimension.
struct TensorArg {
  std::byte* data = nullptr;
  Elem dtype = Elem::kF32;
  int64_t num_tokens = 0, num_heads = 0, head_dim = 0;
  int64_t token_stride = 0, head_stride = 0;

  KVX_HD std::byte* row(int64_t token, int64_t head) const {
    return data + token * token_stride + head * head_stride;
  }
};

}  // namespace kvx::cuda
