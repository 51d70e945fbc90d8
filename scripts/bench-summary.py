#!/usr/bin/env python3
"""Reads the JSON reports of multiparty-meeting-load written by scripts/bench.sh and prints
the benchmark tables of docs/benchmarks.md (markdown), or checks one report.

  scripts/bench-summary.py tables DIR        markdown tables of every report in DIR
  scripts/bench-summary.py carried FILE NAME exit 0 when target NAME carried the load:
                                             packet and frame loss < 1 %, video p99 < 100 ms
"""
import glob
import json
import os
import sys

MAX_LOSS_PCT = 1.0
MAX_P99_MS = 100.0


def load(path):
    with open(path) as f:
        return json.load(f)


def target(doc, name):
    for t in doc.get("targets", []):
        if t["target"] == name:
            return t
    return None


def carried(t):
    if t is None or t["subscribers_with_media"] < t["subscribers"]:
        return False
    lat = t.get("latency_video_ms") or t.get("latency_ms") or {}
    return (
        t["loss_pct"] < MAX_LOSS_PCT
        and t["frame_loss_pct"] < MAX_LOSS_PCT
        and lat.get("p99", 1e9) < MAX_P99_MS
    )


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def lat(t, key="latency_ms"):
    p = t.get(key)
    if not p:
        return "-"
    return f"{p['p50']:.2f} / {p['p99']:.2f} / {p['p999']:.2f}"


def row(cells):
    return "| " + " | ".join(cells) + " |"


def tables(directory):
    files = sorted(glob.glob(os.path.join(directory, "*.json")))
    docs = {os.path.basename(f)[:-5]: load(f) for f in files}
    floor = None
    for d in docs.values():
        if d.get("udp_floor"):
            floor = d["udp_floor"]
    out = []
    if floor:
        out.append("### Loopback UDP floor (1200-byte datagrams, one core)\n")
        out.append(row(["mode", "datagrams / s", "per thread CPU-s"]))
        out.append(row(["---"] * 3))
        for mode in ("send_recv_one_core", "send_only"):
            f = floor[mode]
            out.append(row([mode, fmt(f["per_wall_second"]), fmt(f["per_thread_cpu_second"])]))
        out.append("")
    sections = {}
    for name, d in docs.items():
        prefix = name.split("-")[0]
        sections.setdefault(prefix, []).append((name, d))
    for prefix, runs in sorted(sections.items()):
        if prefix == "floor":
            continue
        out.append(f"### {prefix}\n")
        out.append(
            row(
                [
                    "run",
                    "target",
                    "subs",
                    "with media",
                    "rx pkt/s",
                    "server CPU %",
                    "egress pkt / CPU-s",
                    "x floor",
                    "loss % pkt / frame",
                    "latency ms p50/p99/p99.9",
                    "video p99",
                    "join ms p50/p99",
                    "RSS KiB / sub",
                    "carried",
                ]
            )
        )
        out.append(row(["---"] * 14))
        for name, d in sorted(runs, key=lambda r: (r[1]["targets"][0]["subscribers"] if r[1]["targets"] else 0, r[0])):
            for t in d["targets"]:
                s = t.get("server") or {}
                e = s.get("egress_pps_per_cpu_second")
                frac = e / floor["send_recv_one_core"]["per_wall_second"] if (e and floor) else None
                j = t.get("join_ms") or {}
                vl = t.get("latency_video_ms") or {}
                rss = s.get("rss_per_subscriber_bytes")
                out.append(
                    row(
                        [
                            name,
                            t["target"],
                            str(t["subscribers"]),
                            str(t["subscribers_with_media"]),
                            fmt(t["rx_pps"]),
                            fmt(s.get("cpu_pct"), 1),
                            fmt(e),
                            fmt(frac, 2) if frac else "-",
                            f"{t['loss_pct']:.2f} / {t['frame_loss_pct']:.2f}",
                            lat(t),
                            fmt(vl.get("p99"), 1),
                            f"{fmt(j.get('p50'))} / {fmt(j.get('p99'))}",
                            fmt(rss / 1024 if rss is not None else None, 0),
                            "yes" if carried(t) else "no",
                        ]
                    )
                )
        out.append("")
    print("\n".join(out))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "tables":
        tables(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "carried":
        sys.exit(0 if carried(target(load(sys.argv[2]), sys.argv[3])) else 1)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
