/* KVX layout descriptors, engine presets and page tables (the standard, docs/spec/kvx-v1.md). */
#ifndef KVX_LAYOUT_H
#define KVX_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "kvx/status.h"
#include "kvx/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- enums -- */

/* Storage and tensor element types. 0 is never valid, so a zeroed field is caught. */
typedef enum kvx_dtype {
  KVX_DTYPE_F32 = 1,
  KVX_DTYPE_F16 = 2,
  KVX_DTYPE_BF16 = 3,
  KVX_DTYPE_FP8_E4M3 = 4, /* OCP e4m3fn: no infinities, max 448 */
  KVX_DTYPE_FP8_E5M2 = 5,
  KVX_DTYPE_INT8 = 6,
  KVX_DTYPE_INT4 = 7,     /* two per byte along head_dim, low nibble first; signed [-8, 7] */
  KVX_DTYPE_FORCE_32BIT = 0x7fffffff
} kvx_dtype_t;

/* Where memory lives. */
typedef enum kvx_memory {
  KVX_MEMORY_HOST = 1,             /* pageable or pinned host memory, used by the CPU backend */
  KVX_MEMORY_CUDA_DEVICE = 2,      /* cudaMalloc'd memory of device `device_id` */
  KVX_MEMORY_CUDA_HOST_PINNED = 3, /* cudaHostAlloc'd memory: readable by the CPU and by kernels */
  KVX_MEMORY_CUDA_MANAGED = 4,
  KVX_MEMORY_FORCE_32BIT = 0x7fffffff
} kvx_memory_t;

/* How the address of (layer, kv) is found. */
typedef enum kvx_base_kind {
  KVX_BASE_STRIDED = 1,    /* base + layer * layer_stride_bytes + plane[kv].offset_bytes */
  KVX_BASE_LAYER_PTRS = 2, /* ptrs[layer] + plane[kv].offset_bytes */
  KVX_BASE_PLANE_PTRS = 3, /* ptrs[layer * num_kv + kv] + plane[kv].offset_bytes */
  KVX_BASE_FORCE_32BIT = 0x7fffffff
} kvx_base_kind_t;

/* Granularity of quantization scales. Scale semantics: stored = x / scale,
 * x = stored * scale (a dequantization multiplier). */
typedef enum kvx_scale_granularity {
  KVX_SCALE_NONE = 0,          /* no scale: f32/f16/bf16 storage, or scale 1 */
  KVX_SCALE_TENSOR = 1,        /* one scale per (layer, kv) plane */
  KVX_SCALE_HEAD = 2,          /* one per (layer, kv, head) */
  KVX_SCALE_TOKEN_HEAD = 3,    /* one per (layer, kv, block, token, head) */
  KVX_SCALE_CHANNEL_GROUP = 4, /* one per (layer, kv, head, group of group_size channels) */
  KVX_SCALE_FORCE_32BIT = 0x7fffffff
} kvx_scale_granularity_t;

/* Named descriptors of engines' caches (docs/layouts.md). */
typedef enum kvx_preset {
  KVX_PRESET_UNIVERSAL = 1,          /* KVX engine-neutral: one base, [block][layer][kv][token][head][dim] */
  KVX_PRESET_VLLM_FLASH_NHD = 2,     /* vLLM FlashAttention backend, per layer (2, NB, T, H, D) */
  KVX_PRESET_VLLM_FLASH_HND = 3,     /* vLLM FlashAttention backend, per layer physical (2, NB, H, T, D) */
  KVX_PRESET_VLLM_LEGACY = 4,        /* vLLM paged kernels: K (NB, H, D/x, T, x), V (NB, H, D, T), x = 16 B */
  KVX_PRESET_VLLM_CROSS_LAYER = 5,   /* vLLM cross-layer NHD: one base, (NB, L, 2, T, H, D) */
  KVX_PRESET_FLASHINFER_NHD = 6,     /* FlashInfer / vLLM-FlashInfer, per layer (NB, 2, T, H, D) */
  KVX_PRESET_FLASHINFER_HND = 7,     /* per layer (NB, 2, H, T, D) */
  KVX_PRESET_FLASH_ATTN = 8,         /* FlashAttention block_table: K and V tensors per layer (NB, T, H, D) */
  KVX_PRESET_TRTLLM_POOL = 9,        /* TensorRT-LLM KVBlockArray pool: one base, [NB, L, 2, H, T, D] */
  KVX_PRESET_TGI = 10,               /* TGI flashinfer/flashdecoding: per layer K, V (NB, T, H, D) */
  KVX_PRESET_SGLANG = 11,            /* SGLang token pool: per layer K, V (S, H, D); block_tokens = 1 */
  KVX_PRESET_DYNAMO_UNIVERSAL = 12,  /* Dynamo KVBM universal block: one base, [NB][H, L, 2, T, D] */
  KVX_PRESET_LMCACHE = 13,           /* LMCache KV_2LTD chunks: one base, [NB][2, L, T, H*D] */
  KVX_PRESET_FORCE_32BIT = 0x7fffffff
} kvx_preset_t;

