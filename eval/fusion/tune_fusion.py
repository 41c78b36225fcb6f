"""Choose a CSPLADE + BM25 fusion on training queries (never the test split): a grid of RRF constants and
min-max interpolation weights, each scored with trec_eval.

    python eval/fusion/tune_fusion.py \\
        --csplade-index runs/reproduce/scifact-full-smollm2-135m-echo-fitted/index \\
        --bm25-index runs/reproduce/scifact-full-bm25/bm25-index --encoder smollm2-135m-echo-fitted \\
        --tune runs/data/scifact-dev.tsv runs/data/scifact-dev.qrels \\
        --check runs/data/scifact-train-fit.tsv runs/data/scifact-train-fit.qrels \\
        --output eval/fusion/scifact-fusion-grid.json

--tune picks the setting (best nDCG@10; ties: the smaller CSPLADE weight, then the larger RRF k); --check sets
are scored on the same grid and only reported. With --write-card the chosen setting also goes into the encoder's
card as its `hybrid` (what `search --bm25-index` uses by default); `--record GRID.json` does only that, from a grid
written before. Both runs are searched once per topic set (runs and CSPLADE query
vectors cached in --cache-dir, default runs/fusion/OUTPUT_STEM, outside git) and fused in Python
(csplade_pyserini.fuse). Prints a table; writes the JSON.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from pathlib import Path

from csplade_pyserini.bm25 import bm25_search
from csplade_pyserini.eval import evaluate
from csplade_pyserini.fuse import fuse, read_run
from csplade_pyserini.reproduce import REPO_DIR, machine_summary
from csplade_pyserini.search import search_topics, write_run
from csplade_pyserini.topics import load_topics

WEIGHTS = [round(0.1 * i, 1) for i in range(0, 11)]  # CSPLADE's weight; BM25 gets 1 - w
RRF_KS = [10, 20, 60, 100]


def record_hybrid(grid_path: Path) -> Path:
    """Write a grid's chosen setting into its encoder's card (``hybrid``, with ``chosen_on`` the grid's path
    relative to the repository); returns the card's directory."""
    import dataclasses

    from csplade_pyserini.encoder import resolve_card

    grid = json.loads(Path(grid_path).read_text())
    card = resolve_card(grid["encoder"])
    chosen = {k: grid["chosen"][k] for k in ("method", "weights", "rrf_k") if k in grid["chosen"]}
    where = Path(grid_path).resolve()
    chosen["chosen_on"] = str(where.relative_to(REPO_DIR) if where.is_relative_to(REPO_DIR) else where)
    directory = Path(card.path).parent if Path(card.path).is_file() else Path(card.path)
    dataclasses.replace(card, hybrid=chosen).save(directory)
    print(f"[tune-fusion] {card.name}: hybrid {chosen} -> {directory}", file=sys.stderr)
    return directory


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    if "--record" in sys.argv:  # only write a grid's choice into its card
        ap.add_argument("--record", required=True, metavar="GRID_JSON")
        record_hybrid(Path(ap.parse_args().record))
        return
    ap.add_argument("--csplade-index", required=True)
    ap.add_argument("--bm25-index", required=True)
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--write-card", action="store_true", help="also write the chosen setting into the encoder's card")
    ap.add_argument("--tune", nargs=2, metavar=("TOPICS", "QRELS"), required=True)
    ap.add_argument("--check", nargs=2, metavar=("TOPICS", "QRELS"), action="append", default=[])
    ap.add_argument("--weights", nargs="+", type=float, default=WEIGHTS)
    ap.add_argument("--rrf-ks", nargs="+", type=float, default=RRF_KS)
    ap.add_argument("--hits", type=int, default=1000)
    ap.add_argument("--output", required=True)
    ap.add_argument("--cache-dir", default=None, help="searched runs and query vectors (default: runs/fusion/OUTPUT_STEM)")
    a = ap.parse_args()
    out = Path(a.output)
    cache_dir = Path(a.cache_dir or REPO_DIR / "runs" / "fusion" / out.stem)
    cache_dir.mkdir(parents=True, exist_ok=True)
    metrics = ["ndcg@10", "r@100"]
    sets = {"tune": a.tune, **{f"check{i + 1}" if len(a.check) > 1 else "check": c for i, c in enumerate(a.check)}}
    settings = ([{"method": "interpolation", "weights": [w, round(1 - w, 4)]} for w in a.weights]
                + [{"method": "rrf", "rrf_k": k} for k in a.rrf_ks])
    grid: dict[str, list[dict]] = {}
    for name, (topics_file, qrels) in sets.items():
        topics = load_topics(topics_file)
        stem = Path(topics_file).stem
        c_run, b_run = cache_dir / f"{stem}.csplade.txt", cache_dir / f"{stem}.bm25.txt"
        search_topics(a.csplade_index, topics, a.encoder, c_run, a.hits, threads=os.cpu_count(),
                      encoded_queries=cache_dir / f"{stem}.queries.jsonl", quiet=True)
        bm25_search(Path(a.bm25_index), topics, b_run, a.hits, os.cpu_count() or 1)
        runs = [read_run(c_run), read_run(b_run)]
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for s in settings:
                fused = fuse(runs, s["method"], s.get("weights"), s.get("rrf_k", 60.0), hits=a.hits)
                f = Path(tmp) / "fused.txt"
                write_run(fused, f, tag="fused")
                rows.append({**s, **{m: round(v, 4) for m, v in evaluate(f, qrels, metrics).items()}})
        grid[name] = rows
        print(f"[tune-fusion] {name}: {topics_file} ({len(topics)} queries)", file=sys.stderr)

    def key(r):
        w = r["weights"][0] if r["method"] == "interpolation" else 2.0
        return (-r["ndcg@10"], w, -r.get("rrf_k", 0))

    best = min(grid["tune"], key=key)
    label = lambda r: (f"interp {r['weights'][0]:.1f}/{r['weights'][1]:.1f}" if r["method"] == "interpolation"
                       else f"rrf k={r['rrf_k']:g}")
    print(f"\n{'setting':<18}" + "".join(f"{n + ' ' + m:>20}" for n in grid for m in metrics))
    for i, r in enumerate(grid["tune"]):
        cells = "".join(f"{grid[n][i][m]:>20.4f}" for n in grid for m in metrics)
        print(f"{label(r):<18}{cells}{'   <- chosen' if r is best else ''}")
    result = {"encoder": a.encoder, "csplade_index": a.csplade_index, "bm25_index": a.bm25_index,
              "sets": {n: {"topics": t, "qrels": q} for n, (t, q) in sets.items()}, "chosen": best,
              "chosen_on": "tune", "grid": grid, "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_summary(), "command": "python " + " ".join(sys.argv)}
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nchosen on {a.tune[0]}: {label(best)} (nDCG@10 {best['ndcg@10']:.4f}) -> {out}")
    if a.write_card:
        record_hybrid(out)


if __name__ == "__main__":
    main()
