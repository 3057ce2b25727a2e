"""Summarises the per-CTA timer dumps of bench/decode/cta-timers.patch.

The patch is a diagnostic build: `git apply bench/decode/cta-timers.patch`,
build kvx, run `KVX_CTA_TIMES=FILE kvx bench decode --only SHAPE --peers none`
(each case appends a `# case` line and one `cta start_ns end_ns sm` line per
CTA of its last timed call). For each case this prints the kernel's span, the
CTA durations, the start and end spread, the busy share of the 264 resident
CTA slots of an H100, and, where SMs ran two CTAs side by side, the
correlation of the two CTAs' durations (how much of the spread follows the SM).

    python3 bench/decode/cta_times.py FILE [FILE ...]
"""
import collections
import statistics
import sys

SLOTS = 264  # H100: 132 SMs x 2 resident CTAs of the mma decode kernel


def read(path):
    cases, name = collections.defaultdict(list), None
    for line in open(path):
        if line.startswith("#"):
            name = line[2:].strip()
            continue
        cta, start, end, sm = map(int, line.split())
        cases[name].append((cta, start, end, sm))
    return cases


def pair_correlation(rows):
    by_sm = collections.defaultdict(list)
    for _, start, end, sm in rows:
        by_sm[sm].append((end - start) / 1000)
    pairs = [d for d in by_sm.values() if len(d) == 2]
    if len(pairs) < 3:
        return None
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    if statistics.pstdev(a) == 0 or statistics.pstdev(b) == 0:
        return None
    return statistics.correlation(a, b)


def summarise(name, rows):
    t0, t1 = min(r[1] for r in rows), max(r[2] for r in rows)
    n = len(rows)
    durs = sorted((r[2] - r[1]) / 1000 for r in rows)
    starts = sorted((r[1] - t0) / 1000 for r in rows)
    ends = sorted((r[2] - t0) / 1000 for r in rows)
    q = lambda v, p: v[min(n - 1, int(p * n))]
    sms = collections.Counter(r[3] for r in rows)
    busy = sum(r[2] - r[1] for r in rows) / 1000
    span = (t1 - t0) / 1000
    print(name[:90])
    print(f"  ctas {n} span {span:.1f}us  dur min {durs[0]:.1f} p10 {q(durs, .1):.1f} p50 {q(durs, .5):.1f} "
          f"p90 {q(durs, .9):.1f} max {durs[-1]:.1f}")
    print(f"  start p50 {q(starts, .5):.2f} p90 {q(starts, .9):.2f} max {starts[-1]:.2f}; end min {ends[0]:.1f} "
          f"p10 {q(ends, .1):.1f} p50 {q(ends, .5):.1f} p90 {q(ends, .9):.1f} max {ends[-1]:.1f}")
    print(f"  SMs used {len(sms)} max ctas/SM {max(sms.values())}; busy CTA-us {busy:.0f} / "
          f"({SLOTS} slots x span) = {busy / (SLOTS * span) * 100:.1f}%")
    r = pair_correlation(rows)
    if r is not None:
        print(f"  correlation of the durations of two CTAs sharing an SM: {r:.2f}")


for path in sys.argv[1:]:
    for name, rows in read(path).items():
        summarise(name, rows)
