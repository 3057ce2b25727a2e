#include "gpu_harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "core/dtype.hpp"

namespace kvx_gpu {

const char* no_device_reason() {
  static const char* reason = [] () -> const char* {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) return "no CUDA device: cudaGetDeviceCount failed (no driver or no GPU on this machine)";
    if (n == 0) return "no CUDA device on this machine";
    return nullptr;
  }();
  return reason;
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0 && cudaMalloc(&ptr_, bytes) != cudaSuccess) {
    ptr_ = nullptr;
    bytes_ = 0;
    ADD_FAILURE() << "cudaMalloc of " << bytes << " bytes failed";
  }
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_ != nullptr) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr_ != nullptr) cudaFree(ptr_);
}
void DeviceBuffer::upload(const void* host, size_t bytes) {
  if (bytes > 0) {
    EXPECT_EQ(cudaMemcpy(ptr_, host, bytes, cudaMemcpyHostToDevice), cudaSuccess);
  }
}
void DeviceBuffer::download(void* host, size_t bytes) const {
  if (bytes > 0) {
    EXPECT_EQ(cudaMemcpy(host, ptr_, bytes, cudaMemcpyDeviceToHost), cudaSuccess);
  }
}
void DeviceBuffer::poison() {
  if (bytes_ > 0) {
    EXPECT_EQ(cudaMemset(ptr_, 0xff, bytes_), cudaSuccess);
  }
}

size_t dtype_size(kvx_dtype_t dtype) { return dtype == KVX_DTYPE_F32 ? 4 : 2; }

float element(const void* p, kvx_dtype_t dtype) { return kvx::load_float(p, 0, dtype); }

void fill_random(void* host, size_t bytes, kvx_dtype_t dtype, Rng& rng) {
  std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
  const size_t n = bytes / dtype_size(dtype);
  for (size_t i = 0; i < n; ++i) kvx::store_float(host, static_cast<int64_t>(i), dtype, dist(rng));
}

// ------------------------------------------------------------------ Cache --

bool Cache::make(kvx_preset_t preset, const kvx_preset_params_t& params, Rng& rng, bool* expressible) {
  kvx_preset_params_t p = params;
  p.memory = KVX_MEMORY_CUDA_DEVICE;
  const kvx_status_t s = kvx_layout_preset(preset, &p, &device_);
  *expressible = s != KVX_ERR_UNSUPPORTED;
  if (!*expressible) return false;
  EXPECT_EQ(s, KVX_OK) << kvx_last_error();
  if (s != KVX_OK) return false;
  uint64_t span = 0;
  EXPECT_EQ(kvx_layout_span_bytes(&device_, &span), KVX_OK) << kvx_last_error();
  const size_t bases = device_.base_kind == KVX_BASE_STRIDED     ? 1
                       : device_.base_kind == KVX_BASE_LAYER_PTRS ? static_cast<size_t>(device_.num_layers)
                                                                  : static_cast<size_t>(device_.num_layers * device_.num_kv);
  host_bytes_.assign(bases, std::vector<std::byte>(span));
  device_bytes_.clear();
  host_ptrs_.clear();
  device_ptrs_.clear();
  for (size_t i = 0; i < bases; ++i) {
    fill_random(host_bytes_[i].data(), span, p.dtype, rng);
    device_bytes_.emplace_back(span);
    host_ptrs_.push_back(host_bytes_[i].data());
    device_ptrs_.push_back(device_bytes_.back().get());
  }
  host_ = device_;
  host_.memory = KVX_MEMORY_HOST;
  if (device_.base_kind == KVX_BASE_STRIDED) {
    device_.base = device_ptrs_[0];
    host_.base = host_ptrs_[0];
  } else {
    device_.ptrs = device_ptrs_.data();
    host_.ptrs = host_ptrs_.data();
  }
  upload();
  return true;
}

void Cache::upload() {
  for (size_t i = 0; i < host_bytes_.size(); ++i) device_bytes_[i].upload(host_bytes_[i].data(), host_bytes_[i].size());
}
void Cache::download() {
  for (size_t i = 0; i < host_bytes_.size(); ++i)
    device_bytes_[i].download(host_bytes_[i].data(), host_bytes_[i].size());
}

// -------------------------------------------------------------- PageTable --

int64_t PageTable::pages_needed(const std::vector<int64_t>& lens, int64_t block_tokens) {
  int64_t pages = 0;
  for (int64_t len : lens) pages += (len + block_tokens - 1) / block_tokens;
  return pages;
}

void PageTable::make(const std::vector<int64_t>& lens, int64_t block_tokens, int64_t num_blocks, bool csr, Rng& rng) {
  block_tokens_ = block_tokens;
  csr_ = csr;
  std::vector<int32_t> ids(static_cast<size_t>(num_blocks));
  std::iota(ids.begin(), ids.end(), 0);
  std::shuffle(ids.begin(), ids.end(), rng);
  blocks_.assign(lens.size(), {});
  size_t next = 0;
  for (size_t b = 0; b < lens.size(); ++b) {
    const int64_t pages = (lens[b] + block_tokens - 1) / block_tokens;
    for (int64_t i = 0; i < pages; ++i) blocks_[b].push_back(ids.at(next++));
  }
  set_lens(lens);
}

