// The subcommands of the kvx tool. To add one: write tools/kvx/<name>.cpp
// defining add_<name>_command (CMake picks the file up), declare it here, and
// call it from main.cpp. A subcommand prints its own report; to fail, it
// prints why and throws CLI::RuntimeError(exit_code), which main turns into
// the exit status without printing more.
#pragma once

#include <CLI/CLI.hpp>

namespace kvx::tool {

void add_info_command(CLI::App& app);        // info.cpp: version, backends, devices, presets
void add_demo_command(CLI::App& app);        // demo.cpp: one cache in every preset, checked
// bench_copy.cpp: kvx bench copy (transfers, conversion)
void add_bench_copy_command(CLI::App& app);
// bench_decode.cpp: kvx bench decode (attention, append)
void add_bench_decode_command(CLI::App& app);

}  // namespace kvx::tool
