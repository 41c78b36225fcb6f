"""In-memory dev evaluation for model selection: dev queries against their judged passages + a seeded sample.

    python eval/training/dev_eval.py ENCODER [ENCODER ...] --topics runs/data/scifact-dev.tsv \\
        --qrels runs/data/scifact-dev.qrels [--pool 1000] [--passage-max-length 128] [--json out.json]
        [--query-top-ks 32 64 128] [--passage-windows 1 2 3] [--passage-top-ks 256 512 0]

Float weights from the encoder (top-k as its card says), dot products in memory, nDCG@10 / R@100 with
trec_eval's definitions (binary qrels here). For choosing between checkpoints and settings quickly; reported
results come from the reproduce runner (Lucene index, Pyserini search, trec_eval).
"""
import argparse
import json
import random
import time

import torch

from csplade_pyserini.calibrate import ndcg_at_k, read_qrels
from csplade_pyserini.corpus import doc_id, record_text
from csplade_pyserini.encoder import CspladeEncoder, length_batches
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
    windows = enc.windows(side)
    m = enc.model
    toks = m.token_lists(texts, prefix)
    out = torch.zeros(len(texts), m.lm_head.weight.shape[0])
    for idx in length_batches(toks, batch_size):
        f = m.features([toks[i] for i in idx], max_length or default_len, windows).to(m.device)
        w = m(**f.inputs()).float().cpu()
        out[idx] = cut_top_k(w, top_k)
    return out


def dev_pool(topics_path, qrels_path, corpus, pool=1000, seed=13):
    """(topics, qrels, judged query ids, {doc id: text}, pool doc ids): every document judged for a dev query, then a
    seeded sample of the rest up to ``pool`` documents."""
    topics, qrels = load_topics(topics_path), read_qrels(qrels_path)
    qids = [q for q in topics if q in qrels]
    docs = {}
    for line in open(corpus, encoding="utf-8"):
        d = json.loads(line)
        docs[str(doc_id(d, None))] = record_text(d)
    judged = sorted({d for q in qids for d in qrels[q] if d in docs})
    rest = sorted(set(docs) - set(judged))
    return topics, qrels, qids, docs, judged + random.Random(seed).sample(rest, max(0, pool - len(judged)))


def cut_top_k(w, k):
    """Each row's k highest weights (0 = all), as encoding with that top-k would keep."""
    if not k or k >= w.shape[1]:
        return w
    v, i = w.topk(k, dim=1)
    return torch.zeros_like(w).scatter_(1, i, v)


def evaluate(name, enc, wq, wd, qids, dids, qrels, top_k, t0):
    s = wq @ wd.T
    row = {"encoder": name, "passage_windows": enc.card.passage_windows,
           "passage_top_k": enc.card.passage_top_k if top_k is None else top_k,
           "ndcg@10": round(ndcg_at_k(s, qids, dids, qrels), 4),
           "r@100": round(recall_at(s, qids, dids, qrels), 4), "queries": len(qids), "passages": len(dids),
           "terms_per_query": round(float((wq > 0).sum(1).float().mean()), 1),
           "terms_per_passage": round(float((wd > 0).sum(1).float().mean()), 1),
           "seconds": round(time.time() - t0, 1)}
    print(json.dumps(row), flush=True)
    return row


def query_top_k_rows(row, wq, wd, qids, dids, qrels, ks):
    out = []
    for k in ks:
        wk = cut_top_k(wq, k)
        sk = wk @ wd.T
        rk = dict(row, query_top_k=k, **{"ndcg@10": round(ndcg_at_k(sk, qids, dids, qrels), 4),
                                         "r@100": round(recall_at(sk, qids, dids, qrels), 4),
                                         "terms_per_query": round(float((wk > 0).sum(1).float().mean()), 1)})
        print(json.dumps(rk), flush=True)
        out.append(rk)
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
    ap.add_argument("--passage-windows", type=int, nargs="+", default=[None],
                    help="score each encoder with passages in up to W windows of the passage length (card key "
                         "passage_windows), for each W given (default: the card's)")
    ap.add_argument("--passage-top-ks", type=int, nargs="+", default=[None],
                    help="... and with each passage top-k given (card key passage_top_k; 0 = all; default: the card's)")
    a = ap.parse_args()
    topics, qrels, qids, docs, dids = dev_pool(a.topics, a.qrels, a.corpus, a.pool, a.seed)
    rows = []
    for name in a.encoders:
        for windows in a.passage_windows:
            t0 = time.time()
            enc = CspladeEncoder.load(name, passage_windows=windows,
                                      passage_top_k=0 if a.passage_top_ks != [None] else None)
            wd_all = float_weights(enc, [docs[d] for d in dids], "passage", max_length=a.passage_max_length)
            wq = float_weights(enc, [topics[q] for q in qids], "query")
            for top_k in a.passage_top_ks:  # None: the card's (already applied); else cut the untruncated weights
                wd = wd_all if top_k is None else cut_top_k(wd_all, top_k)
                row = evaluate(name, enc, wq, wd, qids, dids, qrels, top_k, t0)
                rows.append(row)
                rows.extend(query_top_k_rows(row, wq, wd, qids, dids, qrels, a.query_top_ks))
    if a.json:
        with open(a.json, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
