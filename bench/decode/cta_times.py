# Summarises the per-CTA timer dump of bench/decode/cta-timers.patch (a
# diagnostic build: `git apply bench/decode/cta-timers.patch`, build kvx, run
# `KVX_CTA_TIMES=FILE kvx bench decode --only SHAPE --peers none`): span of
# the kernel, CTA durations, start and end spread, busy fraction of 264 slots.
#   python3 bench/decode/cta_times.py FILE
import sys, collections
cur=None; data=collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith('#'): cur=line[2:].strip(); continue
    i,s,e,sm=map(int,line.split()); data[cur].append((i,s,e,sm))
for name,rows in data.items():
    t0=min(r[1] for r in rows); t1=max(r[2] for r in rows)
    durs=sorted((r[2]-r[1])/1000 for r in rows)
    starts=sorted((r[1]-t0)/1000 for r in rows); ends=sorted((r[2]-t0)/1000 for r in rows)
    n=len(rows)
    def q(v,p): return v[min(n-1,int(p*n))]
    sms=collections.Counter(r[3] for r in rows)
    busy=sum(r[2]-r[1] for r in rows)/1000
    print(name[:90]); print(f"  ctas {n} span {(t1-t0)/1000:.1f}us  dur min {durs[0]:.1f} p10 {q(durs,.1):.1f} p50 {q(durs,.5):.1f} p90 {q(durs,.9):.1f} max {durs[-1]:.1f}")
    print(f"  start p50 {q(starts,.5):.2f} p90 {q(starts,.9):.2f} max {starts[-1]:.2f}; end min {ends[0]:.1f} p10 {q(ends,.1):.1f} p50 {q(ends,.5):.1f} p90 {q(ends,.9):.1f} max {ends[-1]:.1f}")
    print(f"  SMs used {len(sms)} max ctas/SM {max(sms.values())}; busy CTA-us {busy:.0f} / (264 slots x span) = {busy/(264*(t1-t0)/1000)*100:.1f}%")
