// The CUDA backend behind the ops layer (backends/backend.hpp): each entry
// receives validated arguments, resolves them once into the plain launch
// structs of launch.hpp (through the layout value of layout/layout.hpp), and
// enqueues kernels on exec.stream. Nothing here synchronises or allocates
// device memory, so every op can be captured in a CUDA graph. What the GPU
// kernels do not cover yet is refused with KVX_ERR_UNSUPPORTED and a message
// naming the field (the CPU backend covers it).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <new>
#include <vector>

#include "backends/backend.hpp"
#include "backends/cuda/launch.hpp"
#include "backends/cuda/plan.hpp"
#include "core/checked.hpp"
#include "core/dtype.hpp"
#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/validate_common.hpp"

namespace kvx::cuda {
namespace {

kvx_status_t device_error(cudaError_t e, const char* what) {
  return fail(KVX_ERR_DEVICE, "{}: CUDA error {}: {}", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

// Makes the cache's device current for the op and restores the caller's.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    status_ = cudaGetDevice(&previous_);
    if (status_ == cudaSuccess && previous_ != device) status_ = cudaSetDevice(device);
    else previous_ = -1;
  }
  ~DeviceGuard() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;
  cudaError_t status() const { return status_; }

 private:
  int previous_ = -1;
  cudaError_t status_ = cudaSuccess;
};

constexpr int kMaxDevices = 64;
std::atomic<int> g_sm_count[kMaxDevices];

cudaError_t sm_count(int device, int* out) {
  if (device < 0 || device >= kMaxDevices) return cudaErrorInvalidDevice;
  int n = g_sm_count[device].load(std::memory_order_relaxed);
  if (n == 0) {
    const cudaError_t e = cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device);
    if (e != cudaSuccess) return e;
    g_sm_count[device].store(n, std::memory_order_relaxed);
  }
  *out = n;
  return cudaSuccess;
}

Elem elem_of(kvx_dtype_t t) {
  return t == KVX_DTYPE_F16 ? Elem::kF16 : t == KVX_DTYPE_BF16 ? Elem::kBF16 : Elem::kF32;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }
bool aligned16(int64_t x) { return x % 16 == 0; }

PlaneArg plane_arg(const kvx_layout_t& c, int64_t layer, int kv) {
  const kvx_plane_t& p = c.plane[kv];
  PlaneArg a;
  a.base = row_address(c, layer, kv, 0, 0, 0);
  a.block_stride = p.block_stride_bytes;
  a.token_stride = p.token_stride_bytes;
  a.head_stride = p.head_stride_bytes;
  a.dim_stride = p.dim_stride_bytes;
  a.dim_outer_stride = p.dim_outer_stride_bytes;
  a.head_dim_inner = p.head_dim_inner;
  a.head_dim = p.head_dim;
  return a;
}

PageTableArg table_arg(const kvx_page_table_t& t, int64_t block_tokens) {
  PageTableArg a;
  a.csr = t.kind == KVX_PAGE_TABLE_CSR ? 1 : 0;
  a.block_tokens = static_cast<int32_t>(block_tokens);
  a.num_seqs = t.num_seqs;
  a.block_table = t.block_table;
  a.block_table_stride = t.block_table_stride;
  a.seq_lens = t.seq_lens;
  a.indptr = t.indptr;
  a.indices = t.indices;
  a.last_page_len = t.last_page_len;
  return a;
}

TensorArg tensor_arg(const kvx_tensor_t& t) {
  TensorArg a;
  a.data = static_cast<std::byte*>(t.data);
  a.dtype = elem_of(t.dtype);
  a.num_tokens = t.num_tokens;
  a.num_heads = t.num_heads;
  a.head_dim = t.head_dim;
  a.token_stride = t.token_stride_bytes;
  a.head_stride = t.head_stride_bytes;
  return a;
}

// Every row of the plane is a sequence of aligned 16-byte runs.
bool plane_rows_vectorizable(const kvx_layout_t& c, const PlaneArg& p) {
  const int64_t elem = dtype_bytes(c.dtype);
  if (!aligned16(p.base) || !aligned16(p.block_stride) || !aligned16(p.token_stride) || !aligned16(p.head_stride))
    return false;
  if (p.dim_stride != elem || !aligned16(p.head_dim * elem)) return false;
  return p.head_dim_inner == 0 || (aligned16(p.head_dim_inner * elem) && aligned16(p.dim_outer_stride));
}

bool tensor_rows_vectorizable(const kvx_tensor_t& t, kvx_dtype_t cache_dtype) {
  return t.dtype == cache_dtype && aligned16(t.data) && aligned16(t.token_stride_bytes) &&
         aligned16(t.head_stride_bytes) && aligned16(t.head_dim * dtype_bytes(t.dtype));
}

// A plane the decode kernel can stream: contiguous 16-bit rows of whole
// 16-byte vectors at 16-byte aligned addresses.
kvx_status_t check_decode_plane(const kvx_layout_t& c, const PlaneArg& p, int kv) {
  const char* name = kv == 0 ? "args.cache.plane[0]" : "args.cache.plane[1]";
  if (!plane_dim_contiguous(c, kv))
    return fail(KVX_ERR_UNSUPPORTED,
                "{}: the CUDA decode kernel needs a contiguous head dim (dim_stride_bytes == element size, not "
                "split); this layout is served by the CPU backend or after kvx_convert_blocks",
                name);
  if (p.head_dim % 8 != 0 || p.head_dim > 256)
    return fail(KVX_ERR_UNSUPPORTED, "{}.head_dim: {} (the CUDA decode kernel takes multiples of 8 up to 256)", name,
                p.head_dim);
  if (!aligned16(p.base) || !aligned16(p.block_stride) || !aligned16(p.token_stride) || !aligned16(p.head_stride))
    return fail(KVX_ERR_MISALIGNED,
                "{}: the CUDA decode kernel reads 16-byte vectors; the plane's base and its block, token and head "
                "strides must be multiples of 16 bytes",
                name);
  return KVX_OK;
}

kvx_status_t check_launch(cudaError_t e, const char* what) {
  return e == cudaSuccess ? KVX_OK : device_error(e, what);
}

}  // namespace

