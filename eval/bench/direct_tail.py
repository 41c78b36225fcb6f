"""Tail latency of lucene_direct alone: every topic searched a few passes over, no other searcher in the JVM.

    python eval/bench/direct_tail.py --index runs/reproduce/scifact-full-bm25/bm25-index --similarity bm25

query_latency.py times the direct searchers interleaved with Pyserini's and the model in one loop; this script
times them alone, to tell a slow query from a pause caused by the rest of that loop. Pass 0 starts cold (the
JVM has not yet run a search); the table has p50/p99/max per pass and the topics above --slow-ms. Writes JSON
(default: eval/bench/direct_tail.json). --freeze-gc calls gc.freeze() once loaded: the ~300 ms pauses seen without
it are Python's full (generation 2) garbage collections walking every object torch, transformers and Pyserini
created at import (timed with gc.callbacks; the JVM's own GC pauses and safepoints were all under 8 ms).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--similarity", choices=["bm25", "impact"], default="bm25")
    p.add_argument("--encoder", default=None, help="impact: the query encoder (default: the default encoder)")
    p.add_argument("--topics", default="scifact-test")
    p.add_argument("--hits", type=int, default=1000)
    p.add_argument("--passes", type=int, default=3)
    p.add_argument("--slow-ms", type=float, default=50.0)
    p.add_argument("--freeze-gc", action="store_true",
                   help="searcher.freeze_python_gc() after loading, as CspladeSearcher does by default")
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    from csplade_pyserini.lucene_direct import DirectSearcher
    from csplade_pyserini.reproduce import machine_summary
    from csplade_pyserini.searcher import freeze_python_gc
    from csplade_pyserini.topics import load_topics
    from query_latency import pct  # beside this script

    topics = load_topics(a.topics)
    queries = list(topics.values())
    if a.similarity == "impact":  # encoded once, before timing: this measures the search alone
        from csplade_pyserini.encoder import DEFAULT_ENCODER
        from csplade_pyserini.encoders import CspladeQueryEncoder

        qenc = CspladeQueryEncoder(a.encoder or DEFAULT_ENCODER, device="cpu")
        qenc.use_index(a.index)
        queries = qenc.encode_batch(queries)
    searcher = DirectSearcher(a.index, a.similarity)
    if a.freeze_gc:
        freeze_python_gc()
    load = open("/proc/loadavg").read().split()[:3]
    passes = []
    for n in range(a.passes):
        ms = []
        for q in queries:
            t0 = time.perf_counter()
            searcher.search(q, a.hits)
            ms.append(1000 * (time.perf_counter() - t0))
        passes.append({"pass": n, "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms),
                       "slow": [(i, round(v, 1)) for i, v in enumerate(ms) if v > a.slow_ms]})
    print(f"{a.similarity} {a.index}, {len(queries)} topics, top {a.hits}; {machine_summary()}; load {load}"
          f"{'; gc frozen' if a.freeze_gc else ''}")
    print(f"{'pass':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  topics above {a.slow_ms:g} ms (index, ms)")
    for r in passes:
        print(f"{r['pass']:>4} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['max_ms']:>8.1f}  {r['slow']}")
    Path(a.output).write_text(json.dumps({"index": a.index, "similarity": a.similarity, "topics": a.topics,
                                          "freeze_gc": a.freeze_gc,
                                          "hits": a.hits, "machine": machine_summary(), "load": load,
                                          "passes": passes}, indent=1) + "\n")


if __name__ == "__main__":
    main()
