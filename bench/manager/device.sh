#!/usr/bin/env bash
# The block manager benchmarks on the GPU machine's host CPU: a dedicated
# server core, where an engine's scheduler (and so the manager) runs, without
# the shared VM's neighbours.
#   bench/manager/device.sh stage           here: Release build (build-mperf, the
#                                           documented flags) staged with the
#                                           libraries it needs into build-mperf/stage
#   bench/manager/device.sh run STAGE OUT   there: the CPU model, then the benchmark
#                                           pinned to one core, 10 x 1 s repetitions,
#                                           JSON and console output into OUT
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
case "${1:-}" in
stage)
  cmake -S . -B build-mperf -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Wno-array-bounds \
    -DKVX_ENABLE_CUDA=OFF >/dev/null
  cmake --build build-mperf --target kvx_bench_manager -j2
  stage=build-mperf/stage
  rm -rf "$stage" && mkdir -p "$stage/lib"
  cp build-mperf/bench/manager/kvx_bench_manager "$stage/"
  for f in $(ldd "$stage/kvx_bench_manager" | awk '/(libbenchmark|libfmt)/ {print $3}'); do cp -L "$f" "$stage/lib/"; done
  git rev-parse HEAD >"$stage/commit"
  ;;
run)
  stage="${2:?stage folder}" out="${3:?output folder}"
  mkdir -p "$out"
  lscpu >"$out/lscpu.txt"
  cp "$stage/commit" "$out/commit"
  # Core 2: away from core 0, where the driver's and the shell's work lands.
  LD_LIBRARY_PATH="$stage/lib" taskset -c 2 "$stage/kvx_bench_manager" --benchmark_min_time=1 \
    --benchmark_repetitions=10 --benchmark_display_aggregates_only=true \
    --benchmark_out="$out/manager.json" --benchmark_out_format=json >"$out/console.txt" 2>&1
  cat "$out/console.txt"
  ;;
*) echo "usage: bench/manager/device.sh stage | run STAGE OUT" >&2; exit 2 ;;
esac