DecodeTuning& decode_tuning() {
  static DecodeTuning tuning;
  return tuning;
}

bool available() {
  static const bool present = [] {
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
  }();
  return present;
}

kvx_status_t append(const kvx_append_args_t& args, const ExecConfig& exec) {
  const kvx_layout_t& c = *args.cache;
  AppendLaunch a;
  a.num_kv = static_cast<int32_t>(c.num_kv);
  a.cache_dtype = elem_of(c.dtype);
  a.num_rows = args.k.num_tokens;
  a.num_heads = c.num_kv_heads;
  a.slot_mapping = args.slot_mapping;
  a.table.block_tokens = static_cast<int32_t>(c.block_tokens);
  if (args.page_table != nullptr) a.table = table_arg(*args.page_table, c.block_tokens);
  a.batch_indices = args.batch_indices;
  a.positions = args.positions;
  a.vectorized = true;
  for (int kv = 0; kv < a.num_kv; ++kv) {
    a.plane[kv] = plane_arg(c, args.layer, kv);
    const kvx_tensor_t& src = kv == 0 ? args.k : args.v;
    a.src[kv] = tensor_arg(src);
    a.vectorized = a.vectorized && plane_rows_vectorizable(c, a.plane[kv]) && tensor_rows_vectorizable(src, c.dtype);
  }
  DeviceGuard guard(c.device_id);
  KVX_TRY(check_launch(guard.status(), "kvx_append: cudaSetDevice"));
  return check_launch(launch_append(a, static_cast<cudaStream_t>(exec.stream)), "kvx_append: kernel launch");
}

