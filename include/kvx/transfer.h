/* KVX transfers: batched block copies between pools (device <-> device,
 * device -> pinned host, pinned host -> device), fused with layout
 * conversion, raw (src, dst, bytes) copies, and the offload tier's data path
 * (docs/perf-notes.md, section "Transfers", has the measurements behind the
 * engine plan). */
#ifndef KVX_TRANSFER_H
#define KVX_TRANSFER_H

#include <stdint.h>

#include "kvx/layout.h"
#include "kvx/manager.h"
#include "kvx/ops.h"
#include "kvx/status.h"
#include "kvx/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- enums -- */

/* What moves the bytes. */
typedef enum kvx_copy_engine {
  KVX_COPY_ENGINE_AUTO = 0,      /* CPU when both sides are host-readable and exec.backend is not CUDA;
                                    else the transfer plan's choice for the direction and run size */
  KVX_COPY_ENGINE_CPU = 1,       /* memcpy on host threads: host-readable memory only (the reference) */
  KVX_COPY_ENGINE_SM_KERNEL = 2, /* one CUDA kernel launch per up to a few thousand pairs; reads and
                                    writes pinned host memory directly (unified addressing) */
  KVX_COPY_ENGINE_DMA = 3,       /* the GPU's copy engines (cudaMemcpyBatchAsync / cudaMemcpyAsync);
                                    needs rows that are contiguous on both sides */
  KVX_COPY_ENGINE_FORCE_32BIT = 0x7fffffff
} kvx_copy_engine_t;

/* How the DMA engine issues its copies. */
typedef enum kvx_dma_mode {
  KVX_DMA_BATCHED_WITH_FALLBACK = 0, /* cudaMemcpyBatchAsync; a cudaMemcpyAsync loop where the runtime,
                                        driver or stream (the legacy default stream) refuses it */
  KVX_DMA_FALLBACK_ONLY = 1,         /* one cudaMemcpyAsync per contiguous run */
  KVX_DMA_BATCHED_ONLY = 2,          /* cudaMemcpyBatchAsync or KVX_ERR_UNSUPPORTED */
  KVX_DMA_MODE_FORCE_32BIT = 0x7fffffff
} kvx_dma_mode_t;

/* How the DMA engine actually issued them (reported back). */
typedef enum kvx_dma_path {
  KVX_DMA_PATH_NONE = 0,    /* not the DMA engine */
  KVX_DMA_PATH_BATCHED = 1, /* cudaMemcpyBatchAsync */
  KVX_DMA_PATH_LOOP = 2,    /* cudaMemcpyAsync per run */
  KVX_DMA_PATH_FORCE_32BIT = 0x7fffffff
} kvx_dma_path_t;

/* Direction of a copy, by where its two sides live (host means pinned or
 * pageable host memory). */
typedef enum kvx_transfer_direction {
  KVX_TRANSFER_D2D = 0,
  KVX_TRANSFER_H2D = 1,
  KVX_TRANSFER_D2H = 2,
  KVX_TRANSFER_H2H = 3,
  KVX_TRANSFER_DIRECTION_FORCE_32BIT = 0x7fffffff
} kvx_transfer_direction_t;

#define KVX_TRANSFER_NUM_DIRECTIONS 4

/* -------------------------------------------------------------- structs -- */

/* The engine plan of AUTO: per direction, the DMA engine is chosen when the
 * copy's mean contiguous run is at least dma_min_run_bytes[direction] bytes,
 * else the SM kernel (INT64_MAX: never DMA). kvx_transfer_plan_default()
 * returns the plan measured on the project's H100 (bench/results/h100/copy.json). */
typedef struct kvx_transfer_plan {
  uint32_t struct_size;          /* sizeof(kvx_transfer_plan_t) */
  uint32_t version;              /* KVX_VERSION */
  int64_t dma_min_run_bytes[KVX_TRANSFER_NUM_DIRECTIONS];
  uint64_t reserved[4];          /* must be zero */
} kvx_transfer_plan_t;

/* What a copy did. */
typedef struct kvx_transfer_report {
  uint32_t struct_size;          /* sizeof(kvx_transfer_report_t), set by the caller */
  uint32_t version;              /* KVX_VERSION, set by the caller */
  kvx_copy_engine_t engine;      /* the engine used (never AUTO) */
  kvx_dma_path_t dma_path;       /* DMA only: batched or loop */
  kvx_transfer_direction_t direction;
  int32_t reserved0;
  int64_t bytes;                 /* payload bytes copied */
  int64_t runs;                  /* contiguous runs after coalescing (DMA), or work items (SM, CPU) */
  int64_t launches;              /* kernel launches or DMA API calls enqueued */
  uint64_t reserved[4];
} kvx_transfer_report_t;

