// kvx bench copy: scattered KV block copies (Llama-3.1-8B shapes) on every
// engine and direction against the link ceilings measured in the same run
// (one large cudaMemcpy each way), and layout conversion against the
// device copy ceiling. Writes copy.json (one row per case, DESIGN.md
// section 5) and copy.md. All figures are payload bytes moved one way per
// second; the D2D ceiling is counted the same way (half of read + write).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "commands.hpp"
#include "out_dir.hpp"
#include "kvx/kvx.h"

#ifdef KVX_HAVE_CUDA
#include <cuda_runtime.h>

#include "stream_gate.hpp"
#endif

// The source revision of this build (tools/kvx/CMakeLists.txt sets it from
// `git rev-parse HEAD` at configure time).
#ifndef KVX_SOURCE_COMMIT
#define KVX_SOURCE_COMMIT "unknown"
#endif

namespace kvx::tool {
namespace {
// The "bench" subcommand, shared by every benchmark suite that registers.
CLI::App* bench_command(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "bench"; })) return sub;
  return app.add_subcommand("bench", "benchmarks on the GPU");
}
}  // namespace

#ifndef KVX_HAVE_CUDA
void add_bench_copy_command(CLI::App& app) {
  CLI::App* bench = bench_command(app);
  bench->add_subcommand("copy", "scattered block copies and conversion (needs CUDA)")->callback([] {
    std::printf("kvx bench copy: skipped: this build of kvx has no CUDA\n");
  });
}
#else
namespace {

struct Options {
  std::string out_dir = ".";
  int min_iters = 10;
  int max_iters = 100;
  double seconds_per_case = 0.25;
  int64_t max_call_bytes = int64_t{2} << 30;
  std::string command = "kvx bench copy";
  std::string commit;   // --commit, else $KVX_COMMIT, else the build's
  std::string filter;   // only cases whose name contains this
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CLI::RuntimeError(fmt::format("{}: {}", what, cudaGetErrorString(e)), 1);
}
void check(kvx_status_t s, const char* what) {
  if (s != KVX_OK) throw CLI::RuntimeError(fmt::format("{}: {}", what, kvx_last_error()), 1);
}

struct Env {
  std::string device, driver, cuda, commit;
};

// The stream waits on this flag (a host function spinning on it) while the
// host enqueues a timed call, so that the events around the call measure the
// device's work alone; the host's own cost is timed separately.
// One case's timings: the median milliseconds of a whole call (host work and
// device work in sequence on an idle stream), of the device work alone (the
// call enqueued behind the gate), and the host microseconds of one call.
struct Timing {
  double call_ms = 0, device_ms = 0, host_us = 0;
};

// Medians after warm-up; the number of runs fills about `seconds_per_case`.
// `gated` is false where the call enqueues too many operations to wait
// behind a gate (the stream's queue is finite: the host would block).
template <typename F>
Timing time_case(cudaStream_t stream, const Options& o, bool gated, F&& fn) {
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  for (int i = 0; i < 2; ++i) fn();
  check(cudaEventRecord(a, stream), "record");
  fn();
  check(cudaEventRecord(b, stream), "record");
  check(cudaEventSynchronize(b), "sync");
  float first = 0;
  cudaEventElapsedTime(&first, a, b);
  const int iters = std::clamp(static_cast<int>(o.seconds_per_case * 1e3 / std::max(first, 1e-3f)), o.min_iters, o.max_iters);
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  std::vector<double> call(static_cast<size_t>(iters)), device, host;
  for (auto& x : call) {
    check(cudaEventRecord(a, stream), "record");
    fn();
    check(cudaEventRecord(b, stream), "record");
    check(cudaEventSynchronize(b), "sync");
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    x = ms;
  }
  Timing t;
  t.call_ms = median(call);
  t.device_ms = t.call_ms;
  if (gated) {
    kvx::tool::StreamGate gate;
    for (int i = 0; i < iters; ++i) {
      check(gate.close(stream), "cudaLaunchHostFunc");
      check(cudaEventRecord(a, stream), "record");
      const auto h0 = std::chrono::steady_clock::now();
      fn();
      const auto h1 = std::chrono::steady_clock::now();
      check(cudaEventRecord(b, stream), "record");
      gate.open();
      check(cudaEventSynchronize(b), "sync");
      float ms = 0;
      cudaEventElapsedTime(&ms, a, b);
      device.push_back(ms);
      host.push_back(std::chrono::duration<double, std::micro>(h1 - h0).count());
    }
    t.device_ms = median(device);
    t.host_us = median(host);
  }
  check(cudaGetLastError(), "launch");
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return t;
}

enum class Where { kDevice, kPinned };

void* alloc(Where w, size_t bytes) {
  void* p = nullptr;
  check(w == Where::kDevice ? cudaMalloc(&p, bytes) : cudaMallocHost(&p, bytes), "allocation");
  // Random bytes, never zeros (a copy of zeros can run faster than data).
  std::vector<uint32_t> h(std::min<size_t>(bytes, 64u << 20) / 4);
  std::mt19937 rng(static_cast<uint32_t>(bytes));
  for (auto& x : h) x = rng();
  for (size_t off = 0; off < bytes; off += h.size() * 4)
    check(cudaMemcpy(static_cast<char*>(p) + off, h.data(), std::min(h.size() * 4, bytes - off), cudaMemcpyDefault),
          "fill");
  return p;
}
void release(Where w, void* p) { w == Where::kDevice ? cudaFree(p) : cudaFreeHost(p); }

struct Row {
  std::string name, engine, direction, dma_path;
  int64_t block_bytes = 0, blocks = 0;
  double kvx = 0, ceiling = 0, peer = -1;
  double call_gbs = 0, host_us = -1;  // the whole call, host work included; the host's share
  std::string peer_name;
};

const char* where_name(Where w) { return w == Where::kDevice ? "device" : "pinned"; }
const char* engine_name(kvx_copy_engine_t e) {
  return e == KVX_COPY_ENGINE_SM_KERNEL ? "sm_kernel" : e == KVX_COPY_ENGINE_DMA ? "dma" : "cpu";
}
const char* path_name(kvx_dma_path_t p) { return p == KVX_DMA_PATH_BATCHED ? "batched" : p == KVX_DMA_PATH_LOOP ? "loop" : ""; }

// A one-layer pool of Llama-3.1-8B geometry (8 kv heads, head_dim 128,
// bf16) in `preset`, `blocks` blocks of `block_tokens`.
kvx_layout_t pool(kvx_preset_t preset, Where w, int64_t blocks, int64_t block_tokens, std::vector<void*>* owned,
                  std::vector<void*>* ptrs) {
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = KVX_DTYPE_BF16;
  p.memory = w == Where::kDevice ? KVX_MEMORY_CUDA_DEVICE : KVX_MEMORY_CUDA_HOST_PINNED;
  p.num_layers = 1;
  p.num_blocks = blocks;
  p.block_tokens = block_tokens;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  kvx_layout_t l = KVX_LAYOUT_INIT;
  check(kvx_layout_preset(preset, &p, &l), "kvx_layout_preset");
  uint64_t span = 0;
  check(kvx_layout_span_bytes(&l, &span), "span");
  const int n = l.base_kind == KVX_BASE_STRIDED ? 1 : l.base_kind == KVX_BASE_LAYER_PTRS ? 1 : 2;
  ptrs->clear();
  for (int i = 0; i < n; ++i) {
    owned->push_back(alloc(w, span));
    ptrs->push_back(owned->back());
  }
  if (l.base_kind == KVX_BASE_STRIDED) l.base = ptrs->at(0);
  else l.ptrs = ptrs->data();
  return l;
}

class Bench {
 public:
  Bench(const Options& o, const Env& env) : o_(o), env_(env) {
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "stream");
  }

