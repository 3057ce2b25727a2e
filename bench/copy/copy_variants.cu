// Variants of the scattered block copy kernel, timed against cudaMemcpy in
// one run (docs/perf-notes-transfer.md records what each one predicted and
// measured). Not part of the build: compiled by hand for the device,
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/copy/copy_variants.cu -o copy_variants
// and run there. Every variant's output is checked against the source.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "check_cuda.hpp"

struct Job {
  const char* src;
  char* dst;
  const int32_t* pairs;  // (src block, dst block)
  int64_t plane;         // bytes of one run (one block's plane)
  int64_t stride;        // bytes between blocks
  int32_t n;             // pairs
};

// One run of n 16-byte units by the threads tid, tid + step, ...: kDepth
// loads in flight per thread.
template <int kDepth>
__device__ __forceinline__ void copy_units(const uint4* s, uint4* d, int64_t n, int64_t tid, int64_t step) {
  int64_t i = tid;
  for (; i + (kDepth - 1) * step < n; i += kDepth * step) {
    uint4 v[kDepth];
#pragma unroll
    for (int k = 0; k < kDepth; ++k) v[k] = s[i + k * step];
#pragma unroll
    for (int k = 0; k < kDepth; ++k) d[i + k * step] = v[k];
  }
  for (; i < n; i += step) d[i] = s[i];
}

__device__ __forceinline__ const uint4* run_src(const Job& j, int32_t p) {
  return reinterpret_cast<const uint4*>(j.src + j.pairs[2 * p] * j.stride);
}
__device__ __forceinline__ uint4* run_dst(const Job& j, int32_t p) {
  return reinterpret_cast<uint4*>(j.dst + j.pairs[2 * p + 1] * j.stride);
}

// A: one CTA per run, kDepth loads in flight per thread (the shipped kernel had 4).
template <int kDepth>
__global__ void per_run(Job j) {
  copy_units<kDepth>(run_src(j, blockIdx.x), run_dst(j, blockIdx.x), j.plane / 16, threadIdx.x, blockDim.x);
}

// C: persistent grid; the CTA walks runs.
template <int kDepth>
__global__ void persistent(Job j) {
  for (int32_t p = blockIdx.x; p < j.n; p += gridDim.x)
    copy_units<kDepth>(run_src(j, p), run_dst(j, p), j.plane / 16, threadIdx.x, blockDim.x);
}

// E: a warp per run (persistent), kDepth loads in flight per lane.
template <int kDepth>
__global__ void warp_per_run(Job j) {
  const int warps = gridDim.x * (blockDim.x / 32);
  for (int32_t p = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32; p < j.n; p += warps)
    copy_units<kDepth>(run_src(j, p), run_dst(j, p), j.plane / 16, threadIdx.x & 31, 32);
}

// F: one CTA per run through the bulk copy engine (TMA 1-D): global ->
// shared -> global, one thread issues, an mbarrier completes the load.
__global__ void bulk_per_run(Job j) {
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ __align__(8) uint64_t bar;
  const int32_t chunk = 32 << 10;
  const uint32_t sbar = static_cast<uint32_t>(__cvta_generic_to_shared(&bar));
  const uint32_t sbuf = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  if (threadIdx.x != 0) return;
  asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(sbar));
  asm volatile("fence.mbarrier_init.release.cluster;");
  uint32_t phase = 0;
  for (int32_t p = blockIdx.x; p < j.n; p += gridDim.x) {
    const char* s = j.src + j.pairs[2 * p] * j.stride;
    char* d = j.dst + j.pairs[2 * p + 1] * j.stride;
    for (int64_t off = 0; off < j.plane; off += chunk) {
      const uint32_t bytes = static_cast<uint32_t>((j.plane - off < chunk ? j.plane - off : chunk));
      asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(sbar), "r"(bytes));
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(sbuf),
                   "l"(s + off), "r"(bytes), "r"(sbar)
                   : "memory");
      asm volatile(
          "{\n .reg .pred P;\n WAIT:\n mbarrier.try_wait.parity.shared::cta.b64 P, [%0], %1;\n @!P bra WAIT;\n}\n" ::"r"(sbar),
          "r"(phase));
      phase ^= 1;
      asm volatile("cp.async.bulk.global.shared::cta.bulk_group [%0], [%1], %2;" ::"l"(d + off), "r"(sbuf), "r"(bytes)
                   : "memory");
      asm volatile("cp.async.bulk.commit_group;");
      asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
    }
  }
  asm volatile("cp.async.bulk.wait_group 0;" ::: "memory");
}

struct Ctx {
  cudaStream_t st;
  cudaEvent_t a, b;
  int sms;
};

template <typename L>
float median_ms(Ctx& c, L&& launch, int iters = 30) {
  for (int i = 0; i < 3; ++i) launch();
  CK(cudaGetLastError());
  std::vector<float> t(iters);
  for (auto& x : t) {
    CK(cudaEventRecord(c.a, c.st));
    launch();
    CK(cudaEventRecord(c.b, c.st));
    CK(cudaEventSynchronize(c.b));
    CK(cudaEventElapsedTime(&x, c.a, c.b));
  }
  CK(cudaGetLastError());
  std::nth_element(t.begin(), t.begin() + iters / 2, t.end());
  return t[iters / 2];
}