/* Copies blocks between two pools: for every layer and plane, block
 * src_blocks[i] of `src` becomes block dst_blocks[i] of `dst`, bit for bit.
 * The two layouts must have the same logical dims and dtype but may differ in
 * every stride and in memory kind (a device pool and a pinned host buffer):
 * the layout conversion is fused with the copy, one pass. `src` and `dst` may
 * describe the same pool (copy-on-write): then no block may be both a source
 * and a destination. Block lists are host arrays. */
typedef struct kvx_block_copy_args {
  uint32_t struct_size;                /* sizeof(kvx_block_copy_args_t) */
  uint32_t version;                    /* KVX_VERSION */
  const kvx_layout_t* src;
  const kvx_layout_t* dst;
  const int32_t* src_blocks;           /* [num_blocks] */
  const int32_t* dst_blocks;           /* [num_blocks], distinct */
  int64_t num_blocks;
  kvx_copy_engine_t engine;            /* default AUTO */
  kvx_dma_mode_t dma_mode;             /* default BATCHED_WITH_FALLBACK */
  int32_t max_ctas;                    /* SM kernel: CTAs at most (leave SMs to compute); 0 = all */
  int32_t reserved0;                   /* must be zero */
  const kvx_transfer_plan_t* plan;     /* AUTO's plan; NULL = kvx_transfer_plan_default() */
  kvx_transfer_report_t* report;       /* optional output */
  uint64_t reserved[4];                /* must be zero */
} kvx_block_copy_args_t;

/* One raw copy. */
typedef struct kvx_raw_copy {
  void* dst;
  const void* src;
  uint64_t bytes;
} kvx_raw_copy_t;

/* A contiguous region of memory that every copy's source (or destination)
 * must lie in. */
typedef struct kvx_region {
  void* base;
  uint64_t bytes;
  kvx_memory_t memory;
  int32_t device_id;
} kvx_region_t;

/* Raw (src, dst, bytes) copies from one region into another. Destinations
 * never overlap one another, nor any source. `copies` is a host array. */
typedef struct kvx_raw_copy_args {
  uint32_t struct_size;                /* sizeof(kvx_raw_copy_args_t) */
  uint32_t version;                    /* KVX_VERSION */
  kvx_region_t src_pool;
  kvx_region_t dst_pool;
  const kvx_raw_copy_t* copies;        /* [num_copies] */
  int64_t num_copies;
  uint32_t elem_bytes;                 /* 1, 2, 4, 8 or 16: every size and pointer is a multiple of it */
  kvx_copy_engine_t engine;
  kvx_dma_mode_t dma_mode;
  int32_t max_ctas;
  const kvx_transfer_plan_t* plan;
  kvx_transfer_report_t* report;       /* optional output */
  uint64_t reserved[4];                /* must be zero */
} kvx_raw_copy_args_t;

KVX_DEFINE_INIT_(kvx_transfer_plan_t, kvx_transfer_plan_init, (void)0)
KVX_DEFINE_INIT_(kvx_transfer_report_t, kvx_transfer_report_init, (void)0)
KVX_DEFINE_INIT_(kvx_block_copy_args_t, kvx_block_copy_args_init, (void)0)
KVX_DEFINE_INIT_(kvx_raw_copy_args_t, kvx_raw_copy_args_init, x_.elem_bytes = 1)
#define KVX_TRANSFER_PLAN_INIT kvx_transfer_plan_init()
#define KVX_TRANSFER_REPORT_INIT kvx_transfer_report_init()
#define KVX_BLOCK_COPY_ARGS_INIT kvx_block_copy_args_init()
#define KVX_RAW_COPY_ARGS_INIT kvx_raw_copy_args_init()

/* ------------------------------------------------------------ functions -- */

/* The built-in AUTO plan. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT (null),
 * KVX_ERR_VERSION_MISMATCH (out's header). */
KVX_API kvx_status_t kvx_transfer_plan_default(kvx_transfer_plan_t* out);

