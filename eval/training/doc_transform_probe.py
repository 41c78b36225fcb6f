"""Probe (session 21): would a saturating transform of the document weights help the default's lexical queries?

BM25 saturates term frequency; CSPLADE's document weights are log(1 + relu(logit)), already a log. This probe scores
queries encoded by smollm2-135m-echo-corpusfit-lexqdf against the documents as echo-corpusfit encoded them, with
every document weight w replaced by
  power:      w ** gamma                     (gamma 1 = as shipped)
  saturate:   w * (k + 1) / (w + k)          (k = inf = as shipped; weights in the card's float units)
and prints nDCG@10 on the held-out third of SciFact train-fit that fit_query_weights uses (seed 13) and on the rest.
With --vaswani it also scores Vaswani-3000's test queries (zero-shot; the df curve reads that index), as a report
only: choose on the held-out SciFact queries.

    python eval/training/doc_transform_probe.py [--vaswani]
"""
import argparse
from collections import Counter
import torch
from csplade_pyserini.fit_query_weights import vector_files, read_vectors, query_counts
from csplade_pyserini.calibrate import ndcg_at_k, read_qrels, holdout_split
from csplade_pyserini.encoder import resolve_card
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.topics import load_topics
from csplade_pyserini.paths import data_dir

GRID = [("power", g) for g in (0.5, 0.7, 0.85, 1.0, 1.15, 1.3, 1.5)] + \
       [("saturate", k) for k in (0.5, 1.0, 2.0, 4.0, 8.0)]


def transform(docs, kind, p):
    return docs ** p if kind == "power" else docs * (p + 1) / (docs + p)


def matrices(enc, topics, vectors, with_terms: bool = False):
    """(query ids, query matrix, doc ids, doc matrix) over the queries' terms; ``with_terms`` adds the columns' terms."""
    qids = list(topics)
    vecs = [dict(enc.queries.weights(Counter(c))) for c in query_counts(enc.queries, list(topics.values()))[0]]
    cols = sorted({v for w in vecs for v in w}); col = {v: j for j, v in enumerate(cols)}
    t2c = {enc.queries.terms.term(v): j for v, j in col.items()}
    dids, docs = read_vectors(vector_files([vectors]), t2c, 100.0)
    Q = torch.zeros(len(qids), len(cols))
    for i, w in enumerate(vecs):
        for v, x in w.items():
            Q[i, col[v]] = x
    return (qids, Q, dids, docs) + ((list(t2c),) if with_terms else ())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vaswani", action="store_true")
    args = ap.parse_args()
    card = resolve_card("smollm2-135m-echo-corpusfit-lexqdf")
    enc = LexicalQueryEncoder.load(card)
    topics = load_topics("runs/data/scifact-train-fit.tsv"); judged = read_qrels("runs/data/scifact-train-fit.qrels")
    qids, Q, dids, docs = matrices(enc, topics, "runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors")
    dset = set(dids)
    keep = [i for i, q in enumerate(qids) if any(r > 0 and d in dset for d, r in judged.get(q, {}).items())]
    Q = Q[keep]; qk = [qids[i] for i in keep]
    held, fit = holdout_split(len(qk), 1 / 3, 13)
    if args.vaswani:
        venc = LexicalQueryEncoder.load(card)
        venc.use_index("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/index")
        vt = load_topics(str(data_dir() / "vaswani/queries.test.tsv"))
        vj = read_qrels(data_dir() / "vaswani/qrels.test.txt")
        vq, VQ, vd, vdocs = matrices(venc, vt, "runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/vectors")
    for kind, p in GRID:
        d = transform(docs, kind, p)
        sc = Q @ d.T
        row = [kind, p, "held", round(ndcg_at_k(sc[held], [qk[i] for i in held], dids, judged), 4),
               "fit", round(ndcg_at_k(sc[fit], [qk[i] for i in fit], dids, judged), 4)]
        if args.vaswani:
            row += ["vaswani", round(ndcg_at_k(VQ @ transform(vdocs, kind, p).T, vq, vd, vj), 4)]
        print(*row, flush=True)


if __name__ == "__main__":
    main()
