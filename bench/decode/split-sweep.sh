#!/usr/bin/env bash
# The split count against the batch size (docs/perf-notes.md, round 7):
# Llama-3.1-8B decode at each batch size of BATCHES x LEN tokens, with the
# plan forced to S splits per sequence (`--splits S`) for each S of SPLITS,
# and once with the plan's own choice ("plan"). Without peers.
#   [BATCHES=1,2,...] [LENS="2048 8192"] [SPLITS="1 2 4 ..."] [ITERS=50] [RAGGED=1] [COMMIT=rev] \
#     bench/decode/split-sweep.sh KVX_BINARY OUT_DIR
# (RAGGED=1: lengths drawn from [100, L], `kvx bench decode --ragged`)
# writes OUT_DIR/len<L>-s<S>/decode.json and prints, per length, one line a
# batch size: GB/s at each S, then the plan's.
set -euo pipefail
kvx="$1" out="$2"
mkdir -p "$out"
batches="${BATCHES:-1,2,4,8,12,16,17,20,24,32,33,40,48,64}"
lens="${LENS:-2048 8192}"
splits="${SPLITS-1 2 3 4 6 8 12 16 24 32}"
iters="${ITERS:-50}"
for len in $lens; do
  for s in $splits plan; do
    args=()
    [[ "$s" == plan ]] || args=(--splits "$s")
    [[ -z "${RAGGED:-}" ]] || args+=(--ragged)
    "$kvx" bench decode --peers none --iters "$iters" --commit "${COMMIT:-unknown}" --batches "$batches" --len "$len" "${args[@]}" \
      --out "$out/len$len-s$s" >"$out/len$len-s$s.log" 2>&1 || { echo "len $len s $s failed"; tail -3 "$out/len$len-s$s.log"; }
  done
done
python3 - "$out" "$lens" "$splits" <<'PY'
import json, sys
out, lens, splits = sys.argv[1], sys.argv[2].split(), sys.argv[3].split() + ["plan"]
for L in lens:
    table = {}
    for s in splits:
        try:
            rows = json.load(open(f"{out}/len{L}-s{s}/decode.json"))["rows"]
        except (OSError, ValueError):
            continue
        for r in rows:
            b = int(r["case"].split("batch=")[1].split(",")[0])
            table.setdefault(b, {})[s] = (r["kvx"], r.get("splits"))
    print(f"len {L}: GB/s at splits " + " ".join(splits))
    for b in sorted(table):
        cells = [f"{table[b][s][0]:.0f}" if s in table[b] else "-" for s in splits]
        forced = [(table[b][s][0], s) for s in splits[:-1] if s in table[b]]
        best = f"best {max(forced)[0]:.0f} at {max(forced)[1]}; " if forced else ""
        plan = table[b].get("plan")
        print(f"  batch {b:3d}: " + " ".join(f"{c:>5}" for c in cells) +
              f"   {best}plan {plan[1] if plan else '-'} splits")
PY
