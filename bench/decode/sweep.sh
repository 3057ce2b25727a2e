#!/usr/bin/env bash
# The split-heuristic sweep of docs/perf-notes.md: `kvx bench decode` over
# waves x min-chunk-tokens for the shapes the heuristic decides, without peers.
#   [COMMIT=rev] [SHAPES=...] [WAVES=...] [MIN_TOKENS=...] bench/decode/sweep.sh KVX_BINARY OUT_DIR [ITERS]
# appends one JSON row a run to OUT_DIR/sweep.jsonl and prints it as a line.
set -euo pipefail
mkdir -p "$2"
kvx="$1" out="$2" iters="${3:-50}"
waves_list="${WAVES:-1 2 4}"
tokens_list="${MIN_TOKENS:-256 512 1024}"
declare -A shapes=(
  [b1x32k]='q=32,kv=8,batch=1,len=32768'
  [b16x2k]='q=32,kv=8,batch=16,len=2048'
  [gqa8]='q=8,kv=1,batch=64,len=4096'
  [b64x4k]='T=16,layout=flashinfer_nhd,q=32,kv=8,batch=64,len=4096'
  [ragged]='len=ragged'
  [b256x1k]='q=32,kv=8,batch=256,len=1024'
  [t1]='T=1,layout=flashinfer_nhd,q=32,kv=8,batch=64'
  [mha]='q=32,kv=32,batch=64'
)
for name in ${SHAPES:-b1x32k b16x2k gqa8 b64x4k}; do
  for w in $waves_list; do
    for m in $tokens_list; do
      dir="$(mktemp -d)"
      "$kvx" bench decode --only "${shapes[$name]}" --iters "$iters" --peers none --commit "${COMMIT:-unknown}" --waves "$w" --min-chunk-tokens "$m" ${SWEEP_ARGS:-} \
        --out "$dir" >"$dir/log.txt" 2>&1
      python3 -c "import json; d=json.load(open('$dir/decode.json')); r=d['rows'][0]; \
r.update(shape='$name', waves=$w, min_tokens=$m, args='${SWEEP_ARGS:-}', device=d['device']); open('$out/sweep.jsonl', 'a').write(json.dumps(r) + '\n'); \
print('$name waves=$w min_tokens=$m ${SWEEP_ARGS:-}', r['kvx'], 'GB/s', r['pct_of_ceiling'], '% splits', r.get('splits'), 'us', r['time_us'])"
      rm -rf "$dir"
    done
  done
done
