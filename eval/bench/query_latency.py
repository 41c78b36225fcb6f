"""Single-query latency, end to end (encode + Lucene impact search, top 1000), beside BM25 on the same machine.

    python eval/bench/query_latency.py --index runs/demo/index --bm25-index runs/demo/bm25-index --topics scifact-test

For every topic, one at a time: CSPLADE query encoding (no cache) then LuceneImpactSearcher.search(k=1000), and
BM25 LuceneSearcher.search(k=1000); with --compile, also a torch.compile'd copy of the encoder in the
same loop; with --lexical CARD, also that card's inference-free queries (no model call) on the same index; with
--hybrid W_CSPLADE W_BM25 (and --lexical), also the hybrid as `search --bm25-index` runs it, timed as one sequence
per query: lexical encode, impact search, BM25 search, interpolation of the two top --hits (fuse.interpolation).
With --direct, the same loop also times searcher.CspladeSearcher (lucene_direct: Lucene's top k without reading each
hit's stored document) for the model's queries, the --lexical card's and its --hybrid, and DirectSearcher's BM25,
and counts the queries whose ranking equals Pyserini's (ids and scores). Reports p50/p90/p99 of each part, and
batch throughput (encode_batch + Pyserini's batch_search on all cores; with --direct also encode_batch +
lucene_direct.search_all on one thread, the search CLI's default). Prints a table and writes eval/bench/query_latency.json.
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
    p.add_argument("--compile", action="store_true",
                   help="also time a torch.compile'd copy of the encoder in the same loop (and its agreement)")
    p.add_argument("--lexical", default=None, metavar="ENCODER",
                   help="also time this query_encoder: lexical card (e.g. smollm2-135m-echo-corpusfit-lexq) in the same "
                        "loop, searching the same index (its passage side must equal --encoder's)")
    p.add_argument("--hybrid", type=float, nargs=2, default=None, metavar=("W_CSPLADE", "W_BM25"),
                   help="also time the --lexical card's hybrid with BM25 (interpolation with these weights), one "
                        "sequence per query")
    p.add_argument("--direct", action="store_true",
                   help="also time searcher.CspladeSearcher / lucene_direct.DirectSearcher beside Pyserini's searchers "
                        "in the same loop, and check their rankings equal Pyserini's")
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    if a.hybrid and not a.lexical:
        p.error("--hybrid times the --lexical card's hybrid: pass --lexical too")
    from csplade_pyserini.cli import UsageError, check_index
    from csplade_pyserini.search import check_index_encoder

    try:
        for flag, path in (("--index", a.index), ("--bm25-index", a.bm25_index)):
            check_index(path, flag)
        check_index_encoder(a.index, a.encoder)  # an index that records its passages' encoder: must be --encoder's
    except UsageError as e:
        p.error(str(e))
    topics = load_topics(a.topics)
    if a.max_queries:
        topics = dict(list(topics.items())[: a.max_queries])
    texts = list(topics.values())
    qenc = CspladeQueryEncoder(a.encoder, device="cpu")
    qenc.use_index(a.index)  # a lexical side with a df curve reads this index's document frequencies
    enc = qenc.encoder
    searcher = LuceneImpactSearcher(a.index, qenc, min_idf=-1)
    bm25 = LuceneSearcher(a.bm25_index)
    enc.encode(texts[:2], "query"), searcher.search(texts[0], k=a.hits), bm25.search(texts[0], k=a.hits)  # warm-up
    compiled, warmup_s = None, None
    if a.compile:  # a second copy, compiled, timed in the same loop as the eager one (same queries, same moment)
        from csplade_pyserini.encoder import CspladeEncoder

        compiled = CspladeEncoder.load(a.encoder, device="cpu", compile=True)
        t0 = time.perf_counter()
        for q in texts[:3]:
            compiled.encode([q], "query")
        warmup_s = time.perf_counter() - t0
        print(f"compiled encoder warm-up (3 queries, compilation included): {warmup_s:.1f} s")
    lexical = None
    if a.lexical:  # an inference-free query side over the same index: its passages must be --encoder's
        from csplade_pyserini.encoder import load_query_encoder, resolve_card

        if resolve_card(a.lexical).passage_side() != resolve_card(a.encoder).passage_side():
            p.error(f"--lexical {a.lexical}: its passage side differs from {a.encoder}'s, so {a.index} is not its index")
        lexical = load_query_encoder(a.lexical)
        lexical.use_index(a.index)  # a df curve's document frequencies: looked up (and cached) per token
        if lexical.card.query_encoder != "lexical":
            p.error(f"--lexical {a.lexical}: the card's query_encoder is {lexical.card.query_encoder!r}")
        lqenc = CspladeQueryEncoder(encoder=lexical)
        lsearcher = LuceneImpactSearcher(a.index, lqenc, min_idf=-1)
        lexical.encode(texts[:2], "query"), lsearcher.search(texts[0], k=a.hits)  # warm-up
    direct = None
    if a.direct:  # the serving path, beside Pyserini's, same queries in the same loop
        from csplade_pyserini.lucene_direct import DirectSearcher
        from csplade_pyserini.searcher import CspladeSearcher

        direct = {"csplade": CspladeSearcher(a.index, a.encoder), "bm25": DirectSearcher(a.bm25_index, "bm25")}
        if lexical is not None:
            direct["lexical"] = CspladeSearcher(a.index, a.lexical)
        if a.hybrid:
            direct["hybrid"] = CspladeSearcher(a.index, a.lexical, bm25_index=a.bm25_index, fusion="interpolation",
                                               fusion_weights=list(a.hybrid), fusion_depth=a.hits)
        for name, s in direct.items():  # warm-up
            s.search(texts[0], a.hits)
        t_direct = {name: [] for name in direct}
        same = {name: 0 for name in direct}
    t_enc, t_search, t_total, t_bm25, t_cenc, t_ctotal = [], [], [], [], [], []
    t_lenc, t_lsearch, t_ltotal, t_hybrid, t_fuse = [], [], [], [], []
    from csplade_pyserini.fuse import interpolation
    same_ints, top10 = [], []
    for q in texts:
        t0 = time.perf_counter()
        vec = enc.encode([q], "query")[0]
        t1 = time.perf_counter()
        qenc.cache = {q: vec}
        pys_impact = searcher.search(q, k=a.hits)
        t2 = time.perf_counter()
        pys_bm25 = bm25.search(q, k=a.hits)
        t3 = time.perf_counter()
        t_enc.append(t1 - t0), t_search.append(t2 - t1), t_total.append(t2 - t0), t_bm25.append(t3 - t2)
        if lexical is not None:
            t5 = time.perf_counter()
            lvec = lexical.encode([q], "query")[0]
            t6 = time.perf_counter()
            lqenc.cache = {q: lvec}
            pys_lexical = lsearcher.search(q, k=a.hits)
            t7 = time.perf_counter()
            t_lenc.append(t6 - t5), t_lsearch.append(t7 - t6), t_ltotal.append(t7 - t5)
        if a.hybrid:
            t8 = time.perf_counter()
            lqenc.cache = {q: lexical.encode([q], "query")[0]}
            h1 = [(h.docid, h.score) for h in lsearcher.search(q, k=a.hits)]
            h2 = [(h.docid, h.score) for h in bm25.search(q, k=a.hits)]
            t9 = time.perf_counter()
            pys_hybrid = interpolation([{q: h1}, {q: h2}], a.hybrid, a.hits, a.hits).get(q, [])
            t10 = time.perf_counter()
            t_hybrid.append(t10 - t8), t_fuse.append(t10 - t9)
        if direct is not None:
            pys = {"csplade": [(h.docid, h.score) for h in pys_impact], "bm25": [(h.docid, h.score) for h in pys_bm25]}
            if lexical is not None:
                pys["lexical"] = [(h.docid, h.score) for h in pys_lexical]
            if a.hybrid:
                pys["hybrid"] = pys_hybrid
            for name, s in direct.items():
                t11 = time.perf_counter()
                hits = s.search(q, a.hits)
                t_direct[name].append(time.perf_counter() - t11)
                same[name] += [tuple(h) for h in hits] == [tuple(h) for h in pys[name]]
        if compiled is not None:
            t4 = time.perf_counter()
            cvec = compiled.encode([q], "query")[0]
            t_cenc.append(time.perf_counter() - t4)
            t_ctotal.append(t_cenc[-1] + t_search[-1])  # the same query vector size: the eager search time
            same_ints.append(sum(1 for t, v in cvec.items() if vec.get(t) == v) / max(len(vec), len(cvec), 1))
            top = lambda d: set(sorted(d, key=d.get, reverse=True)[:10])  # noqa: E731
            top10.append(len(top(vec) & top(cvec)) / max(len(top(vec)), 1))
    qenc.cache = {}
    threads = os.cpu_count() or 1
    t0 = time.perf_counter()
    qenc.encode_batch(texts)
    searcher.batch_search(texts, list(topics), k=a.hits, threads=threads)
    csplade_qps = len(texts) / (time.perf_counter() - t0)
    lexical_qps = None
    if lexical is not None:
        lqenc.cache = {}
        t0 = time.perf_counter()
        lqenc.encode_batch(texts)
        lsearcher.batch_search(texts, list(topics), k=a.hits, threads=threads)
        lexical_qps = len(texts) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    bm25.batch_search(texts, list(topics), k=a.hits, threads=threads)
    bm25_qps = len(texts) / (time.perf_counter() - t0)
    batch_direct = None
    if direct is not None:  # the search CLI's batch path (lucene_direct.search_all, one thread), same encode
        from csplade_pyserini.lucene_direct import search_all

        def direct_qps(enc_, index, similarity):
            t0 = time.perf_counter()
            if enc_ is None:  # BM25: the texts
                queries = dict(topics)
            else:
                enc_.cache = {}
                queries = dict(zip(topics, enc_.encode_batch(texts)))
            search_all(index, queries, a.hits, similarity)
            return len(texts) / (time.perf_counter() - t0)

        batch_direct = {"csplade": direct_qps(qenc, a.index, "impact"), "bm25": direct_qps(None, a.bm25_index, "bm25")}
        if lexical is not None:
            batch_direct["lexical"] = direct_qps(lqenc, a.index, "impact")
    parts = [("csplade encode", t_enc), ("csplade search", t_search), ("csplade total", t_total),
             ("bm25 total", t_bm25)]
    if compiled is not None:
        parts[3:3] = [("compiled encode", t_cenc), ("compiled total", t_ctotal)]
    if lexical is not None:
        parts[-1:-1] = [("lexical encode", t_lenc), ("lexical search", t_lsearch), ("lexical total", t_ltotal)]
    if a.hybrid:
        parts[-1:-1] = [("hybrid fusion", t_fuse), ("hybrid total", t_hybrid)]
    if direct is not None:
        parts += [(f"direct {name}", t_direct[name]) for name in direct]
    rows = {name: {f"p{q}_ms": 1000 * pct(xs, q) for q in (50, 90, 99)} for name, xs in parts}
    machine = machine_summary()
    print(f"{a.encoder} ({enc.card.dtype}) on {machine}")
    print(f"{len(texts)} queries, top {a.hits}, index {a.index}; load {open('/proc/loadavg').read().split()[:3]}")
    print(f"{'':<16} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}")
    for name, r in rows.items():
        print(f"{name:<16} {r['p50_ms']:>8.1f} {r['p90_ms']:>8.1f} {r['p99_ms']:>8.1f}")
    ratio = rows["csplade total"]["p50_ms"] / rows["bm25 total"]["p50_ms"]
    print(f"p50 ratio csplade/bm25: {ratio:.1f}x; batch throughput: csplade {csplade_qps:.1f} q/s, bm25 {bm25_qps:.1f} q/s "
          f"({threads} threads)")
    out = {"queries": len(texts), "hits": a.hits, "index": a.index, "latency": rows,
           "p50_ratio": ratio, "batch_qps": {"csplade": csplade_qps, "bm25": bm25_qps},
           "encoder": a.encoder, "dtype": enc.card.dtype, "machine": machine,
           "load": open("/proc/loadavg").read().split()[:3]}
    if lexical is not None:
        out["lexical"] = {"encoder": a.lexical, "p50_ratio": rows["lexical total"]["p50_ms"] / rows["bm25 total"]["p50_ms"],
                          "batch_qps": lexical_qps,
                          "terms_per_query": sum(len(v) for v in lqenc.cache.values()) / max(len(lqenc.cache), 1)}
        lx = out["lexical"]
        print(f"lexical queries ({a.lexical}): p50 ratio {lx['p50_ratio']:.2f}x BM25, batch {lexical_qps:.1f} q/s, "
              f"{lx['terms_per_query']:.1f} terms/query")
    if a.hybrid:
        out["hybrid"] = {"weights": a.hybrid, "p50_ratio": rows["hybrid total"]["p50_ms"] / rows["bm25 total"]["p50_ms"]}
        print(f"hybrid ({a.lexical} + BM25, interpolation {a.hybrid[0]:g}/{a.hybrid[1]:g}): p50 ratio "
              f"{out['hybrid']['p50_ratio']:.2f}x BM25")
    if direct is not None:
        base = rows["bm25 total"]["p50_ms"]
        out["direct"] = {"p50_ratio_to_pyserini_bm25": {name: rows[f"direct {name}"]["p50_ms"] / base for name in direct},
                         "same_ranking_as_pyserini": same, "batch_qps": batch_direct}
        print("batch throughput, the search CLI's direct path (one thread): " + ", ".join(
            f"{name} {qps:.1f} q/s" for name, qps in batch_direct.items()))
        print("direct (CspladeSearcher / DirectSearcher) p50 / Pyserini BM25 p50: " + ", ".join(
            f"{name} {r:.2f}x" for name, r in out["direct"]["p50_ratio_to_pyserini_bm25"].items()))
        print("queries whose top " + str(a.hits) + " equals Pyserini's (ids and scores): " + ", ".join(
            f"{name} {n}/{len(texts)}" for name, n in same.items()))
    if compiled is not None:
        out["compiled"] = {"warmup_s": warmup_s,
                           "p50_ratio": rows["compiled total"]["p50_ms"] / rows["bm25 total"]["p50_ms"],
                           "same_int_share": sum(same_ints) / len(same_ints),
                           "top10_agreement": sum(top10) / len(top10)}
        c = out["compiled"]
        print(f"compiled: p50 ratio {c['p50_ratio']:.1f}x; same (term, int) share {c['same_int_share']:.3f}, "
              f"top-10 agreement with eager {c['top10_agreement']:.3f}")
    Path(a.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