  void ceilings() {
    const size_t bytes = size_t{1} << 30;
    void* d0 = alloc(Where::kDevice, bytes);
    void* d1 = alloc(Where::kDevice, bytes);
    void* h = alloc(Where::kPinned, bytes);
    auto gbs = [&](void* dst, const void* src) {
      const double ms =
          time_case(stream_, o_, false, [&] { check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_), "memcpy"); })
              .call_ms;
      return bytes / ms / 1e6;
    };
    ceiling_[0] = gbs(d1, d0);  // D2D (one way; x2 for read + write)
    ceiling_[1] = gbs(d0, h);   // H2D
    ceiling_[2] = gbs(h, d0);   // D2H
    for (int i = 0; i < 3; ++i) {
      static const char* const names[] = {"D2D", "H2D", "D2H"};
      Row r;
      r.name = fmt::format("CEILING(cudaMemcpy,{},1GiB)", names[i]);
      r.engine = "cudaMemcpy";
      r.direction = names[i];
      r.block_bytes = static_cast<int64_t>(bytes);
      r.blocks = 1;
      r.kvx = r.ceiling = ceiling_[i];
      rows_.push_back(r);
    }
    // One cudaMemcpy of the bytes of a 1k- and a 4k-block call of 32 KiB
    // planes (K and V): what any single copy of that size reaches, the
    // launch and its ramp included (device time, behind the gate).
    for (const size_t same : {size_t{64} << 20, size_t{256} << 20}) {
      const Timing t = time_case(stream_, o_, true, [&] {
        check(cudaMemcpyAsync(d1, d0, same, cudaMemcpyDefault, stream_), "memcpy");
      });
      Row r;
      r.name = fmt::format("SAME-SIZE(cudaMemcpy,D2D,{}MiB)", same >> 20);
      r.engine = "cudaMemcpy(same size)";
      r.direction = "D2D";
      r.block_bytes = static_cast<int64_t>(same);
      r.blocks = 1;
      r.kvx = static_cast<double>(same) / t.device_ms / 1e6;
      r.call_gbs = static_cast<double>(same) / t.call_ms / 1e6;
      r.host_us = t.host_us;
      r.ceiling = ceiling_[0];
      rows_.push_back(r);
      std::printf("%-90s %8.2f GB/s  (%5.1f%% of %.1f)  call %8.2f GB/s  host %7.1f us\n", r.name.c_str(), r.kvx,
                  100 * r.kvx / r.ceiling, r.ceiling, r.call_gbs, r.host_us);
    }
    release(Where::kDevice, d0);
    release(Where::kDevice, d1);
    release(Where::kPinned, h);
  }

  // Scattered block copies between two pools of `preset_src`/`preset_dst`.
  void scattered(kvx_preset_t ps, kvx_preset_t pd, Where ws, Where wd, int64_t block_tokens, const char* label) {
    const int64_t plane = block_tokens * 8 * 128 * 2;
    const int dir = ws == Where::kDevice ? (wd == Where::kDevice ? 0 : 2) : 1;
    const std::string group = fmt::format("{}({},T={})", label, dir == 0 ? "D2D" : dir == 1 ? "H2D" : "D2H", block_tokens);
    if (!o_.filter.empty() && group.find(o_.filter) == std::string::npos) return;
    const int64_t max_n = std::min<int64_t>(65536, o_.max_call_bytes / (2 * plane));
    std::vector<void*> owned, sp, dp;
    const kvx_layout_t src = pool(ps, ws, max_n, block_tokens, &owned, &sp);
    const kvx_layout_t dst = pool(pd, wd, max_n, block_tokens, &owned, &dp);
    std::mt19937_64 rng(static_cast<uint64_t>(plane) * 31 + static_cast<uint64_t>(dir));
    for (int64_t n = 1024; n <= max_n; n *= 4) {
      std::vector<int32_t> sb(static_cast<size_t>(max_n)), db(static_cast<size_t>(max_n));
      std::iota(sb.begin(), sb.end(), 0);
      std::iota(db.begin(), db.end(), 0);
      std::shuffle(sb.begin(), sb.end(), rng);
      std::shuffle(db.begin(), db.end(), rng);
      double loop_gbs = -1;
      for (auto [engine, mode] : {std::pair{KVX_COPY_ENGINE_DMA, KVX_DMA_FALLBACK_ONLY},
                                  std::pair{KVX_COPY_ENGINE_DMA, KVX_DMA_BATCHED_WITH_FALLBACK},
                                  std::pair{KVX_COPY_ENGINE_SM_KERNEL, KVX_DMA_BATCHED_WITH_FALLBACK},
                                  std::pair{KVX_COPY_ENGINE_AUTO, KVX_DMA_BATCHED_WITH_FALLBACK}}) {
        if (mode == KVX_DMA_FALLBACK_ONLY && n > 4096) continue;  // seconds per call, and no news
        kvx_transfer_report_t report = KVX_TRANSFER_REPORT_INIT;
        kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
        a.src = &src;
        a.dst = &dst;
        a.src_blocks = sb.data();
        a.dst_blocks = db.data();
        a.num_blocks = n;
        a.engine = engine;
        a.dma_mode = mode;
        a.report = &report;
        kvx_exec_t e = KVX_EXEC_INIT;
        e.stream = stream_;
        if (kvx_copy_blocks_supports(&a, &e) != KVX_OK) continue;
        // Conversions that move single rows or elements leave the copy
        // engines thousands of tiny copies per block (0.06 GB/s measured):
        // those rows cost the run minutes and say nothing new.
        if (report.engine == KVX_COPY_ENGINE_DMA && ps != pd) continue;
        check(kvx_copy_blocks(&a, &e), "kvx_copy_blocks");  // the report's launch count
        // The copy engines are timed whole: their host calls are their cost,
        // and the batch API can wait on the stream (it hung behind the gate).
        const bool gated = report.engine != KVX_COPY_ENGINE_DMA && report.launches <= 256;
        const Timing t = time_case(stream_, o_, gated, [&] { check(kvx_copy_blocks(&a, &e), "kvx_copy_blocks"); });
        verify(src, dst, sb[0], db[0], ws, wd);
        const double gbs = static_cast<double>(report.bytes) / t.device_ms / 1e6;
        Row r;
        r.engine = engine == KVX_COPY_ENGINE_AUTO ? fmt::format("auto({})", engine_name(report.engine))
                                                  : engine_name(report.engine);
        r.dma_path = path_name(report.dma_path);
        r.direction = dir == 0 ? "D2D" : dir == 1 ? "H2D" : "D2H";
        r.name = fmt::format("{}({},{}->{},T={},block={}KiB,blocks={},{}{}{})", label, r.direction, where_name(ws),
                             where_name(wd), block_tokens, plane / 1024, n, r.engine, r.dma_path.empty() ? "" : ",",
                             r.dma_path);
        r.block_bytes = plane;
        r.blocks = n;
        r.kvx = gbs;
        r.call_gbs = static_cast<double>(report.bytes) / t.call_ms / 1e6;
        r.host_us = gated ? t.host_us : -1;
        r.ceiling = ceiling_[dir];
        if (mode == KVX_DMA_FALLBACK_ONLY) loop_gbs = gbs;
        r.peer_name = "cudaMemcpyAsync per block";
        r.peer = loop_gbs;
        rows_.push_back(r);
        std::printf("%-90s %8.2f GB/s  (%5.1f%% of %.1f)  call %8.2f GB/s  host %7.1f us\n", r.name.c_str(), gbs,
                    100 * gbs / r.ceiling, r.ceiling, r.call_gbs, r.host_us);
        std::fflush(stdout);
        if (on_row_) on_row_(rows_);
      }
    }
    for (size_t i = 0; i < owned.size(); ++i) release(i < sp.size() ? ws : wd, owned[i]);
  }

  const std::vector<Row>& rows() const { return rows_; }
  std::function<void(const std::vector<Row>&)> on_row_;

 private:
  // The first pair's K plane arrived bit for bit (for same-preset copies).
  void verify(const kvx_layout_t& s, const kvx_layout_t& d, int32_t sb, int32_t db, Where, Where) {
    if (s.plane[0].block_stride_bytes != d.plane[0].block_stride_bytes || s.base_kind != d.base_kind) return;
    check(cudaStreamSynchronize(stream_), "sync");
    const int64_t bytes = s.block_tokens * 8 * 128 * 2;
    std::vector<char> a(static_cast<size_t>(bytes)), b(static_cast<size_t>(bytes));
    const char* sbase = static_cast<const char*>(s.base_kind == KVX_BASE_STRIDED ? s.base : s.ptrs[0]);
    const char* dbase = static_cast<const char*>(d.base_kind == KVX_BASE_STRIDED ? d.base : d.ptrs[0]);
    check(cudaMemcpy(a.data(), sbase + s.plane[0].offset_bytes + sb * s.plane[0].block_stride_bytes, a.size(), cudaMemcpyDefault), "verify");
    check(cudaMemcpy(b.data(), dbase + d.plane[0].offset_bytes + db * d.plane[0].block_stride_bytes, b.size(), cudaMemcpyDefault), "verify");
    if (a != b) throw CLI::RuntimeError("kvx bench copy: a copied block differs from its source", 2);
  }

  Options o_;
  Env env_;
  cudaStream_t stream_ = nullptr;
  double ceiling_[3] = {0, 0, 0};
  std::vector<Row> rows_;
};

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

