#!/usr/bin/env bash
# Does the cache's access pattern explain the single-wave shapes? On the GPU
# machine: `kvx bench decode` (no peers) with the pages in the FlashInfer NHD
# and HND layouts, shuffled (the committed method) and in table order; one
# folder per configuration under OUT_DIR (decode.json, decode.md, log.txt).
#   bench/decode/access.sh STAGE OUT_DIR
set -euo pipefail
stage="$1" out="$2"
export LD_LIBRARY_PATH="$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
for layout in nhd hnd; do
  for order in shuffled ordered; do
    dir="$out/$layout-$order"
    mkdir -p "$dir"
    flag=()
    [[ "$order" == ordered ]] && flag=(--ordered-pages)
    "$stage/bin/kvx" bench decode --peers none --iters 100 --layout "$layout" "${flag[@]}" \
      --commit "$(cat "$stage/commit")" --out "$dir" >"$dir/log.txt" 2>&1
  done
done
