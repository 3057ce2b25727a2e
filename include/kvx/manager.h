/* KVX block manager: which blocks hold which tokens (docs/manager.md).
 *
 * Host logic only: the manager runs no kernels. It returns the work that the
 * caller hands to the ops: slot mappings for new tokens, block tables, and
 * copy lists (copy-on-write, offload to host, reload from host).
 *
 * Thread-safety: a manager is NOT thread-safe. Callers serialise every call
 * on one manager (an engine's scheduler thread owns it); distinct managers
 * are independent and may be used from different threads at once. The
 * last-error message is per thread (kvx_last_error()).
 *
 * Errors: every entry point returns a kvx_status_t. On any error nothing has
 * changed: no sequence, block, cache entry, pending work item or output
 * buffer has been modified (allocation failure included: plans are computed
 * and checked before anything is committed), and kvx_last_error() names the
 * offending field. The one exception is committed physical memory, which an
 * entry point may have grown before a later step failed; it is released by
 * kvx_manager_trim. */
#ifndef KVX_MANAGER_H
#define KVX_MANAGER_H

#include <stdint.h>

#include "kvx/layout.h"
#include "kvx/status.h"
#include "kvx/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- enums -- */

typedef enum kvx_eviction_policy {
  KVX_EVICTION_LRU = 1,      /* least recently used first (the default) */
  KVX_EVICTION_LFU = 2,      /* fewest prefix hits first; LRU among equals */
  KVX_EVICTION_PRIORITY = 3, /* lowest priority class first; LRU within a class */
  KVX_EVICTION_HYBRID = 4,   /* lowest priority class first; within a class the smallest
                                last_use + hits * hybrid_hit_steps (hits buy lifetime) */
  KVX_EVICTION_FORCE_32BIT = 0x7fffffff
} kvx_eviction_policy_t;

/* The physical memory behind the device pool. */
typedef enum kvx_pool_memory {
  KVX_POOL_MEMORY_NONE = 1,     /* bookkeeping only: the caller owns the cache memory */
  KVX_POOL_MEMORY_HOST = 2,     /* a reserved host address range, pages committed on first use */
  KVX_POOL_MEMORY_CUDA_VMM = 3, /* CUDA driver virtual memory: range reserved once, chunks
                                   mapped on demand (KVX_ERR_UNSUPPORTED without CUDA) */
  KVX_POOL_MEMORY_FORCE_32BIT = 0x7fffffff
} kvx_pool_memory_t;

/* Direction of a copy work item. */
typedef enum kvx_copy_direction {
  KVX_COPY_DEVICE_TO_DEVICE = 1, /* copy-on-write of a shared partial block */
  KVX_COPY_DEVICE_TO_HOST = 2,   /* offload of an evicted block to the host tier */
  KVX_COPY_HOST_TO_DEVICE = 3,   /* reload of a host-tier block on a prefix hit */
  KVX_COPY_DIRECTION_FORCE_32BIT = 0x7fffffff
} kvx_copy_direction_t;

/* Which pool a base pointer is asked for. */
typedef enum kvx_pool_tier {
  KVX_POOL_TIER_DEVICE = 1,
  KVX_POOL_TIER_HOST = 2,
  KVX_POOL_TIER_FORCE_32BIT = 0x7fffffff
} kvx_pool_tier_t;

/* Flags of kvx_seq_params_t.flags. */
#define KVX_SEQ_MATCH_LAST_TOKEN 1u /* let a prefix match cover the prompt's last token (by default
                                       a match stops before it, so that one token is computed) */

/* -------------------------------------------------------------- handles -- */

typedef struct kvx_manager* kvx_manager_t;
/* Sequence and prefix ids are positive; 0 is never a valid id. A freed id is
 * never reused by the same manager. */
typedef int64_t kvx_seq_id_t;
typedef int64_t kvx_prefix_id_t;

/* Optional clock: returns a non-decreasing logical step. When null, the
 * manager's own step counter is used (advanced by kvx_manager_step). */
typedef uint64_t (*kvx_clock_fn)(void* user);

/* -------------------------------------------------------------- structs -- */

