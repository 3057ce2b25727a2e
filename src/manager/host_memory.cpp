#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/status.hpp"
#include "manager/physical_memory.hpp"

namespace kvx::manager {
namespace {

uint64_t round_up(uint64_t v, uint64_t g) { return (v + g - 1) / g * g; }

class HostMemory final : public PhysicalMemory {
 public:
  HostMemory(uint8_t* base, uint64_t reserved, uint64_t page)
      : base_(base), reserved_(reserved), page_(page) {}
  ~HostMemory() override { munmap(base_, reserved_); }

  kvx_status_t commit(uint64_t bytes) override {
    const uint64_t want = round_up(bytes, page_);
    if (want <= committed_) return KVX_OK;
    if (want > reserved_) {
      return fail(KVX_ERR_OUT_OF_MEMORY, "host pool: commit of {} bytes past the {} reserved", want, reserved_);
    }
    if (mprotect(base_ + committed_, want - committed_, PROT_READ | PROT_WRITE) != 0) {
      return fail(KVX_ERR_OUT_OF_MEMORY, "host pool: mprotect of {} bytes failed: {}", want - committed_,
                  std::strerror(errno));
    }
    committed_ = want;
    return KVX_OK;
  }

  kvx_status_t shrink(uint64_t bytes) override {
    const uint64_t keep = round_up(bytes, page_);
    if (keep >= committed_) return KVX_OK;
    // DONTNEED returns the pages to the kernel; PROT_NONE makes a stale
    // pointer into the released part fault instead of reading zeros.
    if (madvise(base_ + keep, committed_ - keep, MADV_DONTNEED) != 0 ||
        mprotect(base_ + keep, committed_ - keep, PROT_NONE) != 0) {
      return fail(KVX_ERR_INTERNAL, "host pool: release of {} bytes failed: {}", committed_ - keep,
                  std::strerror(errno));
    }
    committed_ = keep;
    return KVX_OK;
  }

  void* base() const override { return base_; }
  uint64_t committed_bytes() const override { return committed_; }
  uint64_t reserved_bytes() const override { return reserved_; }
  uint64_t granularity() const override { return page_; }

 private:
  uint8_t* base_;
  uint64_t reserved_;
  uint64_t page_;
  uint64_t committed_ = 0;
};

}  // namespace

kvx_status_t create_host_memory(uint64_t reserve_bytes, std::unique_ptr<PhysicalMemory>* out) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  const uint64_t reserved = round_up(reserve_bytes == 0 ? 1 : reserve_bytes, page);
  void* p = mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return fail(KVX_ERR_OUT_OF_MEMORY, "host pool: reserving {} bytes of address space failed: {}", reserved,
                std::strerror(errno));
  }
  *out = std::make_unique<HostMemory>(static_cast<uint8_t*>(p), reserved, page);
  return KVX_OK;
}

#ifndef KVX_HAVE_CUDA
kvx_status_t create_cuda_vmm_memory(int, uint64_t, std::unique_ptr<PhysicalMemory>*) {
  return fail(KVX_ERR_UNSUPPORTED, "config.memory: KVX_POOL_MEMORY_CUDA_VMM needs a build with CUDA");
}
kvx_status_t create_cuda_pinned_memory(int, uint64_t, std::unique_ptr<PhysicalMemory>*) {
  return fail(KVX_ERR_UNSUPPORTED, "config.memory: pinned host memory needs a build with CUDA");
}
#endif

}  // namespace kvx::manager
