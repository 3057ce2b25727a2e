/* The C ABI of KVX, checked from C (built once as C99 and once as C11, linked
 * against libkvx.so). The expected sizes, offsets and alignments below are
 * pinned by hand for LP64 (x86-64 and aarch64 Linux): a change to any ABI
 * struct must fail here and be made on purpose, with a new major version when
 * it breaks existing callers. Do not generate these numbers from the headers.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "kvx/kvx.h"
#include "kvx/manager.h"
#include "kvx/transfer.h"

static int g_failed = 0;
static int g_passed = 0;

static void check_i64(int ok, const char* what, long long got, long long want, int line) {
  if (ok) {
    ++g_passed;
    return;
  }
  ++g_failed;
  fprintf(stderr, "abi_test.c:%d: FAILED %s: got %lld, want %lld\n", line, what, got, want);
}

#define CHECK_EQ(what, got, want)                                                             \
  check_i64((long long)(got) == (long long)(want), what, (long long)(got), (long long)(want), \
            __LINE__)

/* Alignment of a type: _Alignof in C11; in C99 the offset of a member placed
 * after one char, which is the same number for every type used here. */
#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define ALIGN_OF(type) _Alignof(type)
#else
/* clang-format off */
#define ALIGN_OF(type) offsetof(struct { char c_; type t_; }, t_)
/* clang-format on */
#endif

