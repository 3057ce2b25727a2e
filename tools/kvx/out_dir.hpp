// The results folder of a bench command (--out): made when missing, before
// any GPU time is spent, and every file written there checked, so that a
// run never reports results it did not keep.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace kvx::tool {

inline void make_out_dir(const std::string& dir, const char* command) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir)) {
    std::fprintf(stderr, "%s: --out %s: cannot make the folder (%s)\n", command, dir.c_str(),
                 ec ? ec.message().c_str() : "not a folder");
    throw CLI::RuntimeError(2);
  }
}

// Fails the command when `out` (a file of the results folder) did not take
// everything written to it.
inline void check_written(std::ofstream& out, const std::string& path, const char* command) {
  out.flush();
  if (!out) {
    std::fprintf(stderr, "%s: could not write %s\n", command, path.c_str());
    throw CLI::RuntimeError(1);
  }
}

}  // namespace kvx::tool
