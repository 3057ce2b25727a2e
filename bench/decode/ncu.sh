#!/usr/bin/env bash
# The ncu reads of docs/perf-notes.md (round 3), on the GPU machine:
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR durations   per-kernel durations of the decode and merge
#                                                      kernels (caches flushed between kernels),
#                                                      for 1 x 32k, 16 x 2k and 8/1
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR sections    SpeedOfLight, Occupancy, WarpStateStats and
#                                                      launch statistics of 1 x 32k, caches kept
# The committed outputs are bench/results/h100/ncu/*.txt (named by the commit
# of the binary profiled).
set -euo pipefail
kvx="$1" out="$2" what="$3"
mkdir -p "$out"
case "$what" in
durations)
  for pair in 1x32k:'batch=1,len=32768' 16x2k:'batch=16,len=2048' gqa8:'q=8,kv=1'; do
    name="${pair%%:*}" only="${pair#*:}"
    ncu --clock-control none \
      --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__registers_per_thread \
      -k regex:'decode|merge' -c 4 "$kvx" bench decode --only "$only" --iters 10 --peers none --out /tmp \
      >"$out/merge-$name.txt" 2>&1
  done
  ;;
sections)
  ncu --clock-control none --cache-control none --section SpeedOfLight --section Occupancy --section WarpStateStats \
    --section LaunchStats --metrics gpu__time_duration.sum,dram__bytes_read.sum,sm__cycles_active.avg,sm__cycles_elapsed.max \
    -k regex:'decode|merge' -s 10 -c 2 "$kvx" bench decode --only 'batch=1,len=32768' --iters 10 --peers none --out /tmp \
    >"$out/decode-1x32k.txt" 2>&1
  ;;
*) echo "ncu.sh: durations or sections" >&2; exit 2 ;;
esac
