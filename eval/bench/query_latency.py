"""Single-query latency, end to end (encode + Lucene impact search, top 1000), beside BM25 on the same machine.

    python eval/bench/query_latency.py --index runs/demo/index --bm25-index runs/demo/bm25-index --topics scifact-test

For every topic, one at a time: CSPLADE query encoding (no cache) then LuceneImpactSearcher.search(k=1000), and
BM25 LuceneSearcher.search(k=1000). Reports p50/p90/p99 of each part, and batch throughput (encode_batch +
batch_search). Prints a table and writes eval/bench/query_latency.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    from csplade_pyserini import jvm

    jvm.bootstrap()
    from csplade_pyserini.encoder import DEFAULT_ENCODER
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.reproduce import machine_summary
    from csplade_pyserini.topics import load_topics
    from pyserini.search.lucene import LuceneImpactSearcher, LuceneSearcher

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--bm25-index", required=True)
    p.add_argument("--topics", default="scifact-test")
    p.add_argument("--encoder", default=DEFAULT_ENCODER)
    p.add_argument("--hits", type=int, default=1000)
    p.add_argument("--max-queries", type=int, default=0)
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    topics = load_topics(a.topics)
    if a.max_queries:
        topics = dict(list(topics.items())[: a.max_queries])
    texts = list(topics.values())
    qenc = CspladeQueryEncoder(a.encoder, device="cpu")
    enc = qenc.encoder
    searcher = LuceneImpactSearcher(a.index, qenc, min_idf=-1)
    bm25 = LuceneSearcher(a.bm25_index)
    enc.encode(texts[:2], "query"), searcher.search(texts[0], k=a.hits), bm25.search(texts[0], k=a.hits)  # warm-up
    t_enc, t_search, t_total, t_bm25 = [], [], [], []
    for q in texts:
        t0 = time.perf_counter()
        vec = enc.encode([q], "query")[0]
        t1 = time.perf_counter()
        qenc.cache = {q: vec}
        searcher.search(q, k=a.hits)
        t2 = time.perf_counter()
        bm25.search(q, k=a.hits)
        t3 = time.perf_counter()
        t_enc.append(t1 - t0), t_search.append(t2 - t1), t_total.append(t2 - t0), t_bm25.append(t3 - t2)
    qenc.cache = {}
    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    qenc.encode_batch(texts)
    searcher.batch_search(texts, list(topics), k=a.hits, threads=threads)
    csplade_qps = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    bm25.batch_search(texts, list(topics), k=a.hits, threads=threads)
    bm25_qps = len(texts) / (time.perf_counter() - t0)
    rows = {name: {f"p{q}_ms": 1000 * pct(xs, q) for q in (50, 90, 99)} for name, xs in
            (("csplade encode", t_enc), ("csplade search", t_search), ("csplade total", t_total), ("bm25 total", t_bm25))}
    machine = machine_summary()
    print(f"{a.encoder} ({enc.card.dtype}) on {machine}")
    print(f"{len(texts)} queries, top {a.hits}, index {a.index}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'':<16} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, r in rows.items():
        print(f"{name:<16} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f}")
    ratio = rows["csplade total"]["p50_ms"] / rows["bm25 total"]["p50_ms"]
    print(f"p50 ratio csplade/bm25: {ratio:.1f}x; batch throughput: csplade {csplade_qps:.1f} q/s, bm25 {bm25_qps:.1f} q/s "
          f"({threads} threads)")
    Path(a.output).write_text(json.dumps({"queries": len(texts), "hits": a.hits, "index": a.index, "latency": rows,
                                          "p50_ratio": ratio, "batch_qps": {"csplade": csplade_qps, "bm25": bm25_qps},
                                          "encoder": a.encoder, "dtype": enc.card.dtype, "machine": machine,
                                          "load": open("/proc/loadavg").read().split()[:3]},
                                         indent=2) + "\n")


if __name__ == "__main__":
    main()
