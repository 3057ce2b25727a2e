// The device pool on the CUDA driver's virtual memory API: the address range
// is reserved once (so block pointers never move), and physical chunks of the
// allocation granularity are created and mapped only as blocks are first used.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <type_traits>

#include <vector>

#include "core/status.hpp"
#include "manager/physical_memory.hpp"

namespace kvx::manager {
namespace {

// The driver API through entry points resolved at run time by the CUDA
// runtime: libkvx.so never links libcuda.so, so it loads (and its CPU paths
// run) on machines without a GPU driver, such as CI.
struct Driver {
  decltype(&::cuCtxPopCurrent) cuCtxPopCurrent = nullptr;
  decltype(&::cuCtxPushCurrent) cuCtxPushCurrent = nullptr;
  decltype(&::cuDeviceGet) cuDeviceGet = nullptr;
  decltype(&::cuDeviceGetAttribute) cuDeviceGetAttribute = nullptr;
  decltype(&::cuDeviceGetCount) cuDeviceGetCount = nullptr;
  decltype(&::cuDevicePrimaryCtxRelease) cuDevicePrimaryCtxRelease = nullptr;
  decltype(&::cuDevicePrimaryCtxRetain) cuDevicePrimaryCtxRetain = nullptr;
  decltype(&::cuGetErrorName) cuGetErrorName = nullptr;
  decltype(&::cuInit) cuInit = nullptr;
  decltype(&::cuMemAddressFree) cuMemAddressFree = nullptr;
  decltype(&::cuMemAddressReserve) cuMemAddressReserve = nullptr;
  decltype(&::cuMemCreate) cuMemCreate = nullptr;
  decltype(&::cuMemFreeHost) cuMemFreeHost = nullptr;
  decltype(&::cuMemGetAllocationGranularity) cuMemGetAllocationGranularity = nullptr;
  decltype(&::cuMemHostAlloc) cuMemHostAlloc = nullptr;
  decltype(&::cuMemMap) cuMemMap = nullptr;
  decltype(&::cuMemRelease) cuMemRelease = nullptr;
  decltype(&::cuMemSetAccess) cuMemSetAccess = nullptr;
  decltype(&::cuMemUnmap) cuMemUnmap = nullptr;
  bool ok = false;
};

const Driver& driver() {
  static const Driver table = [] {
    Driver d;
    bool all = true;
    auto load = [&all](const char* symbol, auto* fn) {
      void* p = nullptr;
      cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
      if (cudaGetDriverEntryPointByVersion(symbol, &p, CUDA_VERSION, cudaEnableDefault, &found) != cudaSuccess ||
          found != cudaDriverEntryPointSuccess || p == nullptr) {
        all = false;
        return;
      }
      *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(p);
    };
    load("cuCtxPopCurrent", &d.cuCtxPopCurrent);
    load("cuCtxPushCurrent", &d.cuCtxPushCurrent);
    load("cuDeviceGet", &d.cuDeviceGet);
    load("cuDeviceGetAttribute", &d.cuDeviceGetAttribute);
    load("cuDeviceGetCount", &d.cuDeviceGetCount);
    load("cuDevicePrimaryCtxRelease", &d.cuDevicePrimaryCtxRelease);
    load("cuDevicePrimaryCtxRetain", &d.cuDevicePrimaryCtxRetain);
    load("cuGetErrorName", &d.cuGetErrorName);
    load("cuInit", &d.cuInit);
    load("cuMemAddressFree", &d.cuMemAddressFree);
    load("cuMemAddressReserve", &d.cuMemAddressReserve);
    load("cuMemCreate", &d.cuMemCreate);
    load("cuMemFreeHost", &d.cuMemFreeHost);
    load("cuMemGetAllocationGranularity", &d.cuMemGetAllocationGranularity);
    load("cuMemHostAlloc", &d.cuMemHostAlloc);
    load("cuMemMap", &d.cuMemMap);
    load("cuMemRelease", &d.cuMemRelease);
    load("cuMemSetAccess", &d.cuMemSetAccess);
    load("cuMemUnmap", &d.cuMemUnmap);
    d.ok = all;
    return d;
  }();
  return table;
}

kvx_status_t cu_fail(CUresult r, const char* what) {
  const char* name = nullptr;
  if (driver().cuGetErrorName != nullptr) driver().cuGetErrorName(r, &name);
  return fail(KVX_ERR_DEVICE, "CUDA pool: {} failed: {}", what, name != nullptr ? name : "unknown error");
}

#define KVX_CU_TRY(call)                             \
  do {                                               \
    const CUresult kvx_cu_r_ = (call);               \
    if (kvx_cu_r_ != CUDA_SUCCESS) return cu_fail(kvx_cu_r_, #call); \
  } while (0)

// Makes the device's primary context current for the lifetime of the scope:
// VMM calls need a context, and the caller's own (if any) is restored.
class ContextScope {
 public:
  explicit ContextScope(CUcontext ctx) : ok_(driver().cuCtxPushCurrent(ctx) == CUDA_SUCCESS) {}
  ~ContextScope() {
    CUcontext ignored;
    if (ok_) driver().cuCtxPopCurrent(&ignored);
  }
  bool ok() const { return ok_; }

 private:
  bool ok_;
};

uint64_t round_up(uint64_t v, uint64_t g) { return (v + g - 1) / g * g; }

class CudaVmmMemory final : public PhysicalMemory {
 public:
  CudaVmmMemory(CUdevice device, CUcontext ctx, CUdeviceptr base, uint64_t reserved, uint64_t granularity)
      : device_(device), ctx_(ctx), base_(base), reserved_(reserved), granularity_(granularity) {}

  ~CudaVmmMemory() override {
    {
      ContextScope scope(ctx_);
      release_from(0);
      driver().cuMemAddressFree(base_, reserved_);
    }
    driver().cuDevicePrimaryCtxRelease(device_);
  }

  kvx_status_t commit(uint64_t bytes) override {
    const uint64_t want = round_up(bytes, granularity_);
    if (want <= committed()) return KVX_OK;
    if (want > reserved_) {
      return fail(KVX_ERR_OUT_OF_MEMORY, "CUDA pool: commit of {} bytes past the {} reserved", want, reserved_);
    }
    ContextScope scope(ctx_);
    if (!scope.ok()) return fail(KVX_ERR_DEVICE, "CUDA pool: cannot make the primary context current");
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = device_;
    CUmemAccessDesc access = {};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    while (committed() < want) {
      const CUdeviceptr at = base_ + committed();
      CUmemGenericAllocationHandle handle;
      const CUresult created = driver().cuMemCreate(&handle, granularity_, &prop, 0);
      if (created == CUDA_ERROR_OUT_OF_MEMORY) {
        return fail(KVX_ERR_OUT_OF_MEMORY, "CUDA pool: device {} has no {} bytes left", device_, granularity_);
      }
      KVX_CU_TRY(created);
      CUresult r = driver().cuMemMap(at, granularity_, 0, handle, 0);
      if (r == CUDA_SUCCESS) {
        r = driver().cuMemSetAccess(at, granularity_, &access, 1);
        if (r != CUDA_SUCCESS) driver().cuMemUnmap(at, granularity_);
      }
      if (r != CUDA_SUCCESS) {
        driver().cuMemRelease(handle);
        return cu_fail(r, "cuMemMap/cuMemSetAccess");
      }
      chunks_.push_back(handle);
    }
    return KVX_OK;
  }

  kvx_status_t shrink(uint64_t bytes) override {
    const uint64_t keep = round_up(bytes, granularity_);
    if (keep >= committed()) return KVX_OK;
    ContextScope scope(ctx_);
    if (!scope.ok()) return fail(KVX_ERR_DEVICE, "CUDA pool: cannot make the primary context current");
    return release_from(static_cast<size_t>(keep / granularity_));
  }

  void* base() const override { return reinterpret_cast<void*>(base_); }
  uint64_t committed_bytes() const override { return committed(); }
  uint64_t reserved_bytes() const override { return reserved_; }
  uint64_t granularity() const override { return granularity_; }

 private:
  uint64_t committed() const { return static_cast<uint64_t>(chunks_.size()) * granularity_; }

  kvx_status_t release_from(size_t keep_chunks) {
    while (chunks_.size() > keep_chunks) {
      const CUdeviceptr at = base_ + (chunks_.size() - 1) * granularity_;
      KVX_CU_TRY(driver().cuMemUnmap(at, granularity_));
      KVX_CU_TRY(driver().cuMemRelease(chunks_.back()));
      chunks_.pop_back();
    }
    return KVX_OK;
  }

  CUdevice device_;
  CUcontext ctx_;
  CUdeviceptr base_;
  uint64_t reserved_;
  uint64_t granularity_;
  std::vector<CUmemGenericAllocationHandle> chunks_;
};

// Page-locked host memory, allocated whole (see physical_memory.hpp).
class CudaPinnedMemory final : public PhysicalMemory {
 public:
  CudaPinnedMemory(CUdevice device, CUcontext ctx, void* base, uint64_t bytes)
      : device_(device), ctx_(ctx), base_(base), bytes_(bytes) {}
  ~CudaPinnedMemory() override {
    {
      ContextScope scope(ctx_);
      driver().cuMemFreeHost(base_);
    }
    driver().cuDevicePrimaryCtxRelease(device_);
  }
  kvx_status_t commit(uint64_t bytes) override {
    if (bytes > bytes_) return fail(KVX_ERR_OUT_OF_MEMORY, "pinned host tier: {} bytes past {}", bytes, bytes_);
    return KVX_OK;
  }
  kvx_status_t shrink(uint64_t) override { return KVX_OK; }
  void* base() const override { return base_; }
  uint64_t committed_bytes() const override { return bytes_; }
  uint64_t reserved_bytes() const override { return bytes_; }
  uint64_t granularity() const override { return bytes_; }

 private:
  CUdevice device_;
  CUcontext ctx_;
  void* base_;
  uint64_t bytes_;
};

kvx_status_t open_device(int device_id, CUdevice* device, CUcontext* ctx) {
  if (!driver().ok)
    return fail(KVX_ERR_UNSUPPORTED, "config.memory: the CUDA driver is not available on this machine");
  const CUresult init = driver().cuInit(0);
  if (init != CUDA_SUCCESS) return cu_fail(init, "cuInit (no usable GPU or driver?)");
  int count = 0;
  KVX_CU_TRY(driver().cuDeviceGetCount(&count));
  if (device_id >= count) {
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.device_id: {} but {} CUDA devices are present", device_id, count);
  }
  KVX_CU_TRY(driver().cuDeviceGet(device, device_id));
  KVX_CU_TRY(driver().cuDevicePrimaryCtxRetain(ctx, *device));
  return KVX_OK;
}

}  // namespace

kvx_status_t create_cuda_vmm_memory(int device_id, uint64_t reserve_bytes, std::unique_ptr<PhysicalMemory>* out) {
  CUdevice device;
  CUcontext ctx;
  KVX_TRY(open_device(device_id, &device, &ctx));
  int vmm = 0;
  driver().cuDeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, device);
  if (vmm == 0) {
    driver().cuDevicePrimaryCtxRelease(device);
    return fail(KVX_ERR_UNSUPPORTED, "config.memory: device {} does not support virtual memory management", device_id);
  }
  CUmemAllocationProp prop = {};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  size_t granularity = 0;
  CUdeviceptr base = 0;
  CUresult r = driver().cuMemGetAllocationGranularity(&granularity, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM);
  const uint64_t reserved = round_up(reserve_bytes == 0 ? 1 : reserve_bytes, granularity == 0 ? 1 : granularity);
  if (r == CUDA_SUCCESS) {
    ContextScope scope(ctx);
    r = scope.ok() ? driver().cuMemAddressReserve(&base, reserved, 0, 0, 0) : CUDA_ERROR_INVALID_CONTEXT;
  }
  if (r != CUDA_SUCCESS) {
    driver().cuDevicePrimaryCtxRelease(device);
    return cu_fail(r, "cuMemGetAllocationGranularity/cuMemAddressReserve");
  }
  *out = std::make_unique<CudaVmmMemory>(device, ctx, base, reserved, granularity);
  return KVX_OK;
}

kvx_status_t create_cuda_pinned_memory(int device_id, uint64_t bytes, std::unique_ptr<PhysicalMemory>* out) {
  CUdevice device;
  CUcontext ctx;
  KVX_TRY(open_device(device_id, &device, &ctx));
  void* p = nullptr;
  CUresult r;
  {
    ContextScope scope(ctx);
    r = scope.ok() ? driver().cuMemHostAlloc(&p, bytes == 0 ? 1 : bytes, CU_MEMHOSTALLOC_PORTABLE) : CUDA_ERROR_INVALID_CONTEXT;
  }
  if (r != CUDA_SUCCESS) {
    driver().cuDevicePrimaryCtxRelease(device);
    return cu_fail(r, "cuMemHostAlloc");
  }
  *out = std::make_unique<CudaPinnedMemory>(device, ctx, p, bytes);
  return KVX_OK;
}

}  // namespace kvx::manager
