// kvx bench decode: paged decode attention (and append) at the memory limit,
// DESIGN.md section 5. One run on the device measures the copy ceiling (a
// large device-to-device cudaMemcpy, read + write counted), the peers
// (bench/decode/peers.py: PyTorch SDPA on a dense cache of the same tokens,
// FlashInfer's paged decode where it is installed) and KVX, on the named
// shapes of issue 4 (Llama-3.1-8B geometry). Decode figures are GB/s of K+V
// read; append counts its reads and writes, like the ceiling. Writes
// decode.json (one row per case) and decode.md.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "out_dir.hpp"
#include "kvx/kvx.h"

#ifdef KVX_HAVE_CUDA
#include <cuda_runtime.h>

#include "backends/cuda/plan.hpp"
#include "stream_gate.hpp"
#endif

namespace kvx::tool {
namespace {

CLI::App* bench_parent(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands([](CLI::App* a) { return a->get_name() == "bench"; })) return sub;
  return app.add_subcommand("bench", "benchmarks on the GPU");
}

}  // namespace

#ifndef KVX_HAVE_CUDA
void add_bench_decode_command(CLI::App& app) {
  bench_parent(app)->add_subcommand("decode", "paged decode attention vs the copy ceiling (needs CUDA)")->callback([] {
    std::printf("kvx bench decode: skipped: this build of kvx has no CUDA\n");
  });
}
#else
namespace {

using nlohmann::json;

struct Options {
  std::string out_dir = "bench/results/h100";
  std::string peers = "bench/decode/peers.py";
  std::string commit = "unknown";
  int iters = 100;
  std::string only;  // substring filter on case names
  int waves = 0;     // split heuristic knobs (0: the library's defaults), for tuning runs
  int64_t min_chunk_tokens = 0;
  double full_sm_fill = 0;  // 0: the library's default
  int split_cap = 0;        // 0: the library's default
  int splits = 0;           // > 0: this many splits per sequence
  std::string timing = "gated";  // see time_median
  // Diagnostics of the access pattern (tuning runs only): the page layout,
  // and pages in table order instead of shuffled.
  std::string layout = "nhd";
  bool ordered_pages = false;
  int64_t block_tokens = 0;  // 0: each shape's own
  // Batch sweep: Llama-3.1-8B shapes at these batch sizes x sweep_len
  // tokens in place of the shapes (no append case).
  std::vector<int64_t> batches;
  int64_t sweep_len = 2048;
  bool ragged = false;  // sweep lengths drawn from [100, sweep_len] (the first one sweep_len)
  int64_t sweep_q_heads = 32, sweep_kv_heads = 8, sweep_head_dim = 128;
  std::string command;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CLI::RuntimeError(fmt::format("kvx bench decode: {}: {}", what, cudaGetErrorString(e)), 1);
}
void check(kvx_status_t s, const char* what) {
  if (s != KVX_OK) throw CLI::RuntimeError(fmt::format("kvx bench decode: {}: {}", what, kvx_last_error()), 1);
}

struct DeviceMem {
  void* p = nullptr;
  explicit DeviceMem(size_t bytes) { check(cudaMalloc(&p, std::max<size_t>(bytes, 16)), "cudaMalloc"); }
  ~DeviceMem() { cudaFree(p); }
  DeviceMem(const DeviceMem&) = delete;
  DeviceMem& operator=(const DeviceMem&) = delete;
};

struct Shape {
  std::string name;
  int64_t q_heads = 32, kv_heads = 8, head_dim = 128, block_tokens = 16;
  std::vector<int64_t> lens;
  int64_t kv_bytes() const {
    return std::accumulate(lens.begin(), lens.end(), int64_t{0}) * kv_heads * head_dim * 2 * 2;
  }
};

Shape uniform(const char* geometry, int64_t q, int64_t kv, int64_t batch, int64_t len, int64_t T, int64_t d = 128) {
  Shape s;
  s.q_heads = q, s.kv_heads = kv, s.block_tokens = T, s.head_dim = d;
  s.lens.assign(static_cast<size_t>(batch), len);
  s.name = fmt::format("DECODE(model={},dtype=bf16,hd={},T={},layout=flashinfer_nhd,q={},kv={},batch={},len={})",
                       geometry, d, T, q, kv, batch, len);
  return s;
}

std::vector<Shape> shapes() {
  const char* llama = "llama3.1-8b";
  std::vector<Shape> out = {uniform(llama, 32, 8, 1, 32768, 16),   uniform(llama, 32, 8, 16, 2048, 16),
                            uniform(llama, 32, 8, 64, 4096, 16),   uniform(llama, 32, 8, 128, 8192, 16),
                            uniform(llama, 32, 8, 256, 1024, 16)};
  Shape ragged;  // lengths drawn from [100, 16384], seeded
  std::mt19937_64 rng(7);
  for (int i = 0; i < 64; ++i) ragged.lens.push_back(std::uniform_int_distribution<int64_t>(100, 16384)(rng));
  ragged.name = "DECODE(model=llama3.1-8b,dtype=bf16,hd=128,T=16,layout=flashinfer_nhd,q=32,kv=8,batch=64,len=ragged100-16384)";
  out.push_back(ragged);
  const int64_t mean = ragged.kv_bytes() / (64 * 8 * 128 * 4);
  out.push_back(uniform(llama, 32, 8, 64, mean, 16));  // the ragged batch's uniform twin (same tokens)
  out.push_back(uniform("mha", 32, 32, 64, 4096, 16));
  out.push_back(uniform("gqa8", 8, 1, 64, 4096, 16));
  out.push_back(uniform(llama, 32, 8, 64, 4096, 1));
  out.push_back(uniform(llama, 32, 8, 64, 4096, 64));
  return out;
}

// --batches: one shape per batch size, sweep_len tokens each (or, --ragged,
// lengths drawn from [100, sweep_len] seeded by the batch size, the first
// sweep_len), in the sweep's head geometry.
std::vector<Shape> sweep_shapes(const Options& opt) {
  const bool llama = opt.sweep_q_heads == 32 && opt.sweep_kv_heads == 8 && opt.sweep_head_dim == 128;
  const int64_t shortest = std::min<int64_t>(100, opt.sweep_len);
  std::vector<Shape> out;
  for (const int64_t b : opt.batches) {
    Shape s = uniform(llama ? "llama3.1-8b" : "sweep", opt.sweep_q_heads, opt.sweep_kv_heads, b, opt.sweep_len, 16,
                      opt.sweep_head_dim);
    if (opt.ragged) {
      std::mt19937_64 lens_rng(static_cast<uint64_t>(b));
      for (size_t i = 1; i < s.lens.size(); ++i)
        s.lens[i] = std::uniform_int_distribution<int64_t>(shortest, opt.sweep_len)(lens_rng);
      const std::string from = fmt::format("len={})", opt.sweep_len);
      s.name.replace(s.name.find(from), from.size(), fmt::format("len=ragged{}-{})", shortest, opt.sweep_len));
    }
    out.push_back(s);
  }
  return out;
}

// The kernel module's version ("580.159.04"), from /proc on Linux; "unknown"
// elsewhere. (cudaDriverGetVersion gives the CUDA API level, not this.)
std::string nvidia_driver_version() {
  std::ifstream in("/proc/driver/nvidia/version");
  std::string line;
  std::getline(in, line);
  std::istringstream words(line);
  std::string w;
  while (words >> w)
    if (!w.empty() && std::isdigit(static_cast<unsigned char>(w[0])) && w.find('.') != std::string::npos) return w;
  return "unknown";
}

double median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Set when a gate opened by its timeout (the run is then flagged).
bool g_gate_timed_out = false;

// Times `body(i)` (i = iteration, for rotating inputs) with a pair of events
// per run after warm-up, opt.iters runs; returns the median in seconds.
// Timing "gated": every timed call waits behind a StreamGate and then they
// run back to back, so each event pair times the GPU's work alone, as a CUDA
// graph replay would run it; "call": no gate, so a call whose host side is
// slower than the GPU's previous call shows that host time too.
template <typename F>
double time_median(const Options& opt, F&& body) {
  const int iters = opt.iters;
  for (int i = 0; i < 5; ++i) body(i);
  std::vector<cudaEvent_t> ev(static_cast<size_t>(2 * iters));
  for (auto& e : ev) check(cudaEventCreate(&e), "cudaEventCreate");
  check(cudaDeviceSynchronize(), "warm-up");
  kvx::tool::StreamGate gate;
  if (opt.timing == "gated") check(gate.close(nullptr), "cudaLaunchHostFunc");
  for (int i = 0; i < iters; ++i) {
    check(cudaEventRecord(ev[2 * i]), "cudaEventRecord");
    body(i);
    check(cudaEventRecord(ev[2 * i + 1]), "cudaEventRecord");
  }
  gate.open();
  check(cudaDeviceSynchronize(), "run");
  if (gate.timed_out()) g_gate_timed_out = true;
  std::vector<float> ms(static_cast<size_t>(iters));
  for (int i = 0; i < iters; ++i) check(cudaEventElapsedTime(&ms[i], ev[2 * i], ev[2 * i + 1]), "elapsed");
  for (auto& e : ev) cudaEventDestroy(e);
  return median(ms) * 1e-3;
}

// Random bf16 in [-1, 1) over `bytes` of device memory, from one 64 MB host pattern.
void fill_random_bf16(void* dst, size_t bytes, std::mt19937_64& rng) {
  static std::vector<uint16_t> pattern;
  if (pattern.empty()) {
    pattern.resize(32u << 20);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& x : pattern) {
      const float f = dist(rng);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      x = static_cast<uint16_t>(u >> 16);
    }
  }
  const size_t chunk = pattern.size() * 2;
  for (size_t off = 0; off < bytes; off += chunk)
    check(cudaMemcpy(static_cast<char*>(dst) + off, pattern.data(), std::min(chunk, bytes - off),
                     cudaMemcpyHostToDevice),
          "fill");
}

