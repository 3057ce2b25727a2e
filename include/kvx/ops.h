/* KVX operations on a paged cache: append, gather, attention, merge, convert. */
#ifndef KVX_OPS_H
#define KVX_OPS_H

#include <stdint.h>

#include "kvx/layout.h"
#include "kvx/status.h"
#include "kvx/version.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kvx_backend {
  KVX_BACKEND_AUTO = 0, /* from the memory of the cache: host -> CPU, CUDA device -> CUDA */
  KVX_BACKEND_CPU = 1,  /* the reference backend */
  KVX_BACKEND_CUDA = 2,
  KVX_BACKEND_FORCE_32BIT = 0x7fffffff
} kvx_backend_t;

/* How an op runs. Pass NULL for defaults (AUTO backend, all hardware
 * threads, default stream, no workspace). */
typedef struct kvx_exec {
  uint32_t struct_size;       /* sizeof(kvx_exec_t) */
  uint32_t version;           /* KVX_VERSION */
  kvx_backend_t backend;
  int32_t num_threads;        /* CPU: 0 = hardware concurrency */
  void* stream;               /* CUDA: a cudaStream_t; NULL = the legacy default stream */
  void* workspace;            /* device memory for ops that need it (sized by their query) */
  uint64_t workspace_bytes;
  uint64_t reserved[4];       /* must be zero */
} kvx_exec_t;

/* A dense [num_tokens, num_heads, head_dim] tensor with a contiguous last
 * dimension (queries, outputs, new K/V, gathered K/V, log-sum-exp with
 * head_dim 1). */
typedef struct kvx_tensor {
  void* data;
  kvx_dtype_t dtype;
  kvx_memory_t memory;
  int64_t num_tokens;
  int64_t num_heads;
  int64_t head_dim;
  int64_t token_stride_bytes;
  int64_t head_stride_bytes;
  uint64_t reserved[2];       /* must be zero */
} kvx_tensor_t;

/* append: writes new K/V rows into the cache of one layer. Placement is either
 * by slot mapping (slot = block * block_tokens + offset; a negative slot skips
 * the row, for padded batches) or by page table + (batch index, position) per
 * row; exactly one of the two is given. */
typedef struct kvx_append_args {
  uint32_t struct_size;                /* sizeof(kvx_append_args_t) */
  uint32_t version;                    /* KVX_VERSION */
  const kvx_layout_t* cache;
  int64_t layer;
  kvx_tensor_t k;                      /* [n, num_kv_heads, plane[0].head_dim] */
  kvx_tensor_t v;                      /* [n, num_kv_heads, plane[1].head_dim]; unused if num_kv == 1 */
  const int64_t* slot_mapping;         /* [n] */
  const kvx_page_table_t* page_table;
  const int32_t* batch_indices;        /* [n] the sequence of each row */
  const int32_t* positions;            /* [n] the token position of each row in its sequence */
  uint64_t reserved[4];                /* must be zero */
} kvx_append_args_t;

/* gather: copies the K/V of a batch's sequences (one layer) into dense
 * tensors, sequence after sequence: sequence b occupies rows
 * [sum of lens before b, + len_b). */
typedef struct kvx_gather_args {
  uint32_t struct_size;
  uint32_t version;
  const kvx_layout_t* cache;
  int64_t layer;
  const kvx_page_table_t* page_table;
  kvx_tensor_t k_out;                  /* [sum lens, num_kv_heads, plane[0].head_dim] */
  kvx_tensor_t v_out;                  /* unused if num_kv == 1 */
  uint64_t reserved[4];
} kvx_gather_args_t;

/* Attention over the paged cache of one layer.
 * Query row i of sequence b (which has n_b query rows and len_b cached tokens,
 * the queries' own K/V included) sits at position p = len_b - n_b + i. Key j
 * is visible to it when
 *   (causal == 0 || j <= p) and
 *   (window_left < 0 || j >= p - window_left || j < sink_tokens).
 * logits = scale * q.k; if logit_softcap > 0, logits = cap * tanh(logits / cap);
 * out = softmax(logits) @ V, lse = log(sum(exp(logits))) (natural log).
 * A query with no visible key gets out = 0 and lse = -inf.
 * GQA/MQA: query head h reads kv head h / (num_q_heads / num_kv_heads).
 * Attention over a single-latent cache (num_kv == 1) is not part of v1.0:
 * it is refused with KVX_ERR_UNSUPPORTED. */
typedef struct kvx_attention_plan kvx_attention_plan_t; /* opaque; see the CUDA backend's plan API */

typedef struct kvx_attention_args {
  uint32_t struct_size;                /* sizeof(kvx_attention_args_t) */
  uint32_t version;                    /* KVX_VERSION */
  const kvx_layout_t* cache;
  int64_t layer;
  const kvx_page_table_t* page_table;
  const int32_t* q_indptr;             /* prefill: [num_seqs + 1] query rows per sequence; decode: NULL */
  kvx_tensor_t q;                      /* [num_q_rows, num_q_heads, plane[0].head_dim] */
  kvx_tensor_t out;                    /* [num_q_rows, num_q_heads, plane[1].head_dim] */
  kvx_tensor_t lse;                    /* optional (data NULL): F32 [num_q_rows, num_q_heads, 1] */
  float scale;                         /* 0: 1 / sqrt(plane[0].head_dim) */
  float logit_softcap;                 /* 0: none */
  int32_t causal;                      /* 0 or 1; decode is causal by construction */
  int32_t reserved0;                   /* must be zero */
  int64_t window_left;                 /* < 0: no window */
  int64_t sink_tokens;                 /* >= 0 */
  const kvx_attention_plan_t* plan;    /* optional schedule made once per batch shape (CUDA); NULL: none */
  uint64_t reserved[4];                /* must be zero */
} kvx_attention_args_t;

