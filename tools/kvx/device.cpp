// Host and CUDA memory for the tool (device.hpp).
#include "device.hpp"

#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include <fmt/format.h>

#ifdef KVX_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace kvx::tool {

#ifdef KVX_HAVE_CUDA
namespace {
void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    throw std::runtime_error(
        fmt::format("{}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
  }
}
}  // namespace
#else
namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error("device memory requested, but this build of kvx has no CUDA");
}
}  // namespace
#endif

kvx_memory_t memory_of(Place place) {
  return place == Place::kDevice ? KVX_MEMORY_CUDA_DEVICE : KVX_MEMORY_HOST;
}
kvx_backend_t backend_of(Place place) {
  return place == Place::kDevice ? KVX_BACKEND_CUDA : KVX_BACKEND_CPU;
}
const char* place_name(Place place) { return place == Place::kDevice ? "cuda" : "cpu"; }

void synchronize(Place place) {
  if (place == Place::kHost) return;
#ifdef KVX_HAVE_CUDA
  cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
#else
  no_cuda();
#endif
}

Buffer::Buffer(Place place, size_t bytes) : place_(place), bytes_(bytes) {
  // Never a zero-byte allocation, so data() is always a valid, aligned pointer.
  const size_t n = bytes == 0 ? 1 : bytes;
  if (place == Place::kHost) {
    // 256 bytes: the widest alignment any layout or kernel could ask of a base.
    data_ = std::aligned_alloc(256, (n + 255) / 256 * 256);
    if (data_ == nullptr) throw std::bad_alloc();
    return;
  }
#ifdef KVX_HAVE_CUDA
  cuda_check(cudaMalloc(&data_, n), "cudaMalloc");
#else
  no_cuda();
#endif
}

Buffer::Buffer(Buffer&& other) noexcept
    : place_(other.place_),
      data_(std::exchange(other.data_, nullptr)),
      bytes_(std::exchange(other.bytes_, 0)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    release();
    place_ = other.place_;
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

Buffer::~Buffer() { release(); }

void Buffer::release() noexcept {
  if (data_ == nullptr) return;
  if (place_ == Place::kHost) {
    std::free(data_);
  } else {
#ifdef KVX_HAVE_CUDA
    cudaFree(data_);
#endif
  }
  data_ = nullptr;
}

void Buffer::upload(const void* src, size_t bytes) {
  if (bytes > bytes_) throw std::runtime_error("Buffer::upload: more bytes than the buffer holds");
  if (bytes == 0) return;
  if (place_ == Place::kHost) {
    std::memcpy(data_, src, bytes);
    return;
  }
#ifdef KVX_HAVE_CUDA
  cuda_check(cudaMemcpy(data_, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to device");
#else
  no_cuda();
#endif
}

void Buffer::download(void* dst, size_t bytes) const {
  if (bytes > bytes_)
    throw std::runtime_error("Buffer::download: more bytes than the buffer holds");
  if (bytes == 0) return;
  if (place_ == Place::kHost) {
    std::memcpy(dst, data_, bytes);
    return;
  }
#ifdef KVX_HAVE_CUDA
  cuda_check(cudaMemcpy(dst, data_, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to host");
#else
  no_cuda();
#endif
}

void Buffer::fill(uint8_t byte) {
  if (bytes_ == 0) return;
  if (place_ == Place::kHost) {
    std::memset(data_, byte, bytes_);
    return;
  }
#ifdef KVX_HAVE_CUDA
  cuda_check(cudaMemset(data_, byte, bytes_), "cudaMemset");
#else
  no_cuda();
#endif
}

std::vector<CudaDevice> cuda_devices(std::string* why_none) {
  std::vector<CudaDevice> devices;
#ifdef KVX_HAVE_CUDA
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why_none) *why_none = fmt::format("no CUDA device: {}", cudaGetErrorString(e));
    return devices;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) continue;
    devices.push_back({.ordinal = i,
                       .name = prop.name,
                       .major = prop.major,
                       .minor = prop.minor,
                       .sms = prop.multiProcessorCount,
                       .memory_bytes = static_cast<uint64_t>(prop.totalGlobalMem)});
  }
  if (devices.empty() && why_none) *why_none = "no CUDA device present";
#else
  if (why_none)
    *why_none = "this build has no CUDA (configure with nvcc present or KVX_ENABLE_CUDA=ON)";
#endif
  return devices;
}

std::string cuda_versions() {
#ifdef KVX_HAVE_CUDA
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  auto show = [](int v) {
    return v == 0 ? std::string("none") : fmt::format("{}.{}", v / 1000, v % 1000 / 10);
  };
  return fmt::format("CUDA runtime {}, driver supports {}", show(runtime), show(driver));
#else
  return "built without CUDA";
#endif
}

}  // namespace kvx::tool