#define KVX_PRESET_FIRST KVX_PRESET_UNIVERSAL
#define KVX_PRESET_LAST KVX_PRESET_LMCACHE

typedef enum kvx_page_table_kind {
  KVX_PAGE_TABLE_DENSE = 1, /* block_table[num_seqs][block_table_stride], seq_lens[num_seqs] */
  KVX_PAGE_TABLE_CSR = 2,   /* indptr[num_seqs + 1], indices[nnz], last_page_len[num_seqs] */
  KVX_PAGE_TABLE_FORCE_32BIT = 0x7fffffff
} kvx_page_table_kind_t;

/* -------------------------------------------------------------- structs -- */

/* Quantization scales of one plane (K or V). Strides are in bytes; a stride
 * of a dimension the granularity does not index is ignored and should be 0. */
typedef struct kvx_scale {
  kvx_scale_granularity_t granularity;
  kvx_dtype_t dtype;          /* KVX_DTYPE_F32 (others reserved); ignored when NONE */
  void* data;                 /* written by ops that quantize (append), read by the others */
  int64_t group_size;         /* CHANNEL_GROUP: channels per group, divides head_dim */
  int64_t layer_stride_bytes;
  int64_t block_stride_bytes;
  int64_t token_stride_bytes;
  int64_t head_stride_bytes;
  int64_t group_stride_bytes;
  uint64_t reserved[2];       /* must be zero */
} kvx_scale_t;

/* One plane of the cache: K (plane[0]), V (plane[1]), or the single latent
 * (plane[0] when num_kv == 1). The byte offset of element (block, token, head,
 * dim) from the plane's origin is
 *   block * block_stride_bytes + token * token_stride_bytes + head * head_stride_bytes
 *   + dim_offset(dim)
 * where dim_offset(d) = d * dim_stride_bytes when head_dim_inner == 0, and
 * (d / head_dim_inner) * dim_outer_stride_bytes + (d % head_dim_inner) * dim_stride_bytes
 * when the head dimension is split into an outer and an inner part (vLLM's
 * legacy key cache, inner part x = 16 bytes / element size). INT4 storage is
 * the exception: its head rows are packed, dim_offset(d) = d / 2 bytes (d even
 * in the low nibble), dim_stride_bytes must be 0, head_dim even, no split. */
typedef struct kvx_plane {
  int64_t head_dim;
  int64_t head_dim_inner;         /* 0: not split; else the inner part's size, divides head_dim */
  int64_t offset_bytes;           /* origin of this plane from its base pointer */
  int64_t block_stride_bytes;
  int64_t token_stride_bytes;
  int64_t head_stride_bytes;
  int64_t dim_stride_bytes;       /* of the whole head dim, or of its inner part when split */
  int64_t dim_outer_stride_bytes; /* of the outer part when split; 0 otherwise */
  kvx_scale_t scale;
  uint64_t reserved[4];           /* must be zero */
} kvx_plane_t;

/* A paged KV cache: the logical dims (layers, kv, blocks, block_tokens,
 * kv_heads, head_dim per plane), the storage dtype, byte strides, and where
 * the bytes are. Distinct elements never share a byte (INT4 pairs excepted). */
typedef struct kvx_layout {
  uint32_t struct_size;        /* sizeof(kvx_layout_t) */
  uint32_t version;            /* KVX_VERSION of the header the caller compiled against */
  kvx_dtype_t dtype;
  kvx_memory_t memory;
  int32_t device_id;           /* CUDA device ordinal for device memory; 0 otherwise */
  kvx_base_kind_t base_kind;
  int64_t num_layers;
  int64_t num_kv;              /* 2 (K and V) or 1 (one latent, MLA) */
  int64_t num_blocks;
  int64_t block_tokens;
  int64_t num_kv_heads;
  int64_t layer_stride_bytes;  /* KVX_BASE_STRIDED only; 0 otherwise */
  void* base;                  /* KVX_BASE_STRIDED only */
  void* const* ptrs;           /* LAYER_PTRS: [num_layers]; PLANE_PTRS: [num_layers * num_kv] */
  kvx_plane_t plane[2];        /* plane[1] is unused (zero) when num_kv == 1 */
  int64_t null_block;          /* a reserved block id never written by ops, or -1 for none */
  uint64_t reserved[8];        /* must be zero */
} kvx_layout_t;

/* Geometry for kvx_layout_preset(). */
typedef struct kvx_preset_params {
  uint32_t struct_size;        /* sizeof(kvx_preset_params_t) */
  uint32_t version;            /* KVX_VERSION */
  kvx_dtype_t dtype;
  kvx_memory_t memory;
  int32_t device_id;
  int32_t reserved0;           /* must be zero */
  int64_t num_layers;
  int64_t num_blocks;
  int64_t block_tokens;        /* SGLANG: must be 1 */
  int64_t num_kv_heads;
  int64_t head_dim;            /* K head dim */
  int64_t head_dim_v;          /* 0: same as head_dim */
  uint64_t reserved[6];        /* must be zero */
} kvx_preset_params_t;

