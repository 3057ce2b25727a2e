// Test support for layouts: each engine preset's offset written independently
// from the engine's own tensor shape (the oracle of the layout tests), caches
// that own their memory, seeded rapidcheck runs.
#pragma once

#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "kvx/kvx.h"

namespace kvx::testing {

struct Geometry {
  kvx_dtype_t dtype = KVX_DTYPE_F16;
  int64_t L = 1, NB = 1, T = 1, H = 1, D = 8, Dv = 8;

  int64_t head_dim(int64_t kv) const { return kv == 0 ? D : Dv; }
  std::string str() const {
    std::ostringstream s;
    s << kvx_dtype_name(dtype) << " L=" << L << " NB=" << NB << " T=" << T << " H=" << H
      << " D=" << D << " Dv=" << Dv;
    return s.str();
  }
};

// How rapidcheck prints a counterexample.
inline void showValue(const Geometry& g, std::ostream& os) { os << g.str(); }

inline const std::vector<kvx_preset_t>& all_presets() {
  static const std::vector<kvx_preset_t> presets = [] {
    std::vector<kvx_preset_t> p;
    for (int i = KVX_PRESET_FIRST; i <= KVX_PRESET_LAST; ++i)
      p.push_back(static_cast<kvx_preset_t>(i));
    return p;
  }();
  return presets;
}

// Presets whose K and V are separate tensors (or sections), so head dims may differ.
inline bool allows_head_dim_v(kvx_preset_t p) {
  return p == KVX_PRESET_UNIVERSAL || p == KVX_PRESET_VLLM_LEGACY || p == KVX_PRESET_FLASH_ATTN ||
         p == KVX_PRESET_TGI || p == KVX_PRESET_SGLANG;
}

inline int64_t elem_bytes(kvx_dtype_t t) {
  return kvx_dtype_bits(t) <= 8 ? 1 : kvx_dtype_bits(t) / 8;
}

// Why the engine cannot hold this geometry, or "" when it can.
inline std::string unsupported_reason(kvx_preset_t p, const Geometry& g) {
  if (g.D != g.Dv && !allows_head_dim_v(p)) return "K and V share one tensor shape";
  if (p == KVX_PRESET_SGLANG && g.T != 1) return "sglang is a token pool";
  if (p == KVX_PRESET_VLLM_LEGACY && g.dtype == KVX_DTYPE_INT4)
    return "vllm_legacy has no int4 form";
  if (p == KVX_PRESET_VLLM_LEGACY && g.D % (16 / elem_bytes(g.dtype)) != 0)
    return "head_dim not a multiple of x";
  return "";
}

inline kvx_preset_params_t params_of(const Geometry& g) {
  kvx_preset_params_t p = kvx_preset_params_init();
  p.dtype = g.dtype;
  p.memory = KVX_MEMORY_HOST;
  p.num_layers = g.L;
  p.num_blocks = g.NB;
  p.block_tokens = g.T;
  p.num_kv_heads = g.H;
  p.head_dim = g.D;
  p.head_dim_v = g.Dv == g.D ? 0 : g.Dv;
  return p;
}

// Where an element lives: base pointer index and byte offset from it.
struct Where {
  int64_t base;
  int64_t offset;
  bool operator==(const Where&) const = default;
};

// The element's index in the engine's tensor, from the engine's shape alone.
inline Where naive_offset(kvx_preset_t p, const Geometry& g, const kvx_coord_t& c) {
  const int64_t L = g.L, NB = g.NB, T = g.T, H = g.H, D = g.D, Dv = g.Dv;
  const int64_t l = c.layer, kv = c.kv, b = c.block, t = c.token, h = c.head, d = c.dim;
  const int64_t Dk = g.head_dim(kv);
  int64_t base = 0, idx = 0;
  switch (p) {
    case KVX_PRESET_UNIVERSAL:  // per (block, layer): K [T][H][D] then V [T][H][Dv]
      idx = (b * L + l) * T * H * (D + Dv) +
            (kv == 0 ? (t * H + h) * D + d : T * H * D + (t * H + h) * Dv + d);
      break;
    case KVX_PRESET_VLLM_FLASH_NHD:  // per layer (2, NB, T, H, D)
      base = l, idx = (((kv * NB + b) * T + t) * H + h) * D + d;
      break;
    case KVX_PRESET_VLLM_FLASH_HND:  // per layer (2, NB, H, T, D)
      base = l, idx = (((kv * NB + b) * H + h) * T + t) * D + d;
      break;
    case KVX_PRESET_VLLM_LEGACY: {  // K (NB, H, D/x, T, x), V (NB, H, Dv, T)
      const int64_t x = 16 / elem_bytes(g.dtype);
      base = l * 2 + kv;
      idx = kv == 0 ? ((((b * H + h) * (D / x) + d / x) * T + t) * x + d % x)
                    : (((b * H + h) * Dv + d) * T + t);
      break;
    }
    case KVX_PRESET_VLLM_CROSS_LAYER:  // (NB, L, 2, T, H, D)
      idx = ((((b * L + l) * 2 + kv) * T + t) * H + h) * D + d;
      break;
    case KVX_PRESET_FLASHINFER_NHD:  // per layer (NB, 2, T, H, D)
      base = l, idx = (((b * 2 + kv) * T + t) * H + h) * D + d;
      break;
    case KVX_PRESET_FLASHINFER_HND:  // per layer (NB, 2, H, T, D)
      base = l, idx = (((b * 2 + kv) * H + h) * T + t) * D + d;
      break;
    case KVX_PRESET_FLASH_ATTN:
    case KVX_PRESET_TGI:  // per layer K, V (NB, T, H, D)
      base = l * 2 + kv, idx = ((b * T + t) * H + h) * Dk + d;
      break;
    case KVX_PRESET_TRTLLM_POOL:  // [NB, L, 2, H, T, D]
      idx = ((((b * L + l) * 2 + kv) * H + h) * T + t) * D + d;
      break;
    case KVX_PRESET_SGLANG:  // per layer K, V (S, H, D), slot = block (block_tokens 1)
      base = l * 2 + kv, idx = ((b + t) * H + h) * Dk + d;
      break;
    case KVX_PRESET_DYNAMO_UNIVERSAL:  // [NB][H, L, 2, T, D]
      idx = ((((b * H + h) * L + l) * 2 + kv) * T + t) * D + d;
      break;
    case KVX_PRESET_LMCACHE:  // [NB][2, L, T, H*D]
      idx = (((b * 2 + kv) * L + l) * T + t) * (H * D) + h * D + d;
      break;
    default: ADD_FAILURE() << "no naive formula for preset " << p;
  }
  return {base, idx * static_cast<int64_t>(kvx_dtype_bits(g.dtype)) / 8};
}

// Bytes behind the largest base pointer of the engine's tensors.
inline int64_t naive_span(kvx_preset_t p, const Geometry& g) {
  const int64_t bits = kvx_dtype_bits(g.dtype);
  const int64_t Dmax = std::max(g.D, g.Dv);
  int64_t elems = 0;
  switch (p) {
    case KVX_PRESET_UNIVERSAL: elems = g.NB * g.L * g.T * g.H * (g.D + g.Dv); break;
    case KVX_PRESET_VLLM_CROSS_LAYER:
    case KVX_PRESET_TRTLLM_POOL:
    case KVX_PRESET_DYNAMO_UNIVERSAL:
    case KVX_PRESET_LMCACHE: elems = g.NB * g.L * 2 * g.T * g.H * g.D; break;
    case KVX_PRESET_VLLM_FLASH_NHD:
    case KVX_PRESET_VLLM_FLASH_HND:
    case KVX_PRESET_FLASHINFER_NHD:
    case KVX_PRESET_FLASHINFER_HND: elems = 2 * g.NB * g.T * g.H * g.D; break;
    default: elems = g.NB * g.T * g.H * Dmax; break;  // one plane per pointer
  }
  return elems * bits / 8;
}

inline int64_t naive_num_bases(kvx_preset_t p, const Geometry& g) {
  switch (p) {
    case KVX_PRESET_UNIVERSAL:
    case KVX_PRESET_VLLM_CROSS_LAYER:
    case KVX_PRESET_TRTLLM_POOL:
    case KVX_PRESET_DYNAMO_UNIVERSAL:
    case KVX_PRESET_LMCACHE: return 1;
    case KVX_PRESET_VLLM_FLASH_NHD:
    case KVX_PRESET_VLLM_FLASH_HND:
    case KVX_PRESET_FLASHINFER_NHD:
    case KVX_PRESET_FLASHINFER_HND: return g.L;
    default: return 2 * g.L;
  }
}

// Bytes of the engine tensor behind base pointer `base`.
inline int64_t naive_base_bytes(kvx_preset_t p, const Geometry& g, int64_t base) {
  if (naive_num_bases(p, g) == 2 * g.L)  // one tensor per plane
    return g.NB * g.T * g.H * g.head_dim(base % 2) * kvx_dtype_bits(g.dtype) / 8;
  return naive_span(p, g);
}

// Calls f(coord) for every element of the given block, all layers and planes.
template <typename F>
void for_each_element_of_block(const Geometry& g, int64_t block, F&& f) {
  kvx_coord_t c{};
  c.block = block;
  for (c.layer = 0; c.layer < g.L; ++c.layer)
    for (c.kv = 0; c.kv < 2; ++c.kv)
      for (c.token = 0; c.token < g.T; ++c.token)
        for (c.head = 0; c.head < g.H; ++c.head)
          for (c.dim = 0; c.dim < g.head_dim(c.kv); ++c.dim) f(c);
}

// A preset's cache with memory of its own: one buffer per base pointer.
class Cache {
 public:
  Cache(kvx_preset_t preset, const Geometry& g) : preset_(preset), g_(g) {
    const kvx_preset_params_t params = params_of(g);
    status_ = kvx_layout_preset(preset, &params, &layout_);
    if (status_ != KVX_OK) return;
    for (int64_t i = 0; i < naive_num_bases(preset, g); ++i)
      buffers_.emplace_back(static_cast<size_t>(naive_base_bytes(preset, g, i)));
    for (auto& b : buffers_) ptrs_.push_back(b.data());
    if (layout_.base_kind == KVX_BASE_STRIDED) {
      layout_.base = ptrs_[0];
    } else {
      layout_.ptrs = ptrs_.data();
    }
  }
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  kvx_status_t status() const { return status_; }
  const kvx_layout_t& layout() const { return layout_; }
  kvx_layout_t& layout() { return layout_; }
  std::vector<std::vector<std::byte>>& buffers() { return buffers_; }

