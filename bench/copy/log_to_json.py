#!/usr/bin/env python3
"""Rebuilds copy.json / copy.md from the printed log of `kvx bench copy`
(one line per case: name, GB/s, % of ceiling, ceiling), for a run whose
process was stopped before it wrote its own JSON. Usage:
  log_to_json.py bench.log device.txt COMMIT OUT_DIR"""
import json, re, sys, pathlib

log, device_txt, commit, out = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
device, _, driver = pathlib.Path(device_txt).read_text().strip().partition(",")
line = re.compile(r"^(\S+)\s+([\d.]+) GB/s\s+\(\s*([\d.]+)% of ([\d.]+)\)")
rows, loop = [], {}
for text in pathlib.Path(log).read_text().splitlines():
    m = line.match(text)
    if not m:
        continue
    name, gbs, ceiling = m.group(1), float(m.group(2)), float(m.group(4))
    if "block=" not in name:  # the ceilings and same-size copies: rerun them
        continue
    inner = name[name.rindex("(") + 1:-1].split(",")
    direction = inner[0]
    engine, path = (inner[-2], inner[-1]) if inner[-1] in ("loop", "batched") else (inner[-1], "")
    block = int(re.search(r"block=(\d+)KiB", name).group(1)) * 1024
    blocks = int(re.search(r"blocks=(\d+)", name).group(1))
    key = (name.split("(")[0], direction, block, blocks)
    if path == "loop":
        loop[key] = gbs
    rows.append({"case": name, "metric": "GB/s", "kvx": gbs, "ceiling": ceiling,
                 "pct_of_ceiling": round(100 * gbs / ceiling, 1),
                 "peer_name": "cudaMemcpyAsync per block", "peer": loop.get(key),
                 "engine": engine, "dma_path": path, "direction": direction, "block_bytes": block,
                 "blocks": blocks, "device": device.strip(), "driver": driver.strip(), "cuda": "13.0",
                 "commit": commit, "command": "kvx bench copy --seconds 0.1 --max-iters 100"})
ceilings = {}
for r in rows:
    ceilings[r["direction"]] = r["ceiling"]
for d, c in ceilings.items():
    rows.insert(0, {"case": f"CEILING(cudaMemcpy,{d},1GiB)", "metric": "GB/s", "kvx": c, "ceiling": c,
                    "pct_of_ceiling": 100.0, "peer_name": None, "peer": None, "engine": "cudaMemcpy",
                    "dma_path": "", "direction": d, "block_bytes": 1 << 30, "blocks": 1,
                    "device": device.strip(), "driver": driver.strip(), "cuda": "13.0", "commit": commit,
                    "command": "kvx bench copy --seconds 0.1 --max-iters 100"})
doc = {"schema": 1, "suite": "copy", "device": device.strip(), "driver": driver.strip(), "cuda": "13.0",
       "commit": commit, "command": "kvx bench copy --seconds 0.1 --max-iters 100",
       "metric_note": "payload bytes moved one way per second; the D2D ceiling is counted the same way (x2 for read+write)",
       "provenance": "rebuilt by bench/copy/log_to_json.py from the run's printed log: the run hit its 150 s limit "
                     "in the conversion cases before the tool wrote its JSON (the tool now writes after every case)",
       "rows": rows}
out.mkdir(parents=True, exist_ok=True)
(out / "copy.json").write_text(json.dumps(doc, indent=1) + "\n")
md = [f"# kvx bench copy: {device.strip()}, driver {driver.strip()}, CUDA 13.0, commit {commit}", "",
      "Payload GB/s one way (D2D ceiling counted the same way), median of CUDA-event timings after warm-up; "
      "Llama-3.1-8B blocks (8 kv heads x 128 x bf16), random source and destination blocks.", "",
      "| case | GB/s | % of ceiling | ceiling | cudaMemcpyAsync per block |", "|---|---|---|---|---|"]
for r in rows:
    md.append(f"| {r['case']} | {r['kvx']:.1f} | {r['pct_of_ceiling']:.0f}% | {r['ceiling']:.1f} | "
              f"{'' if r['peer'] is None else format(r['peer'], '.1f')} |")
(out / "copy.md").write_text("\n".join(md) + "\n")
print(f"{len(rows)} rows -> {out}")