/* merge: combines two partial attention states over disjoint key sets:
 *   lse = log(exp(lse_a) + exp(lse_b)),
 *   out = out_a * exp(lse_a - lse) + out_b * exp(lse_b - lse).
 * out/lse may alias out_a/lse_a. */
typedef struct kvx_merge_args {
  uint32_t struct_size;
  uint32_t version;
  kvx_tensor_t out_a, lse_a;
  kvx_tensor_t out_b, lse_b;
  kvx_tensor_t out, lse;
  uint64_t reserved[4];
} kvx_merge_args_t;

/* convert: copies blocks of every layer and plane from one layout to another
 * with the same logical dims and dtype (block_tokens, kv heads, head dims,
 * layers, num_kv), bit for bit: src_blocks[i] of src becomes dst_blocks[i] of
 * dst. Destination blocks must be distinct. */
typedef struct kvx_convert_args {
  uint32_t struct_size;
  uint32_t version;
  const kvx_layout_t* src;
  const kvx_layout_t* dst;
  const int32_t* src_blocks;           /* [num_blocks] */
  const int32_t* dst_blocks;           /* [num_blocks] */
  int64_t num_blocks;
  uint64_t reserved[4];
} kvx_convert_args_t;

KVX_DEFINE_INIT_(kvx_exec_t, kvx_exec_init, (void)0)
KVX_DEFINE_INIT_(kvx_append_args_t, kvx_append_args_init, (void)0)
KVX_DEFINE_INIT_(kvx_gather_args_t, kvx_gather_args_init, (void)0)
KVX_DEFINE_INIT_(kvx_attention_args_t, kvx_attention_args_init, x_.window_left = -1)
KVX_DEFINE_INIT_(kvx_merge_args_t, kvx_merge_args_init, (void)0)
KVX_DEFINE_INIT_(kvx_convert_args_t, kvx_convert_args_init, (void)0)
#define KVX_EXEC_INIT kvx_exec_init()
#define KVX_APPEND_ARGS_INIT kvx_append_args_init()
#define KVX_GATHER_ARGS_INIT kvx_gather_args_init()
#define KVX_ATTENTION_ARGS_INIT kvx_attention_args_init()
#define KVX_MERGE_ARGS_INIT kvx_merge_args_init()
#define KVX_CONVERT_ARGS_INIT kvx_convert_args_init()

/* Each op validates its arguments before touching memory; on error it writes
 * nothing. Statuses: KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_INVALID_LAYOUT,
 * KVX_ERR_MISALIGNED, KVX_ERR_VERSION_MISMATCH, KVX_ERR_UNSUPPORTED (no
 * backend for this combination), KVX_ERR_WORKSPACE_TOO_SMALL, KVX_ERR_DEVICE.
 * The _supports variants validate only and run nothing. */
KVX_API kvx_status_t kvx_append(const kvx_append_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_append_supports(const kvx_append_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_gather(const kvx_gather_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_gather_supports(const kvx_gather_args_t* args, const kvx_exec_t* exec);
/* decode: one query row per sequence (q_indptr must be NULL). */
KVX_API kvx_status_t kvx_attention_decode(const kvx_attention_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_attention_decode_supports(const kvx_attention_args_t* args,
                                                   const kvx_exec_t* exec);
/* prefill: a ragged batch of query rows (q_indptr required). */
KVX_API kvx_status_t kvx_attention_prefill(const kvx_attention_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_attention_prefill_supports(const kvx_attention_args_t* args,
                                                    const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_merge_states(const kvx_merge_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_merge_states_supports(const kvx_merge_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_convert_blocks(const kvx_convert_args_t* args, const kvx_exec_t* exec);
KVX_API kvx_status_t kvx_convert_blocks_supports(const kvx_convert_args_t* args, const kvx_exec_t* exec);

/* Whether a backend is compiled in and usable on this machine (a device is
 * present for CUDA). Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_backend_available(kvx_backend_t backend, int32_t* out_available);

/* Attention plan: the CUDA decode schedule, made on the host once per batch
 * shape and passed to each run in args.plan (plan, then run: a run with a plan
 * neither synchronises nor allocates, so it can be captured in a CUDA graph).
 * kvx_attention_plan_create reads args.cache, args.page_table (a HOST-READABLE
 * copy of the batch's table: the lengths decide how long sequences split
 * across CTAs), args.q.num_heads, args.window_left and args.sink_tokens, and
 * the device's SM count; the run takes the device page table. A plan stays
 * correct when the lengths change afterwards (e.g. decode steps replayed from
 * a graph): a sequence that outgrows it keeps the planned split count, each
 * split longer.
 * A run with a plan checks that the batch has the plan's shape (sequences,
 * heads, head dims, block_tokens, device) and that exec.workspace_bytes is at
 * least kvx_attention_plan_workspace_bytes (else KVX_ERR_WORKSPACE_TOO_SMALL).
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH,
 * KVX_ERR_INVALID_LAYOUT, KVX_ERR_UNSUPPORTED (no CUDA, or a cache dtype the
 * CUDA kernel does not serve), KVX_ERR_DEVICE, KVX_ERR_OUT_OF_MEMORY. */
KVX_API kvx_status_t kvx_attention_plan_create(const kvx_attention_args_t* args, const kvx_exec_t* exec,
                                               kvx_attention_plan_t** out);
/* Device workspace bytes a run with this plan needs (0 when it never splits).
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_attention_plan_workspace_bytes(const kvx_attention_plan_t* plan, uint64_t* out_bytes);
/* Frees a plan; NULL is accepted. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_attention_plan_destroy(kvx_attention_plan_t* plan);

#ifdef __cplusplus
}
#endif

#endif /* KVX_OPS_H */
