// The offload tier's data path: the block manager's copy lists
// (kvx_manager_take_work) executed as batched block copies on the caller's
// stream, with one event per submission and, per block of each tier, the
// last submission that reads or writes it, so a caller can tell when a block
// may be overwritten or freed.
#include "ops/transfer_offload.hpp"

#include <algorithm>
#include <unordered_set>

#include "core/status.hpp"
#include "layout/layout.hpp"
#include "ops/exec.hpp"
#include "ops/transfer.hpp"
#include "ops/validate_common.hpp"

namespace kvx::ops {
namespace {

// A layout whose pointer table (if any) the offload owns.
void own_layout(const kvx_layout_t& in, kvx_layout_t* out, std::vector<void*>* ptrs) {
  *out = in;
  if (in.base_kind == KVX_BASE_STRIDED) return;
  const int64_t n = in.base_kind == KVX_BASE_LAYER_PTRS ? in.num_layers : in.num_layers * in.num_kv;
  ptrs->assign(in.ptrs, in.ptrs + n);
  out->ptrs = ptrs->data();
}

const char* direction_field(kvx_copy_direction_t d) {
  switch (d) {
    case KVX_COPY_DEVICE_TO_DEVICE: return "device to device";
    case KVX_COPY_DEVICE_TO_HOST: return "device to host";
    default: return "host to device";
  }
}

}  // namespace

Offload::~Offload() {
  for (auto& [ticket, event] : events_) {
    (void)ticket;
    (void)cuda::event_synchronize(event);
    cuda::event_destroy(event);
  }
}

kvx_status_t Offload::create(const kvx_offload_config_t* config, std::unique_ptr<Offload>* out) {
  if (config == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "config: null");
  KVX_TRY(check_abi_header(config->struct_size, config->version, sizeof(kvx_offload_config_t), "config"));
  KVX_TRY(check_reserved(config->reserved, 4, "config.reserved"));
  if (config->reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "config.reserved0: must be zero");
  if (config->device == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "config.device: null");
  if (config->host == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "config.host: null");
  KVX_TRY(validate_layout(config->device, "config.device"));
  KVX_TRY(validate_layout(config->host, "config.host"));
  if (!host_checkable(config->host->memory))
    return fail(KVX_ERR_INVALID_ARGUMENT, "config.host.memory: the host tier lives in host memory");
  auto o = std::unique_ptr<Offload>(new Offload());
  own_layout(*config->device, &o->device_, &o->device_ptrs_);
  own_layout(*config->host, &o->host_, &o->host_ptrs_);
  o->engine_ = config->engine;
  o->dma_mode_ = config->dma_mode;
  o->max_ctas_ = config->max_ctas;
  o->device_ticket_.assign(static_cast<size_t>(o->device_.num_blocks), 0);
  o->host_ticket_.assign(static_cast<size_t>(o->host_.num_blocks), 0);
  // A dry run of one copy each way checks dims, dtype, pointers and engine
  // now rather than at the first submission.
  for (const auto& [src, dst] : {std::pair{&o->device_, &o->host_}, std::pair{&o->host_, &o->device_}}) {
    kvx_block_copy_args_t a = o->args(*src, *dst);
    TransferConfig cfg;
    KVX_TRY(validate_block_copy(&a, nullptr, &cfg));
  }
  *out = std::move(o);
  return KVX_OK;
}

kvx_block_copy_args_t Offload::args(const kvx_layout_t& src, const kvx_layout_t& dst) const {
  kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
  a.src = &src;
  a.dst = &dst;
  a.engine = engine_;
  a.dma_mode = dma_mode_;
  a.max_ctas = max_ctas_;
  return a;
}

kvx_status_t Offload::submit(const kvx_copy_t* items, int64_t n, void* stream, uint64_t* out_ticket) {
  if (n < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "num_items: {} < 0", n);
  if (n > 0 && items == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "items: null");
  // Cut the list into batches: consecutive items of one direction, split
  // where an item would read or write a block that the batch already writes
  // (or write one it reads): the copies of a batch run in parallel.
  struct Batch {
    kvx_copy_direction_t direction;
    std::vector<int32_t> src, dst;
  };
  std::vector<Batch> batches;
  std::unordered_set<int64_t> reads, writes;  // (tier << 32 | block) of the open batch
  auto key = [](bool host, int64_t block) { return (host ? int64_t{1} << 32 : 0) | block; };
  for (int64_t i = 0; i < n; ++i) {
    const kvx_copy_t& c = items[i];
    if (c.direction < KVX_COPY_DEVICE_TO_DEVICE || c.direction > KVX_COPY_HOST_TO_DEVICE)
      return fail(KVX_ERR_INVALID_ARGUMENT, "items[{}].direction: unknown value {}", i, static_cast<int>(c.direction));
    if (c.reserved0 != 0) return fail(KVX_ERR_INVALID_ARGUMENT, "items[{}].reserved0: must be zero", i);
    const bool src_host = c.direction == KVX_COPY_HOST_TO_DEVICE, dst_host = c.direction == KVX_COPY_DEVICE_TO_HOST;
    const int64_t src_n = src_host ? host_.num_blocks : device_.num_blocks;
    const int64_t dst_n = dst_host ? host_.num_blocks : device_.num_blocks;
    if (c.src < 0 || c.src >= src_n)
      return fail(KVX_ERR_INVALID_ARGUMENT, "items[{}].src: block {} is outside [0, {}) ({})", i, c.src, src_n,
                  direction_field(c.direction));
    if (c.dst < 0 || c.dst >= dst_n)
      return fail(KVX_ERR_INVALID_ARGUMENT, "items[{}].dst: block {} is outside [0, {}) ({})", i, c.dst, dst_n,
                  direction_field(c.direction));
    const int64_t r = key(src_host, c.src), w = key(dst_host, c.dst);
    if (batches.empty() || batches.back().direction != c.direction || writes.count(r) || writes.count(w) ||
        reads.count(w)) {
      batches.push_back({c.direction, {}, {}});
      reads.clear();
      writes.clear();
    }
    batches.back().src.push_back(static_cast<int32_t>(c.src));
    batches.back().dst.push_back(static_cast<int32_t>(c.dst));
    reads.insert(r);
    writes.insert(w);
  }
  // Validate every batch before enqueuing any.
  kvx_exec_t exec = KVX_EXEC_INIT;
  exec.stream = stream;
  std::vector<std::pair<kvx_block_copy_args_t, TransferConfig>> runs;
  for (const Batch& b : batches) {
    const kvx_layout_t& src = b.direction == KVX_COPY_HOST_TO_DEVICE ? host_ : device_;
    const kvx_layout_t& dst = b.direction == KVX_COPY_DEVICE_TO_HOST ? host_ : device_;
    kvx_block_copy_args_t a = args(src, dst);
    a.src_blocks = b.src.data();
    a.dst_blocks = b.dst.data();
    a.num_blocks = static_cast<int64_t>(b.src.size());
    TransferConfig cfg;
    KVX_TRY(validate_block_copy(&a, &exec, &cfg));
    runs.push_back({a, cfg});
  }
  bool on_gpu = false;
  for (const auto& [a, cfg] : runs) {
    KVX_TRY(run_block_copy(a, cfg));
    on_gpu = on_gpu || cfg.engine != KVX_COPY_ENGINE_CPU;
  }
  const uint64_t ticket = next_ticket_++;
  if (on_gpu) {
    void* event = nullptr;
    KVX_TRY(cuda::event_record(device_.memory == KVX_MEMORY_CUDA_DEVICE ? device_.device_id : 0, stream, &event));
    events_[ticket] = event;
  }
  for (int64_t i = 0; i < n; ++i) {
    const kvx_copy_t& c = items[i];
    (c.direction == KVX_COPY_HOST_TO_DEVICE ? host_ticket_ : device_ticket_)[static_cast<size_t>(c.src)] = ticket;
    (c.direction == KVX_COPY_DEVICE_TO_HOST ? host_ticket_ : device_ticket_)[static_cast<size_t>(c.dst)] = ticket;
  }
  if (out_ticket != nullptr) *out_ticket = ticket;
  return KVX_OK;
}

kvx_status_t Offload::query(uint64_t ticket, bool* done) {
  if (ticket == 0 || ticket >= next_ticket_)
    return fail(KVX_ERR_INVALID_ARGUMENT, "ticket: {} was never issued by this offload", ticket);
  const auto it = events_.find(ticket);
  if (it == events_.end()) {
    *done = true;
    return KVX_OK;
  }
  KVX_TRY(cuda::event_query(it->second, done));
  if (*done) {
    cuda::event_destroy(it->second);
    events_.erase(it);
  }
  return KVX_OK;
}

kvx_status_t Offload::wait(uint64_t ticket) {
  bool done = false;
  KVX_TRY(query(ticket, &done));
  if (done) return KVX_OK;
  const auto it = events_.find(ticket);
  KVX_TRY(cuda::event_synchronize(it->second));
  cuda::event_destroy(it->second);
  events_.erase(it);
  return KVX_OK;
}

kvx_status_t Offload::ticket_of(kvx_pool_tier_t tier, int64_t block, const char* name, uint64_t* out) const {
  if (tier != KVX_POOL_TIER_DEVICE && tier != KVX_POOL_TIER_HOST)
    return fail(KVX_ERR_INVALID_ARGUMENT, "tier: unknown value {}", static_cast<int>(tier));
  const auto& tickets = tier == KVX_POOL_TIER_DEVICE ? device_ticket_ : host_ticket_;
  if (block < 0 || block >= static_cast<int64_t>(tickets.size()))
    return fail(KVX_ERR_INVALID_ARGUMENT, "{}: block {} is outside [0, {})", name, block, tickets.size());
  *out = tickets[static_cast<size_t>(block)];
  return KVX_OK;
}

kvx_status_t Offload::block_busy(kvx_pool_tier_t tier, int64_t block, bool* busy) {
  uint64_t ticket = 0;
  KVX_TRY(ticket_of(tier, block, "block", &ticket));
  bool done = true;
  if (ticket != 0) KVX_TRY(query(ticket, &done));
  *busy = !done;
  return KVX_OK;
}

kvx_status_t Offload::stream_wait_blocks(kvx_pool_tier_t tier, const int32_t* blocks, int64_t n, void* stream) {
  if (n < 0) return fail(KVX_ERR_INVALID_ARGUMENT, "num_blocks: {} < 0", n);
  if (n > 0 && blocks == nullptr) return fail(KVX_ERR_INVALID_ARGUMENT, "blocks: null");
  std::vector<uint64_t> tickets;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t t = 0;
    KVX_TRY(ticket_of(tier, blocks[i], fmt::format("blocks[{}]", i).c_str(), &t));
    if (t != 0) tickets.push_back(t);
  }
  std::sort(tickets.begin(), tickets.end());
  tickets.erase(std::unique(tickets.begin(), tickets.end()), tickets.end());
  for (uint64_t t : tickets) {
    bool done = false;
    KVX_TRY(query(t, &done));
    if (!done) KVX_TRY(cuda::stream_wait_event(stream, events_.at(t)));
  }
  return KVX_OK;
}

}  // namespace kvx::ops
