#!/usr/bin/env python3
"""The queueing model of docs/benchmarks.md ("Now: the latency tail at half of capacity").

N publishers send a frame every T ms, each at its own random phase, to one worker that
fans each frame out to S subscribers in D ms of work, frames in arrival order (one
server, first come first served). A subscriber's latency is the frame's wait plus its
place in the fan-out. One draw of phases is one benchmark run; the script prints the p99
over many draws.

    python3 scripts/queueing-model.py [--publishers 18] [--work-ms 0.83] [--draws 200]
"""
import argparse
import random


def one_draw(rng, n, period, work, subs, periods=30, warmup=5):
    phases = [rng.uniform(0, period) for _ in range(n)]
    arrivals = sorted(p + k * period for k in range(periods) for p in phases)
    free = 0.0
    lat = []
    for a in arrivals:
        start = max(a, free)
        free = start + work
        if a > warmup * period:
            # Half of a frame's work reads and queues it; then the copies go out in order.
            lat.extend(start - a + work * 0.5 + work * 0.5 * (i + 1) / subs for i in range(subs))
    lat.sort()
    return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--publishers", type=int, default=18)
    ap.add_argument("--subscribers", type=int, default=50)
    ap.add_argument("--period-ms", type=float, default=1000 / 30)
    ap.add_argument("--work-ms", type=float, default=0.83)
    ap.add_argument("--draws", type=int, default=200)
    a = ap.parse_args()
    rng = random.Random(1)
    runs = [one_draw(rng, a.publishers, a.period_ms, a.work_ms, a.subscribers) for _ in range(a.draws)]
    p99 = sorted(r[1] for r in runs)
    p50 = sorted(r[0] for r in runs)
    pick = lambda xs, q: xs[int(q * (len(xs) - 1))]
    print(f"utilisation {a.publishers * a.work_ms / a.period_ms:.2f}")
    print(f"p50 over draws: median {pick(p50, 0.5):.2f} ms")
    print(f"p99 over draws: median {pick(p99, 0.5):.2f} ms, "
          f"10th-90th percentile of draws {pick(p99, 0.1):.2f}-{pick(p99, 0.9):.2f} ms")


if __name__ == "__main__":
    main()