void write_results(const Options& o, const Env& env, const std::vector<Row>& rows) {
  std::ofstream js(o.out_dir + "/copy.json");
  js << "{\n \"schema\": 1, \"suite\": \"copy\", \"device\": \"" << json_escape(env.device) << "\", \"driver\": \""
     << env.driver << "\", \"cuda\": \"" << env.cuda << "\", \"commit\": \"" << env.commit << "\",\n \"command\": \""
     << json_escape(o.command)
     << "\",\n \"metric_note\": \"payload bytes moved one way per second; D2D ceiling counted the same way. kvx: the "
        "device's time for the call (the host enqueues it behind a gate; the copy engines' rows, and the ceilings, "
        "time the whole call); call_gbs: the whole call on an idle stream, host work included; host_us: the host's time "
        "to validate and enqueue one call\",\n \"rows\": [\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const Row& r = rows[i];
    js << fmt::format(
        "  {{\"case\": \"{}\", \"metric\": \"GB/s\", \"kvx\": {:.3f}, \"ceiling\": {:.3f}, \"pct_of_ceiling\": {:.1f}, "
        "\"peer_name\": {}, \"peer\": {}, \"call_gbs\": {:.3f}, \"host_us\": {}, \"engine\": \"{}\", \"dma_path\": \"{}\", \"direction\": \"{}\", "
        "\"block_bytes\": {}, \"blocks\": {}, \"device\": \"{}\", \"driver\": \"{}\", \"cuda\": \"{}\", "
        "\"commit\": \"{}\", \"command\": \"{}\"}}{}\n",
        json_escape(r.name), r.kvx, r.ceiling, 100 * r.kvx / r.ceiling,
        r.peer_name.empty() ? "null" : "\"" + r.peer_name + "\"", r.peer < 0 ? "null" : fmt::format("{:.3f}", r.peer),
        r.call_gbs > 0 ? r.call_gbs : r.kvx, r.host_us < 0 ? "null" : fmt::format("{:.1f}", r.host_us), r.engine, r.dma_path, r.direction, r.block_bytes, r.blocks, json_escape(env.device), env.driver, env.cuda,
        env.commit, json_escape(o.command), i + 1 < rows.size() ? "," : "");
  }
  js << " ]\n}\n";
  check_written(js, o.out_dir + "/copy.json", "kvx bench copy");
  std::ofstream md(o.out_dir + "/copy.md");
  md << "# kvx bench copy: " << env.device << ", driver " << env.driver << ", CUDA " << env.cuda << ", commit "
     << env.commit << "\n\nPayload GB/s, one way; medians of CUDA-event timings after warm-up. GB/s: the device's "
        "time for the call (enqueued behind a gate; the copy engines' rows time the whole call); call GB/s: the "
        "whole call on an idle stream, host validation and enqueue included; host us: the host's share.\n\n"
     << "| case | GB/s | % of ceiling | ceiling | call GB/s | host us | cudaMemcpyAsync per block |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows)
    md << fmt::format("| {} | {:.1f} | {:.0f}% | {:.1f} | {:.1f} | {} | {} |\n", r.name, r.kvx, 100 * r.kvx / r.ceiling,
                      r.ceiling, r.call_gbs > 0 ? r.call_gbs : r.kvx, r.host_us < 0 ? "" : fmt::format("{:.0f}", r.host_us),
                      r.peer < 0 ? "" : fmt::format("{:.1f}", r.peer));
  check_written(md, o.out_dir + "/copy.md", "kvx bench copy");
}

