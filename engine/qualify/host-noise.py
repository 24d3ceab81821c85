#!/usr/bin/env python3
"""Reads one qualification call's logs and asks whether the baseline's slow repetitions are the host CPU slowing.

    python3 engine/qualify/host-noise.py MONITOR.txt CHILDREN.log

MONITOR.txt is run-h200.sh's monitor (a `cpu-probe N ms` sample every ~2 s: a fixed awk loop on a CPU outside the
baseline's); CHILDREN.log holds hf_reference.py's `timing:` lines (each warm-up's and timed repetition's
wall-clock window and rate). For every such window it prints the rate beside the probe's samples inside it, then,
per batch, the Pearson correlation between rate and mean probe time. A strongly negative correlation (slower
probe, lower rate) says the spread comes from the machine, not from the baseline's own code path. Times are UTC
wall clock of one day (the device calls never cross midnight).
"""

import re
import statistics
import sys

PROBE = re.compile(r"^(\d\d):(\d\d):(\d\d) .* cpu-probe (\d+) ms")
TIMING = re.compile(
    r"timing: batch (\d+) (warm-up|repetition) (\d+) (\d\d):(\d\d):(\d\d)\.(\d)-(\d\d):(\d\d):(\d\d)\.(\d) UTC (\S+) tok/s"
)


def seconds(h, m, s, tenths="0"):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(tenths) / 10


def probes(path):
    """(end time in s, ms) for each probe sample; the sample's time is when it was printed, just after the loop."""
    out = []
    for line in open(path):
        m = PROBE.match(line)
        if m:
            out.append((seconds(*m.group(1, 2, 3)), int(m.group(4))))
    return out


def windows(path):
    out = []
    for line in open(path):
        m = TIMING.search(line)
        if m:
            rate = None if m.group(12) == "none" else float(m.group(12))
            out.append({
                "batch": int(m.group(1)), "kind": m.group(2), "index": int(m.group(3)),
                "start": seconds(*m.group(4, 5, 6, 7)), "end": seconds(*m.group(8, 9, 10, 11)), "rate": rate,
            })
    return out


def pearson(xs, ys):
    if len(xs) < 3:
        return None
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else None


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    samples = probes(sys.argv[1])
    spans = windows(sys.argv[2])
    if not samples or not spans:
        sys.exit(f"found {len(samples)} probe samples and {len(spans)} timing lines: nothing to compare")
    quiet = min(ms for _, ms in samples)
    print(f"{len(samples)} probe samples: min {quiet} ms, median {statistics.median(ms for _, ms in samples):.0f} ms, "
          f"max {max(ms for _, ms in samples)} ms")
    print("batch  window        rate tok/s  probe ms in window (mean, n)  probe / quietest")
    per_batch = {}
    for w in spans:
        inside = [ms for t, ms in samples if w["start"] <= t <= w["end"]]
        mean = statistics.fmean(inside) if inside else None
        label = f"{w['kind']} {w['index']}"
        rate = f"{w['rate']:.2f}" if w["rate"] is not None else "none"
        probe = f"{mean:.0f} ({len(inside)})" if mean is not None else "- (0)"
        ratio = f"{mean / quiet:.2f}x" if mean is not None else "-"
        print(f"{w['batch']:>5}  {label:<13} {rate:>10}  {probe:>28}  {ratio:>16}")
        if mean is not None and w["rate"] is not None:
            per_batch.setdefault(w["batch"], []).append((w["rate"], mean))
    for b, pairs in sorted(per_batch.items()):
        r = pearson([p for _, p in pairs], [rate for rate, _ in pairs])
        shown = f"{r:+.2f}" if r is not None else "n/a (fewer than 3 windows with samples, or no variation)"
        print(f"batch {b}: correlation of rate with probe time over {len(pairs)} windows: {shown}")


if __name__ == "__main__":
    main()
