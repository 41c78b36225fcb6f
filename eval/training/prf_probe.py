"""Probe (session 23): does pseudo-relevance feedback on the impact index lift the inference-free queries?

The shipped lexical cards score a query's own tokens against the documents as echo-corpusfit encoded them. PRF
(Rocchio / RM3, the classic lexical fix for vocabulary mismatch; SPLADE papers report it on sparse vectors too) adds
the terms of the first pass's top documents to the query:

  q' = q / |q|_1 + beta * F_m / |F_m|_1
  F  = mean of the top ``fb_docs`` document vectors          ("mean")
     or sum of softmax(first-pass score) x L1-normalised doc vectors  ("rm3")
  F_m = F cut to its ``fb_terms`` largest terms

scored in memory (dense matrices over every document term; float weights, as doc_transform_probe.py). Prints nDCG@10
on the held-out third of SciFact train-fit (seed 13, the set every query-side choice here is made on), on the other
two thirds, and on SciFact dev; with --test, also whole SciFact test and Vaswani-3000 test (reports only: choose on
held-out).

    python eval/training/prf_probe.py [--card smollm2-135m-echo-corpusfit-lexqfit] [--test]
"""
import argparse
import json
from collections import Counter

import torch

from csplade_pyserini.calibrate import holdout_split, ndcg_at_k, read_qrels
from csplade_pyserini.encoder import resolve_card
from csplade_pyserini.fit_query_weights import query_counts
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.paths import data_dir
from csplade_pyserini.topics import load_topics

GRID = [(kind, k, m, b) for kind in ("mean", "rm3") for k in (3, 5, 10) for m in (10, 30, 100) for b in (0.1, 0.25, 0.5)]


def read_docs(path):
    """(docids, [N, T] float32 over every term any document has, term -> column)."""
    from pathlib import Path

    dids, rows, col = [], [], {}
    for f in sorted(Path(path).glob("*.jsonl")):
        for line in open(f, encoding="utf-8"):
            obj = json.loads(line)
            dids.append(str(obj["id"]))
            rows.append({col.setdefault(t, len(col)): w / 100.0 for t, w in obj["vector"].items()})
    docs = torch.zeros(len(dids), len(col))
    for i, r in enumerate(rows):
        docs[i, list(r)] = torch.tensor(list(r.values()))
    return dids, docs, col


def query_matrix(enc, topics, col):
    counts = query_counts(enc.queries, list(topics.values()))[0]
    Q = torch.zeros(len(counts), len(col))
    for i, c in enumerate(counts):
        for v, x in enc.queries.weights(Counter(c)):
            j = col.get(enc.queries.terms.term(v))
            if j is not None:
                Q[i, j] = x
    return list(topics), Q


def feedback(Q, docs, kind, k, m, beta):
    s = Q @ docs.T
    top = s.topk(k, dim=1)
    if kind == "mean":
        F = docs[top.indices].mean(1)
    else:
        d = docs[top.indices]
        d = d / d.sum(-1, keepdim=True).clamp_min(1e-9)
        w = torch.softmax(top.values / top.values[:, :1].clamp_min(1e-9) * 10.0, dim=1)  # sharpness relative to the best
        F = (w.unsqueeze(-1) * d).sum(1)
    vals, idx = F.topk(m, dim=1)
    Fm = torch.zeros_like(F).scatter_(1, idx, vals)
    return Q / Q.sum(1, keepdim=True).clamp_min(1e-9) + beta * Fm / Fm.sum(1, keepdim=True).clamp_min(1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--card", default="smollm2-135m-echo-corpusfit-lexqdf")
    ap.add_argument("--test", action="store_true")
    args = ap.parse_args()
    card = resolve_card(args.card)
    enc = LexicalQueryEncoder.load(card)
    dids, docs, col = read_docs("runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors")
    sets = {}
    judged = read_qrels("runs/data/scifact-train-fit.qrels")
    qids, Q = query_matrix(enc, load_topics("runs/data/scifact-train-fit.tsv"), col)
    dset = set(dids)
    keep = [i for i, q in enumerate(qids) if any(r > 0 and d in dset for d, r in judged.get(q, {}).items())]
    held, fit = holdout_split(len(keep), 1 / 3, 13)
    sets["held"] = ([qids[keep[i]] for i in held], Q[[keep[i] for i in held]], judged, dids, docs)
    sets["fit"] = ([qids[keep[i]] for i in fit], Q[[keep[i] for i in fit]], judged, dids, docs)
    dq, DQ = query_matrix(enc, load_topics("runs/data/scifact-dev.tsv"), col)
    sets["dev"] = (dq, DQ, read_qrels("runs/data/scifact-dev.qrels"), dids, docs)
    if args.test:
        tq, TQ = query_matrix(enc, load_topics(str(data_dir() / "scifact/queries.test.tsv")), col)
        sets["test"] = (tq, TQ, read_qrels(data_dir() / "scifact/qrels.test.txt"), dids, docs)
        venc = LexicalQueryEncoder.load(card)
        venc.use_index("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/index")
        vd, vdocs, vcol = read_docs("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/vectors")
        vq, VQ = query_matrix(venc, load_topics(str(data_dir() / "vaswani/queries.test.tsv")), vcol)
        sets["vaswani"] = (vq, VQ, read_qrels(data_dir() / "vaswani/qrels.test.txt"), vd, vdocs)
    print(args.card, {name: len(s[0]) for name, s in sets.items()}, f"{docs.shape[1]} document terms", flush=True)

    def row(label, f):
        out = [label]
        for name, (q, M, j, d, D) in sets.items():
            out += [name, round(ndcg_at_k(f(M, D) @ D.T, q, d, j), 4)]
        print(*out, flush=True)

    row("none", lambda M, D: M)
    for kind, k, m, b in GRID:
        row(f"{kind} k{k} m{m} b{b}", lambda M, D: feedback(M, D, kind, k, m, b))


if __name__ == "__main__":
    main()