kvx_status_t gather(const kvx_gather_args_t& args, const ExecConfig& exec) {
  const kvx_layout_t& c = *args.cache;
  GatherLaunch a;
  a.num_kv = static_cast<int32_t>(c.num_kv);
  a.cache_dtype = elem_of(c.dtype);
  a.num_heads = c.num_kv_heads;
  a.table = table_arg(*args.page_table, c.block_tokens);
  a.vectorized = true;
  for (int kv = 0; kv < a.num_kv; ++kv) {
    a.plane[kv] = plane_arg(c, args.layer, kv);
    const kvx_tensor_t& dst = kv == 0 ? args.k_out : args.v_out;
    a.dst[kv] = tensor_arg(dst);
    a.vectorized = a.vectorized && plane_rows_vectorizable(c, a.plane[kv]) && tensor_rows_vectorizable(dst, c.dtype);
  }
  // Enough CTAs to fill the device when the batch is small; lengths are not
  // read here (the table may live on the device).
  const int64_t seqs = std::max<int64_t>(args.page_table->num_seqs, 1);
  a.token_ctas = static_cast<int32_t>(std::clamp<int64_t>((1024 + seqs - 1) / seqs, 1, 256));
  DeviceGuard guard(c.device_id);
  KVX_TRY(check_launch(guard.status(), "kvx_gather: cudaSetDevice"));
  return check_launch(launch_gather(a, static_cast<cudaStream_t>(exec.stream)), "kvx_gather: kernel launch");
}

kvx_status_t merge_states(const kvx_merge_args_t& args, const ExecConfig& exec) {
  MergeLaunch a;
  a.out_a = tensor_arg(args.out_a);
  a.lse_a = tensor_arg(args.lse_a);
  a.out_b = tensor_arg(args.out_b);
  a.lse_b = tensor_arg(args.lse_b);
  a.out = tensor_arg(args.out);
  a.lse = tensor_arg(args.lse);
  return check_launch(launch_merge_states(a, static_cast<cudaStream_t>(exec.stream)),
                      "kvx_merge_states: kernel launch");
}

// convert_blocks: backends/cuda/convert/convert.cpp (the fused copy of copy/).

