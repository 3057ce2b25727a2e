#!/usr/bin/env python3
"""GB/s against block size for each engine and direction, from the JSON of
`kvx bench copy` (same-preset copies; the ceilings as dashed lines; each
point the largest-call figure of its engine, direction and block size).
Usage: plot.py [bench/results/h100/copy.json [bench/results/h100/copy.png]]
Needs matplotlib (a tool for the committed figure; CI does not run it)."""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results/h100/copy.json")
out = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else src.with_suffix(".png"))
data = json.loads(src.read_text())
rows = data["rows"]
ceilings = {r["direction"]: r["kvx"] for r in rows if r["engine"] == "cudaMemcpy"}

fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), sharey=False)
for ax, direction in zip(axes, ["D2D", "H2D", "D2H"]):
    series = {}
    for r in rows:
        if r["direction"] != direction or not r["case"].startswith("COPY(") or r["engine"].startswith("auto"):
            continue
        label = r["engine"] + (f" ({r['dma_path']})" if r["dma_path"] else "")
        best = series.setdefault(label, {})
        # the figure at the most blocks per call measured for this size
        prev = best.get(r["block_bytes"])
        if prev is None or r["blocks"] > prev[0]:
            best[r["block_bytes"]] = (r["blocks"], r["kvx"])
    for label, pts in sorted(series.items()):
        xs = sorted(pts)
        ax.plot([x / 1024 for x in xs], [pts[x][1] for x in xs], marker="o", label=label)
    if direction in ceilings:
        ax.axhline(ceilings[direction], linestyle="--", color="gray", label=f"cudaMemcpy 1 GiB ({ceilings[direction]:.0f})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("block size (KiB, one K or V plane of a layer)")
    ax.set_ylabel("GB/s (payload, one way)")
    ax.set_title(f"{direction}: scattered blocks")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
fig.suptitle(f"kvx bench copy on {data['device']} (commit {data['commit'][:10]})")
fig.tight_layout()
fig.savefig(out, dpi=110)
print(f"wrote {out}")