typedef struct kvx_manager_config {
  uint32_t struct_size;          /* sizeof(kvx_manager_config_t) */
  uint32_t version;              /* KVX_VERSION */
  int64_t num_blocks;            /* device pool capacity in blocks, block 0 (the null block)
                                    included; >= 2, < 2^31 (the initial capacity of a growable
                                    pool, see max_blocks). Never committed up front. */
  int64_t block_tokens;          /* tokens per block, 1..65536 */
  int64_t bytes_per_block;       /* bytes of one block over all layers; > 0 unless memory is NONE,
                                    where 0 means "committed bytes are not tracked" */
  kvx_pool_memory_t memory;      /* default NONE */
  int32_t device_id;             /* CUDA_VMM: the device ordinal */
  kvx_eviction_policy_t eviction;/* default LRU */
  int32_t reserved0;             /* must be zero */
  int64_t host_blocks;           /* offload tier capacity in blocks; 0 = no tier */
  int64_t thrash_window;         /* steps: an eviction followed by a need of the same block
                                    within this many steps counts as thrashing; 0 = 64 */
  int64_t hybrid_hit_steps;      /* HYBRID: steps of lifetime each prefix hit buys; 0 = 16 */
  uint64_t hash_seed;            /* seed of the prefix hash (docs/manager.md) */
  uint64_t model_id;             /* mixed into every block hash */
  kvx_clock_fn clock;            /* optional; see kvx_clock_fn */
  void* clock_user;
  int64_t max_blocks;            /* the capacity kvx_manager_grow may raise num_blocks to;
                                    0 = num_blocks (a fixed pool), else num_blocks..2^31 - 1.
                                    The address range is reserved for max_blocks (address
                                    space only: nothing is committed up front). */
  uint64_t reserved[7];          /* must be zero */
} kvx_manager_config_t;

/* A media item (image, audio clip) occupying prompt tokens
 * [offset, offset + num_tokens): its content hash is mixed into every block it
 * overlaps, with its offset relative to that block. */
typedef struct kvx_media_hash {
  uint64_t hash_lo;
  uint64_t hash_hi;
  int64_t offset;
  int64_t num_tokens;            /* >= 1 */
} kvx_media_hash_t;

/* How a sequence is created: its hash keys and its eviction class. */
typedef struct kvx_seq_params {
  uint32_t struct_size;          /* sizeof(kvx_seq_params_t) */
  uint32_t version;              /* KVX_VERSION */
  uint64_t adapter_id;           /* LoRA or other adapter; 0 = none; mixed into every block */
  const void* cache_salt;        /* mixed into the first block only; may be null when 0 bytes */
  uint64_t cache_salt_bytes;     /* <= 4096 */
  const kvx_media_hash_t* media; /* [num_media], sorted by offset, non-overlapping */
  int64_t num_media;             /* <= 65536 */
  int32_t priority;              /* eviction class 0..100 (PRIORITY, HYBRID); default 35 */
  uint32_t flags;                /* KVX_SEQ_* flags */
  int64_t window_tokens;         /* sliding window W (a query attends to its last W tokens);
                                    0 = full attention */
  int64_t sink_tokens;           /* S: the first S tokens are always kept; only with a window */
  uint64_t reserved[6];          /* must be zero */
} kvx_seq_params_t;

/* What kvx_seq_create found in the prefix cache. */
typedef struct kvx_seq_match {
  int64_t matched_tokens;        /* tokens whose K/V the cache already holds (or reloads) */
  int64_t matched_blocks;        /* = matched_tokens / block_tokens */
  int64_t reloaded_blocks;       /* of these, blocks coming back from the host tier (their
                                    host-to-device copies are pending work) */
} kvx_seq_match_t;

/* One copy work item: copy block `src` to block `dst` in `direction`. Host
 * block ids index the host tier; device ids the device pool. */
typedef struct kvx_copy {
  int64_t src;
  int64_t dst;
  kvx_copy_direction_t direction;
  int32_t reserved0;
} kvx_copy_t;

/* A batch's block table exported into caller buffers. Fill the inputs and
 * the buffers of one form; call with null buffers to learn the sizes. */
typedef struct kvx_block_table_export {
  uint32_t struct_size;          /* sizeof(kvx_block_table_export_t) */
  uint32_t version;              /* KVX_VERSION */
  kvx_page_table_kind_t kind;    /* DENSE or CSR */
  int32_t reserved0;             /* must be zero */
  const kvx_seq_id_t* seq_ids;   /* [num_seqs] */
  int64_t num_seqs;
  /* DENSE: row b holds the blocks of seq_ids[b]; columns past its blocks hold the null block */
  int32_t* block_table;          /* [num_seqs][block_table_stride] */
  int64_t block_table_stride;    /* entries per row, >= max_blocks */
  int32_t* seq_lens;             /* [num_seqs] tokens of each sequence */
  /* CSR */
  int32_t* indptr;               /* [num_seqs + 1] */
  int32_t* indices;              /* [indices_capacity] */
  int64_t indices_capacity;      /* >= nnz */
  int32_t* last_page_len;        /* [num_seqs] */
  /* outputs (always written on success) */
  int64_t max_blocks;            /* the most blocks of any sequence */
  int64_t nnz;                   /* the sum of blocks */
  uint64_t reserved[4];          /* must be zero */
} kvx_block_table_export_t;