kvx_status_t attention(const kvx_attention_args_t& args, AttentionMode mode, const ExecConfig& exec) {
  if (mode == AttentionMode::kPrefill)
    return fail(KVX_ERR_UNSUPPORTED,
                "exec.backend: prefill attention has no CUDA kernel yet (decode only); use the CPU backend");
  const kvx_layout_t& c = *args.cache;
  if (c.dtype == KVX_DTYPE_F32)
    return fail(KVX_ERR_UNSUPPORTED,
                "args.cache.dtype: f32 storage is not served by the CUDA decode kernel (f16 and bf16 are)");
  DecodeLaunch a;
  a.k = plane_arg(c, args.layer, 0);
  a.v = plane_arg(c, args.layer, 1);
  KVX_TRY(check_decode_plane(c, a.k, 0));
  KVX_TRY(check_decode_plane(c, a.v, 1));
  a.table = table_arg(*args.page_table, c.block_tokens);
  a.q = tensor_arg(args.q);
  a.out = tensor_arg(args.out);
  a.lse = tensor_arg(args.lse);
  a.cache_dtype = elem_of(c.dtype);
  a.num_kv_heads = static_cast<int32_t>(c.num_kv_heads);
  a.group = static_cast<int32_t>(args.q.num_heads / c.num_kv_heads);
  a.scale = args.scale > 0.0f ? args.scale : 1.0f / std::sqrt(static_cast<float>(c.plane[0].head_dim));
  a.softcap = args.logit_softcap;
  a.window_left = args.window_left;
  a.sink_tokens = args.sink_tokens;
  const DecodeTuning& tuning = decode_tuning();
  a.min_chunk_pages = std::max<int64_t>(1, (tuning.min_chunk_tokens + c.block_tokens - 1) / c.block_tokens);

  DeviceGuard guard(c.device_id);
  KVX_TRY(check_launch(guard.status(), "kvx_attention_decode: cudaSetDevice"));
  const int64_t num_seqs = args.page_table->num_seqs;
  const int64_t per_split = static_cast<int64_t>(decode_workspace_bytes(num_seqs, args.q.num_heads,
                                                                        c.plane[1].head_dim, 2)) / 2;
  if (args.plan != nullptr) {
    const kvx_attention_plan_t& p = *args.plan;
    if (p.magic != kPlanMagic)
      return fail(KVX_ERR_INVALID_ARGUMENT, "args.plan: not a live plan (destroyed, or not from kvx_attention_plan_create)");
    if (p.num_seqs != num_seqs || p.num_q_heads != args.q.num_heads || p.num_kv_heads != c.num_kv_heads ||
        p.head_dim_k != c.plane[0].head_dim || p.head_dim_v != c.plane[1].head_dim ||
        p.block_tokens != c.block_tokens || p.device_id != c.device_id)
      return fail(KVX_ERR_INVALID_ARGUMENT,
                  "args.plan: made for {} sequences, {}/{} heads, head_dim {}/{}, block_tokens {}, device {}; this "
                  "call has {} sequences, {}/{} heads, head_dim {}/{}, block_tokens {}, device {}",
                  p.num_seqs, p.num_q_heads, p.num_kv_heads, p.head_dim_k, p.head_dim_v, p.block_tokens, p.device_id,
                  num_seqs, args.q.num_heads, c.num_kv_heads, c.plane[0].head_dim, c.plane[1].head_dim,
                  c.block_tokens, c.device_id);
    if (exec.workspace_bytes < p.workspace_bytes)
      return fail(KVX_ERR_WORKSPACE_TOO_SMALL,
                  "exec.workspace_bytes: {} < {} (kvx_attention_plan_workspace_bytes of args.plan)",
                  exec.workspace_bytes, p.workspace_bytes);
    a.max_splits = p.max_splits;
    a.chunk_pages = p.chunk_pages;
  } else {
    // No plan: the lengths are not known here without reading the device, so
    // the split count comes from the batch size alone and each sequence splits
    // its own pages evenly on the device (at least min_chunk_pages a split),
    // within whatever workspace the caller gave (none: no split).
    DecodeVariantInfo info;
    KVX_TRY(check_launch(decode_variant_info(a.cache_dtype, c.plane[0].head_dim, c.plane[1].head_dim, a.group, &info),
                         "kvx_attention_decode: occupancy query"));
    int sms = 0;
    KVX_TRY(check_launch(sm_count(c.device_id, &sms), "kvx_attention_decode: device attribute"));
    const int64_t units = std::max<int64_t>(1, num_seqs * c.num_kv_heads * info.head_tiles);
    const int64_t slots = static_cast<int64_t>(sms) * info.ctas_per_sm;
    int64_t splits = std::clamp<int64_t>((tuning.waves * slots + units - 1) / units, 1,
                                         std::min<int64_t>(tuning.split_cap, kMaxSplits));
    if (args.page_table->kind == KVX_PAGE_TABLE_DENSE)
      splits = std::min(splits, std::max<int64_t>(1, ceil_div(args.page_table->max_blocks, a.min_chunk_pages)));
    splits = std::min<int64_t>(splits, per_split > 0 ? static_cast<int64_t>(exec.workspace_bytes) / per_split : 1);
    // The lse rows are padded to 4 floats: step down if that pad does not fit.
    while (splits > 1 && decode_workspace_bytes(num_seqs, args.q.num_heads, c.plane[1].head_dim,
                                                static_cast<int32_t>(splits)) > exec.workspace_bytes)
      --splits;
    a.max_splits = static_cast<int32_t>(std::max<int64_t>(splits, 1));
    a.chunk_pages = 0;
  }
  a.partial = static_cast<float*>(exec.workspace);
  return check_launch(launch_decode(a, static_cast<cudaStream_t>(exec.stream)), "kvx_attention_decode: kernel launch");
}

// ------------------------------------------------------------------ plan --

