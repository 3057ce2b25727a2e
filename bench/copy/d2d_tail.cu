// Where a 64 MiB call of scattered 32 KiB planes (1k blocks, K and V: the
// D2D target's smallest case) loses against the copy ceiling: one
// cudaMemcpy of the same bytes, the same kernel on contiguous planes, an
// empty launch of the same grid, and the partitions of the work that
// docs/perf-notes-transfer.md predicts for (round 3). Not part of the build:
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/copy/d2d_tail.cu -o d2d_tail
// Device time (CUDA events around the launch alone), median of 50.
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <cstdint>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "check_cuda.hpp"

namespace {

constexpr int64_t kPlane = 32 << 10;             // bytes of a run
constexpr int64_t kUnits = kPlane / 16;          // 16-byte units of a run
constexpr int64_t kPool = int64_t{2} << 30;      // bytes of each pool
constexpr int64_t kBlocks = kPool / kPlane;      // runs a pool holds

struct Job {
  const uint4* src;
  uint4* dst;
  const int32_t* pairs;  // (src run, dst run)
  int32_t n;             // runs
};

// The shipped shape: one CTA a run, kDepth loads in flight a thread.
template <int kDepth>
__global__ void per_run(Job j, int32_t units) {
  const int32_t p = blockIdx.x / static_cast<int32_t>(kUnits / units);
  const int64_t off = static_cast<int64_t>(blockIdx.x % (kUnits / units)) * units;
  const uint4* s = j.src + j.pairs[2 * p] * kUnits + off;
  uint4* d = j.dst + j.pairs[2 * p + 1] * kUnits + off;
  for (int32_t i = threadIdx.x; i < units; i += kDepth * blockDim.x) {
    uint4 v[kDepth];
#pragma unroll
    for (int k = 0; k < kDepth; ++k)
      if (i + k * blockDim.x < units) v[k] = s[i + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < kDepth; ++k)
      if (i + k * blockDim.x < units) d[i + k * blockDim.x] = v[k];
  }
}

// Flat: the call's units split evenly over a grid that is resident at
// once; each CTA walks its slice (crossing runs), 8 loads in flight.
__global__ void flat(Job j) {
  const int64_t total = static_cast<int64_t>(j.n) * kUnits;
  const int64_t begin = total * blockIdx.x / gridDim.x, end = total * (blockIdx.x + 1) / gridDim.x;
  for (int64_t u0 = begin + threadIdx.x; u0 < end; u0 += 8 * blockDim.x) {
    uint4 v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int64_t u = u0 + k * blockDim.x;
      if (u < end) v[k] = j.src[j.pairs[2 * (u / kUnits)] * kUnits + u % kUnits];
    }
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const int64_t u = u0 + k * blockDim.x;
      if (u < end) j.dst[j.pairs[2 * (u / kUnits) + 1] * kUnits + u % kUnits] = v[k];
    }
  }
}

__global__ void empty_kernel(Job) {}

// The pairs in the kernel's parameters, as the library passes them
// (copy_launch.hpp): a parameter block of kBytes.
template <int kBytes>
struct ParamJob {
  const uint4* src;
  uint4* dst;
  int32_t n;
  int32_t pairs[(kBytes - 32) / 4];
};
template <int kBytes>
__global__ void empty_param(const __grid_constant__ ParamJob<kBytes> j) {
  if (j.n < 0) asm volatile("trap;");
}
template <int kBytes>
__global__ void per_run_param(const __grid_constant__ ParamJob<kBytes> j) {
  const int32_t p = blockIdx.x;
  const uint4* s = j.src + j.pairs[2 * p] * kUnits;
  uint4* d = j.dst + j.pairs[2 * p + 1] * kUnits;
  for (int32_t i = threadIdx.x; i < kUnits; i += 8 * blockDim.x) {
    uint4 v[8];
#pragma unroll
    for (int k = 0; k < 8; ++k) v[k] = s[i + k * blockDim.x];
#pragma unroll
    for (int k = 0; k < 8; ++k) d[i + k * blockDim.x] = v[k];
  }
}

