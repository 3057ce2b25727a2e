#!/usr/bin/env bash
# Round 4's A/B on the single-wave shapes (docs/perf-notes.md): the split
# merge (kernel, fused, fused-keep) x speculative first block ids, the modes
# alternating in one session so that all see the same GPU state. The --merge
# and --spec-ids options exist only with bench/decode/fused-merge.patch
# applied (the variants were measured and reverted).
#   [MODES="kernel:0 kernel:1 fused:0 fused-keep:0"] [SHAPES=...] \
#     bench/decode/merge-ab.sh KVX_BINARY OUT_DIR [ITERS] [ROUNDS]
set -euo pipefail
kvx="$1" out="$2" iters="${3:-100}" rounds="${4:-2}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
for r in $(seq "$rounds"); do
  for mode in ${MODES:-kernel:0 kernel:1 fused:0 fused-keep:0}; do
    SHAPES="${SHAPES:-b1x32k b16x2k}" WAVES=1 MIN_TOKENS=1024 SWEEP_ARGS="--merge ${mode%%:*} --spec-ids ${mode#*:}" \
      "$here/sweep.sh" "$kvx" "$out" "$iters"
  done
done