int64_t visible_pages(int64_t len, int64_t block_tokens, int64_t window_left, int64_t sink_tokens) {
  const int64_t pages = ceil_div(len, block_tokens);
  if (window_left < 0 || len == 0) return pages;
  const int64_t window_page = std::max<int64_t>(0, len - 1 - window_left) / block_tokens;
  const int64_t sink_pages = std::min(ceil_div(std::min(sink_tokens, len), block_tokens), window_page);
  return sink_pages + pages - window_page;
}

namespace {

// Microseconds for `ctas` resident CTAs of `cta_mb` MB each to stream their
// K/V: dealt evenly over the SMs (`hi` SMs hold k CTAs, the rest k - 1), each
// SM drawing min(CTAs x cta_gbps, sm_gbps), all together at most dram_gbps
// (shared in proportion); once the (k - 1)-CTA SMs are done, the others go on
// at their own rate or their share of DRAM.
double wave_us(int64_t ctas, int64_t sms, double cta_mb, double cta_gbps, const DecodeTuning& t) {
  const int64_t k = ceil_div(ctas, sms), hi = ctas - (k - 1) * sms, lo = sms - hi;
  const double rate_hi = std::min(static_cast<double>(k) * cta_gbps, t.sm_gbps);
  const double rate_lo = std::min(static_cast<double>(k - 1) * cta_gbps, t.sm_gbps);
  const double demand = static_cast<double>(hi) * rate_hi + static_cast<double>(lo) * rate_lo;
  const double share = std::min(1.0, t.dram_gbps / demand);
  const double hi_mb = static_cast<double>(k) * cta_mb;
  if (k == 1 || lo == 0) return 1e3 * hi_mb / (rate_hi * share);
  const double lo_done_ms = static_cast<double>(k - 1) * cta_mb / (rate_lo * share);
  const double left_mb = std::max(0.0, hi_mb - rate_hi * share * lo_done_ms);
  return 1e3 * (lo_done_ms + left_mb / std::min(rate_hi, t.dram_gbps / static_cast<double>(hi)));
}

}  // namespace

double estimate_decode_us(const int64_t* virt_pages, int64_t num_seqs, int64_t chunk_pages,
                          const SplitTarget& target, const DecodeTuning& tuning) {
  const int64_t units = target.units, slots = target.slots;
  int64_t ctas = 0, pages = 0, biggest = 0, splits = 1;
  for (int64_t b = 0; b < num_seqs; ++b) {
    if (virt_pages[b] <= 0) continue;
    const int64_t s = ceil_div(virt_pages[b], chunk_pages);
    ctas += s * units;
    pages += virt_pages[b] * units;
    biggest = std::max(biggest, std::min(virt_pages[b], chunk_pages));
    splits = std::max(splits, s);
  }
  if (ctas == 0) return 0.0;
  // Waves of resident CTAs of the mean size; never less than the biggest CTA
  // alone (a long sequence's last split).
  const double mb_per_page = static_cast<double>(target.page_bytes) * 1e-6;
  const double mean_mb = static_cast<double>(pages) * mb_per_page / static_cast<double>(ctas);
  const double waves = static_cast<double>(ceil_div(ctas, slots));
  const double cta_gbps = target.tensor_cores ? tuning.cta_gbps : tuning.cuda_core_cta_gbps;
  const double stream_us =
      std::max(waves * wave_us(std::min(ctas, slots), target.sms, mean_mb, cta_gbps, tuning),
               1e3 * static_cast<double>(biggest) * mb_per_page / cta_gbps);
  return stream_us + waves * tuning.cta_start_us + (splits > 1 ? tuning.merge_us : 0.0);
}

