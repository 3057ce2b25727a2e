// kvx: the command-line tool of the KVX library (subcommands in commands.hpp).
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "kvx/kvx.h"

int main(int argc, char** argv) {
  if (kvx_check_version(KVX_VERSION) != KVX_OK) {
    std::fprintf(stderr, "kvx: %s\n", kvx_last_error());
    return 1;
  }
  CLI::App app{"kvx: the KV cache of LLM inference (library, presets, reference ops)", "kvx"};
  app.require_subcommand(1);
  kvx::tool::add_info_command(app);
  kvx::tool::add_demo_command(app);
  kvx::tool::add_bench_copy_command(app);
  kvx::tool::add_bench_decode_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fflush(stdout);  // what the command printed comes before its error
    std::fprintf(stderr, "kvx: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
