"""Probe (session 28): would dropping stopwords from the default's lexical queries help, above all on Vaswani?

Vaswani's queries are full sentences ("MEASUREMENT OF DIELECTRIC CONSTANT OF LIQUIDS BY THE USE OF ..."), and
`-lexqdf` gives `Ġof` a query weight of 1.91 there, close to content words (2.0-2.6); echo-corpusfit's passages hold
`Ġof` in 72% of the Vaswani-3000 documents at a mean weight of 2.31. BM25 never sees it (Lucene's English analyzer
drops it). This scales the query weight of every token whose text, without the leading 'Ġ' and lowercased, is one
of Lucene's 33 English stopwords by s (1 = as shipped, 0 = dropped) and prints nDCG@10 on the held-out third of
SciFact train-fit (seed 13, the selection set of every query-side choice since session 19), the fitted two thirds,
SciFact dev, and Vaswani-3000 test (zero-shot; a report only, choose on held-out). Needs the whole-SciFact and
Vaswani-3000 echo-corpusfit vectors and index under runs/reproduce (the regressions build them).

    python eval/training/stopword_probe.py [CARD]
"""
import sys
from pathlib import Path
import torch
from csplade_pyserini.calibrate import ndcg_at_k, read_qrels, holdout_split
from csplade_pyserini.encoder import resolve_card
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.topics import load_topics
from csplade_pyserini.paths import data_dir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from doc_transform_probe import matrices as doc_matrices  # noqa: E402

STOP = set("a an and are as at be but by for if in into is it no not of on or such that the their then there these "
           "they this to was will with".split())
SCIFACT = "runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit"
VASWANI = "runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit"


def matrices(enc, topics, vectors):
    """doc_transform_probe.matrices, plus the mask of stopword columns and the columns' terms."""
    qids, Q, dids, docs, terms = doc_matrices(enc, topics, vectors, with_terms=True)
    stop = torch.tensor([t.lstrip("Ġ").lower() in STOP for t in terms])
    return qids, Q, dids, docs, stop, terms


def scores(Q, docs, stop, s):
    Q = Q.clone()
    Q[:, stop] *= s
    return Q @ docs.T


def main():
    card = resolve_card(sys.argv[1] if len(sys.argv) > 1 else "smollm2-135m-echo-corpusfit-lexqdf")
    enc = LexicalQueryEncoder.load(card)
    topics = load_topics("runs/data/scifact-train-fit.tsv"); judged = read_qrels("runs/data/scifact-train-fit.qrels")
    qids, Q, dids, docs, stop, terms = matrices(enc, topics, f"{SCIFACT}/vectors")
    print("stopword columns:", " ".join(t for t, s in zip(terms, stop) if s))
    dset = set(dids)
    keep = [i for i, q in enumerate(qids) if any(r > 0 and d in dset for d, r in judged.get(q, {}).items())]
    Q = Q[keep]; qk = [qids[i] for i in keep]
    held, fit = holdout_split(len(qk), 1 / 3, 13)
    dev_t, dev_j = load_topics("runs/data/scifact-dev.tsv"), read_qrels("runs/data/scifact-dev.qrels")
    dq, DQ, dd, ddocs, dstop, _ = matrices(enc, dev_t, f"{SCIFACT}/vectors")
    venc = LexicalQueryEncoder.load(card)
    venc.use_index(f"{VASWANI}/index")
    vt = load_topics(str(data_dir() / "vaswani/queries.test.tsv")); vj = read_qrels(data_dir() / "vaswani/qrels.test.txt")
    vq, VQ, vd, vdocs, vstop, _ = matrices(venc, vt, f"{VASWANI}/vectors")
    for s in (1.0, 0.75, 0.5, 0.25, 0.0):
        sc = scores(Q, docs, stop, s)
        print("stopwords x", s, "held", round(ndcg_at_k(sc[held], [qk[i] for i in held], dids, judged), 4),
              "fit", round(ndcg_at_k(sc[fit], [qk[i] for i in fit], dids, judged), 4),
              "dev", round(ndcg_at_k(scores(DQ, ddocs, dstop, s), dq, dd, dev_j), 4),
              "vaswani", round(ndcg_at_k(scores(VQ, vdocs, vstop, s), vq, vd, vj), 4), flush=True)


if __name__ == "__main__":
    main()
