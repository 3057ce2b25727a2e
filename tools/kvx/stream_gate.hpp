// A gate on a CUDA stream, for the benchmarks: a host function that holds
// the stream until the host opens the gate, so that the work enqueued behind
// it runs back to back and CUDA events time the GPU's work without the
// host's launch cost (nvbench's blocking-kernel method). The host function
// makes no CUDA call. It opens by itself after `timeout` (the host blocked in
// a launch because the stream's queue was full), and says so.
#pragma once

#include <cuda_runtime.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace kvx::tool {

class StreamGate {
 public:
  explicit StreamGate(std::chrono::milliseconds timeout = std::chrono::seconds(2)) : timeout_(timeout) {}
  StreamGate(const StreamGate&) = delete;
  StreamGate& operator=(const StreamGate&) = delete;

  // Closes the gate and enqueues it on `stream`.
  cudaError_t close(cudaStream_t stream) {
    open_.store(false, std::memory_order_relaxed);
    return cudaLaunchHostFunc(stream, &StreamGate::wait, this);
  }
  void open() { open_.store(true, std::memory_order_release); }
  // True once a gate opened by its timeout (read after the stream synchronized).
  bool timed_out() const { return timed_out_.load(std::memory_order_acquire); }

 private:
  static void CUDART_CB wait(void* p) {
    auto* g = static_cast<StreamGate*>(p);
    const auto start = std::chrono::steady_clock::now();
    while (!g->open_.load(std::memory_order_acquire)) {
      if (std::chrono::steady_clock::now() - start > g->timeout_) {
        g->timed_out_.store(true, std::memory_order_release);
        return;
      }
      std::this_thread::yield();
    }
  }

  std::chrono::milliseconds timeout_;
  std::atomic<bool> open_{false};
  std::atomic<bool> timed_out_{false};
};

}  // namespace kvx::tool