// One device-to-device cudaMemcpyAsync of `bytes`, read + write counted; the
// copy rotates over buffers past the 50 MB L2 when it is small.
double copy_gbps(const Options& opt, size_t bytes) {
  const size_t sets = std::clamp<size_t>((size_t{400} << 20) / bytes + 1, 1, 16);
  DeviceMem a(bytes * sets), b(bytes * sets);
  check(cudaMemset(a.p, 1, bytes * sets), "memset");
  const double s = time_median(opt, [&](int i) {
    const size_t at = static_cast<size_t>(i) % sets * bytes;
    check(cudaMemcpyAsync(static_cast<char*>(b.p) + at, static_cast<char*>(a.p) + at, bytes, cudaMemcpyDeviceToDevice),
          "copy");
  });
  return 2.0 * bytes / s / 1e9;
}
double copy_ceiling_gbps(const Options& opt) { return copy_gbps(opt, size_t{1} << 30); }

// The page layout of the KVX cache: FlashInfer NHD, or HND (--layout, diagnostic).
kvx_preset_t page_layout(const Options& opt) {
  return opt.layout == "hnd" ? KVX_PRESET_FLASHINFER_HND : KVX_PRESET_FLASHINFER_NHD;
}

struct Result {
  double seconds = 0;
  int32_t splits = 1;
  int64_t chunk_pages = 0;
};

