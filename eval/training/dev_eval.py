"""In-memory dev evaluation for model selection: dev queries against their judged passages + a seeded sample.

    python eval/training/dev_eval.py ENCODER [ENCODER ...] --topics runs/data/scifact-dev.tsv \\
        --qrels runs/data/scifact-dev.qrels [--pool 1000] [--passage-max-length 128] [--json out.json]
        [--query-top-ks 32 64 128]

Float weights from the encoder (top-k as its card says), dot products in memory, nDCG@10 / R@100 with
trec_eval's definitions (binary qrels here). For choosing between checkpoints and settings quickly; reported
results come from the reproduce runner (Lucene index, Pyserini search, trec_eval).
"""
import argparse
import json
import math
import random
import sys
import time

import torch

from csplade_pyserini.calibrate import ndcg_at_k, read_qrels
from csplade_pyserini.corpus import doc_id, record_text
from csplade_pyserini.encoder import CspladeEncoder
from csplade_pyserini.paths import data_dir
from csplade_pyserini.topics import load_topics


def recall_at(scores, qids, dids, qrels, k=100):
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices.tolist()
    vals = []
    for i, q in enumerate(qids):
        rel = {d for d, r in qrels.get(q, {}).items() if r > 0}
        if rel:
            vals.append(len(rel & {dids[j] for j in top[i]}) / len(rel))
    return sum(vals) / max(len(vals), 1)


@torch.inference_mode()
def float_weights(enc, texts, side, batch_size=16, max_length=None):
    prefix, default_len, top_k = enc.settings(side)
    m = enc.model
    toks = m.token_lists(texts, prefix)
    order = sorted(range(len(toks)), key=lambda i: len(toks[i][0]), reverse=True)
    out = torch.zeros(len(texts), m.lm_head.weight.shape[0])
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        f = m.features([toks[i] for i in idx], max_length or default_len).to(m.device)
        w = m(f.input_ids, f.attention_mask, f.pool_mask).float().cpu()
        if top_k and top_k < w.shape[1]:
            v, i = w.topk(top_k, dim=1)
            w = torch.zeros_like(w).scatter_(1, i, v)
        out[idx] = w
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("encoders", nargs="+")
    ap.add_argument("--corpus", default=str(data_dir() / "scifact" / "corpus.jsonl"))
    ap.add_argument("--topics", required=True)
    ap.add_argument("--qrels", required=True)
    ap.add_argument("--pool", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--passage-max-length", type=int, default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--query-top-ks", type=int, nargs="*", default=[],
                    help="also score with each query cut to its k best terms (the search CLI's --top-k), from the "
                         "same encoded vectors")
    a = ap.parse_args()
    topics, qrels = load_topics(a.topics), read_qrels(a.qrels)
    qids = [q for q in topics if q in qrels]
    docs = {}
    for line in open(a.corpus, encoding="utf-8"):
        d = json.loads(line)
        docs[str(doc_id(d, None))] = record_text(d)
    judged = sorted({d for q in qids for d in qrels[q] if d in docs})
    rest = sorted(set(docs) - set(judged))
    dids = judged + random.Random(a.seed).sample(rest, max(0, a.pool - len(judged)))
    rows = []
    for name in a.encoders:
        t0 = time.time()
        enc = CspladeEncoder.load(name)
        wd = float_weights(enc, [docs[d] for d in dids], "passage", max_length=a.passage_max_length)
        wq = float_weights(enc, [topics[q] for q in qids], "query")
        s = wq @ wd.T
        row = {"encoder": name, "ndcg@10": round(ndcg_at_k(s, qids, dids, qrels), 4),
               "r@100": round(recall_at(s, qids, dids, qrels), 4), "queries": len(qids), "passages": len(dids),
               "terms_per_query": round(float((wq > 0).sum(1).float().mean()), 1),
               "terms_per_passage": round(float((wd > 0).sum(1).float().mean()), 1),
               "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
        for k in a.query_top_ks:
            v, i = wq.topk(min(k, wq.shape[1]), dim=1)
            wk = torch.zeros_like(wq).scatter_(1, i, v)
            sk = wk @ wd.T
            rk = dict(row, query_top_k=k, **{"ndcg@10": round(ndcg_at_k(sk, qids, dids, qrels), 4),
                                             "r@100": round(recall_at(sk, qids, dids, qrels), 4),
                                             "terms_per_query": round(float((wk > 0).sum(1).float().mean()), 1)})
            print(json.dumps(rk), flush=True)
            rows.append(rk)
    if a.json:
        with open(a.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