void run(const Options& o, bool quick) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("kvx bench copy: skipped: no CUDA device\n");
    return;
  }
  make_out_dir(o.out_dir, "kvx bench copy");
  Env env;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  env.device = prop.name;
  int drv = 0, rt = 0;
  cudaDriverGetVersion(&drv);
  cudaRuntimeGetVersion(&rt);
  env.driver = fmt::format("{}.{}", drv / 1000, drv % 1000 / 10);
  env.cuda = fmt::format("{}.{}", rt / 1000, rt % 1000 / 10);
  // The source revision: --commit, else $KVX_COMMIT, else the one CMake read
  // from git when the build was configured.
  env.commit = KVX_SOURCE_COMMIT;
  if (const char* c = std::getenv("KVX_COMMIT"); c != nullptr && *c != '\0') env.commit = c;
  if (!o.commit.empty()) env.commit = o.commit;
  Options opt = o;
  if (quick) opt.max_call_bytes = int64_t{64} << 20;
  Bench b(opt, env);
  b.on_row_ = [&](const std::vector<Row>& rows) { write_results(opt, env, rows); };
  b.ceilings();
  for (int64_t T : {16, 1, 64}) {
    b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_FLASH_NHD, Where::kDevice, Where::kDevice, T, "COPY");
    b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_FLASH_NHD, Where::kPinned, Where::kDevice, T, "COPY");
    b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_FLASH_NHD, Where::kDevice, Where::kPinned, T, "COPY");
  }
  // Conversion fused with the copy (T = 16).
  b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_FLASHINFER_HND, Where::kDevice, Where::kDevice, 16, "CONVERT(nhd->hnd)");
  b.scattered(KVX_PRESET_VLLM_LEGACY, KVX_PRESET_VLLM_FLASH_NHD, Where::kDevice, Where::kDevice, 16, "CONVERT(legacy->nhd)");
  b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_VLLM_LEGACY, Where::kDevice, Where::kDevice, 16, "CONVERT(nhd->legacy)");
  b.scattered(KVX_PRESET_VLLM_FLASH_NHD, KVX_PRESET_LMCACHE, Where::kDevice, Where::kPinned, 16, "CONVERT(nhd->lmcache)");
  b.scattered(KVX_PRESET_DYNAMO_UNIVERSAL, KVX_PRESET_VLLM_FLASH_HND, Where::kPinned, Where::kDevice, 16, "CONVERT(dynamo->hnd)");
  write_results(opt, env, b.rows());
  std::printf("kvx bench copy: %zu rows -> %s/copy.json, copy.md\n", b.rows().size(), opt.out_dir.c_str());
}

}  // namespace

void add_bench_copy_command(CLI::App& app) {
  CLI::App* bench = bench_command(app);
  CLI::App* cmd = bench->add_subcommand("copy", "scattered KV block copies and layout conversion vs link ceilings");
  auto o = std::make_shared<Options>();
  auto quick = std::make_shared<bool>(false);
  cmd->add_option("--out", o->out_dir, "folder for copy.json and copy.md");
  cmd->add_option("--max-iters", o->max_iters, "timed runs per case at most");
  cmd->add_option("--seconds", o->seconds_per_case, "timed seconds per case (sets the run count)");
  cmd->add_flag("--quick", *quick, "small calls only (a smoke test)");
  cmd->add_option("--commit", o->commit, "source revision recorded in the results (default: the build's)");
  cmd->add_option("--filter", o->filter, "run only the cases whose name contains this (e.g. D2D, CONVERT)");
  cmd->callback([o, quick] { run(*o, *quick); });
}
#endif

}  // namespace kvx::tool
