"""One query (B=1, L=32, SmolLM2, bf16 where fast, log-softmax head): naive vs shipped, interleaved A/B.

    python eval/bench/single_query_ab.py [--reps 40] [--output eval/bench/single_query_ab.json]

encode_bench.py times each path in its own burst of a few repetitions, which at ~45 ms per call is at the mercy of
a neighbour on a shared VM. This script alternates the two paths call by call (the order flipped every round),
so both see the same machine state, and reports p50 and min of each and their ratio.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import encode_bench as eb  # noqa: E402
from csplade_pyserini.modeling.backbone import cpu_has_fast_bf16  # noqa: E402
from csplade_pyserini.reproduce import machine_summary  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=40)
    p.add_argument("--length", type=int, default=32)
    p.add_argument("--output", default=str(Path(__file__).with_name("single_query_ab.json")))
    a = p.parse_args()
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    dtype = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    m = eb.load("smollm2", "cpu", dtype, 2)
    eb.set_head(m, "log_softmax")
    ids = torch.randint(100, 40000, (1, a.length), generator=torch.Generator().manual_seed(0))
    att = torch.ones_like(ids)
    pool = att.bool()
    paths = ("naive", "shipped")
    for path in paths:  # warm-up
        for _ in range(5):
            eb.run_path(m, path, ids, att, pool)
    times = {path: [] for path in paths}
    for r in range(a.reps):
        for path in paths if r % 2 else paths[::-1]:
            t = time.perf_counter()
            eb.run_path(m, path, ids, att, pool)
            times[path].append(time.perf_counter() - t)
    rows = {}
    for path, v in times.items():
        v = sorted(v)
        rows[path] = {"p50_ms": round(1000 * v[len(v) // 2], 2), "min_ms": round(1000 * v[0], 2)}
    ratio = rows["naive"]["p50_ms"] / rows["shipped"]["p50_ms"]
    out = {"machine": machine_summary(), "dtype": str(dtype),
           "load_at_start": load, "reps": a.reps, "length": a.length, "paths": rows,
           "shipped_speedup_p50": round(ratio, 3), "command": " ".join(["python"] + sys.argv)}
    print(f"B=1 L={a.length} {dtype}, {a.reps} interleaved calls each, load {' '.join(load)}")
    print(f"{'path':10s} {'p50 ms':>8s} {'min ms':>8s}")
    for path, r in rows.items():
        print(f"{path:10s} {r['p50_ms']:8.2f} {r['min_ms']:8.2f}")
    print(f"shipped vs naive (p50): {ratio:.2f}x")
    Path(a.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