Result run_kvx_decode(const Shape& sh, const Options& opt, std::mt19937_64& rng) {
  const int64_t B = static_cast<int64_t>(sh.lens.size()), T = sh.block_tokens;
  int64_t pages = 0;
  for (int64_t len : sh.lens) pages += (len + T - 1) / T;
  // Rotation sets: distinct blocks and queries, together past the 50 MB L2.
  const int64_t sets = std::clamp<int64_t>((int64_t{400} << 20) / std::max<int64_t>(sh.kv_bytes(), 1) + 1, 1, 8);
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = KVX_DTYPE_BF16;
  params.memory = KVX_MEMORY_CUDA_DEVICE;
  params.num_layers = 1;
  params.num_blocks = pages * sets;
  params.block_tokens = T;
  params.num_kv_heads = sh.kv_heads;
  params.head_dim = sh.head_dim;
  kvx_layout_t cache;
  check(kvx_layout_preset(page_layout(opt), &params, &cache), "layout");
  uint64_t span = 0;
  check(kvx_layout_span_bytes(&cache, &span), "span");
  DeviceMem pool(span);
  fill_random_bf16(pool.p, span, rng);
  void* ptrs[1] = {pool.p};
  cache.ptrs = ptrs;

  // One dense table per set over shuffled blocks of that set.
  const int64_t max_pages = *std::max_element(sh.lens.begin(), sh.lens.end()) / T + 1;
  std::vector<int32_t> host_table(static_cast<size_t>(sets * B * max_pages), 0), lens32(sh.lens.begin(), sh.lens.end());
  for (int64_t s = 0; s < sets; ++s) {
    std::vector<int32_t> ids(static_cast<size_t>(pages));
    std::iota(ids.begin(), ids.end(), static_cast<int32_t>(s * pages));
    if (!opt.ordered_pages) std::shuffle(ids.begin(), ids.end(), rng);
    size_t next = 0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t p = 0; p < (sh.lens[b] + T - 1) / T; ++p) host_table[(s * B + b) * max_pages + p] = ids[next++];
  }
  DeviceMem d_table(host_table.size() * 4), d_lens(lens32.size() * 4);
  check(cudaMemcpy(d_table.p, host_table.data(), host_table.size() * 4, cudaMemcpyHostToDevice), "table");
  check(cudaMemcpy(d_lens.p, lens32.data(), lens32.size() * 4, cudaMemcpyHostToDevice), "lens");
  kvx_page_table_t table = kvx_page_table_init();
  table.kind = KVX_PAGE_TABLE_DENSE;
  table.num_seqs = B;
  table.block_table_stride = max_pages;
  table.max_blocks = max_pages;

  const int64_t q_bytes = B * sh.q_heads * sh.head_dim * 2;
  DeviceMem q(q_bytes * sets), out(q_bytes), lse(B * sh.q_heads * 4);
  fill_random_bf16(q.p, q_bytes * sets, rng);
  auto tensor = [&](void* data, kvx_dtype_t dt, int64_t dim) {
    kvx_tensor_t t{};
    t.data = data, t.dtype = dt, t.memory = KVX_MEMORY_CUDA_DEVICE;
    t.num_tokens = B, t.num_heads = sh.q_heads, t.head_dim = dim;
    t.head_stride_bytes = dim * (dt == KVX_DTYPE_F32 ? 4 : 2);
    t.token_stride_bytes = sh.q_heads * t.head_stride_bytes;
    return t;
  };
  kvx_attention_args_t args = kvx_attention_args_init();
  args.cache = &cache;
  args.page_table = &table;
  args.q = tensor(q.p, KVX_DTYPE_BF16, sh.head_dim);
  args.out = tensor(out.p, KVX_DTYPE_BF16, sh.head_dim);
  args.lse = tensor(lse.p, KVX_DTYPE_F32, 1);

  // The plan, from the host copy of set 0's table (every set has the same lengths).
  table.memory = KVX_MEMORY_HOST;
  table.block_table = host_table.data();
  table.seq_lens = lens32.data();
  kvx_attention_plan_t* plan = nullptr;
  check(kvx_attention_plan_create(&args, nullptr, &plan), "plan");
  Result r{.splits = plan->max_splits, .chunk_pages = plan->chunk_pages};
  uint64_t ws_bytes = 0;
  check(kvx_attention_plan_workspace_bytes(plan, &ws_bytes), "workspace query");
  DeviceMem ws(ws_bytes);
  table.memory = KVX_MEMORY_CUDA_DEVICE;
  table.seq_lens = static_cast<const int32_t*>(d_lens.p);
  args.plan = plan;
  kvx_exec_t exec = kvx_exec_init();
  exec.backend = KVX_BACKEND_CUDA;
  exec.workspace = ws.p;
  exec.workspace_bytes = ws_bytes;
  r.seconds = time_median(opt, [&](int i) {
    const int64_t s = i % sets;
    table.block_table = static_cast<const int32_t*>(d_table.p) + s * B * max_pages;
    args.q.data = static_cast<char*>(q.p) + s * q_bytes;
    check(kvx_attention_decode(&args, &exec), "decode");
  });
  kvx_attention_plan_destroy(plan);
  // The outputs must be finite (the GPU tests check them against the CPU backend).
  std::vector<uint16_t> host_out(static_cast<size_t>(q_bytes / 2));
  check(cudaMemcpy(host_out.data(), out.p, q_bytes, cudaMemcpyDeviceToHost), "download");
  for (uint16_t x : host_out)
    if ((x & 0x7f80) == 0x7f80) throw CLI::RuntimeError("kvx bench decode: a non-finite output in " + sh.name, 2);
  return r;
}

