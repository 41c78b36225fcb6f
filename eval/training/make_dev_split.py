"""Split SciFact train queries into train / dev (seeded) for model selection; test queries stay untouched.

    python eval/training/make_dev_split.py --out runs/data [--dev 100] [--seed 7]

Writes scifact-train-fit.tsv / .qrels (the rest) and scifact-dev.tsv / .qrels (the held-out dev queries).
"""
import argparse
import random
from pathlib import Path

from csplade_pyserini.topics import load_topics, qrels_path

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--out", required=True)
ap.add_argument("--dev", type=int, default=100)
ap.add_argument("--seed", type=int, default=7)
a = ap.parse_args()
topics = load_topics("scifact-train")
qrels = [line.split() for line in open(qrels_path("scifact-train")) if line.strip()]
dev = set(random.Random(a.seed).sample(sorted(topics), a.dev))
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
for name, keep in (("scifact-train-fit", lambda q: q not in dev), ("scifact-dev", lambda q: q in dev)):
    (out / f"{name}.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in topics.items() if keep(q)))
    (out / f"{name}.qrels").write_text("".join(" ".join(r) + "\n" for r in qrels if keep(r[0])))
    print(name, sum(1 for q in topics if keep(q)), "queries")