SplitSchedule plan_splits(const int64_t* virt_pages, int64_t num_seqs, const SplitTarget& target,
                          const DecodeTuning& tuning) {
  const int64_t units = target.units, sms = target.sms;
  int64_t total = 0, longest = 0, busy = 0;
  for (int64_t b = 0; b < num_seqs; ++b) {
    total += virt_pages[b];
    longest = std::max(longest, virt_pages[b]);
    busy += virt_pages[b] > 0 ? 1 : 0;
  }
  if (longest == 0) return {};
  const int64_t cap = std::min<int64_t>(tuning.split_cap, kMaxSplits);
  auto schedule = [&](int64_t chunk) -> SplitSchedule {
    const int64_t splits = ceil_div(longest, chunk);
    if (splits <= 1) return {};
    return {.max_splits = static_cast<int32_t>(splits), .chunk_pages = chunk};
  };
  if (tuning.splits > 0) return schedule(ceil_div(longest, std::min<int64_t>(tuning.splits, cap)));

  const bool ragged =
      static_cast<double>(longest) > tuning.ragged_ratio * static_cast<double>(total) / busy;
  if (ragged) {
    // Two waves of splits of at least min_chunk_tokens; a batch too small to
    // fill them takes splits of about its work / SMs instead (one CTA per SM).
    const int64_t min_chunk_pages =
        std::max<int64_t>(1, ceil_div(tuning.min_chunk_tokens, target.block_tokens));
    const int64_t target_items = std::max<int64_t>(1, tuning.ragged_waves * target.slots);
    int64_t chunk = std::max(std::min(min_chunk_pages, ceil_div(total * units, sms)),
                             ceil_div(total * units, target_items));
    if (ceil_div(longest, chunk) > cap) chunk = ceil_div(longest, cap);
    return schedule(chunk);
  }
  // About one row per SM already: a second tensor-core CTA per SM would not
  // draw more, and the split would add the merge.
  const int64_t rows = busy * units;
  if (target.tensor_cores && rows <= sms &&
      static_cast<double>(rows) >= tuning.full_sm_fill * static_cast<double>(sms))
    return {};
  // The modelled fastest of the split counts the sweep measured (the fewer
  // splits on a tie); between them the model is not trusted to rank.
  const int64_t min_split_pages =
      std::max<int64_t>(1, ceil_div(tuning.min_split_tokens, target.block_tokens));
  int64_t best_chunk = longest;
  double best_us = estimate_decode_us(virt_pages, num_seqs, longest, target, tuning);
  for (const int64_t s : {2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128}) {
    const int64_t chunk = ceil_div(longest, s);
    if (s > cap || chunk < min_split_pages) break;
    const double us = estimate_decode_us(virt_pages, num_seqs, chunk, target, tuning);
    if (us < best_us) best_us = us, best_chunk = chunk;
  }
  return schedule(best_chunk);
}