  // The byte holding an element, found through the naive formula.
  std::byte* at(const kvx_coord_t& c) {
    const Where w = naive_offset(preset_, g_, c);
    return buffers_[static_cast<size_t>(w.base)].data() + w.offset;
  }
  // An element's value as an integer of its storage bits (a nibble for int4).
  uint32_t value(const kvx_coord_t& c) {
    const std::byte* p = at(c);
    switch (kvx_dtype_bits(g_.dtype)) {
      case 4: return (static_cast<uint32_t>(*p) >> (4 * (c.dim % 2))) & 0xfu;
      case 8: return static_cast<uint32_t>(*p);
      case 16: return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8;
      default:
        return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
               static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    }
  }

  void fill_random(std::mt19937_64& rng) {
    for (auto& b : buffers_)
      for (auto& x : b) x = static_cast<std::byte>(rng());
  }
  void fill(std::byte poison) {
    for (auto& b : buffers_) std::fill(b.begin(), b.end(), poison);
  }

 private:
  kvx_preset_t preset_;
  Geometry g_;
  kvx_layout_t layout_ = kvx_layout_init();
  kvx_status_t status_ = KVX_ERR_INTERNAL;
  std::vector<std::vector<std::byte>> buffers_;
  std::vector<void*> ptrs_;
};

// Runs a rapidcheck property with a fixed seed (never time-seeded); the seed
// and the shrunk counterexample go into the failure message. Properties that
// report through GoogleTest assertions pass shrink = false, so that a failure
// is reported once rather than once per shrinking step.
template <typename Property>
void check_property(const std::string& name, uint64_t seed, int max_success, Property&& property,
                    bool shrink = true) {
  // rapidcheck's global configuration (read once, on first use) would pick a
  // random seed of its own; give it ours unless RC_PARAMS says otherwise.
  setenv("RC_PARAMS", ("seed=" + std::to_string(seed)).c_str(), /*overwrite=*/0);
  rc::detail::TestParams params;
  params.seed = seed;
  params.maxSuccess = max_success;
  params.disableShrinking = !shrink;
  rc::detail::TestMetadata metadata;
  metadata.id = name;
  metadata.description = name;
  const auto result = rc::detail::checkTestable(std::forward<Property>(property), metadata, params);
  if (!result.template is<rc::detail::SuccessResult>()) {
    std::ostringstream message;
    rc::detail::printResultMessage(result, message);
    ADD_FAILURE() << name << " (rapidcheck seed " << seed << "):\n" << message.str();
  }
}

}  // namespace kvx::testing