// Append of 256 sequences x 16 new tokens (Llama-3.1-8B: 8 kv heads, d 128):
// seconds per call, rotating over sets of new rows and target blocks.
double run_kvx_append(const Options& opt, std::mt19937_64& rng, int64_t* bytes_moved, int64_t* rows_bytes) {
  const int64_t seqs = 256, tokens = 16, kvh = 8, d = 128, T = 16, rows = seqs * tokens, sets = 16;
  kvx_preset_params_t params = kvx_preset_params_init();
  params.dtype = KVX_DTYPE_BF16;
  params.memory = KVX_MEMORY_CUDA_DEVICE;
  params.num_layers = 1;
  params.num_blocks = seqs * sets * 4;
  params.block_tokens = T;
  params.num_kv_heads = kvh;
  params.head_dim = d;
  kvx_layout_t cache;
  check(kvx_layout_preset(page_layout(opt), &params, &cache), "layout");
  uint64_t span = 0;
  check(kvx_layout_span_bytes(&cache, &span), "span");
  DeviceMem pool(span);
  void* ptrs[1] = {pool.p};
  cache.ptrs = ptrs;
  const int64_t row_bytes = kvh * d * 2;
  DeviceMem k(rows * row_bytes * sets), v(rows * row_bytes * sets);
  fill_random_bf16(k.p, rows * row_bytes * sets, rng);
  fill_random_bf16(v.p, rows * row_bytes * sets, rng);
  std::vector<int64_t> slots(static_cast<size_t>(rows * sets));
  std::vector<int64_t> blocks(static_cast<size_t>(params.num_blocks));
  std::iota(blocks.begin(), blocks.end(), 0);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  for (int64_t s = 0; s < sets; ++s)
    for (int64_t b = 0; b < seqs; ++b)
      for (int64_t t = 0; t < tokens; ++t) slots[(s * seqs + b) * tokens + t] = blocks[s * seqs + b] * T + t;
  DeviceMem d_slots(slots.size() * 8);
  check(cudaMemcpy(d_slots.p, slots.data(), slots.size() * 8, cudaMemcpyHostToDevice), "slots");
  kvx_append_args_t a = kvx_append_args_init();
  a.cache = &cache;
  auto tensor = [&](void* data) {
    kvx_tensor_t t{};
    t.data = data, t.dtype = KVX_DTYPE_BF16, t.memory = KVX_MEMORY_CUDA_DEVICE;
    t.num_tokens = rows, t.num_heads = kvh, t.head_dim = d, t.head_stride_bytes = d * 2, t.token_stride_bytes = row_bytes;
    return t;
  };
  a.k = tensor(k.p);
  a.v = tensor(v.p);
  kvx_exec_t exec = kvx_exec_init();
  exec.backend = KVX_BACKEND_CUDA;
  const double s = time_median(opt, [&](int i) {
    const int64_t set = i % sets;
    a.k.data = static_cast<char*>(k.p) + set * rows * row_bytes;
    a.v.data = static_cast<char*>(v.p) + set * rows * row_bytes;
    a.slot_mapping = static_cast<const int64_t*>(d_slots.p) + set * rows;
    check(kvx_append(&a, &exec), "append");
  });
  *bytes_moved = 2 * 2 * rows * row_bytes + rows * 8;  // K and V read and written, slots read
  *rows_bytes = 2 * rows * row_bytes;                  // the new K and V rows, once
  return s;
}