kvx_status_t attention_plan_create(const kvx_attention_args_t* args, const kvx_exec_t* exec,
                                   kvx_attention_plan_t** out) {
  if (out == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out: null");
  if (args == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args: null");
  KVX_TRY(check_abi_header(args->struct_size, args->version, sizeof(kvx_attention_args_t), "args"));
  if (args->cache == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.cache: null");
  KVX_TRY(validate_layout(args->cache, "args.cache"));
  const kvx_layout_t& c = *args->cache;
  if (c.num_kv != 2)
    return fail(KVX_ERR_UNSUPPORTED,
                "args.cache.num_kv: attention over a single-latent cache is not part of v1.0");
  if (c.dtype != KVX_DTYPE_F16 && c.dtype != KVX_DTYPE_BF16)
    return fail(KVX_ERR_UNSUPPORTED,
                "args.cache.dtype: {} (the CUDA decode kernel serves f16 and bf16)",
                dtype_name(c.dtype));
  if (args->page_table == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "args.page_table: null");
  if (!host_checkable(args->page_table->memory))
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.page_table.memory: the plan reads the batch's lengths on the host; pass a "
                "host copy of the "
                "page table (the run takes the device one)");
  KVX_TRY(validate_page_table(args->page_table, c, "args.page_table"));
  if (args->q.num_heads <= 0 || args->q.num_heads % c.num_kv_heads != 0)
    return fail(KVX_ERR_INVALID_ARGUMENT,
                "args.q.num_heads: {} (a positive multiple of the cache's {} kv heads)",
                args->q.num_heads, c.num_kv_heads);
  if (args->sink_tokens < 0)
    return fail(KVX_ERR_INVALID_ARGUMENT, "args.sink_tokens: {} < 0", args->sink_tokens);
  ExecConfig cfg;
  KVX_TRY(ops::resolve_exec(exec, c.memory, &cfg));
  if (cfg.backend != KVX_BACKEND_CUDA)
    return fail(KVX_ERR_INVALID_ARGUMENT, "exec.backend: a plan schedules the CUDA backend");

  const int32_t group = static_cast<int32_t>(args->q.num_heads / c.num_kv_heads);
  DeviceGuard guard(c.device_id);
  KVX_TRY(check_launch(guard.status(), "kvx_attention_plan_create: cudaSetDevice"));
  DecodeVariantInfo info;
  KVX_TRY(check_launch(
      decode_variant_info(elem_of(c.dtype), c.plane[0].head_dim, c.plane[1].head_dim, group, &info),
      "kvx_attention_plan_create: occupancy query"));
  int sms = 0;
  KVX_TRY(check_launch(sm_count(c.device_id, &sms), "kvx_attention_plan_create: device attribute"));

  const PageTableView table(*args->page_table, c.block_tokens);
  std::vector<int64_t> pages(static_cast<size_t>(table.num_seqs()));
  for (int64_t b = 0; b < table.num_seqs(); ++b)
    pages[b] =
        visible_pages(table.seq_len(b), c.block_tokens, args->window_left, args->sink_tokens);
  const SplitTarget target{
      .units = c.num_kv_heads * info.head_tiles,
      .block_tokens = c.block_tokens,
      .page_bytes =
          c.block_tokens * (c.plane[0].head_dim + c.plane[1].head_dim) * dtype_bytes(c.dtype),
      .sms = sms,
      .slots = static_cast<int64_t>(sms) * info.ctas_per_sm,
      .tensor_cores = info.tensor_cores};
  const SplitSchedule s = plan_splits(pages.data(), table.num_seqs(), target, decode_tuning());

  auto* plan = new (std::nothrow) kvx_attention_plan_t{};
  if (plan == nullptr) return fail(KVX_ERR_OUT_OF_MEMORY, "kvx_attention_plan_create: out of host memory");
  plan->magic = kPlanMagic;
  plan->device_id = c.device_id;
  plan->max_splits = s.max_splits;
  plan->chunk_pages = s.chunk_pages;
  plan->num_seqs = table.num_seqs();
  plan->num_q_heads = args->q.num_heads;
  plan->num_kv_heads = c.num_kv_heads;
  plan->head_dim_k = c.plane[0].head_dim;
  plan->head_dim_v = c.plane[1].head_dim;
  plan->block_tokens = c.block_tokens;
  plan->workspace_bytes = decode_workspace_bytes(plan->num_seqs, plan->num_q_heads, plan->head_dim_v, s.max_splits);
  *out = plan;
  return KVX_OK;
}

kvx_status_t attention_plan_workspace_bytes(const kvx_attention_plan_t* plan, uint64_t* out_bytes) {
  if (plan == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "plan: null");
  if (out_bytes == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "out_bytes: null");
  if (plan->magic != kPlanMagic) return fail(KVX_ERR_INVALID_ARGUMENT, "plan: not a live plan");
  *out_bytes = plan->workspace_bytes;
  return KVX_OK;
}

kvx_status_t attention_plan_destroy(kvx_attention_plan_t* plan) {
  if (plan == nullptr) return KVX_OK;
  if (plan->magic != kPlanMagic) return fail(KVX_ERR_INVALID_ARGUMENT, "plan: not a live plan");
  plan->magic = 0;
  delete plan;
  return KVX_OK;
}

}  // namespace kvx::cuda
