"""Probe (session 24): do the model's query expansions add to the inference-free queries, in one search?

The default encoder's queries are lexical (`-lexqdf`: the query's own tokens, a fitted table and df curve); its
model-encoded queries (`echo-corpusfit`) carry expansions the table cannot (session 21: vocabulary mismatch is where
the lexical queries lose). This scores, over the stored whole-SciFact vectors of `echo-corpusfit`, one query vector
that mixes the two:

  "mix"     q = (1 - a) * L / |L|_1 + a * M / |M|_1
  "expand"  q = L / |L|_1 + a * M' / |M|_1     (M' = M without the terms L already has: only the expansions)

L = the lexical card's query, M = the model card's query (ints / 100, as the index holds them). a = 0 is the shipped
lexical query, "mix" a = 1 the model query. Selection on the held-out third of SciFact train-fit (seed 13), as for
every query-side choice since session 19; the other two thirds and dev are reported; --test adds whole SciFact test
and Vaswani-3000 (reports only). Model query vectors are cached under runs/s24/ (encoding ~800 queries: minutes).

    python eval/training/query_mix_probe.py [--lexical NAME] [--model NAME] [--pool-lead] [--test] [--output JSON]
"""
import argparse
import functools
import json
import sys
from pathlib import Path

import torch

from csplade_pyserini.calibrate import holdout_split, ndcg_at_k, read_qrels
from csplade_pyserini.encoder import CspladeEncoder, resolve_card
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.paths import data_dir
from csplade_pyserini.topics import load_topics

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prf_probe import query_matrix, read_docs  # noqa: E402

ALPHAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)
EXPAND = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.25, 1.5, 2.0, 3.0)


def model_matrix(model, topics, col, cache):
    """[Q, T] model query weights over the document-term columns (cached as JSON per topic set); ``model()``
    gives the encoder, loaded only when a topic set is not cached yet."""
    if cache.exists():
        vecs = json.loads(cache.read_text())
    else:
        vecs = dict(zip(topics, model().encode(list(topics.values()), side="query", batch_size=16)))
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(vecs))
    M = torch.zeros(len(topics), len(col))
    for i, q in enumerate(topics):
        for t, w in vecs[q].items():
            j = col.get(t)
            if j is not None:
                M[i, j] = w / 100.0
    return M


def l1(x):
    return x / x.sum(1, keepdim=True).clamp_min(1e-9)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lexical", default="smollm2-135m-echo-corpusfit-lexqdf")
    ap.add_argument("--model", default="smollm2-135m-echo-corpusfit")
    ap.add_argument("--pool-lead", action="store_true", help="model queries with query_pool_lead (session 21)")
    ap.add_argument("--test", action="store_true")
    ap.add_argument("--output", default=None,
                    help="also write every row as JSON (eval/training/query_mix_probe.json holds the session-24 "
                         "runs, one per key under 'runs')")
    args = ap.parse_args()
    lex = LexicalQueryEncoder.load(resolve_card(args.lexical))
    cache = Path("runs/s24") / (args.model + ("-lead" if args.pool_lead else ""))
    overrides = {"query_pool_lead": True} if args.pool_lead else {}
    model = functools.cache(lambda: CspladeEncoder.load(args.model, **overrides))  # only if a set is not cached

    dids, docs, col = read_docs("runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors")
    dset = set(dids)
    sets = {}
    judged = read_qrels("runs/data/scifact-train-fit.qrels")
    topics = load_topics("runs/data/scifact-train-fit.tsv")
    qids, L = query_matrix(lex, topics, col)
    M = model_matrix(model, topics, col, cache / "train-fit.json")
    keep = [i for i, q in enumerate(qids) if any(r > 0 and d in dset for d, r in judged.get(q, {}).items())]
    held, fit = holdout_split(len(keep), 1 / 3, 13)
    for name, part in (("held", held), ("fit", fit)):
        rows = [keep[i] for i in part]
        sets[name] = ([qids[i] for i in rows], L[rows], M[rows], judged, dids, docs)
    topics = load_topics("runs/data/scifact-dev.tsv")
    dq, DL = query_matrix(lex, topics, col)
    sets["dev"] = (dq, DL, model_matrix(model, topics, col, cache / "dev.json"),
                   read_qrels("runs/data/scifact-dev.qrels"), dids, docs)
    if args.test:
        topics = load_topics(str(data_dir() / "scifact/queries.test.tsv"))
        tq, TL = query_matrix(lex, topics, col)
        sets["test"] = (tq, TL, model_matrix(model, topics, col, cache / "test.json"),
                        read_qrels(data_dir() / "scifact/qrels.test.txt"), dids, docs)
        vlex = LexicalQueryEncoder.load(resolve_card(args.lexical))
        vlex.use_index("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/index")
        vd, vdocs, vcol = read_docs("runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit/vectors")
        topics = load_topics(str(data_dir() / "vaswani/queries.test.tsv"))
        vq, VL = query_matrix(vlex, topics, vcol)
        sets["vaswani"] = (vq, VL, model_matrix(model, topics, vcol, cache / "vaswani.json"),
                           read_qrels(data_dir() / "vaswani/qrels.test.txt"), vd, vdocs)
    print(args.lexical, "+", args.model, {n: len(s[0]) for n, s in sets.items()}, flush=True)

    rows = {}

    def row(label, f):
        rows[label] = {name: round(ndcg_at_k(f(Lm, Mm) @ D.T, q, d, j), 4)
                       for name, (q, Lm, Mm, j, d, D) in sets.items()}
        print(label, *[x for kv in rows[label].items() for x in kv], flush=True)

    for a in ALPHAS:
        row(f"mix a{a}", lambda Lm, Mm: (1 - a) * l1(Lm) + a * l1(Mm))
    for a in EXPAND:
        row(f"expand a{a}", lambda Lm, Mm: l1(Lm) + a * (Mm * (Lm == 0)) / Mm.sum(1, keepdim=True).clamp_min(1e-9))
    if args.output:
        Path(args.output).write_text(json.dumps({"command": "python " + " ".join(sys.argv), "lexical": args.lexical,
                                                 "model": args.model, "pool_lead": args.pool_lead, "metric": "ndcg@10",
                                                 "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
