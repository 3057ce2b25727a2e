// The host's share of kvx_copy_blocks without a GPU: validation (layouts,
// block ids, hazards, engine) of Llama-3.1-8B block copies as
// `kvx bench copy` issues them (pools of 32k blocks of T=16 or 64k of T=1,
// random permutations), timed through kvx_copy_blocks_supports on host
// pools whose bytes are never touched. Prints the median and the least
// microseconds of one validation per case (the least: a shared machine's
// noise only adds). Build (any build of kvx_core):
//   g++ -O2 -std=c++20 -Iinclude bench/copy/host_cost.cpp BUILD/libkvx_core.a
//       [BUILD/src/backends/cuda/libkvx_cuda.a -L/usr/local/cuda/lib64 -lcudart_static -ldl -lrt]
//       -lfmt -lxxhash -lgomp -lpthread -o /tmp/host_cost
// An argument N runs only the calls of N pairs (for a profiler).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "kvx/kvx.h"

namespace {

kvx_layout_t pool(kvx_preset_t preset, int64_t blocks, int64_t block_tokens, std::vector<void*>* bases) {
  kvx_preset_params_t p = KVX_PRESET_PARAMS_INIT;
  p.dtype = KVX_DTYPE_BF16;
  // Pageable memory and the CPU engine: validation runs every check of a
  // GPU copy but needs no device; the pointers are never dereferenced.
  p.memory = KVX_MEMORY_HOST;
  p.num_layers = 1;
  p.num_blocks = blocks;
  p.block_tokens = block_tokens;
  p.num_kv_heads = 8;
  p.head_dim = 128;
  kvx_layout_t l = KVX_LAYOUT_INIT;
  if (kvx_layout_preset(preset, &p, &l) != KVX_OK) {
    std::fprintf(stderr, "preset: %s\n", kvx_last_error());
    std::exit(1);
  }
  if (l.base_kind == KVX_BASE_STRIDED) l.base = bases->at(0);
  else l.ptrs = bases->data();
  return l;
}

std::vector<int32_t> permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t only = argc > 1 ? std::atoll(argv[1]) : 0;
  // The bench's pools, then a large tier with short lists (the hashed check).
  const int64_t cases[][3] = {{16, 32768, 32768}, {1, 65536, 65536}, {16, int64_t{1} << 22, 16384}};
  for (const auto& c : cases) {
    const int64_t T = c[0], pool_blocks = c[1], max_n = c[2];
    // Bases far apart (one per layer and plane at most), never dereferenced.
    std::vector<void*> sp{reinterpret_cast<void*>(uintptr_t{1} << 40), reinterpret_cast<void*>(uintptr_t{3} << 40)};
    std::vector<void*> dp{reinterpret_cast<void*>(uintptr_t{5} << 40), reinterpret_cast<void*>(uintptr_t{7} << 40)};
    const kvx_layout_t src = pool(KVX_PRESET_VLLM_FLASH_NHD, pool_blocks, T, &sp);
    const kvx_layout_t dst = pool(KVX_PRESET_VLLM_FLASH_NHD, pool_blocks, T, &dp);
    std::mt19937_64 rng(7);
    const std::vector<int32_t> sb = permutation(pool_blocks, rng), db = permutation(pool_blocks, rng);
    for (int64_t n = 1024; n <= max_n; n *= 4) {
      if (only != 0 && n != only) continue;
      kvx_block_copy_args_t a = KVX_BLOCK_COPY_ARGS_INIT;
      a.engine = KVX_COPY_ENGINE_CPU;
      a.num_blocks = n;
      a.src = &src;
      a.src_blocks = sb.data();
      a.dst = &dst;
      a.dst_blocks = db.data();
      kvx_exec_t e = KVX_EXEC_INIT;
      std::vector<double> us;
      for (int i = 0; i < (only != 0 ? 20000 : 200); ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const kvx_status_t s = kvx_copy_blocks_supports(&a, &e);
        const auto t1 = std::chrono::steady_clock::now();
        if (s != KVX_OK) {
          std::fprintf(stderr, "supports: %s\n", kvx_last_error());
          return 1;
        }
        us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
      }
      const double best = *std::min_element(us.begin(), us.end());
      std::printf("T=%-3lld pool=%-8lld blocks=%-6lld validate median %8.1f us, min %8.1f us (%.2f ns a pair)\n",
                  static_cast<long long>(T), static_cast<long long>(pool_blocks), static_cast<long long>(n), median(us),
                  best, best * 1e3 / n);
    }
  }
  return 0;
}
