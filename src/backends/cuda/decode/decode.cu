// The decode variants and their launcher.
//   group 1 (MHA): split_kv_decode_kernel, CUDA cores (at the copy ceiling),
//     storage f16/bf16 x RT 8, 16, 32 lanes per row (head_dim up to 64, 128, 256).
//   max_splits > 1: merge_splits_kernel (merge_splits.cuh) combines the splits.
//   group >= 2 (GQA): mma_decode_kernel, tensor cores, up to 16 query heads
//     per CTA (more run as tiles of 16 in adjacent CTAs), storage f16/bf16 x
//     D 64, 128, 256 (head dims padded up to D).
// Why the split: docs/perf-notes.md (the CUDA-core kernel is issue-bound as
// soon as several query heads share a kv head).
#include <algorithm>
#include <atomic>

#include "backends/cuda/decode/merge_splits.cuh"
#include "backends/cuda/decode/mma_decode.cuh"
#include "backends/cuda/decode/split_kv_decode.cuh"
#include "backends/cuda/launch.hpp"

namespace kvx::cuda {
namespace {

using KernelFn = void (*)(DecodeLaunch);

struct Variant {
  KernelFn fn = nullptr;
  int threads = 0;
  int smem = 0;     // dynamic shared memory bytes
  int index = 0;    // for the per-variant caches below
  int head_tile = 1;
};

int padded_dim(int64_t head_dim) { return head_dim <= 64 ? 64 : head_dim <= 128 ? 128 : 256; }
int dim_index(int d) { return d == 64 ? 0 : d == 128 ? 1 : 2; }

template <typename KV>
Variant mha_variant(int d) {
  Variant v{nullptr, decode::kThreads, 0, 0, 1};
  switch (d) {
    case 64: v.fn = decode::split_kv_decode_kernel<KV, 8, 1>; break;
    case 128: v.fn = decode::split_kv_decode_kernel<KV, 16, 1>; break;
    default: v.fn = decode::split_kv_decode_kernel<KV, 32, 1>; break;
  }
  return v;
}
template <typename KV>
Variant mma_variant(int d) {
  Variant v{nullptr, decode::kMmaThreads, 0, 0, decode::kMmaRows};
  switch (d) {
    case 64: v.fn = decode::mma_decode_kernel<KV, 64>, v.smem = decode::MmaShape<64>::kSmemBytes; break;
    case 128: v.fn = decode::mma_decode_kernel<KV, 128>, v.smem = decode::MmaShape<128>::kSmemBytes; break;
    default: v.fn = decode::mma_decode_kernel<KV, 256>, v.smem = decode::MmaShape<256>::kSmemBytes; break;
  }
  return v;
}

Variant pick_variant(Elem dtype, int64_t dk, int64_t dv, int32_t group) {
  const int d = padded_dim(std::max(dk, dv));
  const bool gqa = group >= 2;
  Variant v = dtype == Elem::kF16 ? (gqa ? mma_variant<F16Tag>(d) : mha_variant<F16Tag>(d))
                                  : (gqa ? mma_variant<BF16Tag>(d) : mha_variant<BF16Tag>(d));
  v.index = ((dtype == Elem::kF16 ? 0 : 1) * 2 + (gqa ? 1 : 0)) * 3 + dim_index(d);
  return v;
}

constexpr int kVariants = 12;
std::atomic<int> g_ctas_per_sm[kVariants];  // 0: not yet asked
std::atomic<bool> g_smem_set[kVariants];

// Opts a variant into its dynamic shared memory (over the 48 KB default) once.
// A host-side attribute, no stream work: safe during graph capture.
cudaError_t prepare(const Variant& v) {
  if (v.smem <= 48 * 1024 || g_smem_set[v.index].load(std::memory_order_acquire)) return cudaSuccess;
  const cudaError_t e = cudaFuncSetAttribute(v.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, v.smem);
  if (e == cudaSuccess) g_smem_set[v.index].store(true, std::memory_order_release);
  return e;
}

}  // namespace

uint64_t decode_workspace_bytes(int64_t num_seqs, int64_t num_q_heads, int64_t head_dim_v, int32_t max_splits) {
  if (max_splits <= 1) return 0;
  const int64_t rows = num_seqs * max_splits * num_q_heads;
  return static_cast<uint64_t>(partial_lse_floats(num_seqs, max_splits, num_q_heads) + rows * head_dim_v) *
         sizeof(float);
}

cudaError_t decode_variant_info(Elem cache_dtype, int64_t head_dim_k, int64_t head_dim_v, int32_t group,
                                DecodeVariantInfo* out) {
  const Variant v = pick_variant(cache_dtype, head_dim_k, head_dim_v, group);
  out->head_tiles = (group + v.head_tile - 1) / v.head_tile;
  out->tensor_cores = group >= 2;
  int ctas = g_ctas_per_sm[v.index].load(std::memory_order_relaxed);
  if (ctas == 0) {
    // Host-side arithmetic of the runtime: no device work, safe during capture.
    cudaError_t e = prepare(v);
    if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&ctas, v.fn, v.threads, v.smem);
    if (e != cudaSuccess) return e;
    ctas = std::max(ctas, 1);
    g_ctas_per_sm[v.index].store(ctas, std::memory_order_relaxed);
  }
  out->ctas_per_sm = ctas;
  return cudaSuccess;
}

cudaError_t launch_decode(const DecodeLaunch& a, cudaStream_t stream) {
  const Variant v = pick_variant(a.cache_dtype, a.k.head_dim, a.v.head_dim, a.group);
  cudaError_t e = prepare(v);
  if (e != cudaSuccess) return e;
  const int64_t head_tiles = (a.group + v.head_tile - 1) / v.head_tile;
  const dim3 grid(static_cast<unsigned>(a.table.num_seqs * a.num_kv_heads * head_tiles),
                  static_cast<unsigned>(a.max_splits));
  v.fn<<<grid, v.threads, v.smem, stream>>>(a);
  e = cudaGetLastError();
  if (e != cudaSuccess || a.max_splits <= 1) return e;
  // The merge, one CTA per (sequence, query head) row, launched as a
  // programmatic dependent so that its launch overlaps the decode's tail.
  const int64_t rows = a.table.num_seqs * a.num_kv_heads * a.group;
  if (rows == 0) return cudaSuccess;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = dim3(static_cast<unsigned>(rows));
  cfg.blockDim = dim3(decode::kMergeThreads);
  cfg.stream = stream;
  cfg.attrs = attr;
  cfg.numAttrs = 1;
  const bool vec4 = reinterpret_cast<uintptr_t>(partial_outputs(a)) % 16 == 0 && a.v.head_dim % 4 == 0;
  return vec4 ? cudaLaunchKernelEx(&cfg, decode::merge_splits_kernel<4>, a)
              : cudaLaunchKernelEx(&cfg, decode::merge_splits_kernel<1>, a);
}

}  // namespace kvx::cuda
