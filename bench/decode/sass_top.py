"""The top stall locations of one kernel: reads the CSV that
`bench/decode/ncu.sh KVX OUT sass` writes (ncu's source page, SASS), plain
or gzipped, and prints the instructions with the most warp-stall samples.
    python3 bench/decode/sass_top.py FILE [N]
"""
import csv
import gzip
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


path, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30
with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
    rows = list(csv.reader(f))
header = rows[1]
at = {name: header.index(name) for name in ("Address", "Source", "Warp Stall Sampling (All Samples)",
                                            "Instructions Executed")}
data = [r for r in rows[2:] if len(r) == len(header)]
samples = at["Warp Stall Sampling (All Samples)"]
total = sum(number(r[samples]) for r in data)
print(f"{len(data)} SASS instructions, {total:.0f} stall samples")
for r in sorted(data, key=lambda r: -number(r[samples]))[:count]:
    print(f"{number(r[samples]):6.0f} {100 * number(r[samples]) / total:5.1f}%  executed {number(r[at['Instructions Executed']]):8.0f}  "
          f"{r[at['Source']].strip()[:80]}")
