// A fixed number of the benchmark's operations, for instruction counts under
// callgrind (the repeatable figure on a shared machine, where timings are not):
//   valgrind --tool=callgrind --toggle-collect=kvx_seq_append_batch
//            kvx_manager_opcount decode 640
// then Ir of kvx_seq_append_batch divided by its calls. Cases: decode (one
// token appended to each of 1,024 sequences), lookup (longest cached prefix
// of a 32k-token prompt), attach (the prompt attached as a sequence and
// freed). The set-up is bench_manager.cpp's.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "bench_setup.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s decode|lookup|attach <operations>\n", argv[0]);
    return 2;
  }
  const long ops = std::strtol(argv[2], nullptr, 10);
  using namespace kvx::bench;
  try {
    if (std::strcmp(argv[1], "decode") == 0) {
      DecodeBatch d;
      for (long i = 0; i < ops; ++i) d.step();
    } else if (std::strcmp(argv[1], "lookup") == 0) {
      CachedPrompt c(13);
      for (long i = 0; i < ops; ++i) {
        if (c.lookup() != 32768) throw std::runtime_error("the prompt is not fully cached");
      }
    } else if (std::strcmp(argv[1], "attach") == 0) {
      CachedPrompt c(17);
      for (long i = 0; i < ops; ++i) {
        if (c.attach_and_free() != 32768) throw std::runtime_error("the prompt is not fully cached");
      }
    } else {
      std::fprintf(stderr, "unknown case %s\n", argv[1]);
      return 2;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
