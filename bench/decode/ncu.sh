#!/usr/bin/env bash
# The ncu reads of docs/perf-notes.md (round 3), on the GPU machine:
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR durations   per-kernel durations of the decode and merge
#                                                      kernels (caches flushed between kernels),
#                                                      for 1 x 32k, 16 x 2k and 8/1
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR sections    SpeedOfLight, Occupancy, WarpStateStats and
#                                                      launch statistics of 1 x 32k, caches kept
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR peers       the same per-kernel read (duration, DRAM bytes
#                                                      and throughput, grid, registers, occupancy) of
#                                                      KVX and of PyTorch SDPA (peers.py, its own
#                                                      kernels) at 1 x 32k and 16 x 2k, caches flushed
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR stalls      warp states, memory workload, scheduler and
#                                                      occupancy of both kernels at 16 x 2k
#   bench/decode/ncu.sh KVX_BINARY OUT_DIR sass        stall samples per SASS instruction of KVX's
#                                                      kernel at 16 x 2k (CSV; bench/decode/sass_top.py)
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
peers)
  metrics=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,launch__grid_size,launch__block_size,launch__registers_per_thread,sm__warps_active.avg.pct_of_peak_sustained_active
  peers="$(dirname "$kvx")/../peers.py"
  [[ -f "$peers" ]] || peers=bench/decode/peers.py
  for pair in 1x32k:1:32768 16x2k:16:2048; do
    IFS=: read -r name batch len <<<"$pair"
    ncu --clock-control none --metrics "$metrics" -k regex:'decode|merge' -s 6 -c 2 \
      "$kvx" bench decode --only "batch=$batch,len=$len" --iters 10 --peers none --out /tmp >"$out/kvx-$name.txt" 2>&1
    python3 - "$batch" "$len" >/tmp/ncu-shape.json <<'PY'
import json, sys
b, n = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([{"case": f"{b}x{n}", "lens": [n] * b, "q_heads": 32, "kv_heads": 8, "head_dim": 128, "block_tokens": 16}]))
PY
    # SDPA only (no FlashInfer on the path: PYTHONPATH unset); every kernel
    # of the process (input generation first, then the SDPA calls).
    env -u PYTHONPATH ncu --clock-control none --metrics "$metrics" -c 80 \
      python3 "$peers" --shapes /tmp/ncu-shape.json --out /tmp/ncu-peers.json --iters 10 --timing call \
      >"$out/sdpa-$name.txt" 2>&1
  done
  ;;
stalls)
  # Where the cycles go in both kernels at 16 x 2k (the same grid since the
  # one-row-per-SM plan: 128 CTAs of 128 threads): warp states, the memory
  # workload, scheduler and occupancy, caches flushed before each kernel.
  sections=(--section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section SchedulerStats
    --section Occupancy --section LaunchStats)
  ncu --clock-control none "${sections[@]}" -k regex:'decode' -s 5 -c 1 \
    "$kvx" bench decode --only "batch=16,len=2048" --iters 10 --peers none --out /tmp >"$out/stalls-kvx-16x2k.txt" 2>&1
  peers="$(dirname "$kvx")/../peers.py"
  [[ -f "$peers" ]] || peers=bench/decode/peers.py
  echo '[{"case": "16x2048", "lens": [2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048], "q_heads": 32, "kv_heads": 8, "head_dim": 128, "block_tokens": 16}]' >/tmp/ncu-shape.json
  env -u PYTHONPATH ncu --clock-control none "${sections[@]}" -k regex:'sdpa' -s 5 -c 1 \
    python3 "$peers" --shapes /tmp/ncu-shape.json --out /tmp/ncu-peers.json --iters 10 --timing call \
    >"$out/stalls-sdpa-16x2k.txt" 2>&1
  ;;
sass)
  # Warp-stall samples per SASS instruction of the KVX kernel at 16 x 2k
  # (full set), as CSV; bench/decode/sass_top.py lists the top ones.
  ncu --set full -k regex:mma_decode -s 5 -c 1 -o /tmp/kvx-sass -f \
    "$kvx" bench decode --only "batch=16,len=2048" --iters 10 --peers none --out /tmp >/tmp/kvx-sass.log 2>&1
  ncu -i /tmp/kvx-sass.ncu-rep --page source --csv --print-source sass >"$out/sass-kvx-16x2k.csv"
  ncu -i /tmp/kvx-sass.ncu-rep --page details --section WarpStateStats --print-details all >"$out/warpstate-kvx-16x2k.txt"
  ;;
*) echo "ncu.sh: durations, sections, peers, stalls or sass" >&2; exit 2 ;;
esac
