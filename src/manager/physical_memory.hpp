// Physical memory behind a block pool: an address range reserved once, backed
// only as far as blocks have been used, so pointers never move and memory is
// never committed up front.
#pragma once

#include <cstdint>
#include <memory>

#include "kvx/status.h"

namespace kvx::manager {

class PhysicalMemory {
 public:
  virtual ~PhysicalMemory() = default;
  // Backs bytes [0, bytes) of the range (rounded up to the granularity).
  virtual kvx_status_t commit(uint64_t bytes) = 0;
  // Releases the backing of bytes past `bytes` (rounded up to the granularity).
  virtual kvx_status_t shrink(uint64_t bytes) = 0;
  virtual void* base() const = 0;
  virtual uint64_t committed_bytes() const = 0;
  virtual uint64_t reserved_bytes() const = 0;
  virtual uint64_t granularity() const = 0;
};

// Host pages: mmap(PROT_NONE) reservation, mprotect to commit, madvise +
// mprotect to release.
kvx_status_t create_host_memory(uint64_t reserve_bytes, std::unique_ptr<PhysicalMemory>* out);

// CUDA driver virtual memory on device `device_id`: cuMemAddressReserve once,
// cuMemCreate + cuMemMap + cuMemSetAccess per granule on demand, cuMemUnmap +
// cuMemRelease on shrink. KVX_ERR_UNSUPPORTED in builds without CUDA.
kvx_status_t create_cuda_vmm_memory(int device_id, uint64_t reserve_bytes,
                                    std::unique_ptr<PhysicalMemory>* out);

// Page-locked host memory for the offload tier of a CUDA pool (so that
// device-host copies run at full speed); committed whole at creation, since
// the driver pins whole allocations. KVX_ERR_UNSUPPORTED without CUDA.
kvx_status_t create_cuda_pinned_memory(int device_id, uint64_t bytes, std::unique_ptr<PhysicalMemory>* out);

}  // namespace kvx::manager
