#!/usr/bin/env python3
"""The queueing model of docs/benchmarks.md ("Now: the latency tail at half of capacity").

N publishers send a frame every T ms, each at its own random phase, to one worker that
fans each frame out to S subscribers in D ms of work, frames in arrival order (one
server, first come first served). A subscriber's latency is the frame's wait plus its
place in the fan-out. One draw of phases is one benchmark run; the script prints the p99
over many draws.

With --gaps RATE:MIN-MAX (repeatable), the core is also taken away from the worker RATE
times a second for MIN to MAX ms (uniform), at random times: a virtual machine's host
running something else, as `multiparty-meeting-load --cpu-gaps` measures it.

    python3 scripts/queueing-model.py [--publishers 18] [--work-ms 0.83] [--draws 200] \\
        [--periods 300] [--gaps 2.5:1-3 --gaps 1.1:3-10]
"""
import argparse
import bisect
import random


def parse_gaps(spec):
    rate, span = spec.split(":")
    lo, hi = span.split("-")
    return float(rate), float(lo), float(hi)


def draw_gaps(rng, kinds, horizon):
    """Sorted, merged (start, end) intervals in which the worker does not run."""
    gaps = []
    for rate, lo, hi in kinds:
        t = rng.expovariate(rate / 1000) if rate > 0 else horizon
        while t < horizon:
            gaps.append((t, t + rng.uniform(lo, hi)))
            t += rng.expovariate(rate / 1000)
    gaps.sort()
    merged = []
    for s, e in gaps:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def advance(gaps, starts, t, work):
    """When `work` ms of the worker's time, begun at t, is done, skipping the gaps."""
    i = bisect.bisect_right(starts, t) - 1
    if i >= 0 and gaps[i][1] > t:
        t = gaps[i][1]
    i += 1
    while i < len(gaps) and gaps[i][0] < t + work:
        work -= gaps[i][0] - t
        t = gaps[i][1]
        i += 1
    return t + work


def one_draw(rng, n, period, work, subs, gap_kinds, periods=30, warmup=5):
    phases = [rng.uniform(0, period) for _ in range(n)]
    arrivals = sorted(p + k * period for k in range(periods) for p in phases)
    gaps = draw_gaps(rng, gap_kinds, (periods + 2) * period)
    starts = [s for s, _ in gaps]
    free = 0.0
    lat = []
    for a in arrivals:
        start = advance(gaps, starts, max(a, free), 0.0)
        free = advance(gaps, starts, start, work)
        if a > warmup * period:
            # Half of a frame's work reads and queues it; then the copies go out in order.
            # A copy needs `done` ms of the worker after start; a gap inside the frame's work
            # pushes it back.
            if free - start <= work + 1e-12:
                finish = lambda done: start + done
            else:
                finish = lambda done: advance(gaps, starts, start, done)
            lat.extend(finish(work * 0.5 + work * 0.5 * (i + 1) / subs) - a for i in range(subs))
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--publishers", type=int, default=18)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--period-ms", type=float, default=1000 / 30)
    ap.add_argument("--work-ms", type=float, default=0.83)
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--periods", type=int, default=30,
                    help="frame periods per draw (300: a 10 s benchmark window)")
    ap.add_argument("--gaps", action="append", default=[], type=parse_gaps,
                    metavar="RATE:MIN-MAX")
    a = ap.parse_args()
    rng = random.Random(1)
    runs = [one_draw(rng, a.publishers, a.period_ms, a.work_ms, a.subscribers, a.gaps,
                     periods=a.periods)
            for _ in range(a.draws)]
    p99 = sorted(r[1] for r in runs)
    p50 = sorted(r[0] for r in runs)
    pick = lambda xs, q: xs[int(q * (len(xs) - 1))]
    under = sum(1 for x in p99 if x < 2.0)
    print(f"utilisation {a.publishers * a.work_ms / a.period_ms:.2f}")
    print(f"p50 over draws: median {pick(p50, 0.5):.2f} ms")
    print(f"p99 over draws: median {pick(p99, 0.5):.2f} ms, "
          f"10th-90th percentile of draws {pick(p99, 0.1):.2f}-{pick(p99, 0.9):.2f} ms, "
          f"under 2 ms in {100 * under / len(p99):.0f} % of draws")


if __name__ == "__main__":
    main()
