"""Probe (session 20): would a per-document length normalization help the default's lexical queries?

Scores the 709 SciFact train-fit queries, encoded by smollm2-135m-echo-corpusfit-lexqdf (its reference df), against
the whole SciFact corpus as echo-corpusfit encoded it (runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors),
with every document's weights scaled by (length / mean length)^-beta, length = its number of terms or its L1 weight;
prints nDCG@10 on the same held-out third fit_query_weights uses (seed 13) and on the rest. No test query is used.

--vaswani (session 28) scores BM25's form instead, every weight divided by (1 - b + b * words / mean words)^a with
words = the passage's whitespace words (title + text), and adds Vaswani-3000's test queries (zero-shot, the df
curve reading that index) as a report: choose on the held-out SciFact queries.

    python eval/training/length_norm_probe.py [--vaswani]
"""
import json
import sys
from collections import Counter
import torch
from csplade_pyserini.fit_query_weights import vector_files, read_vectors, query_counts
from csplade_pyserini.calibrate import ndcg_at_k, read_qrels, holdout_split
from csplade_pyserini.encoder import resolve_card
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.topics import load_topics

card = resolve_card("smollm2-135m-echo-corpusfit-lexqdf")
enc = LexicalQueryEncoder.load(card)
topics = load_topics("runs/data/scifact-train-fit.tsv"); judged = read_qrels("runs/data/scifact-train-fit.qrels")
files = vector_files(["runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors"])
qids = list(topics)
vecs = [dict(enc.queries.weights(Counter(c))) for c in query_counts(enc.queries, list(topics.values()))[0]]
cols = sorted({v for w in vecs for v in w}); col = {v: j for j, v in enumerate(cols)}
t2c = {enc.queries.terms.term(v): j for v, j in col.items()}
dids, docs = read_vectors(files, t2c, 100.0)
nnz, l1 = [], []
for f in files:
    for line in open(f):
        if line.strip():
            v = json.loads(line)["vector"]; nnz.append(len(v)); l1.append(sum(v.values()) / 100.0)
nnz, l1 = torch.tensor(nnz, dtype=torch.float), torch.tensor(l1)
Q = torch.zeros(len(qids), len(cols))
for i, w in enumerate(vecs):
    for v, x in w.items():
        Q[i, col[v]] = x
dset = set(dids)
keep = [i for i, q in enumerate(qids) if any(r > 0 and d in dset for d, r in judged.get(q, {}).items())]
Q = Q[keep]; qk = [qids[i] for i in keep]
held, fit = holdout_split(len(qk), 1 / 3, 13)


def passage_words(dids, corpus):
    n = {}
    with open(corpus, encoding="utf-8") as fh:
        for line in fh:
            o = json.loads(line)
            n[str(o["id"])] = len((o.get("title", "") + " " + o["text"]).split())
    return torch.tensor([float(n[d]) for d in dids])


if "--vaswani" in sys.argv[1:]:
    sys.path.insert(0, "eval/training")
    from doc_transform_probe import matrices
    from csplade_pyserini.paths import data_dir

    venc = LexicalQueryEncoder.load(card)
    venc.use_index("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/index")
    vj = read_qrels(data_dir() / "vaswani/qrels.test.txt")
    vq, VQ, vd, vdocs = matrices(venc, load_topics(str(data_dir() / "vaswani/queries.test.tsv")),
                                 "runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/vectors")
    sw, vw = passage_words(dids, data_dir() / "scifact/corpus.jsonl"), passage_words(vd, data_dir() / "vaswani/corpus.jsonl")
    for b in (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0):
        for a in ((1.0,) if b == 0 else (0.25, 0.5, 1.0)):
            s = (1 - b + b * sw / sw.mean()) ** -a
            sc = Q @ (docs * s[:, None]).T
            sv = (1 - b + b * vw / vw.mean()) ** -a
            print("b", b, "a", a, "held", round(ndcg_at_k(sc[held], [qk[i] for i in held], dids, judged), 4),
                  "fit", round(ndcg_at_k(sc[fit], [qk[i] for i in fit], dids, judged), 4),
                  "vaswani", round(ndcg_at_k(VQ @ (vdocs * sv[:, None]).T, vq, vd, vj), 4), flush=True)
    sys.exit(0)
for name, L in (("nnz", nnz), ("l1", l1)):
    for beta in (-0.3, -0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0):
        s = (L / L.mean()) ** (-beta)
        sc = Q @ (docs * s[:, None]).T
        print(name, beta, "held", round(ndcg_at_k(sc[held], [qk[i] for i in held], dids, judged), 4),
              "fit", round(ndcg_at_k(sc[fit], [qk[i] for i in fit], dids, judged), 4), flush=True)