typedef struct kvx_manager_metrics {
  uint32_t struct_size;          /* sizeof(kvx_manager_metrics_t): set by the caller */
  uint32_t version;
  int64_t step;                  /* the logical clock */
  int64_t blocks_total;          /* device pool capacity, null block excluded */
  int64_t blocks_used;           /* held by a sequence or prefix handle */
  int64_t blocks_cached;         /* unreferenced but kept by the prefix cache (pinned included) */
  int64_t blocks_pinned;
  int64_t blocks_free;           /* neither (never used ones included) */
  int64_t blocks_host;           /* in the host tier */
  uint64_t committed_bytes;      /* physical memory actually committed */
  uint64_t reserved_bytes;       /* address range reserved (device pool) */
  int64_t lookup_blocks;         /* full prompt blocks looked up in the prefix cache */
  int64_t hit_blocks;            /* of those, found (device or host) */
  int64_t lookup_tokens;         /* prompt tokens looked up */
  int64_t hit_tokens;            /* of those, matched */
  int64_t evictions_capacity;    /* cached blocks evicted to make room */
  int64_t evictions_reset;       /* cached blocks dropped by kvx_manager_reset */
  int64_t evictions_host;        /* host-tier blocks dropped to make room there */
  int64_t offloads;              /* device-to-host copies issued */
  int64_t reloads;               /* host-to-device copies issued */
  int64_t cow_copies;            /* device-to-device copies issued */
  int64_t window_released;       /* blocks released by sliding windows */
  int64_t thrashing;             /* blocks needed again within thrash_window steps of eviction */
  int64_t num_seqs;              /* live sequences (prefix handles excluded) */
  int64_t num_prefixes;          /* live prefix handles */
  int64_t pending_work;          /* copy items not yet taken */
  uint64_t reserved[8];
} kvx_manager_metrics_t;

/* --------------------------------------------------------- initializers -- */

KVX_DEFINE_INIT_(kvx_manager_config_t, kvx_manager_config_init,
                 (x_.memory = KVX_POOL_MEMORY_NONE, x_.eviction = KVX_EVICTION_LRU))
KVX_DEFINE_INIT_(kvx_seq_params_t, kvx_seq_params_init, x_.priority = 35)
KVX_DEFINE_INIT_(kvx_block_table_export_t, kvx_block_table_export_init, x_.kind = KVX_PAGE_TABLE_DENSE)
KVX_DEFINE_INIT_(kvx_manager_metrics_t, kvx_manager_metrics_init, (void)0)
#define KVX_MANAGER_CONFIG_INIT kvx_manager_config_init()
#define KVX_SEQ_PARAMS_INIT kvx_seq_params_init()
#define KVX_BLOCK_TABLE_EXPORT_INIT kvx_block_table_export_init()
#define KVX_MANAGER_METRICS_INIT kvx_manager_metrics_init()

/* The null block: never allocated, stands for released (out-of-window) blocks
 * and padding in block tables. */
#define KVX_NULL_BLOCK 0

/* ------------------------------------------------------------ functions -- */

/* Creates a manager. On success *out is a new handle.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT (null, out-of-range field or enum,
 * reserved field non-zero), KVX_ERR_VERSION_MISMATCH (struct_size/version),
 * KVX_ERR_UNSUPPORTED (CUDA_VMM in a build without CUDA),
 * KVX_ERR_OUT_OF_MEMORY (host memory or address range), KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_manager_create(const kvx_manager_config_t* config, kvx_manager_t* out);

/* Destroys a manager and every sequence and prefix handle of it, releasing
 * its physical memory. Null is accepted. Returns KVX_OK. */
KVX_API kvx_status_t kvx_manager_destroy(kvx_manager_t manager);