void PageTable::set_lens(const std::vector<int64_t>& lens) {
  lens_ = lens;
  const int64_t B = static_cast<int64_t>(lens.size());
  int64_t max_pages = 1;
  for (const auto& row : blocks_) max_pages = std::max<int64_t>(max_pages, static_cast<int64_t>(row.size()));
  host_ = kvx_page_table_init();
  host_.num_seqs = B;
  table_.clear(), seq_lens_.clear(), indptr_.clear(), indices_.clear(), last_page_len_.clear();
  if (!csr_) {
    // One spare column and -1 in every unused entry: a read past a sequence's pages faults.
    const int64_t stride = max_pages + 1;
    table_.assign(static_cast<size_t>(std::max<int64_t>(B, 1) * stride), -1);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pages = (lens[b] + block_tokens_ - 1) / block_tokens_;
      for (int64_t i = 0; i < pages; ++i) table_[b * stride + i] = blocks_[b][i];
      seq_lens_.push_back(static_cast<int32_t>(lens[b]));
    }
    host_.kind = KVX_PAGE_TABLE_DENSE;
    host_.block_table_stride = stride;
    host_.max_blocks = max_pages;
  } else {
    indptr_.push_back(0);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t pages = (lens[b] + block_tokens_ - 1) / block_tokens_;
      for (int64_t i = 0; i < pages; ++i) indices_.push_back(blocks_[b][i]);
      indptr_.push_back(static_cast<int32_t>(indices_.size()));
      last_page_len_.push_back(static_cast<int32_t>(pages == 0 ? 0 : lens[b] - (pages - 1) * block_tokens_));
    }
    if (indices_.empty()) indices_.push_back(-1);
    host_.kind = KVX_PAGE_TABLE_CSR;
  }
  publish();
}

void PageTable::publish() {
  auto up = [](DeviceBuffer& d, const std::vector<int32_t>& h) {
    if (d.bytes() < h.size() * 4) d = DeviceBuffer(std::max<size_t>(h.size(), 1) * 4);
    d.upload(h.data(), h.size() * 4);
    return static_cast<const int32_t*>(d.get());
  };
  host_.memory = KVX_MEMORY_HOST;
  device_ = host_;
  device_.memory = KVX_MEMORY_CUDA_DEVICE;
  if (!csr_) {
    host_.block_table = table_.data();
    host_.seq_lens = seq_lens_.data();
    device_.block_table = up(d_table_, table_);
    device_.seq_lens = up(d_seq_lens_, seq_lens_);
  } else {
    host_.indptr = indptr_.data();
    host_.indices = indices_.data();
    host_.last_page_len = last_page_len_.data();
    device_.indptr = up(d_indptr_, indptr_);
    device_.indices = up(d_indices_, indices_);
    device_.last_page_len = up(d_last_page_len_, last_page_len_);
  }
}

// ----------------------------------------------------------------- Tensor --

void Tensor::make(int64_t tokens, int64_t heads, int64_t dim, kvx_dtype_t dtype, Rng& rng) {
  const size_t elem = dtype_size(dtype);
  host = kvx_tensor_t{};
  host.dtype = dtype;
  host.memory = KVX_MEMORY_HOST;
  host.num_tokens = tokens;
  host.num_heads = heads;
  host.head_dim = dim;
  host.head_stride_bytes = static_cast<int64_t>(dim * elem);
  host.token_stride_bytes = heads * host.head_stride_bytes;
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(tokens, 1) * host.token_stride_bytes);
  host_bytes.assign(bytes, std::byte{0});
  fill_random(host_bytes.data(), bytes, dtype, rng);
  host.data = host_bytes.data();
  device_bytes = DeviceBuffer(bytes);
  device = host;
  device.memory = KVX_MEMORY_CUDA_DEVICE;
  device.data = device_bytes.get();
  upload();
}
void Tensor::upload() { device_bytes.upload(host_bytes.data(), host_bytes.size()); }
void Tensor::download() { device_bytes.download(host_bytes.data(), host_bytes.size()); }
float Tensor::at(int64_t token, int64_t head, int64_t d) const {
  const std::byte* p = host_bytes.data() + token * host.token_stride_bytes + head * host.head_stride_bytes +
                       d * static_cast<int64_t>(dtype_size(host.dtype));
  return element(p, host.dtype);
}

Error compare(const Tensor& out, const Tensor& ref) {
  Error e;
  double max_ref = 0.0, max_diff = 0.0;
  for (int64_t t = 0; t < ref.host.num_tokens; ++t)
    for (int64_t h = 0; h < ref.host.num_heads; ++h)
      for (int64_t d = 0; d < ref.host.head_dim; ++d) {
        const double r = ref.at(t, h, d), o = out.at(t, h, d);
        if (std::isnan(o)) {
          ++e.nans;
          continue;
        }
        if (std::isinf(r) || std::isinf(o)) {  // lse of a query with no visible key
          if (r != o) max_diff = INFINITY;
          continue;
        }
        max_ref = std::max(max_ref, std::fabs(r));
        max_diff = std::max(max_diff, std::fabs(o - r));
      }
  e.rel = max_diff / std::max(max_ref, 1e-30);
  return e;
}

double tolerance(kvx_dtype_t dtype) {
  switch (dtype) {
    case KVX_DTYPE_F32: return 1e-5;
    case KVX_DTYPE_F16: return 2e-3;
    default: return 1e-2;
  }
}

kvx_exec_t cpu_exec() {
  kvx_exec_t e = kvx_exec_init();
  e.backend = KVX_BACKEND_CPU;
  return e;
}

kvx_exec_t cuda_exec(cudaStream_t stream, void* workspace, uint64_t workspace_bytes) {
  kvx_exec_t e = kvx_exec_init();
  e.backend = KVX_BACKEND_CUDA;
  e.stream = stream;
  e.workspace = workspace;
  e.workspace_bytes = workspace_bytes;
  return e;
}

std::vector<kvx_preset_t> contiguous_presets() {
  std::vector<kvx_preset_t> out;
  for (int p = KVX_PRESET_FIRST; p <= KVX_PRESET_LAST; ++p)
    if (p != KVX_PRESET_VLLM_LEGACY) out.push_back(static_cast<kvx_preset_t>(p));
  return out;
}

}  // namespace kvx_gpu
