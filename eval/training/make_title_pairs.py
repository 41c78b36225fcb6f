"""Self-supervised training pairs from a corpus with titles: title -> its own abstract, BM25 hard negatives.

    python eval/training/make_title_pairs.py --corpus ../shared/data/scifact/corpus.jsonl --out runs/data \\
        [--max-pairs 2000] [--seed 5] [--depth 30] [--mix-with train.jsonl --mix-out mix.jsonl]

Writes OUT/title-pairs.jsonl (Tevatron layout, as mine_negatives writes it). Each pair's query is a document's
title and its positive is the same document's text *without* the title (so it is not a copy); negatives are the
top BM25 hits for the title among the other documents, also without their titles. No query or judgment of any
split is used: only the corpus text.
"""
import argparse
import json
import random
from pathlib import Path

from csplade_pyserini.corpus import doc_id
from csplade_pyserini.mine_negatives import mine, read_provenance, write_provenance

ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ap.add_argument("--corpus", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--max-pairs", type=int, default=1500)
ap.add_argument("--seed", type=int, default=5)
ap.add_argument("--depth", type=int, default=30)
ap.add_argument("--mix-with", default=None, help="a Tevatron JSONL (e.g. the mined training queries) to append the "
                                                 "pairs to, written to --mix-out")
ap.add_argument("--mix-out", default=None)
a = ap.parse_args()
out = Path(a.out)
out.mkdir(parents=True, exist_ok=True)
docs = [json.loads(line) for line in open(a.corpus, encoding="utf-8") if line.strip()]
with_title = [d for d in docs if d.get("title", "").strip() and d.get("text", "").strip()]
chosen = sorted(random.Random(a.seed).sample(range(len(with_title)), min(a.max_pairs, len(with_title))))
notitle = out / "corpus-notitle.jsonl"
with open(notitle, "w", encoding="utf-8") as f:
    for d in docs:
        f.write(json.dumps({"id": str(doc_id(d, None)), "title": "", "text": d.get("text", "")}, ensure_ascii=False) + "\n")
topics, qrels = out / "title-pairs.tsv", out / "title-pairs.qrels"
with open(topics, "w", encoding="utf-8") as ft, open(qrels, "w", encoding="utf-8") as fq:
    for i in chosen:
        d = with_title[i]
        did = str(doc_id(d, None))
        ft.write(f"title-{did}\t{' '.join(d['title'].split())}\n")
        fq.write(f"title-{did} 0 {did} 1\n")
stats = mine(str(notitle), str(topics), str(qrels), str(out / "title-pairs.jsonl"), depth=a.depth)
# a title whose BM25 hits are only its own document has no negative: the trainer needs one, so drop it (counted)
rows = open(out / "title-pairs.jsonl", encoding="utf-8").read().splitlines()
kept = [r for r in rows if json.loads(r)["negative_passages"]]
(out / "title-pairs.jsonl").write_text("".join(r + "\n" for r in kept), encoding="utf-8")
stats["queries"] = len(kept)
print(f"[title-pairs] dropped {len(rows) - len(kept)} pair(s) without a BM25 negative")
print(f"[title-pairs] {stats['queries']} pairs, {stats['negatives_per_query']:.1f} negatives each -> "
      f"{out / 'title-pairs.jsonl'}")
if a.mix_with:
    rows = open(a.mix_with, encoding="utf-8").read().splitlines() + open(out / "title-pairs.jsonl", encoding="utf-8").read().splitlines()
    Path(a.mix_out).write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"[title-pairs] {len(rows)} rows -> {a.mix_out}")
    # how the mix was made (this command, and how --mix-with was mined when that was recorded): a model trained on
    # it lists both as stages of its shipped card
    import shlex
    import sys

    rec = write_provenance(a.mix_out, [], {"title_pairs": stats["queries"], "rows": len(rows), "depth": a.depth})
    info = json.loads(rec.read_text())
    info.update(command=shlex.join(["python", "eval/training/make_title_pairs.py", *sys.argv[1:]]),
                source=f"{stats['queries']} title -> text pairs of {a.corpus} (BM25 negatives) appended to {a.mix_with}",
                inputs=[x for x in [read_provenance(a.mix_with)] if x])
    rec.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