// Runs the peers' script on the same shapes; returns {case: {peer: GB/s}}.
json run_peers(const std::vector<Shape>& list, const Options& opt, const std::string& tmp_dir) {
  std::ifstream probe(opt.peers);
  if (!probe) return json{{"_note", "peer script " + opt.peers + " not found"}};
  json in = json::array();
  for (const Shape& s : list)
    in.push_back({{"case", s.name}, {"lens", s.lens}, {"q_heads", s.q_heads}, {"kv_heads", s.kv_heads},
                  {"head_dim", s.head_dim}, {"block_tokens", s.block_tokens}});
  const std::string in_path = tmp_dir + "/decode_shapes.json", out_path = tmp_dir + "/decode_peers.json";
  std::ofstream shapes_file(in_path);
  shapes_file << in.dump();
  check_written(shapes_file, in_path, "kvx bench decode");
  const std::string cmd = fmt::format("python3 {} --shapes {} --out {} --iters {} --timing {}", opt.peers, in_path,
                                      out_path, opt.iters, opt.timing);
  std::printf("kvx bench decode: peers: %s\n", cmd.c_str());
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) std::printf("kvx bench decode: the peer script failed; peers are null\n");
  std::ifstream res(out_path);
  if (!res) return json{{"_note", "the peer script wrote no results"}};
  return json::parse(res);
}

json peer_value(const json& peers, const std::string& name, const char* peer) {
  if (!peers.contains(name) || !peers[name].contains(peer)) return nullptr;
  return peers[name][peer];
}

