"""Peers of `kvx bench decode`, run by that command in its own process.

For each shape (a JSON list written by the command: case, lens, q_heads,
kv_heads, head_dim, block_tokens) it measures, on the same tokens:
  torch_sdpa  PyTorch SDPA decode (one query token, enable_gqa) on a dense
              bf16 cache [batch, kv_heads, len, head_dim]; uniform batches only
              (a ragged batch would be padded, which SDPA then reads)
  flashinfer  FlashInfer's paged decode (NHD pages, the same block_tokens),
              where the package imports
and writes {case: {peer: GB/s of K+V read or null, peer + "_note": why}}.
Timing: CUDA events around each call, 5 warm-up calls, median; inputs rotated
over sets past the 50 MB L2; random data. --timing gated (the default, as in
`kvx bench decode`): a spin kernel holds the stream while every timed call is
enqueued, so the events time the GPU's work alone; call: no spin kernel.
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


GATED = True
GATE_CYCLES = 500_000_000  # ~0.25 s at the H100's clock: far more than enqueuing 100 calls takes
GATE_SHORT = []  # cases where enqueuing outlasted the spin kernel


def median_seconds(fn, iters):
    for i in range(5):
        fn(i)
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    torch.cuda.synchronize()
    gate_end = torch.cuda.Event(enable_timing=True)
    if GATED:
        gate_start = torch.cuda.Event(enable_timing=True)
        gate_start.record()
        torch.cuda._sleep(GATE_CYCLES)
        gate_end.record()
        t0 = time.perf_counter()
    for i, (start, stop) in enumerate(events):
        start.record()
        fn(i)
        stop.record()
    if GATED:
        enqueue_ms = (time.perf_counter() - t0) * 1e3
    torch.cuda.synchronize()
    if GATED and enqueue_ms > gate_start.elapsed_time(gate_end):
        GATE_SHORT.append(enqueue_ms)
    times = sorted(start.elapsed_time(stop) for start, stop in events)
    return times[len(times) // 2] * 1e-3


def kv_bytes(shape):
    return sum(shape["lens"]) * shape["kv_heads"] * shape["head_dim"] * 2 * 2


def rotation_sets(shape):
    return max(1, min(8, (400 << 20) // max(kv_bytes(shape), 1) + 1))


def sdpa(shape, iters):
    lens = shape["lens"]
    if len(set(lens)) != 1:
        return None, "ragged batch: SDPA needs a padded dense cache"
    b, length, hq, hkv, d = len(lens), lens[0], shape["q_heads"], shape["kv_heads"], shape["head_dim"]
    sets = rotation_sets(shape)
    ks = [torch.randn(b, hkv, length, d, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]
    vs = [torch.randn(b, hkv, length, d, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]
    qs = [torch.randn(b, hq, 1, d, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]

    def run(i):
        s = i % sets
        F.scaled_dot_product_attention(qs[s], ks[s], vs[s], enable_gqa=hq != hkv)

    seconds = median_seconds(run, iters)
    del ks, vs, qs
    torch.cuda.empty_cache()
    return kv_bytes(shape) / seconds / 1e9, None


def flashinfer_decode(shape, iters):
    """FlashInfer's paged decode, with and without its tensor-core path; the
    faster of the two is the peer's figure (the note says which)."""
    try:
        import flashinfer
    except Exception as e:  # not installed on this machine
        return None, f"flashinfer not importable: {type(e).__name__}"
    lens, hq, hkv, d, t = shape["lens"], shape["q_heads"], shape["kv_heads"], shape["head_dim"], shape["block_tokens"]
    b = len(lens)
    pages = [(n + t - 1) // t for n in lens]
    total = sum(pages)
    sets = rotation_sets(shape)
    cache = torch.randn(total * sets, 2, t, hkv, d, dtype=torch.bfloat16, device="cuda")
    indptr = torch.tensor([0] + list(torch.tensor(pages).cumsum(0).tolist()), dtype=torch.int32, device="cuda")
    last = torch.tensor([n - (p - 1) * t for n, p in zip(lens, pages)], dtype=torch.int32, device="cuda")
    indices = [(torch.randperm(total, device="cuda") + s * total).to(torch.int32) for s in range(sets)]
    qs = [torch.randn(b, hq, d, dtype=torch.bfloat16, device="cuda") for _ in range(sets)]
    best, notes = None, []
    for tensor_cores in (False, True):
        try:
            wrappers = []
            for s in range(sets):
                w = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                    torch.empty(256 << 20, dtype=torch.uint8, device="cuda"), "NHD", use_tensor_cores=tensor_cores)
                w.plan(indptr, indices[s], last, hq, hkv, d, t, q_data_type=torch.bfloat16,
                       kv_data_type=torch.bfloat16)
                wrappers.append(w)

            def run(i):
                s = i % sets
                wrappers[s].run(qs[s], cache)

            gbps = kv_bytes(shape) / median_seconds(run, iters) / 1e9
            notes.append(f"use_tensor_cores={tensor_cores}: {gbps:.0f} GB/s")
            best = gbps if best is None else max(best, gbps)
            del wrappers
        except Exception as e:  # one path may not serve a shape
            notes.append(f"use_tensor_cores={tensor_cores}: {type(e).__name__}: {e}"[:200])
    return best, "; ".join(notes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--timing", choices=["gated", "call"], default="gated")
    args = parser.parse_args()
    global GATED
    GATED = args.timing == "gated"
    shapes = json.load(open(args.shapes))
    results = {}
    for shape in shapes:
        row = {}
        for name, fn in (("torch_sdpa", sdpa), ("flashinfer", flashinfer_decode)):
            try:
                gbps, note = fn(shape, args.iters)
            except Exception as e:  # a peer that fails on a shape is recorded, not fatal
                gbps, note = None, f"{type(e).__name__}: {e}"[:300]
            row[name] = None if gbps is None else round(gbps)
            if note:
                row[name + "_note"] = note
        results[shape["case"]] = row
        print(shape["case"], row, flush=True)
    if GATE_SHORT:
        results["_note"] = f"the spin kernel ended before enqueuing did in {len(GATE_SHORT)} timings (max {max(GATE_SHORT):.0f} ms)"
    json.dump(results, open(args.out, "w"), indent=1)


if __name__ == "__main__":
    main()
