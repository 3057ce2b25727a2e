#!/usr/bin/env bash
# Does the cache's access pattern explain the single-wave shapes? On the GPU
# machine: `kvx bench decode` (no peers) with the pages in the FlashInfer NHD
# and HND layouts, shuffled (the committed method) and in table order; one
# folder per configuration under OUT_DIR (decode.json, decode.md, log.txt);
# PAGES=1 adds 64- and 256-token pages in order.
#   [PAGES=1] bench/decode/access.sh STAGE OUT_DIR
set -euo pipefail
stage="$1" out="$2"
export LD_LIBRARY_PATH="$stage/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run() {  # folder name, then kvx bench decode options
  local dir="$out/$1"
  shift
  mkdir -p "$dir"
  "$stage/bin/kvx" bench decode --peers none --iters 100 "$@" --commit "$(cat "$stage/commit")" --out "$dir" \
    >"$dir/log.txt" 2>&1
}
for layout in nhd hnd; do
  run "$layout-shuffled" --layout "$layout"
  run "$layout-ordered" --layout "$layout" --ordered-pages
done
# Larger pages, in order: with HND and 256-token pages a head's keys are
# 64 KB runs, close to a dense cache's single run per head.
if [[ "${PAGES:-0}" == 1 ]]; then
  for T in 64 256; do
    for layout in nhd hnd; do run "$layout-ordered-T$T" --layout "$layout" --ordered-pages --block-tokens "$T"; done
  done
fi