// The stream waits on this flag while the host enqueues the timed work, so
// that the events time the device alone (as `kvx bench copy` does).
struct Gate {
  std::atomic<int> open{0};
  static void CUDART_CB wait(void* p) {
    auto* g = static_cast<Gate*>(p);
    while (g->open.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  }
};
bool g_gated = false;

struct Ctx {
  cudaStream_t st;
  cudaEvent_t a, b;
};

template <typename L>
float median_ms(Ctx& c, L&& launch, int iters = 50) {
  for (int i = 0; i < 5; ++i) launch();
  CK(cudaGetLastError());
  std::vector<float> t(iters);
  for (auto& x : t) {
    Gate gate;
    if (g_gated) CK(cudaLaunchHostFunc(c.st, Gate::wait, &gate));
    CK(cudaEventRecord(c.a, c.st));
    launch();
    CK(cudaEventRecord(c.b, c.st));
    gate.open.store(1, std::memory_order_release);
    CK(cudaEventSynchronize(c.b));
    CK(cudaEventElapsedTime(&x, c.a, c.b));
  }
  CK(cudaGetLastError());
  std::nth_element(t.begin(), t.begin() + iters / 2, t.end());
  return t[iters / 2];
}

}  // namespace

int main() {
  Ctx c;
  CK(cudaStreamCreateWithFlags(&c.st, cudaStreamNonBlocking));
  CK(cudaEventCreate(&c.a));
  CK(cudaEventCreate(&c.b));
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  uint4 *d0, *d1;
  CK(cudaMalloc(&d0, kPool));
  CK(cudaMalloc(&d1, kPool));
  {
    std::vector<uint32_t> r(64 << 20);
    std::mt19937 g(7);
    for (auto& x : r) x = g();
    for (int64_t o = 0; o < kPool; o += r.size() * 4)
      CK(cudaMemcpy(reinterpret_cast<char*>(d0) + o, r.data(), r.size() * 4, cudaMemcpyHostToDevice));
  }
  const double ceiling = (1 << 30) / median_ms(c, [&] { CK(cudaMemcpyAsync(d1, d0, 1 << 30, cudaMemcpyDefault, c.st)); }) / 1e6;
  std::printf("CEILING cudaMemcpy D2D 1 GiB %.1f GB/s\n", ceiling);
  int32_t* dpairs;
  CK(cudaMalloc(&dpairs, 2 * kBlocks * 4));
  std::mt19937_64 rng(11);
  for (int32_t n : {2048, 8192}) {
    double bytes = static_cast<double>(n) * kPlane;
    int32_t checked = n;  // runs the check looks at
    auto line = [&](const char* what, float ms) {
      std::printf("runs=%d (%.0f MiB) %-44s %7.2f us %8.1f GB/s %5.1f%%\n", n, bytes / (1 << 20), what, ms * 1e3,
                  bytes / ms / 1e6, 100 * bytes / ms / 1e6 / ceiling);
    };
    line("cudaMemcpy same bytes", median_ms(c, [&] {
           CK(cudaMemcpyAsync(d1, d0, static_cast<size_t>(bytes), cudaMemcpyDefault, c.st));
         }));
    // Orders: 0 contiguous, 1 scattered (the bench's pairs), 2 the same
    // scattered runs in the order of their sources, 3 both lists ascending
    // (neighbouring CTAs then touch neighbouring pages on both sides).
    for (int order : {0, 1, 2, 3}) {
      const bool scattered = order == 1;
      std::vector<int32_t> sb(kBlocks), db(kBlocks), pr(2 * n);
      std::iota(sb.begin(), sb.end(), 0);
      std::iota(db.begin(), db.end(), 0);
      if (order > 0) {
        std::shuffle(sb.begin(), sb.end(), rng);
        std::shuffle(db.begin(), db.end(), rng);
      }
      if (order == 2) {
        std::vector<std::pair<int32_t, int32_t>> v(static_cast<size_t>(n));
        for (int32_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = {sb[i], db[i]};
        std::sort(v.begin(), v.end());
        for (int32_t i = 0; i < n; ++i) sb[i] = v[static_cast<size_t>(i)].first, db[i] = v[static_cast<size_t>(i)].second;
      }
      if (order == 3) {
        std::sort(sb.begin(), sb.begin() + n);
        std::sort(db.begin(), db.begin() + n);
      }
      for (int32_t i = 0; i < n; ++i) pr[2 * i] = sb[i], pr[2 * i + 1] = db[i];
      static const char* const kOrder[] = {"contiguous", "scattered", "scattered, by source", "scattered, both sorted"};
      CK(cudaMemcpy(dpairs, pr.data(), pr.size() * 4, cudaMemcpyHostToDevice));
      const Job j{d0, d1, dpairs, n};
      auto check = [&](const char* what, float ms) {
        CK(cudaStreamSynchronize(c.st));
        std::vector<uint4> a(kUnits), b(kUnits);
        bool ok = true;
        for (int32_t p : {0, checked / 2, checked - 1}) {
          CK(cudaMemcpy(a.data(), d0 + int64_t{pr[2 * p]} * kUnits, kPlane, cudaMemcpyDeviceToHost));
          CK(cudaMemcpy(b.data(), d1 + int64_t{pr[2 * p + 1]} * kUnits, kPlane, cudaMemcpyDeviceToHost));
          ok = ok && std::equal(a.begin(), a.end(), b.begin(), [](uint4 x, uint4 y) {
                 return x.x == y.x && x.y == y.y && x.z == y.z && x.w == y.w;
               });
        }
        CK(cudaMemset(d1, 0, static_cast<size_t>(kPool)));
        char name[96];
        std::snprintf(name, sizeof name, "%s %s%s", kOrder[order], what, ok ? "" : " WRONG");
        line(name, ms);
      };
      if (scattered) line("empty launch, same grid", median_ms(c, [&] { empty_kernel<<<n, 256, 0, c.st>>>(j); }));
      if (order >= 2) {
        g_gated = true;
        check("gated: per_run d8 t256 (shipped)", median_ms(c, [&] { per_run<8><<<n, 256, 0, c.st>>>(j, kUnits); }));
        g_gated = false;
        continue;
      }
      check("per_run d8 t256 (shipped)", median_ms(c, [&] { per_run<8><<<n, 256, 0, c.st>>>(j, kUnits); }));
      // Gated from here on: device time alone.
      g_gated = true;
      line("gated: cudaMemcpy same bytes", median_ms(c, [&] {
             CK(cudaMemcpyAsync(d1, d0, static_cast<size_t>(bytes), cudaMemcpyDefault, c.st));
           }));
      check("gated: per_run d8 t256 (shipped)", median_ms(c, [&] { per_run<8><<<n, 256, 0, c.st>>>(j, kUnits); }));
      if (scattered && n == 2048) {
        line("gated: empty launch, same grid", median_ms(c, [&] { empty_kernel<<<n, 256, 0, c.st>>>(j); }));
        static ParamJob<31 * 1024> p31;
        static ParamJob<8 * 1024 + 64> p8;
        p31.src = p8.src = d0;
        p31.dst = p8.dst = d1;
        p31.n = p8.n = n / 2;  // 1k pairs fit both
        std::copy(pr.begin(), pr.begin() + n, p31.pairs);
        std::copy(pr.begin(), pr.begin() + n, p8.pairs);
        line("gated: empty launch, 31 KiB params", median_ms(c, [&] { empty_param<31 * 1024><<<n, 256, 0, c.st>>>(p31); }));
        line("gated: empty launch, 8 KiB params", median_ms(c, [&] { empty_param<8 * 1024 + 64><<<n, 256, 0, c.st>>>(p8); }));
        bytes /= 2;  // 1k runs
        checked = n / 2;
        check("gated: 1k runs, pairs in 31 KiB params", median_ms(c, [&] { per_run_param<31 * 1024><<<n / 2, 256, 0, c.st>>>(p31); }));
        check("gated: 1k runs, pairs in 8 KiB params", median_ms(c, [&] { per_run_param<8 * 1024 + 64><<<n / 2, 256, 0, c.st>>>(p8); }));
        Job half = j;
        half.n = n / 2;
        check("gated: 1k runs, pairs in global memory", median_ms(c, [&] { per_run<8><<<n / 2, 256, 0, c.st>>>(half, kUnits); }));
        bytes *= 2;
        checked = n;
      }
      g_gated = false;
      if (!scattered) continue;
      check("per_run d16 t128", median_ms(c, [&] { per_run<16><<<n, 128, 0, c.st>>>(j, kUnits); }));
      check("per_run d4 t512", median_ms(c, [&] { per_run<4><<<n, 512, 0, c.st>>>(j, kUnits); }));
      check("half runs d8 t128", median_ms(c, [&] { per_run<8><<<2 * n, 128, 0, c.st>>>(j, kUnits / 2); }));
      check("quarter runs d8 t64", median_ms(c, [&] { per_run<8><<<4 * n, 64, 0, c.st>>>(j, kUnits / 4); }));
      for (int k : {4, 5, 8, 16}) {
        char name[64];
        std::snprintf(name, sizeof name, "flat t256 %dxSM", k);
        check(name, median_ms(c, [&] { flat<<<k * sms, 256, 0, c.st>>>(j); }));
      }
    }
  }
  std::printf("done\n");
  return 0;
}
