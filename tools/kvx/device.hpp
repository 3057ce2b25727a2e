// Where the tool's data lives: host memory (the CPU backend) or CUDA device
// memory (the CUDA backend). Everything CUDA-specific in the tool is behind
// this interface and compiled only when the build has CUDA (KVX_HAVE_CUDA),
// so the demo runs the same code on both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kvx/kvx.h"

namespace kvx::tool {

enum class Place { kHost, kDevice };

kvx_memory_t memory_of(Place place);
kvx_backend_t backend_of(Place place);
const char* place_name(Place place);

// Waits until the work queued on `place` has finished (timing, downloads).
void synchronize(Place place);

// An allocation on the host or on the current CUDA device. Move-only; copies
// to and from host memory are synchronous. Failures throw std::runtime_error.
class Buffer {
 public:
  Buffer() = default;
  Buffer(Place place, size_t bytes);
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&& other) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Place place() const { return place_; }

  void upload(const void* src, size_t bytes);
  void download(void* dst, size_t bytes) const;
  void fill(uint8_t byte);  // poison before an op writes

  template <typename T>
  static Buffer from(Place place, const std::vector<T>& host) {
    Buffer b(place, host.size() * sizeof(T));
    b.upload(host.data(), host.size() * sizeof(T));
    return b;
  }
  template <typename T>
  std::vector<T> to_vector() const {
    std::vector<T> out(bytes_ / sizeof(T));
    download(out.data(), out.size() * sizeof(T));
    return out;
  }

 private:
  void release() noexcept;

  Place place_ = Place::kHost;
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

struct CudaDevice {
  int ordinal = 0;
  std::string name;
  int major = 0, minor = 0;
  int sms = 0;
  uint64_t memory_bytes = 0;
};

// The CUDA devices this process sees. Empty when the build has no CUDA or no
// device is present; *why_none then says which.
std::vector<CudaDevice> cuda_devices(std::string* why_none);

// "CUDA 13.0, driver 13.0" or why not known.
std::string cuda_versions();

}  // namespace kvx::tool