/* Copy entry points. Everything is validated before any byte moves: layouts,
 * dims and dtype, block ids in [0, num_blocks) and not the null block,
 * distinct destinations, no block both read and written, pointers inside
 * their regions, sizes and pointers multiples of elem_bytes, engine against
 * memory. Work is enqueued on exec.stream (GPU engines) and nothing
 * synchronises; the CPU engine copies before returning.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_INVALID_LAYOUT,
 * KVX_ERR_MISALIGNED, KVX_ERR_VERSION_MISMATCH, KVX_ERR_UNSUPPORTED (engine
 * not in this build, or DMA with rows not contiguous on both sides, or
 * BATCHED_ONLY where the batch API is refused), KVX_ERR_DEVICE. The _supports
 * variants validate and choose the engine (written to args.report) but copy
 * nothing. */
KVX_API kvx_status_t kvx_copy_blocks(const kvx_block_copy_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_copy_blocks_supports(const kvx_block_copy_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_copy_raw(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_copy_raw_supports(const kvx_raw_copy_args_t* args, const kvx_exec_t* exec);

/* ------------------------------------------------- the offload data path -- */

/* Executes the block manager's copy lists (kvx_manager_take_work) between a
 * device pool and a pinned host tier, and tracks when each block may be
 * reused. Not thread-safe (like the manager it serves). */
typedef struct kvx_offload* kvx_offload_t;

typedef struct kvx_offload_config {
  uint32_t struct_size;                /* sizeof(kvx_offload_config_t) */
  uint32_t version;                    /* KVX_VERSION */
  const kvx_layout_t* device;          /* the device pool (copied, ptrs included) */
  const kvx_layout_t* host;            /* the host tier: same dims and dtype, host-readable memory */
  kvx_copy_engine_t engine;            /* per copy batch, as in kvx_block_copy_args_t */
  kvx_dma_mode_t dma_mode;
  int32_t max_ctas;
  int32_t reserved0;
  uint64_t reserved[4];                /* must be zero */
} kvx_offload_config_t;

KVX_DEFINE_INIT_(kvx_offload_config_t, kvx_offload_config_init, (void)0)
#define KVX_OFFLOAD_CONFIG_INIT kvx_offload_config_init()

/* Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH,
 * KVX_ERR_INVALID_LAYOUT, KVX_ERR_MISALIGNED, KVX_ERR_OUT_OF_MEMORY. */
KVX_API kvx_status_t kvx_offload_create(const kvx_offload_config_t* config, kvx_offload_t* out);
/* Waits for every copy in flight, then frees. NULL is accepted.
 * Returns KVX_OK, KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_offload_destroy(kvx_offload_t offload);

/* Enqueues items[0..num_items) in order on `stream` (a cudaStream_t; NULL
 * the legacy default stream; ignored by the CPU engine, which copies before
 * returning): runs of consecutive items of one direction become one batched
 * copy, split where an item touches a block an earlier item of the run
 * writes. Writes the ticket of this submission to *out_ticket (may be null).
 * All items are validated before any is enqueued.
 * Returns the statuses of kvx_copy_blocks. */
KVX_API kvx_status_t kvx_offload_submit(kvx_offload_t offload, const kvx_copy_t* items, int64_t num_items,
                                        void* stream, uint64_t* out_ticket);
/* Whether a submission has completed (*out_done = 1). Returns KVX_OK,
 * KVX_ERR_INVALID_ARGUMENT (unknown ticket), KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_offload_query(kvx_offload_t offload, uint64_t ticket, int32_t* out_done);
/* Blocks the calling thread until a submission completes. */
KVX_API kvx_status_t kvx_offload_wait(kvx_offload_t offload, uint64_t ticket);
/* Whether a copy still in flight reads or writes `block` of `tier`
 * (*out_busy = 1): such a block must not be overwritten or freed yet. */
KVX_API kvx_status_t kvx_offload_block_busy(kvx_offload_t offload, kvx_pool_tier_t tier, int32_t block,
                                            int32_t* out_busy);
/* Makes `stream` wait (on the device, without blocking the host) until every
 * copy in flight that touches one of blocks[0..num_blocks) of `tier` has
 * completed: call it before a kernel on `stream` writes those blocks. */
KVX_API kvx_status_t kvx_offload_stream_wait_blocks(kvx_offload_t offload, kvx_pool_tier_t tier,
                                                    const int32_t* blocks, int64_t num_blocks, void* stream);

#ifdef __cplusplus
}
#endif

#endif /* KVX_TRANSFER_H */
