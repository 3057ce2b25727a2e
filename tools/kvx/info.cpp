// kvx info: the library's version, its backends, the CUDA devices and the
// engine presets it knows.
#include <string>

#include <fmt/format.h>

#include "commands.hpp"
#include "device.hpp"
#include "kvx/kvx.h"

namespace kvx::tool {
namespace {

std::string version_string(uint32_t v) {
  return fmt::format("{}.{}.{}", v / 1000000u, v / 1000u % 1000u, v % 1000u);
}

void run_info() {
  fmt::print("kvx {} (library {}, header {})\n", version_string(kvx_get_version()),
             kvx_get_version(), KVX_VERSION);

  std::string why_no_device;
  const auto devices = cuda_devices(&why_no_device);

  fmt::print("\nbackends:\n");
  const struct {
    kvx_backend_t backend;
    const char* name;
  } backends[] = {{KVX_BACKEND_CPU, "cpu"}, {KVX_BACKEND_CUDA, "cuda"}};
  for (const auto& b : backends) {
    int32_t available = 0;
    const kvx_status_t s = kvx_backend_available(b.backend, &available);
    if (s != KVX_OK) {
      fmt::print("  {:<5} error: {} {}\n", b.name, kvx_status_string(s), kvx_last_error());
    } else if (available) {
      fmt::print("  {:<5} available\n", b.name);
    } else {
      fmt::print("  {:<5} not available ({})\n", b.name,
                 b.backend == KVX_BACKEND_CUDA ? why_no_device : "not compiled in");
    }
  }

  fmt::print("\nCUDA devices ({}):\n", cuda_versions());
  if (devices.empty()) fmt::print("  none: {}\n", why_no_device);
  for (const auto& d : devices) {
    fmt::print("  {}: {}, sm_{}{}, {} SMs, {:.1f} GiB\n", d.ordinal, d.name, d.major, d.minor,
               d.sms, static_cast<double>(d.memory_bytes) / (1u << 30));
  }

  fmt::print("\npresets (kvx_preset_t, name for --preset):\n");
  for (int p = KVX_PRESET_FIRST; p <= KVX_PRESET_LAST; ++p) {
    fmt::print("  {:>2}  {}\n", p, kvx_preset_name(static_cast<kvx_preset_t>(p)));
  }
}

}  // namespace

void add_info_command(CLI::App& app) {
  CLI::App* info = app.add_subcommand("info", "Library version, backends, CUDA devices, presets");
  info->callback(run_info);
}

}  // namespace kvx::tool