/* Advances the manager's own logical clock by one step (ignored by a manager
 * with a clock callback, which reads the callback instead). *out_step (may be
 * null) receives the new step. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_manager_step(kvx_manager_t manager, int64_t* out_step);

/* Creates a sequence holding `tokens` [num_tokens] (num_tokens may be 0).
 * The longest cached prefix of whole blocks is shared (host-tier blocks come
 * back as host-to-device work); the remaining tokens get new blocks.
 * out_slots (may be null when num_tokens is 0) receives the slot
 * (block * block_tokens + offset) of every token: the caller writes the K/V
 * of tokens [match.matched_tokens, num_tokens). params may be null for
 * defaults. out_match may be null.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH,
 * KVX_ERR_OUT_OF_BLOCKS (nothing changed), KVX_ERR_OUT_OF_MEMORY, KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_seq_create(kvx_manager_t manager, const kvx_seq_params_t* params,
                                    const int32_t* tokens, int64_t num_tokens, int64_t* out_slots,
                                    kvx_seq_id_t* out_seq, kvx_seq_match_t* out_match);

/* Appends tokens [num_tokens >= 1] to a sequence and writes their slots to
 * out_slots [num_tokens]. Allocates blocks as needed; a shared partial last
 * block is first copied (copy-on-write, a device-to-device work item);
 * eviction may add device-to-host work. Full blocks are published in the
 * prefix cache. With a window, blocks that no query can see any more are
 * released first (their block table entries become the null block).
 * *out_pending_work (may be null) receives the number of work items pending.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_NOT_FOUND (seq),
 * KVX_ERR_OUT_OF_BLOCKS (nothing changed), KVX_ERR_OUT_OF_MEMORY, KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_seq_append(kvx_manager_t manager, kvx_seq_id_t seq, const int32_t* tokens,
                                    int64_t num_tokens, int64_t* out_slots, int64_t* out_pending_work);

/* Appends one token to each of num_seqs distinct sequences (a decode step):
 * out_slots[i] receives the slot of tokens[i] in seq_ids[i]. All or nothing.
 * Returns the statuses of kvx_seq_append; a repeated sequence id is
 * KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_seq_append_batch(kvx_manager_t manager, const kvx_seq_id_t* seq_ids,
                                          int64_t num_seqs, const int32_t* tokens,
                                          int64_t* out_slots, int64_t* out_pending_work);

/* Creates a sequence sharing every block of `seq` (beam search, n > 1
 * sampling). Allocates nothing; the first append to a shared partial block
 * copies it. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_seq_fork(kvx_manager_t manager, kvx_seq_id_t seq, kvx_seq_id_t* out_seq);

/* Ends a sequence: its blocks are released (full published blocks stay in
 * the prefix cache until evicted). Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT,
 * KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_seq_free(kvx_manager_t manager, kvx_seq_id_t seq);

/* Tokens and blocks (null entries included) of a sequence; either output may
 * be null. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_seq_length(kvx_manager_t manager, kvx_seq_id_t seq, int64_t* out_tokens,
                                    int64_t* out_blocks);

/* Exports the block table of a batch (see kvx_block_table_export_t). With
 * null buffers of the chosen form, only max_blocks and nnz are written.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH,
 * KVX_ERR_NOT_FOUND (a sequence), KVX_ERR_WORKSPACE_TOO_SMALL (stride or
 * capacity below the sizes, which are then written). */
KVX_API kvx_status_t kvx_manager_block_table(kvx_manager_t manager, kvx_block_table_export_t* table);

/* The longest cached prefix of `tokens` for sequences created with `params`
 * (may be null), as kvx_seq_create would match it, changing nothing (metrics
 * included): *out_tokens (device and host tier) and *out_device_tokens
 * (device only; may be null).
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH. */
KVX_API kvx_status_t kvx_manager_match_prefix(kvx_manager_t manager, const kvx_seq_params_t* params,
                                              const int32_t* tokens, int64_t num_tokens,
                                              int64_t* out_tokens, int64_t* out_device_tokens);

/* Holds the first num_tokens tokens of `seq` (a multiple of block_tokens, at
 * most its length, none released by a window) as a prefix handle: its
 * blocks stay resident, whatever happens to the sequence, until released.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_prefix_cache(kvx_manager_t manager, kvx_seq_id_t seq, int64_t num_tokens,
                                      kvx_prefix_id_t* out_prefix);

/* Creates a sequence that starts with the prefix's blocks (shared) and its
 * keys, priority and window. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT,
 * KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_prefix_attach(kvx_manager_t manager, kvx_prefix_id_t prefix,
                                       kvx_seq_id_t* out_seq);

/* Drops a prefix handle; its blocks stay cached until evicted. Returns
 * KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_NOT_FOUND. */