int main(int argc, char** argv) {
  Ctx c;
  CK(cudaStreamCreateWithFlags(&c.st, cudaStreamNonBlocking));
  CK(cudaEventCreate(&c.a));
  CK(cudaEventCreate(&c.b));
  CK(cudaDeviceGetAttribute(&c.sms, cudaDevAttrMultiProcessorCount, 0));
  const size_t pool = size_t{2} << 30;
  char *d0, *d1, *h;
  CK(cudaMalloc(&d0, pool));
  CK(cudaMalloc(&d1, pool));
  CK(cudaMallocHost(&h, pool / 2));
  {
    std::vector<uint32_t> r(64 << 20);
    std::mt19937 g(7);
    for (auto& x : r) x = g();
    for (size_t o = 0; o < pool; o += r.size() * 4) CK(cudaMemcpy(d0 + o, r.data(), r.size() * 4, cudaMemcpyHostToDevice));
    for (size_t o = 0; o < pool / 2; o += r.size() * 4) std::memcpy(h + o, r.data(), r.size() * 4);
  }
  auto ceil = [&](void* dst, const void* src, size_t bytes) {
    return bytes / median_ms(c, [&] { CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, c.st)); }) / 1e6;
  };
  const double cd = ceil(d1, d0, size_t{1} << 30), ch = ceil(d1, h, size_t{1} << 30);
  std::printf("CEILING D2D %.1f GB/s one way, H2D %.1f GB/s\n", cd, ch);
  int32_t* dpairs;
  CK(cudaMalloc(&dpairs, 2 * 65536 * 4));
  CK(cudaFuncSetAttribute(bulk_per_run, cudaFuncAttributeMaxDynamicSharedMemorySize, 32 << 10));
  std::mt19937_64 rng(11);
  for (bool h2d : {false, true})
    for (int64_t plane : {int64_t{2} << 10, int64_t{16} << 10, int64_t{32} << 10, int64_t{128} << 10})
      for (size_t span : {pool, size_t{256} << 20}) {
        const char* src = h2d ? h : d0;
        const size_t sspan = h2d ? std::min(span, pool / 2) : span;
        const int64_t stride = plane;  // a pool of single planes; blocks at random
        const int64_t nb = static_cast<int64_t>(std::min(sspan, span) / stride);
        for (int64_t n : {int64_t{1024}, int64_t{4096}, int64_t{16384}}) {
          if (n > nb || n * plane > (int64_t{1} << 30)) continue;
          if (h2d && n > 4096) continue;
          if (h2d && span != pool) continue;
          std::vector<int32_t> sb(nb), db(nb), pr(2 * n);
          std::iota(sb.begin(), sb.end(), 0);
          std::iota(db.begin(), db.end(), 0);
          std::shuffle(sb.begin(), sb.end(), rng);
          std::shuffle(db.begin(), db.end(), rng);
          for (int64_t i = 0; i < n; ++i) pr[2 * i] = sb[i], pr[2 * i + 1] = db[i];
          CK(cudaMemcpy(dpairs, pr.data(), pr.size() * 4, cudaMemcpyHostToDevice));
          Job j{src, d1, dpairs, plane, stride, static_cast<int32_t>(n)};
          const double bytes = double(n) * plane, cl = h2d ? ch : cd;
          auto report = [&](const char* name, float ms) {
            // check the last pair
            std::vector<char> a(plane), b(plane);
            CK(cudaStreamSynchronize(c.st));
            CK(cudaMemcpy(a.data(), src + int64_t(pr[2 * (n - 1)]) * stride, plane, cudaMemcpyDefault));
            CK(cudaMemcpy(b.data(), d1 + int64_t(pr[2 * (n - 1) + 1]) * stride, plane, cudaMemcpyDefault));
            const bool ok = a == b;
            std::printf("%s plane=%lldKiB pool=%zuMiB blocks=%lld %-28s %8.1f GB/s %5.1f%% %s\n", h2d ? "H2D" : "D2D",
                        (long long)(plane >> 10), span >> 20, (long long)n, name, bytes / ms / 1e6,
                        100 * bytes / ms / 1e6 / cl, ok ? "" : "WRONG");
            CK(cudaMemset(d1 + int64_t(pr[2 * (n - 1) + 1]) * stride, 0, plane));
          };
          report("A per_run d4 t256", median_ms(c, [&] { per_run<4><<<n, 256, 0, c.st>>>(j); }));
          report("B per_run d8 t256", median_ms(c, [&] { per_run<8><<<n, 256, 0, c.st>>>(j); }));
          report("B2 per_run d8 t128", median_ms(c, [&] { per_run<8><<<n, 128, 0, c.st>>>(j); }));
          for (int k : {2, 4, 8}) {
            char name[64];
            std::snprintf(name, sizeof name, "C persist d8 t256 %dxSM", k);
            report(name, median_ms(c, [&] { persistent<8><<<std::min<int64_t>(n, k * c.sms), 256, 0, c.st>>>(j); }));
          }
          report("C2 persist d4 t512 4xSM", median_ms(c, [&] { persistent<4><<<std::min<int64_t>(n, 4 * c.sms), 512, 0, c.st>>>(j); }));
          report("E warp d8 8xSM t256", median_ms(c, [&] { warp_per_run<8><<<8 * c.sms, 256, 0, c.st>>>(j); }));
          report("E2 warp d16 8xSM t256", median_ms(c, [&] { warp_per_run<16><<<8 * c.sms, 256, 0, c.st>>>(j); }));
          if (plane >= (16 << 10) && !h2d) {
            const int sm = static_cast<int>(std::min<int64_t>(plane, 32 << 10));
            report("F bulk 1 thr 6xSM", median_ms(c, [&] { bulk_per_run<<<std::min<int64_t>(n, 6 * c.sms), 32, sm, c.st>>>(j); }));
          }
        }
      }
  std::printf("done\n");
  return 0;
}