/* A batch's page table, in either form. Lengths count every cached token of a
 * sequence (for attention: including the query tokens' own K/V). */
typedef struct kvx_page_table {
  uint32_t struct_size;          /* sizeof(kvx_page_table_t) */
  uint32_t version;              /* KVX_VERSION */
  kvx_page_table_kind_t kind;
  kvx_memory_t memory;           /* where the index arrays live */
  int64_t num_seqs;
  /* KVX_PAGE_TABLE_DENSE */
  const int32_t* block_table;    /* row b: the blocks of sequence b, in token order */
  int64_t block_table_stride;    /* entries between rows, >= max_blocks */
  int64_t max_blocks;            /* columns of each row that may be read */
  const int32_t* seq_lens;       /* [num_seqs] tokens of each sequence */
  /* KVX_PAGE_TABLE_CSR */
  const int32_t* indptr;         /* [num_seqs + 1], indptr[0] == 0, non-decreasing */
  const int32_t* indices;        /* [indptr[num_seqs]] block ids */
  const int32_t* last_page_len;  /* [num_seqs] tokens in the last block, 1..block_tokens (0 iff no blocks) */
  uint64_t reserved[4];          /* must be zero */
} kvx_page_table_t;

/* A coordinate of one cache element. */
typedef struct kvx_coord {
  int64_t layer, kv, block, token, head, dim;
} kvx_coord_t;

/* --------------------------------------------------------- initializers -- */

KVX_DEFINE_INIT_(kvx_layout_t, kvx_layout_init, x_.null_block = -1)
KVX_DEFINE_INIT_(kvx_preset_params_t, kvx_preset_params_init, (void)0)
KVX_DEFINE_INIT_(kvx_page_table_t, kvx_page_table_init, (void)0)
#define KVX_LAYOUT_INIT kvx_layout_init()
#define KVX_PRESET_PARAMS_INIT kvx_preset_params_init()
#define KVX_PAGE_TABLE_INIT kvx_page_table_init()

/* ------------------------------------------------------------ functions -- */

/* Bits per element (4 for INT4), 0 for an unknown dtype. */
KVX_API uint32_t kvx_dtype_bits(kvx_dtype_t dtype);
/* "f32", "f16", "bf16", "fp8_e4m3", "fp8_e5m2", "int8", "int4"; "unknown" otherwise. */
KVX_API const char* kvx_dtype_name(kvx_dtype_t dtype);

/* Checks a descriptor: struct_size/version, enums, dims > 0, reserved fields
 * zero, strides that keep distinct elements apart (no overlap within or
 * between planes of one base), alignment of strides and of any non-null base
 * pointers to the element size, 64-bit offsets that cannot overflow.
 * Null pointers are allowed here (ops require them).
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT (layout null),
 * KVX_ERR_VERSION_MISMATCH, KVX_ERR_INVALID_LAYOUT, KVX_ERR_MISALIGNED. */
KVX_API kvx_status_t kvx_layout_validate(const kvx_layout_t* layout);

/* Fills *out with the descriptor of `preset` for the given geometry, with
 * null base pointers (set base or ptrs before use). The whole *out is
 * written only on success.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH,
 * KVX_ERR_UNSUPPORTED (geometry the engine cannot express, e.g. SGLANG with
 * block_tokens != 1, VLLM_LEGACY with a head_dim not a multiple of x). */
KVX_API kvx_status_t kvx_layout_preset(kvx_preset_t preset, const kvx_preset_params_t* params,
                                       kvx_layout_t* out);

/* Static name of a preset ("vllm_flash_nhd"), or "unknown". */
KVX_API const char* kvx_preset_name(kvx_preset_t preset);
/* Looks a preset up by name. Returns KVX_OK or KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_preset_from_name(const char* name, kvx_preset_t* out);

/* Bytes that must be addressable behind each base pointer of the layout (the
 * largest over its bases): the allocation size for the cache.
 * Returns KVX_OK or the statuses of kvx_layout_validate. */
KVX_API kvx_status_t kvx_layout_span_bytes(const kvx_layout_t* layout, uint64_t* out_bytes);

/* Which base pointer an element lives behind (0 for STRIDED, layer for
 * LAYER_PTRS, layer * num_kv + kv for PLANE_PTRS) and its byte offset from it.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT (coordinate out of range), or the
 * statuses of kvx_layout_validate. */
KVX_API kvx_status_t kvx_layout_offset(const kvx_layout_t* layout, const kvx_coord_t* coord,
                                       int64_t* out_base_index, int64_t* out_offset_bytes);

/* Checks a host-resident page table against a layout: form, lengths, every
 * referenced block id in [0, num_blocks) and not the null block.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH. */
KVX_API kvx_status_t kvx_page_table_validate(const kvx_page_table_t* table, const kvx_layout_t* layout);

#ifdef __cplusplus
}
#endif

#endif /* KVX_LAYOUT_H */