void run(const Options& opt) {
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    std::printf("kvx bench decode: skipped: no CUDA device\n");
    return;
  }
  make_out_dir(opt.out_dir, "kvx bench decode");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "device properties");
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  const std::string nvidia_driver = nvidia_driver_version();
  std::vector<Shape> list;
  if (opt.batches.empty()) {
    for (Shape& s : shapes())
      if (opt.only.empty() || s.name.find(opt.only) != std::string::npos) list.push_back(s);
  } else {
    list = sweep_shapes(opt);
  }
  if (opt.block_tokens > 0) {  // diagnostic: every shape at one page size
    for (Shape& s : list) {
      const std::string from = fmt::format("T={},", s.block_tokens), to = fmt::format("T={},", opt.block_tokens);
      if (const size_t at = s.name.find(from); at != std::string::npos) s.name.replace(at, from.size(), to);
      s.block_tokens = opt.block_tokens;
    }
  }

  std::mt19937_64 rng(1234);
  const double ceiling = copy_ceiling_gbps(opt);
  std::printf("copy ceiling (read + write): %.0f GB/s\n", ceiling);

  json rows = json::array();
  auto row = [&](const std::string& name, double kvx_gbps, double seconds, int64_t bytes, const json& sdpa,
                 const json& fi, json extra) {
    json r = {{"case", name}, {"metric", "GB/s"}, {"kvx", std::round(kvx_gbps)}, {"ceiling", std::round(ceiling)},
              {"pct_of_ceiling", std::round(1000.0 * kvx_gbps / ceiling) / 10.0},
              {"peer_name", "torch_sdpa"}, {"peer", sdpa},
              {"speedup", sdpa.is_number() ? json(std::round(100.0 * kvx_gbps / sdpa.get<double>()) / 100.0) : json()},
              {"flashinfer", fi},
              {"speedup_flashinfer", fi.is_number() ? json(std::round(100.0 * kvx_gbps / fi.get<double>()) / 100.0) : json()},
              {"time_us", std::round(seconds * 1e7) / 10.0}, {"bytes", bytes}};
    r.update(extra);
    rows.push_back(r);
    std::printf("%-110s %7.0f GB/s %5.1f%%  sdpa %s  flashinfer %s\n", name.c_str(), kvx_gbps, 100.0 * kvx_gbps / ceiling,
                sdpa.dump().c_str(), fi.dump().c_str());
    std::fflush(stdout);
  };
  // KVX first, the peers after, in their own process: a case timed right
  // after the peers' process exits ran 20% slow (1 x 32k: 74 us against 60
  // alone, every later case unchanged; docs/perf-notes.md).
  struct Measured {
    double seconds;
    json extra;
  };
  std::vector<Measured> measured;
  for (const Shape& s : list) {
    const Result r = run_kvx_decode(s, opt, rng);
    // A copy that moves as many DRAM bytes (half read, half written) in one
    // call: the ceiling at this size, launch and ramp included.
    const double gbps = s.kv_bytes() / r.seconds / 1e9;
    const double same = copy_gbps(opt, static_cast<size_t>(s.kv_bytes() / 2));
    measured.push_back({r.seconds,
                        {{"splits", r.splits}, {"chunk_pages", r.chunk_pages}, {"same_size_copy_gbps", std::round(same)},
                         {"pct_of_same_size_copy", std::round(1000.0 * gbps / same) / 10.0}}});
  }
  const std::string append_name = "APPEND(model=llama3.1-8b,dtype=bf16,hd=128,T=16,layout=flashinfer_nhd,kv=8,seqs=256,new=16)";
  const bool with_append =
      opt.batches.empty() && (opt.only.empty() || append_name.find(opt.only) != std::string::npos);
  int64_t append_bytes = 0, append_rows_bytes = 0;
  double append_s = 0, append_same = 0;
  if (with_append) {
    append_s = run_kvx_append(opt, rng, &append_bytes, &append_rows_bytes);
    // The same bytes as one contiguous copy: what a launch of this size can reach at all.
    append_same = copy_gbps(opt, static_cast<size_t>(append_rows_bytes));
  }
  const json peers = run_peers(list, opt, opt.out_dir);
  for (size_t i = 0; i < list.size(); ++i) {
    const Shape& s = list[i];
    row(s.name, s.kv_bytes() / measured[i].seconds / 1e9, measured[i].seconds, s.kv_bytes(),
        peer_value(peers, s.name, "torch_sdpa"), peer_value(peers, s.name, "flashinfer"), measured[i].extra);
  }
  if (with_append)
    row(append_name, append_bytes / append_s / 1e9, append_s, append_bytes, nullptr, nullptr,
        {{"peer_note", "no peer: the copy ceiling is the bar"},
         {"same_size_copy_gbps", std::round(append_same)},
         {"pct_of_same_size_copy", std::round(1000.0 * append_bytes / append_s / 1e9 / append_same) / 10.0}});
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  const json report = {{"schema", 1}, {"suite", "decode"}, {"device", prop.name},
                       {"driver", fmt::format("{}.{}", driver / 1000, driver % 1000 / 10)},
                       {"nvidia_driver", nvidia_driver},
                       {"cuda", fmt::format("{}.{}", runtime / 1000, runtime % 1000 / 10)}, {"commit", opt.commit},
                       {"command", opt.command}, {"date", date}, {"ceiling_gbps", std::round(ceiling)},
                       {"timing", opt.timing}, {"gate_timed_out", g_gate_timed_out},
                       {"method", "CUDA events around each call, 5 warm-up calls, median of the timed calls; timing "
                                  "gated: all timed calls are enqueued behind a gate, then run back to back (GPU "
                                  "time, host launch cost excluded, as in a CUDA graph replay; the peers the same way); "
                                  "call: no gate; inputs "
                                  "rotated over sets of blocks past the 50 MB L2; random bf16 data; decode GB/s = K+V "
                                  "bytes / time; append and the ceiling count bytes read + written; the same-size copy is one "
                                  "cudaMemcpyAsync moving as many DRAM bytes as the case (rotated past L2)"},
                       {"iters", opt.iters}, {"peers_note", peers.value("_note", json())}, {"rows", rows}};
  std::ofstream js(opt.out_dir + "/decode.json");
  js << report.dump(1) << "\n";
  check_written(js, opt.out_dir + "/decode.json", "kvx bench decode");
  std::ofstream md(opt.out_dir + "/decode.md");
  md << "# kvx bench decode: " << prop.name << ", NVIDIA driver " << nvidia_driver << " (CUDA driver API "
     << report["driver"].get<std::string>() << "), CUDA runtime "
     << report["cuda"].get<std::string>() << ", commit " << opt.commit << "\n\n"
     << "Copy ceiling (read + write): " << std::round(ceiling) << " GB/s. Command: `" << opt.command << "`. Timing: "
     << opt.timing << (opt.timing == "gated" ? " (every timed call enqueued first, then run back to back: GPU time)" : " (no gate)")
     << (g_gate_timed_out ? "; the gate timed out at least once" : "") << ".\n\n"
     << "The targets, what misses them and the measurements that say why: docs/perf-notes.md.\n\n"
     << "| case | MB | KVX GB/s | % of ceiling | % of same-size copy | SDPA GB/s | x SDPA | FlashInfer GB/s | x FlashInfer | us |\n"
     << "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  auto cell = [](const json& j) { return j.is_null() ? std::string("-") : j.dump(); };
  for (const json& r : rows)
    md << "| " << r["case"].get<std::string>() << " | " << r["bytes"].get<int64_t>() / 1000000 << " | " << r["kvx"]
       << " | " << r["pct_of_ceiling"] << " | " << cell(r.value("pct_of_same_size_copy", json())) << " | "
       << cell(r["peer"]) << " | " << cell(r["speedup"]) << " | "
       << cell(r["flashinfer"]) << " | " << cell(r["speedup_flashinfer"]) << " | " << r["time_us"] << " |\n";
  check_written(md, opt.out_dir + "/decode.md", "kvx bench decode");
  std::printf("kvx bench decode: %zu rows -> %s/decode.json, decode.md\n", rows.size(), opt.out_dir.c_str());
}

}  // namespace

