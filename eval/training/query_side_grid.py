"""Query-side head grid: search an existing impact index with query encoders that differ from the index's encoder
only in the query-side head (margin, input bonus, tf bonus, top-k), scored on training queries.

    python eval/training/query_side_grid.py --index runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/index \
        --encoder smollm2-135m-echo-corpusfit --margins 5,6,7 --bonuses 4,6 \
        --topics runs/data/scifact-train-fit.tsv runs/data/scifact-dev.tsv \
        --qrels runs/data/scifact-train-fit.qrels runs/data/scifact-dev.qrels --output eval/training/query_side_grid.json

The passages keep the card's head (they are already indexed); each grid point is a copy of the card with the
query-side values changed, used only to encode queries, so it measures what a query-only head would give. Never
pass test topics: this chooses settings.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def floats(s: str) -> list[float]:
    return [float(x) for x in s.split(",") if x.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--index", required=True)
    p.add_argument("--encoder", required=True, help="the encoder that built the index")
    p.add_argument("--topics", nargs="+", required=True, help="training topics (TSV), one or more sets")
    p.add_argument("--qrels", nargs="+", required=True, help="their qrels, in the same order")
    p.add_argument("--margins", default="", help="query-side logit_shift values (default: the card's)")
    p.add_argument("--bonuses", default="", help="query-side input_bonus values (default: the card's)")
    p.add_argument("--tf-bonuses", default="", help="query-side tf_bonus values (default: the card's)")
    p.add_argument("--top-ks", default="", help="query_top_k values (default: the card's)")
    p.add_argument("--work", default="runs/query-side-grid")
    p.add_argument("--output", required=True, help="JSON of every grid point's scores")
    args = p.parse_args(argv)
    if len(args.topics) != len(args.qrels):
        p.error("--topics and --qrels need the same number of files")

    from csplade_pyserini import jvm

    jvm.bootstrap()  # Java before pyserini
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.search import search_topics

    card = resolve_card(args.encoder)
    if card.adapter:
        raise SystemExit(f"{args.encoder}: cards with adapters are not supported by this script")
    src = Path(card.directory)
    work = Path(args.work)
    grid = list(itertools.product(floats(args.margins) or [card.logit_shift], floats(args.bonuses) or [card.input_bonus],
                                  floats(args.tf_bonuses) or [card.tf_bonus],
                                  [int(k) for k in floats(args.top_ks)] or [card.query_top_k]))
    rows = []
    for margin, bonus, tf, top_k in grid:
        tag = f"m{margin:g}-b{bonus:g}-tf{tf:g}-k{top_k}"
        d = work / tag
        d.mkdir(parents=True, exist_ok=True)
        data = json.loads((src / "card.json").read_text())
        data.update(name=f"{card.name}-q-{tag}", logit_shift=margin, input_bonus=bonus, tf_bonus=tf,
                    query_top_k=top_k)
        if data.get("term_bias"):
            shutil.copy(src / data["term_bias"], d / data["term_bias"])
        (d / "card.json").write_text(json.dumps(data, indent=1))
        row = {"margin": margin, "input_bonus": bonus, "tf_bonus": tf, "query_top_k": top_k}
        qenc = None
        for topics, qrels in zip(args.topics, args.qrels):
            run = d / (Path(topics).stem + ".run")
            if not run.exists():
                qenc = qenc or CspladeQueryEncoder(str(d), device="cpu", batch_size=32)
                search_topics(args.index, topics, output=str(run), threads=2, query_encoder=qenc, quiet=True)
            scores = evaluate(str(run), qrels, ["ndcg@10", "r@100"])
            row[Path(topics).stem] = scores
        if qenc is not None and qenc.cache:
            row["terms_per_query"] = round(sum(map(len, qenc.cache.values())) / len(qenc.cache), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    Path(args.output).write_text(json.dumps({"index": args.index, "encoder": args.encoder, "grid": rows}, indent=1))


if __name__ == "__main__":
    main()
