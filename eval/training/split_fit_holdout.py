"""Split SciFact train-fit (709 queries) into the two parts every query-side fit since session 19 used:
fit_query_weights' held-out third (236 queries, seed 13: csplade_pyserini.calibrate.holdout_split over the topics
file's order) and the rest (473), so a doc-side training can use exactly the queries the tables were fitted on and
keep the held-out third for choosing.

    python eval/training/split_fit_holdout.py [--data runs/data] [--negatives runs/data/scifact-train-fit.bm25.jsonl]

Writes scifact-train-held.{tsv,qrels} and scifact-train-fit473.{tsv,qrels}, and NEGATIVES' rows of the 473 as
scifact-train-fit473.<rest of its name> (Tevatron JSONL, for python -m csplade_pyserini.train).
"""
import argparse
import json
from pathlib import Path

from csplade_pyserini.calibrate import holdout_split, read_qrels
from csplade_pyserini.topics import load_topics

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--data", default="runs/data")
ap.add_argument("--negatives", default="runs/data/scifact-train-fit.bm25.jsonl")
ap.add_argument("--holdout", type=float, default=1 / 3)
ap.add_argument("--seed", type=int, default=13)
a = ap.parse_args()
data = Path(a.data)
topics = list(load_topics(str(data / "scifact-train-fit.tsv")).items())  # file order, read as fit_query_weights reads it
qrels = [line for line in open(data / "scifact-train-fit.qrels", encoding="utf-8") if line.strip()]
judged = {q for q, docs in read_qrels(data / "scifact-train-fit.qrels").items() if any(r > 0 for r in docs.values())}
if any(q not in judged for q, _ in topics):  # fit_query_weights drops unjudged queries before it splits
    raise SystemExit("every train-fit query must have a judged passage (the split would shift otherwise)")
held_rows, fit_rows = holdout_split(len(topics), a.holdout, a.seed)
parts = {"scifact-train-held": {topics[i][0] for i in held_rows}, "scifact-train-fit473": {topics[i][0] for i in fit_rows}}
for name, keep in parts.items():
    (data / f"{name}.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in topics if q in keep), encoding="utf-8")
    (data / f"{name}.qrels").write_text("".join(x for x in qrels if x.split()[0] in keep), encoding="utf-8")
    print(f"{name}: {len(keep)} queries")
neg = Path(a.negatives)
out = data / neg.name.replace("scifact-train-fit", "scifact-train-fit473", 1)
n = 0
with open(neg, encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
    for line in src:
        if line.strip() and json.loads(line)["query_id"] in parts["scifact-train-fit473"]:
            dst.write(line)
            n += 1
print(f"{out}: {n} training rows")