#define CHECK_SIZE(type, n) CHECK_EQ("sizeof(" #type ")", sizeof(type), n)
#define CHECK_ALIGN(type, n) CHECK_EQ("alignof(" #type ")", ALIGN_OF(type), n)
#define CHECK_OFF(type, field, n) \
  CHECK_EQ("offsetof(" #type ", " #field ")", offsetof(type, field), n)
#define CHECK_ENUM(name, n) CHECK_EQ(#name, name, n)

/* Structs that lead with struct_size and version: both at fixed offsets. */
#define CHECK_HEADER(type)           \
  do {                               \
    CHECK_OFF(type, struct_size, 0); \
    CHECK_OFF(type, version, 4);     \
  } while (0)

static void check_lp64(void) {
  CHECK_SIZE(void*, 8);
  CHECK_SIZE(int64_t, 8);
  CHECK_ALIGN(int64_t, 8);
  CHECK_SIZE(kvx_dtype_t, 4);
  CHECK_SIZE(kvx_status_t, 4);
}

static void check_layout_structs(void) {
  CHECK_SIZE(kvx_scale_t, 80);
  CHECK_ALIGN(kvx_scale_t, 8);
  CHECK_OFF(kvx_scale_t, granularity, 0);
  CHECK_OFF(kvx_scale_t, dtype, 4);
  CHECK_OFF(kvx_scale_t, data, 8);
  CHECK_OFF(kvx_scale_t, group_size, 16);
  CHECK_OFF(kvx_scale_t, layer_stride_bytes, 24);
  CHECK_OFF(kvx_scale_t, block_stride_bytes, 32);
  CHECK_OFF(kvx_scale_t, token_stride_bytes, 40);
  CHECK_OFF(kvx_scale_t, head_stride_bytes, 48);
  CHECK_OFF(kvx_scale_t, group_stride_bytes, 56);
  CHECK_OFF(kvx_scale_t, reserved, 64);

  CHECK_SIZE(kvx_plane_t, 176);
  CHECK_ALIGN(kvx_plane_t, 8);
  CHECK_OFF(kvx_plane_t, head_dim, 0);
  CHECK_OFF(kvx_plane_t, head_dim_inner, 8);
  CHECK_OFF(kvx_plane_t, offset_bytes, 16);
  CHECK_OFF(kvx_plane_t, block_stride_bytes, 24);
  CHECK_OFF(kvx_plane_t, token_stride_bytes, 32);
  CHECK_OFF(kvx_plane_t, head_stride_bytes, 40);
  CHECK_OFF(kvx_plane_t, dim_stride_bytes, 48);
  CHECK_OFF(kvx_plane_t, dim_outer_stride_bytes, 56);
  CHECK_OFF(kvx_plane_t, scale, 64);
  CHECK_OFF(kvx_plane_t, reserved, 144);

  CHECK_SIZE(kvx_layout_t, 512);
  CHECK_ALIGN(kvx_layout_t, 8);
  CHECK_HEADER(kvx_layout_t);
  CHECK_OFF(kvx_layout_t, dtype, 8);
  CHECK_OFF(kvx_layout_t, memory, 12);
  CHECK_OFF(kvx_layout_t, device_id, 16);
  CHECK_OFF(kvx_layout_t, base_kind, 20);
  CHECK_OFF(kvx_layout_t, num_layers, 24);
  CHECK_OFF(kvx_layout_t, num_kv, 32);
  CHECK_OFF(kvx_layout_t, num_blocks, 40);
  CHECK_OFF(kvx_layout_t, block_tokens, 48);
  CHECK_OFF(kvx_layout_t, num_kv_heads, 56);
  CHECK_OFF(kvx_layout_t, layer_stride_bytes, 64);
  CHECK_OFF(kvx_layout_t, base, 72);
  CHECK_OFF(kvx_layout_t, ptrs, 80);
  CHECK_OFF(kvx_layout_t, plane, 88);
  CHECK_OFF(kvx_layout_t, plane[1], 264);
  CHECK_OFF(kvx_layout_t, null_block, 440);
  CHECK_OFF(kvx_layout_t, reserved, 448);

  CHECK_SIZE(kvx_preset_params_t, 120);
  CHECK_ALIGN(kvx_preset_params_t, 8);
  CHECK_HEADER(kvx_preset_params_t);
  CHECK_OFF(kvx_preset_params_t, dtype, 8);
  CHECK_OFF(kvx_preset_params_t, memory, 12);
  CHECK_OFF(kvx_preset_params_t, device_id, 16);
  CHECK_OFF(kvx_preset_params_t, reserved0, 20);
  CHECK_OFF(kvx_preset_params_t, num_layers, 24);
  CHECK_OFF(kvx_preset_params_t, num_blocks, 32);
  CHECK_OFF(kvx_preset_params_t, block_tokens, 40);
  CHECK_OFF(kvx_preset_params_t, num_kv_heads, 48);
  CHECK_OFF(kvx_preset_params_t, head_dim, 56);
  CHECK_OFF(kvx_preset_params_t, head_dim_v, 64);
  CHECK_OFF(kvx_preset_params_t, reserved, 72);

  CHECK_SIZE(kvx_page_table_t, 112);
  CHECK_ALIGN(kvx_page_table_t, 8);
  CHECK_HEADER(kvx_page_table_t);
  CHECK_OFF(kvx_page_table_t, kind, 8);
  CHECK_OFF(kvx_page_table_t, memory, 12);
  CHECK_OFF(kvx_page_table_t, num_seqs, 16);
  CHECK_OFF(kvx_page_table_t, block_table, 24);
  CHECK_OFF(kvx_page_table_t, block_table_stride, 32);
  CHECK_OFF(kvx_page_table_t, max_blocks, 40);
  CHECK_OFF(kvx_page_table_t, seq_lens, 48);
  CHECK_OFF(kvx_page_table_t, indptr, 56);
  CHECK_OFF(kvx_page_table_t, indices, 64);
  CHECK_OFF(kvx_page_table_t, last_page_len, 72);
  CHECK_OFF(kvx_page_table_t, reserved, 80);

  CHECK_SIZE(kvx_coord_t, 48);
  CHECK_ALIGN(kvx_coord_t, 8);
  CHECK_OFF(kvx_coord_t, layer, 0);
  CHECK_OFF(kvx_coord_t, kv, 8);
  CHECK_OFF(kvx_coord_t, block, 16);
  CHECK_OFF(kvx_coord_t, token, 24);
  CHECK_OFF(kvx_coord_t, head, 32);
  CHECK_OFF(kvx_coord_t, dim, 40);
}

static void check_ops_structs(void) {
  CHECK_SIZE(kvx_exec_t, 72);
  CHECK_ALIGN(kvx_exec_t, 8);
  CHECK_HEADER(kvx_exec_t);
  CHECK_OFF(kvx_exec_t, backend, 8);
  CHECK_OFF(kvx_exec_t, num_threads, 12);
  CHECK_OFF(kvx_exec_t, stream, 16);
  CHECK_OFF(kvx_exec_t, workspace, 24);
  CHECK_OFF(kvx_exec_t, workspace_bytes, 32);
  CHECK_OFF(kvx_exec_t, reserved, 40);

  CHECK_SIZE(kvx_tensor_t, 72);
  CHECK_ALIGN(kvx_tensor_t, 8);
  CHECK_OFF(kvx_tensor_t, data, 0);
  CHECK_OFF(kvx_tensor_t, dtype, 8);
  CHECK_OFF(kvx_tensor_t, memory, 12);
  CHECK_OFF(kvx_tensor_t, num_tokens, 16);
  CHECK_OFF(kvx_tensor_t, num_heads, 24);
  CHECK_OFF(kvx_tensor_t, head_dim, 32);
  CHECK_OFF(kvx_tensor_t, token_stride_bytes, 40);
  CHECK_OFF(kvx_tensor_t, head_stride_bytes, 48);
  CHECK_OFF(kvx_tensor_t, reserved, 56);

  CHECK_SIZE(kvx_append_args_t, 232);
  CHECK_ALIGN(kvx_append_args_t, 8);
  CHECK_HEADER(kvx_append_args_t);
  CHECK_OFF(kvx_append_args_t, cache, 8);
  CHECK_OFF(kvx_append_args_t, layer, 16);
  CHECK_OFF(kvx_append_args_t, k, 24);
  CHECK_OFF(kvx_append_args_t, v, 96);
  CHECK_OFF(kvx_append_args_t, slot_mapping, 168);
  CHECK_OFF(kvx_append_args_t, page_table, 176);
  CHECK_OFF(kvx_append_args_t, batch_indices, 184);
  CHECK_OFF(kvx_append_args_t, positions, 192);
  CHECK_OFF(kvx_append_args_t, reserved, 200);

  CHECK_SIZE(kvx_gather_args_t, 208);
  CHECK_ALIGN(kvx_gather_args_t, 8);
  CHECK_HEADER(kvx_gather_args_t);
  CHECK_OFF(kvx_gather_args_t, cache, 8);
  CHECK_OFF(kvx_gather_args_t, layer, 16);
  CHECK_OFF(kvx_gather_args_t, page_table, 24);
  CHECK_OFF(kvx_gather_args_t, k_out, 32);
  CHECK_OFF(kvx_gather_args_t, v_out, 104);
  CHECK_OFF(kvx_gather_args_t, reserved, 176);

  CHECK_SIZE(kvx_attention_args_t, 328);
  CHECK_ALIGN(kvx_attention_args_t, 8);
  CHECK_HEADER(kvx_attention_args_t);
  CHECK_OFF(kvx_attention_args_t, cache, 8);
  CHECK_OFF(kvx_attention_args_t, layer, 16);
  CHECK_OFF(kvx_attention_args_t, page_table, 24);
  CHECK_OFF(kvx_attention_args_t, q_indptr, 32);
  CHECK_OFF(kvx_attention_args_t, q, 40);
  CHECK_OFF(kvx_attention_args_t, out, 112);
  CHECK_OFF(kvx_attention_args_t, lse, 184);
  CHECK_OFF(kvx_attention_args_t, scale, 256);
  CHECK_OFF(kvx_attention_args_t, logit_softcap, 260);
  CHECK_OFF(kvx_attention_args_t, causal, 264);
  CHECK_OFF(kvx_attention_args_t, reserved0, 268);
  CHECK_OFF(kvx_attention_args_t, window_left, 272);
  CHECK_OFF(kvx_attention_args_t, sink_tokens, 280);
  CHECK_OFF(kvx_attention_args_t, plan, 288);
  CHECK_OFF(kvx_attention_args_t, reserved, 296);

  CHECK_SIZE(kvx_merge_args_t, 472);
  CHECK_ALIGN(kvx_merge_args_t, 8);
  CHECK_HEADER(kvx_merge_args_t);
  CHECK_OFF(kvx_merge_args_t, out_a, 8);
  CHECK_OFF(kvx_merge_args_t, lse_a, 80);
  CHECK_OFF(kvx_merge_args_t, out_b, 152);
  CHECK_OFF(kvx_merge_args_t, lse_b, 224);
  CHECK_OFF(kvx_merge_args_t, out, 296);
  CHECK_OFF(kvx_merge_args_t, lse, 368);
  CHECK_OFF(kvx_merge_args_t, reserved, 440);

  CHECK_SIZE(kvx_convert_args_t, 80);
  CHECK_ALIGN(kvx_convert_args_t, 8);
  CHECK_HEADER(kvx_convert_args_t);
  CHECK_OFF(kvx_convert_args_t, src, 8);
  CHECK_OFF(kvx_convert_args_t, dst, 16);
  CHECK_OFF(kvx_convert_args_t, src_blocks, 24);
  CHECK_OFF(kvx_convert_args_t, dst_blocks, 32);
  CHECK_OFF(kvx_convert_args_t, num_blocks, 40);
  CHECK_OFF(kvx_convert_args_t, reserved, 48);
}

static void check_manager_structs(void) {
  CHECK_SIZE(kvx_seq_id_t, 8);
  CHECK_SIZE(kvx_prefix_id_t, 8);

  CHECK_SIZE(kvx_manager_config_t, 168);
  CHECK_ALIGN(kvx_manager_config_t, 8);
  CHECK_HEADER(kvx_manager_config_t);
  CHECK_OFF(kvx_manager_config_t, num_blocks, 8);
  CHECK_OFF(kvx_manager_config_t, block_tokens, 16);
  CHECK_OFF(kvx_manager_config_t, bytes_per_block, 24);
  CHECK_OFF(kvx_manager_config_t, memory, 32);
  CHECK_OFF(kvx_manager_config_t, device_id, 36);
  CHECK_OFF(kvx_manager_config_t, eviction, 40);
  CHECK_OFF(kvx_manager_config_t, reserved0, 44);
  CHECK_OFF(kvx_manager_config_t, host_blocks, 48);
  CHECK_OFF(kvx_manager_config_t, thrash_window, 56);
  CHECK_OFF(kvx_manager_config_t, hybrid_hit_steps, 64);
  CHECK_OFF(kvx_manager_config_t, hash_seed, 72);
  CHECK_OFF(kvx_manager_config_t, model_id, 80);
  CHECK_OFF(kvx_manager_config_t, clock, 88);
  CHECK_OFF(kvx_manager_config_t, clock_user, 96);
  CHECK_OFF(kvx_manager_config_t, max_blocks, 104);
  CHECK_OFF(kvx_manager_config_t, reserved, 112);

  CHECK_SIZE(kvx_media_hash_t, 32);
  CHECK_ALIGN(kvx_media_hash_t, 8);
  CHECK_OFF(kvx_media_hash_t, hash_lo, 0);
  CHECK_OFF(kvx_media_hash_t, hash_hi, 8);
  CHECK_OFF(kvx_media_hash_t, offset, 16);
  CHECK_OFF(kvx_media_hash_t, num_tokens, 24);

  CHECK_SIZE(kvx_seq_params_t, 120);
  CHECK_ALIGN(kvx_seq_params_t, 8);
  CHECK_HEADER(kvx_seq_params_t);
  CHECK_OFF(kvx_seq_params_t, adapter_id, 8);
  CHECK_OFF(kvx_seq_params_t, cache_salt, 16);
  CHECK_OFF(kvx_seq_params_t, cache_salt_bytes, 24);
  CHECK_OFF(kvx_seq_params_t, media, 32);
  CHECK_OFF(kvx_seq_params_t, num_media, 40);
  CHECK_OFF(kvx_seq_params_t, priority, 48);
  CHECK_OFF(kvx_seq_params_t, flags, 52);
  CHECK_OFF(kvx_seq_params_t, window_tokens, 56);
  CHECK_OFF(kvx_seq_params_t, sink_tokens, 64);
  CHECK_OFF(kvx_seq_params_t, reserved, 72);

  CHECK_SIZE(kvx_seq_match_t, 24);
  CHECK_ALIGN(kvx_seq_match_t, 8);
  CHECK_OFF(kvx_seq_match_t, matched_tokens, 0);
  CHECK_OFF(kvx_seq_match_t, matched_blocks, 8);
  CHECK_OFF(kvx_seq_match_t, reloaded_blocks, 16);

  CHECK_SIZE(kvx_copy_t, 24);
  CHECK_ALIGN(kvx_copy_t, 8);
  CHECK_OFF(kvx_copy_t, src, 0);
  CHECK_OFF(kvx_copy_t, dst, 8);
  CHECK_OFF(kvx_copy_t, direction, 16);
  CHECK_OFF(kvx_copy_t, reserved0, 20);

  CHECK_SIZE(kvx_block_table_export_t, 136);
  CHECK_ALIGN(kvx_block_table_export_t, 8);
  CHECK_HEADER(kvx_block_table_export_t);
  CHECK_OFF(kvx_block_table_export_t, kind, 8);
  CHECK_OFF(kvx_block_table_export_t, reserved0, 12);
  CHECK_OFF(kvx_block_table_export_t, seq_ids, 16);
  CHECK_OFF(kvx_block_table_export_t, num_seqs, 24);
  CHECK_OFF(kvx_block_table_export_t, block_table, 32);
  CHECK_OFF(kvx_block_table_export_t, block_table_stride, 40);
  CHECK_OFF(kvx_block_table_export_t, seq_lens, 48);
  CHECK_OFF(kvx_block_table_export_t, indptr, 56);
  CHECK_OFF(kvx_block_table_export_t, indices, 64);
  CHECK_OFF(kvx_block_table_export_t, indices_capacity, 72);
  CHECK_OFF(kvx_block_table_export_t, last_page_len, 80);
  CHECK_OFF(kvx_block_table_export_t, max_blocks, 88);
  CHECK_OFF(kvx_block_table_export_t, nnz, 96);
  CHECK_OFF(kvx_block_table_export_t, reserved, 104);

  CHECK_SIZE(kvx_manager_metrics_t, 264);
  CHECK_ALIGN(kvx_manager_metrics_t, 8);
  CHECK_HEADER(kvx_manager_metrics_t);
  CHECK_OFF(kvx_manager_metrics_t, step, 8);
  CHECK_OFF(kvx_manager_metrics_t, blocks_total, 16);
  CHECK_OFF(kvx_manager_metrics_t, blocks_used, 24);
  CHECK_OFF(kvx_manager_metrics_t, blocks_cached, 32);
  CHECK_OFF(kvx_manager_metrics_t, blocks_pinned, 40);
  CHECK_OFF(kvx_manager_metrics_t, blocks_free, 48);
  CHECK_OFF(kvx_manager_metrics_t, blocks_host, 56);
  CHECK_OFF(kvx_manager_metrics_t, committed_bytes, 64);
  CHECK_OFF(kvx_manager_metrics_t, reserved_bytes, 72);
  CHECK_OFF(kvx_manager_metrics_t, lookup_blocks, 80);
  CHECK_OFF(kvx_manager_metrics_t, hit_blocks, 88);
  CHECK_OFF(kvx_manager_metrics_t, lookup_tokens, 96);
  CHECK_OFF(kvx_manager_metrics_t, hit_tokens, 104);
  CHECK_OFF(kvx_manager_metrics_t, evictions_capacity, 112);
  CHECK_OFF(kvx_manager_metrics_t, evictions_reset, 120);
  CHECK_OFF(kvx_manager_metrics_t, evictions_host, 128);
  CHECK_OFF(kvx_manager_metrics_t, offloads, 136);
  CHECK_OFF(kvx_manager_metrics_t, reloads, 144);
  CHECK_OFF(kvx_manager_metrics_t, cow_copies, 152);
  CHECK_OFF(kvx_manager_metrics_t, window_released, 160);
  CHECK_OFF(kvx_manager_metrics_t, thrashing, 168);
  CHECK_OFF(kvx_manager_metrics_t, num_seqs, 176);
  CHECK_OFF(kvx_manager_metrics_t, num_prefixes, 184);
  CHECK_OFF(kvx_manager_metrics_t, pending_work, 192);
  CHECK_OFF(kvx_manager_metrics_t, reserved, 200);
}

static void check_transfer_structs(void) {
  CHECK_SIZE(kvx_transfer_plan_t, 72);
  CHECK_ALIGN(kvx_transfer_plan_t, 8);
  CHECK_HEADER(kvx_transfer_plan_t);
  CHECK_OFF(kvx_transfer_plan_t, dma_min_run_bytes, 8);
  CHECK_OFF(kvx_transfer_plan_t, reserved, 40);

  CHECK_SIZE(kvx_transfer_report_t, 80);
  CHECK_ALIGN(kvx_transfer_report_t, 8);
  CHECK_HEADER(kvx_transfer_report_t);
  CHECK_OFF(kvx_transfer_report_t, engine, 8);
  CHECK_OFF(kvx_transfer_report_t, dma_path, 12);
  CHECK_OFF(kvx_transfer_report_t, direction, 16);
  CHECK_OFF(kvx_transfer_report_t, reserved0, 20);
  CHECK_OFF(kvx_transfer_report_t, bytes, 24);
  CHECK_OFF(kvx_transfer_report_t, runs, 32);
  CHECK_OFF(kvx_transfer_report_t, launches, 40);
  CHECK_OFF(kvx_transfer_report_t, reserved, 48);

  CHECK_SIZE(kvx_block_copy_args_t, 112);
  CHECK_ALIGN(kvx_block_copy_args_t, 8);
  CHECK_HEADER(kvx_block_copy_args_t);
  CHECK_OFF(kvx_block_copy_args_t, src, 8);
  CHECK_OFF(kvx_block_copy_args_t, dst, 16);
  CHECK_OFF(kvx_block_copy_args_t, src_blocks, 24);
  CHECK_OFF(kvx_block_copy_args_t, dst_blocks, 32);
  CHECK_OFF(kvx_block_copy_args_t, num_blocks, 40);
  CHECK_OFF(kvx_block_copy_args_t, engine, 48);
  CHECK_OFF(kvx_block_copy_args_t, dma_mode, 52);
  CHECK_OFF(kvx_block_copy_args_t, max_ctas, 56);
  CHECK_OFF(kvx_block_copy_args_t, reserved0, 60);
  CHECK_OFF(kvx_block_copy_args_t, plan, 64);
  CHECK_OFF(kvx_block_copy_args_t, report, 72);
  CHECK_OFF(kvx_block_copy_args_t, reserved, 80);

  CHECK_SIZE(kvx_raw_copy_t, 24);
  CHECK_ALIGN(kvx_raw_copy_t, 8);
  CHECK_OFF(kvx_raw_copy_t, dst, 0);
  CHECK_OFF(kvx_raw_copy_t, src, 8);
  CHECK_OFF(kvx_raw_copy_t, bytes, 16);

  CHECK_SIZE(kvx_region_t, 24);
  CHECK_ALIGN(kvx_region_t, 8);
  CHECK_OFF(kvx_region_t, base, 0);
  CHECK_OFF(kvx_region_t, bytes, 8);
  CHECK_OFF(kvx_region_t, memory, 16);
  CHECK_OFF(kvx_region_t, device_id, 20);

  CHECK_SIZE(kvx_raw_copy_args_t, 136);
  CHECK_ALIGN(kvx_raw_copy_args_t, 8);
  CHECK_HEADER(kvx_raw_copy_args_t);
  CHECK_OFF(kvx_raw_copy_args_t, src_pool, 8);
  CHECK_OFF(kvx_raw_copy_args_t, dst_pool, 32);
  CHECK_OFF(kvx_raw_copy_args_t, copies, 56);
  CHECK_OFF(kvx_raw_copy_args_t, num_copies, 64);
  CHECK_OFF(kvx_raw_copy_args_t, elem_bytes, 72);
  CHECK_OFF(kvx_raw_copy_args_t, engine, 76);
  CHECK_OFF(kvx_raw_copy_args_t, dma_mode, 80);
  CHECK_OFF(kvx_raw_copy_args_t, max_ctas, 84);
  CHECK_OFF(kvx_raw_copy_args_t, plan, 88);
  CHECK_OFF(kvx_raw_copy_args_t, report, 96);
  CHECK_OFF(kvx_raw_copy_args_t, reserved, 104);

  CHECK_SIZE(kvx_offload_config_t, 72);
  CHECK_ALIGN(kvx_offload_config_t, 8);
  CHECK_HEADER(kvx_offload_config_t);
  CHECK_OFF(kvx_offload_config_t, device, 8);
  CHECK_OFF(kvx_offload_config_t, host, 16);
  CHECK_OFF(kvx_offload_config_t, engine, 24);
  CHECK_OFF(kvx_offload_config_t, dma_mode, 28);
  CHECK_OFF(kvx_offload_config_t, max_ctas, 32);
  CHECK_OFF(kvx_offload_config_t, reserved0, 36);
  CHECK_OFF(kvx_offload_config_t, reserved, 40);
}

static void check_enums(void) {
  CHECK_ENUM(KVX_OK, 0);
  CHECK_ENUM(KVX_ERR_INVALID_ARGUMENT, -1);
  CHECK_ENUM(KVX_ERR_INVALID_LAYOUT, -2);
  CHECK_ENUM(KVX_ERR_MISALIGNED, -3);
  CHECK_ENUM(KVX_ERR_UNSUPPORTED, -4);
  CHECK_ENUM(KVX_ERR_OUT_OF_BLOCKS, -5);
  CHECK_ENUM(KVX_ERR_WORKSPACE_TOO_SMALL, -6);
  CHECK_ENUM(KVX_ERR_DEVICE, -7);
  CHECK_ENUM(KVX_ERR_OUT_OF_MEMORY, -8);
  CHECK_ENUM(KVX_ERR_VERSION_MISMATCH, -9);
  CHECK_ENUM(KVX_ERR_NOT_FOUND, -10);
  CHECK_ENUM(KVX_ERR_INTERNAL, -11);

  CHECK_ENUM(KVX_DTYPE_F32, 1);
  CHECK_ENUM(KVX_DTYPE_F16, 2);
  CHECK_ENUM(KVX_DTYPE_BF16, 3);
  CHECK_ENUM(KVX_DTYPE_FP8_E4M3, 4);
  CHECK_ENUM(KVX_DTYPE_FP8_E5M2, 5);
  CHECK_ENUM(KVX_DTYPE_INT8, 6);
  CHECK_ENUM(KVX_DTYPE_INT4, 7);

  CHECK_ENUM(KVX_MEMORY_HOST, 1);
  CHECK_ENUM(KVX_MEMORY_CUDA_DEVICE, 2);
  CHECK_ENUM(KVX_MEMORY_CUDA_HOST_PINNED, 3);
  CHECK_ENUM(KVX_MEMORY_CUDA_MANAGED, 4);

  CHECK_ENUM(KVX_BASE_STRIDED, 1);
  CHECK_ENUM(KVX_BASE_LAYER_PTRS, 2);
  CHECK_ENUM(KVX_BASE_PLANE_PTRS, 3);

  CHECK_ENUM(KVX_SCALE_NONE, 0);
  CHECK_ENUM(KVX_SCALE_TENSOR, 1);
  CHECK_ENUM(KVX_SCALE_HEAD, 2);
  CHECK_ENUM(KVX_SCALE_TOKEN_HEAD, 3);
  CHECK_ENUM(KVX_SCALE_CHANNEL_GROUP, 4);

  CHECK_ENUM(KVX_PRESET_UNIVERSAL, 1);
  CHECK_ENUM(KVX_PRESET_VLLM_FLASH_NHD, 2);
  CHECK_ENUM(KVX_PRESET_VLLM_FLASH_HND, 3);
  CHECK_ENUM(KVX_PRESET_VLLM_LEGACY, 4);
  CHECK_ENUM(KVX_PRESET_VLLM_CROSS_LAYER, 5);
  CHECK_ENUM(KVX_PRESET_FLASHINFER_NHD, 6);
  CHECK_ENUM(KVX_PRESET_FLASHINFER_HND, 7);
  CHECK_ENUM(KVX_PRESET_FLASH_ATTN, 8);
  CHECK_ENUM(KVX_PRESET_TRTLLM_POOL, 9);
  CHECK_ENUM(KVX_PRESET_TGI, 10);
  CHECK_ENUM(KVX_PRESET_SGLANG, 11);
  CHECK_ENUM(KVX_PRESET_DYNAMO_UNIVERSAL, 12);
  CHECK_ENUM(KVX_PRESET_LMCACHE, 13);
  CHECK_ENUM(KVX_PRESET_FIRST, 1);
  CHECK_ENUM(KVX_PRESET_LAST, 13);

  CHECK_ENUM(KVX_PAGE_TABLE_DENSE, 1);
  CHECK_ENUM(KVX_PAGE_TABLE_CSR, 2);

  CHECK_ENUM(KVX_BACKEND_AUTO, 0);
  CHECK_ENUM(KVX_BACKEND_CPU, 1);
  CHECK_ENUM(KVX_BACKEND_CUDA, 2);

  CHECK_ENUM(KVX_EVICTION_LRU, 1);
  CHECK_ENUM(KVX_EVICTION_LFU, 2);
  CHECK_ENUM(KVX_EVICTION_PRIORITY, 3);
  CHECK_ENUM(KVX_EVICTION_HYBRID, 4);
  CHECK_ENUM(KVX_POOL_MEMORY_NONE, 1);
  CHECK_ENUM(KVX_POOL_MEMORY_HOST, 2);
  CHECK_ENUM(KVX_POOL_MEMORY_CUDA_VMM, 3);
  CHECK_ENUM(KVX_COPY_DEVICE_TO_DEVICE, 1);
  CHECK_ENUM(KVX_COPY_DEVICE_TO_HOST, 2);
  CHECK_ENUM(KVX_COPY_HOST_TO_DEVICE, 3);
  CHECK_ENUM(KVX_POOL_TIER_DEVICE, 1);
  CHECK_ENUM(KVX_POOL_TIER_HOST, 2);
  CHECK_ENUM(KVX_SEQ_MATCH_LAST_TOKEN, 1);

  CHECK_ENUM(KVX_COPY_ENGINE_AUTO, 0);
  CHECK_ENUM(KVX_COPY_ENGINE_CPU, 1);
  CHECK_ENUM(KVX_COPY_ENGINE_SM_KERNEL, 2);
  CHECK_ENUM(KVX_COPY_ENGINE_DMA, 3);
  CHECK_ENUM(KVX_DMA_BATCHED_WITH_FALLBACK, 0);
  CHECK_ENUM(KVX_DMA_FALLBACK_ONLY, 1);
  CHECK_ENUM(KVX_DMA_BATCHED_ONLY, 2);
  CHECK_ENUM(KVX_DMA_PATH_NONE, 0);
  CHECK_ENUM(KVX_DMA_PATH_BATCHED, 1);
  CHECK_ENUM(KVX_DMA_PATH_LOOP, 2);
  CHECK_ENUM(KVX_TRANSFER_D2D, 0);
  CHECK_ENUM(KVX_TRANSFER_H2D, 1);
  CHECK_ENUM(KVX_TRANSFER_D2H, 2);
  CHECK_ENUM(KVX_TRANSFER_H2H, 3);
  CHECK_ENUM(KVX_TRANSFER_NUM_DIRECTIONS, 4);
}

/* Each initializer zeroes the struct and sets struct_size and version; the
 * documented non-zero defaults are checked by name. */
#define CHECK_INIT(type, init)                                    \
  do {                                                            \
    type s_ = init;                                               \
    CHECK_EQ(#init ".struct_size", s_.struct_size, sizeof(type)); \
    CHECK_EQ(#init ".version", s_.version, KVX_VERSION);          \
    CHECK_EQ(#init ".reserved[0]", s_.reserved[0], 0);            \
  } while (0)

static void check_initializers(void) {
  CHECK_INIT(kvx_layout_t, KVX_LAYOUT_INIT);
  CHECK_INIT(kvx_preset_params_t, KVX_PRESET_PARAMS_INIT);
  CHECK_INIT(kvx_page_table_t, KVX_PAGE_TABLE_INIT);
  CHECK_INIT(kvx_exec_t, KVX_EXEC_INIT);
  CHECK_INIT(kvx_append_args_t, KVX_APPEND_ARGS_INIT);
  CHECK_INIT(kvx_gather_args_t, KVX_GATHER_ARGS_INIT);
  CHECK_INIT(kvx_attention_args_t, KVX_ATTENTION_ARGS_INIT);
  CHECK_INIT(kvx_merge_args_t, KVX_MERGE_ARGS_INIT);
  CHECK_INIT(kvx_convert_args_t, KVX_CONVERT_ARGS_INIT);
  CHECK_INIT(kvx_manager_config_t, KVX_MANAGER_CONFIG_INIT);
  CHECK_INIT(kvx_seq_params_t, KVX_SEQ_PARAMS_INIT);
  CHECK_INIT(kvx_block_table_export_t, KVX_BLOCK_TABLE_EXPORT_INIT);
  CHECK_INIT(kvx_manager_metrics_t, KVX_MANAGER_METRICS_INIT);
  CHECK_INIT(kvx_transfer_plan_t, KVX_TRANSFER_PLAN_INIT);
  CHECK_INIT(kvx_transfer_report_t, KVX_TRANSFER_REPORT_INIT);
  CHECK_INIT(kvx_block_copy_args_t, KVX_BLOCK_COPY_ARGS_INIT);
  CHECK_INIT(kvx_raw_copy_args_t, KVX_RAW_COPY_ARGS_INIT);
  CHECK_INIT(kvx_offload_config_t, KVX_OFFLOAD_CONFIG_INIT);

  {
    kvx_layout_t layout = KVX_LAYOUT_INIT;
    CHECK_EQ("KVX_LAYOUT_INIT.null_block", layout.null_block, -1);
    CHECK_EQ("KVX_LAYOUT_INIT.dtype", layout.dtype, 0);
    CHECK_EQ("KVX_LAYOUT_INIT.plane[1].scale.reserved[1]", layout.plane[1].scale.reserved[1], 0);
    CHECK_EQ("KVX_LAYOUT_INIT.reserved[7]", layout.reserved[7], 0);
  }
  {
    kvx_manager_config_t config = KVX_MANAGER_CONFIG_INIT;
    kvx_seq_params_t params = KVX_SEQ_PARAMS_INIT;
    kvx_block_table_export_t table = KVX_BLOCK_TABLE_EXPORT_INIT;
    CHECK_EQ("KVX_MANAGER_CONFIG_INIT.memory", config.memory, KVX_POOL_MEMORY_NONE);
    CHECK_EQ("KVX_MANAGER_CONFIG_INIT.eviction", config.eviction, KVX_EVICTION_LRU);
    CHECK_EQ("KVX_MANAGER_CONFIG_INIT.clock == NULL", config.clock == NULL, 1);
    CHECK_EQ("KVX_SEQ_PARAMS_INIT.priority", params.priority, 35);
    CHECK_EQ("KVX_BLOCK_TABLE_EXPORT_INIT.kind", table.kind, KVX_PAGE_TABLE_DENSE);
  }
  {
    kvx_raw_copy_args_t args = KVX_RAW_COPY_ARGS_INIT;
    CHECK_EQ("KVX_RAW_COPY_ARGS_INIT.elem_bytes", args.elem_bytes, 1);
    CHECK_EQ("KVX_RAW_COPY_ARGS_INIT.engine", args.engine, KVX_COPY_ENGINE_AUTO);
  }
  {
    kvx_attention_args_t args = KVX_ATTENTION_ARGS_INIT;
    CHECK_EQ("KVX_ATTENTION_ARGS_INIT.window_left", args.window_left, -1);
    CHECK_EQ("KVX_ATTENTION_ARGS_INIT.sink_tokens", args.sink_tokens, 0);
    CHECK_EQ("KVX_ATTENTION_ARGS_INIT.causal", args.causal, 0);
    CHECK_EQ("KVX_ATTENTION_ARGS_INIT.reserved0", args.reserved0, 0);
    CHECK_EQ("KVX_ATTENTION_ARGS_INIT.plan == NULL", args.plan == NULL, 1);
  }
}

static void check_version(void) {
  const uint32_t other_major = KVX_MAKE_VERSION(KVX_VERSION_MAJOR + 1, 0, 0);
  const uint32_t older_major = KVX_MAKE_VERSION(KVX_VERSION_MAJOR - 1, 9, 9);
  const uint32_t newer_minor = KVX_MAKE_VERSION(KVX_VERSION_MAJOR, KVX_VERSION_MINOR + 1, 0);

  CHECK_EQ("KVX_VERSION", KVX_VERSION,
           KVX_VERSION_MAJOR * 1000000 + KVX_VERSION_MINOR * 1000 + KVX_VERSION_PATCH);
  CHECK_EQ("KVX_VERSION_MAJOR_OF(KVX_VERSION)", KVX_VERSION_MAJOR_OF(KVX_VERSION),
           KVX_VERSION_MAJOR);
  CHECK_EQ("kvx_get_version()", kvx_get_version(), KVX_VERSION);

  CHECK_EQ("kvx_check_version(KVX_VERSION)", kvx_check_version(KVX_VERSION), KVX_OK);

  CHECK_EQ("kvx_check_version(next major)", kvx_check_version(other_major),
           KVX_ERR_VERSION_MISMATCH);
  CHECK_EQ("kvx_last_error() after a refused version names caller_version",
           strstr(kvx_last_error(), "caller_version") != NULL, 1);
  CHECK_EQ("kvx_check_version(previous major)", kvx_check_version(older_major),
           KVX_ERR_VERSION_MISMATCH);
  CHECK_EQ("kvx_check_version(newer minor than the library)", kvx_check_version(newer_minor),
           KVX_ERR_VERSION_MISMATCH);
  CHECK_EQ("kvx_check_version(0)", kvx_check_version(0), KVX_ERR_VERSION_MISMATCH);
  CHECK_EQ("kvx_check_version(KVX_VERSION) again", kvx_check_version(KVX_VERSION), KVX_OK);

  CHECK_EQ("kvx_status_string(KVX_ERR_VERSION_MISMATCH)",
           strcmp(kvx_status_string(KVX_ERR_VERSION_MISMATCH), "KVX_ERR_VERSION_MISMATCH"), 0);
  CHECK_EQ("kvx_status_string(KVX_OK)", strcmp(kvx_status_string(KVX_OK), "KVX_OK"), 0);
  CHECK_EQ("kvx_status_string(unknown) is not null", kvx_status_string((kvx_status_t)-999) != NULL,
           1);
}

int main(void) {
  check_lp64();
  check_layout_structs();
  check_ops_structs();
  check_manager_structs();
  check_transfer_structs();
  check_enums();
  check_initializers();
  check_version();
  printf("abi_test (C %ld): %d passed, %d failed\n", (long)__STDC_VERSION__, g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}
