#!/usr/bin/env bash
# A/B of kvx binaries on the whole decode bench, without peers: the binaries
# alternate, ROUNDS times, in one session, so that all see the same GPU
# state (docs/perf-notes.md keeps the predictions and the results).
#   [ONLY=substring] bench/decode/ab.sh OUT_DIR ROUNDS LABEL=KVX_BINARY[@VAR=VALUE]...
# (@VAR=VALUE: an environment variable for that label's runs)
# writes OUT_DIR/LABEL-rN/decode.{json,md} and prints one line per shape:
# each label's GB/s, every round.
set -euo pipefail
out="$1" rounds="$2"
shift 2
mkdir -p "$out"
for r in $(seq "$rounds"); do
  for pair in "$@"; do
    label="${pair%%=*}" bin="${pair#*=}" vars=()
    if [[ "$bin" == *@* ]]; then vars=("${bin#*@}") bin="${bin%%@*}"; fi
    mkdir -p "$out/$label-r$r"
    env "${vars[@]}" "$bin" bench decode --peers none --iters "${ITERS:-100}" --commit "$label" ${ONLY:+--only "$ONLY"} \
      --out "$out/$label-r$r" >"$out/$label-r$r.log" 2>&1 || { echo "$label round $r failed"; tail -5 "$out/$label-r$r.log"; }
  done
done
python3 - "$out" "$rounds" "$@" <<'PY'
import json, sys
out, rounds, labels = sys.argv[1], int(sys.argv[2]), [p.split("=")[0] for p in sys.argv[3:]]
table = {}
for label in labels:
    for r in range(1, rounds + 1):
        try:
            rows = json.load(open(f"{out}/{label}-r{r}/decode.json"))["rows"]
        except (OSError, ValueError):
            continue
        for row in rows:
            table.setdefault(row["case"], {}).setdefault(label, []).append(row["kvx"])
for case, by in table.items():
    print(case[:100], " | ".join(f"{l}: " + "/".join(f"{x:.0f}" for x in by.get(l, [])) for l in labels))
PY