void add_bench_decode_command(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = bench_parent(app)->add_subcommand("decode", "paged decode attention and append vs the copy ceiling and peers");
  cmd->add_option("--out", opt->out_dir, "folder for decode.json and decode.md")->capture_default_str();
  cmd->add_option("--peers", opt->peers, "the peers' script (PyTorch SDPA, FlashInfer)")->capture_default_str();
  cmd->add_option("--commit", opt->commit, "source revision recorded in the results")->capture_default_str();
  cmd->add_option("--iters", opt->iters, "timed calls per case (median)")->capture_default_str()->check(CLI::Range(10, 100000));
  cmd->add_option("--only", opt->only, "run only cases whose name contains this");
  cmd->add_option("--layout", opt->layout, "diagnostic: KVX page layout, nhd (FlashInfer NHD) or hnd")
      ->capture_default_str()
      ->check(CLI::IsMember({"nhd", "hnd"}));
  cmd->add_flag("--ordered-pages", opt->ordered_pages, "diagnostic: pages in table order, not shuffled");
  cmd->add_option("--block-tokens", opt->block_tokens, "diagnostic: every shape with this page size (0: its own)")
      ->check(CLI::Range(int64_t{0}, int64_t{256}));
  cmd->add_option("--timing", opt->timing, "gated: GPU time of calls enqueued ahead; call: no gate")
      ->capture_default_str()
      ->check(CLI::IsMember({"gated", "call"}));
  cmd->add_option("--waves", opt->waves, "tuning: CTAs per resident slot the plan aims at (0: default)");
  cmd->add_option("--min-chunk-tokens", opt->min_chunk_tokens, "tuning: fewest tokens per split (0: default)");
  cmd->add_option("--full-sm-fill", opt->full_sm_fill,
                  "tuning: uniform batches with rows in [fill x SMs, SMs] are not split (0: default; over 1: never)");
  cmd->add_option("--split-cap", opt->split_cap, "tuning: splits per sequence at most (0: default)")
      ->check(CLI::Range(0, 128));
  cmd->add_option("--splits", opt->splits, "tuning: this many splits per sequence (0: the plan decides)")
      ->check(CLI::Range(0, 128));
  cmd->add_option("--batches", opt->batches, "sweep: Llama-3.1-8B at these batch sizes (comma-separated) in place of the issue's shapes")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  cmd->add_option("--len", opt->sweep_len, "sweep: tokens per sequence with --batches")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--q-heads", opt->sweep_q_heads, "sweep: query heads with --batches")->capture_default_str()->check(CLI::Range(1, 256));
  cmd->add_option("--kv-heads", opt->sweep_kv_heads, "sweep: kv heads with --batches (dividing --q-heads)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  cmd->add_option("--head-dim", opt->sweep_head_dim, "sweep: head dim with --batches (64, 128, 256: the tuned ones)")
      ->capture_default_str()
      ->check(CLI::IsMember({64, 128, 256}));
  cmd->add_flag("--ragged", opt->ragged, "sweep: lengths drawn from [100, --len] (seeded by the batch size; the first is --len)");
  cmd->callback([opt] {
    if (opt->sweep_q_heads % opt->sweep_kv_heads != 0)
      throw CLI::ValidationError("--kv-heads", "must divide --q-heads");
    opt->command = "kvx bench decode --iters " + std::to_string(opt->iters) + " --timing " + opt->timing + " --out " + opt->out_dir +
                   (opt->only.empty() ? "" : " --only '" + opt->only + "'") +
                   (opt->layout == "nhd" ? "" : " --layout " + opt->layout) + (opt->ordered_pages ? " --ordered-pages" : "") +
                   (opt->block_tokens > 0 ? " --block-tokens " + std::to_string(opt->block_tokens) : "");
    if (!opt->batches.empty())
      opt->command += fmt::format(" --batches {} --len {}{} --q-heads {} --kv-heads {} --head-dim {}",
                                  fmt::join(opt->batches, ","), opt->sweep_len, opt->ragged ? " --ragged" : "",
                                  opt->sweep_q_heads, opt->sweep_kv_heads, opt->sweep_head_dim);
    // Tuning knobs: a value over 0 replaces the library's default and is
    // recorded in the command line.
    auto tune = [&](const char* flag, auto value, auto apply) {
      if (value <= 0) return;
      apply(kvx::cuda::decode_tuning(), value);
      opt->command += fmt::format(" {} {}", flag, value);
    };
    tune("--waves", opt->waves, [](auto& t, int v) { t.waves = t.ragged_waves = v; });
    tune("--full-sm-fill", opt->full_sm_fill, [](auto& t, double v) { t.full_sm_fill = v; });
    tune("--split-cap", opt->split_cap, [](auto& t, int v) { t.split_cap = v; });
    tune("--splits", opt->splits, [](auto& t, int v) { t.splits = v; });
    tune("--min-chunk-tokens", opt->min_chunk_tokens, [](auto& t, int64_t v) { t.min_chunk_tokens = v; });
    run(*opt);
  });
}
#endif

}  // namespace kvx::tool
