// The host's cost of enqueueing a kernel by the size of its parameter block
// (the copy kernels carry their work list there: 31 KiB a launch), on an
// idle stream and behind a gate (the stream waiting on a host function, as
// `kvx bench copy` times its host_us). Not part of the build: compiled by
// hand for the device,
//   nvcc -O3 -std=c++17 -arch=sm_90 bench/copy/launch_cost.cu -o launch_cost
// and run there. Prints the median microseconds a launch for bursts of 1
// and 5 launches (5 = the launches of a 16k-pair call).
#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "check_cuda.hpp"

template <int kBytes>
struct Params {
  int n;
  unsigned char payload[kBytes];
};

// Reads one byte of the payload so that the parameter block is live.
template <int kBytes>
__global__ void touch(const __grid_constant__ Params<kBytes> p, unsigned char* out) {
  if (threadIdx.x == 0 && blockIdx.x == 0) out[0] = p.payload[p.n];
}

struct Gate {
  std::atomic<int> open{0};
  static void CUDART_CB wait(void* g) {
    while (static_cast<Gate*>(g)->open.load(std::memory_order_acquire) == 0) std::this_thread::yield();
  }
};

template <int kBytes>
void measure(cudaStream_t s, unsigned char* out) {
  auto* p = new Params<kBytes>();
  p->n = kBytes - 1;
  for (int burst : {1, 5})
    for (bool gated : {false, true}) {
      std::vector<double> us;
      for (int it = 0; it < 60; ++it) {
        Gate gate;
        if (gated) CK(cudaLaunchHostFunc(s, Gate::wait, &gate));
        const auto t0 = std::chrono::steady_clock::now();
        for (int b = 0; b < burst; ++b) touch<kBytes><<<1, 32, 0, s>>>(*p, out);
        const auto t1 = std::chrono::steady_clock::now();
        gate.open.store(1, std::memory_order_release);
        CK(cudaStreamSynchronize(s));
        if (it >= 10) us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count() / burst);
      }
      std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
      std::printf("params %6d B  burst %d  %-6s  %7.2f us a launch\n", kBytes + 4, burst, gated ? "gated" : "idle",
                  us[us.size() / 2]);
    }
  CK(cudaGetLastError());
  delete p;
}

int main() {
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  unsigned char* out;
  CK(cudaMalloc(&out, 16));
  measure<252>(s, out);
  measure<4 * 1024 - 4>(s, out);
  measure<8 * 1024>(s, out);
  measure<16 * 1024>(s, out);
  measure<31 * 1024 + 64>(s, out);
  CK(cudaFree(out));
  return 0;
}
