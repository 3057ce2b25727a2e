#!/usr/bin/env python3
"""Fits the decode plan's time model (DecodeTuning in src/backends/cuda/plan.hpp)
to a split sweep (bench/decode/split-sweep.sh output), as round 7 of
docs/perf-notes.md did:

    python3 bench/decode/fit_plan_model.py [SWEEP_DIR]   (default bench/results/h100/split-sweep)

A wave of N resident CTAs of B MB each is dealt over the SMs (hi SMs hold k,
the rest k - 1); an SM draws min(CTAs x cta_gbps, sm_gbps), all together at
most dram_gbps, shared in proportion; after the (k - 1)-CTA SMs finish, the
others run on. Each wave pays cta_start_us, a split batch merge_us. The grid
search minimises the mean squared relative error over every (length, batch,
splits) point, then prints, per batch, the measured best split count and the
one the fitted model ranks first. Llama-3.1-8B geometry (8 kv heads, d 128,
bf16, 16-token pages), 132 SMs x 2 slots (the H100 and the tensor-core kernel).
"""
import itertools
import json
import math
import os
import sys

SMS, SLOTS, KV_HEADS, PAGE_TOKENS, TOKEN_BYTES = 132, 264, 8, 16, 8 * 128 * 2 * 2


def wave_us(n, cta_mb, p):
    r_cta, r_sm, r_dram = p[:3]
    k = math.ceil(n / SMS)
    hi = n - (k - 1) * SMS
    lo = SMS - hi
    rate_hi = min(k * r_cta, r_sm)
    rate_lo = min((k - 1) * r_cta, r_sm) if k > 1 else 0.0
    share = min(1.0, r_dram / (hi * rate_hi + lo * rate_lo))
    if k == 1 or lo == 0:
        return 1e3 * k * cta_mb / (rate_hi * share)
    t1 = (k - 1) * cta_mb / (rate_lo * share)
    left = max(0.0, k * cta_mb - rate_hi * share * t1)
    return 1e3 * (t1 + left / min(rate_hi, r_dram / hi))


def model_us(length, batch, splits, p):
    pages = length // PAGE_TOKENS
    chunk = math.ceil(pages / splits)
    s = math.ceil(pages / chunk)
    n = batch * KV_HEADS * s
    cta_mb = batch * length * TOKEN_BYTES / 1e6 / n
    waves = math.ceil(n / SLOTS)
    return waves * (wave_us(min(n, SLOTS), cta_mb, p) + p[3]) + (p[4] if s > 1 else 0.0)


def main():
    sweep = sys.argv[1] if len(sys.argv) > 1 else "bench/results/h100/split-sweep"
    points = []
    for name in sorted(os.listdir(sweep)):
        path = os.path.join(sweep, name, "decode.json")
        if not name.startswith("len") or "-splan" in name or not os.path.exists(path):
            continue
        length, splits = int(name[3:].split("-s")[0]), int(name.split("-s")[1])
        for r in json.load(open(path))["rows"]:
            batch = int(r["case"].split("batch=")[1].split(",")[0])
            points.append((length, batch, splits, r["kvx"], r["time_us"]))
    grid = itertools.product(range(20, 28), range(26, 50, 2), range(2700, 3700, 100), range(0, 7), range(0, 13))
    best = None
    for p in grid:
        err = sum(((model_us(L, b, s, p) - t) / t) ** 2 for L, b, s, _, t in points) / len(points)
        if best is None or err < best[0]:
            best = (err, p)
    err, p = best
    print(f"{len(points)} points; cta_gbps {p[0]}, sm_gbps {p[1]}, dram_gbps {p[2]}, cta_start_us {p[3]}, "
          f"merge_us {p[4]}; rms relative error {math.sqrt(err):.3f}")
    by_shape = {}
    for L, b, s, gbps, _ in points:
        by_shape.setdefault((L, b), []).append((s, gbps, model_us(L, b, s, p)))
    worst = 1.0
    for (L, b), rows in sorted(by_shape.items()):
        measured = max(rows, key=lambda r: r[1])
        ranked = min(rows, key=lambda r: r[2])
        worst = min(worst, ranked[1] / measured[1])
        print(f"  {b:3d} x {L:5d}: best {measured[0]:2d} splits ({measured[1]:.0f} GB/s), model's first "
              f"{ranked[0]:2d} ({ranked[1]:.0f} GB/s, {ranked[1] / measured[1]:.3f})")
    print(f"the model's first choice reaches at worst {worst:.3f} of the best measured")


if __name__ == "__main__":
    main()