KVX_API kvx_status_t kvx_prefix_release(kvx_manager_t manager, kvx_prefix_id_t prefix);

/* Pins the device-resident cached blocks of the longest cached prefix of
 * `tokens` (keys from params, may be null): pinned blocks are never evicted.
 * Pins count: each pin needs one unpin. *out_pinned_tokens (may be null)
 * receives the tokens covered. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT,
 * KVX_ERR_VERSION_MISMATCH. */
KVX_API kvx_status_t kvx_manager_pin(kvx_manager_t manager, const kvx_seq_params_t* params,
                                     const int32_t* tokens, int64_t num_tokens,
                                     int64_t* out_pinned_tokens);

/* Undoes one kvx_manager_pin: `tokens` must be the first *out_pinned_tokens
 * tokens that pin reported (the same chain of whole blocks). Returns KVX_OK,
 * KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH, KVX_ERR_NOT_FOUND (no
 * pin covers exactly these blocks: nothing was unpinned). */
KVX_API kvx_status_t kvx_manager_unpin(kvx_manager_t manager, const kvx_seq_params_t* params,
                                       const int32_t* tokens, int64_t num_tokens);

/* Empties the prefix cache (after a weight update): unreferenced cached
 * blocks become free (pins dropped), blocks still held stop being published,
 * the host tier is emptied. Sequences and prefix handles keep their blocks,
 * and pending work is kept (it feeds them). Returns KVX_OK,
 * KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_manager_reset(kvx_manager_t manager);

/* Raises the pool's capacity to `num_blocks` blocks (null block included),
 * at most config.max_blocks. Block ids, the pool's base address and every
 * block's address stay as they are (captured CUDA graphs remain valid); the
 * new ids are free, and their memory is committed on first use, like any
 * never-used id. Allocation takes them before it evicts a cached block.
 * num_blocks equal to the capacity changes nothing. The capacity never
 * shrinks; kvx_manager_trim gives back the memory of free blocks. Returns
 * KVX_OK, KVX_ERR_INVALID_ARGUMENT (num_blocks below the capacity or above
 * max_blocks). */
KVX_API kvx_status_t kvx_manager_grow(kvx_manager_t manager, int64_t num_blocks);

/* Releases the physical memory of free blocks at the top of the used range.
 * *out_released_bytes may be null. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT,
 * KVX_ERR_DEVICE. */
KVX_API kvx_status_t kvx_manager_trim(kvx_manager_t manager, uint64_t* out_released_bytes);

/* Moves up to `capacity` pending copy items, oldest first, into out[] and
 * writes their number to *out_count; with out null, writes the number
 * pending and takes nothing. Execute the items in order, before the kernels
 * that write this step's slots: an offload reads a block that a later item
 * or the step may overwrite. Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_manager_take_work(kvx_manager_t manager, kvx_copy_t* out, int64_t capacity,
                                           int64_t* out_count);

/* Fills *metrics (whose struct_size and version the caller sets).
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH. */
KVX_API kvx_status_t kvx_manager_get_metrics(kvx_manager_t manager, kvx_manager_metrics_t* metrics);

/* The base address of a tier's memory (null with memory NONE or no tier):
 * block b lives at base + b * bytes_per_block. Never moves.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT. */
KVX_API kvx_status_t kvx_manager_pool_base(kvx_manager_t manager, kvx_pool_tier_t tier, void** out_base);

/* The prefix hash of one block (docs/manager.md): xxh3-128 with seed
 * `hash_seed` over the serialised parent hash, tokens and keys, where
 * `parent` [2] is {lo, hi} of the previous block's hash (null for the first
 * block, which also takes the cache salt), and `first_token` is the position
 * of tokens[0] in the sequence (for media offsets). Writes out_hash[2] = {lo, hi}.
 * Returns KVX_OK, KVX_ERR_INVALID_ARGUMENT, KVX_ERR_VERSION_MISMATCH. */
KVX_API kvx_status_t kvx_block_hash(uint64_t hash_seed, uint64_t model_id, const kvx_seq_params_t* params,
                                    const uint64_t* parent, const int32_t* tokens, int64_t num_tokens,
                                    int64_t first_token, uint64_t* out_hash);

#ifdef __cplusplus
}
#endif

#endif /* KVX_MANAGER_H */
