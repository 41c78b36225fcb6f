"""python -m csplade_pyserini.eval: score a run with Pyserini's trec_eval (Anserini's jtrec_eval).

    python -m csplade_pyserini.eval --qrels scifact-test --run runs/run.scifact.txt

Metrics: nDCG@10, MRR@10 (computed in its own call: trec_eval's -M cuts every measure of a call), R@100,
R@1000, MAP. Queries in the qrels without hits count as zero (-c).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

from .cli import UsageError, run
from . import jvm

METRICS = {
    "ndcg@10": (["-m", "ndcg_cut.10"], "ndcg_cut_10"),
    "mrr@10": (["-M", "10", "-m", "recip_rank"], "recip_rank"),
    "r@100": (["-m", "recall.100"], "recall_100"),
    "r@1000": (["-m", "recall.1000"], "recall_1000"),
    "map": (["-m", "map"], "map"),
}
DEFAULT_METRICS = ("ndcg@10", "mrr@10", "r@100", "r@1000", "map")


def filter_qrels(qrels, qids, out) -> Path:
    """The qrels lines of the given queries only: with -c, queries left out of a run would otherwise count as 0."""
    from .topics import qrels_path

    qids = set(qids)
    out = Path(out)
    with open(qrels_path(str(qrels)), encoding="utf-8") as src, open(out, "w", encoding="utf-8") as dst:
        dst.writelines(line for line in src if line.split() and line.split()[0] in qids)
    return out


def evaluate(run_file, qrels, metrics=DEFAULT_METRICS) -> dict[str, float]:
    from .topics import qrels_path

    qrels_file = qrels_path(str(qrels))
    run_file = Path(run_file)
    if not run_file.is_file():
        raise UsageError(f"run file not found: {run_file}")
    if not any(line.strip() for line in open(run_file, encoding="utf-8")):
        raise UsageError(f"run file {run_file} is empty")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    jvm.bootstrap()  # puts the chosen Java's bin/ first on PATH: trec_eval starts `java` from there
    from pyserini.eval.trec_eval import trec_eval

    out = {}
    for m in metrics:
        flags, name = METRICS[m]
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            trec_eval(["trec_eval", "-c", *flags, str(qrels_file), str(run_file)])
        values = {line.split()[0]: float(line.split()[2]) for line in buf.getvalue().splitlines()
                  if len(line.split()) == 3 and line.split()[1] == "all"}
        if name not in values:
            raise RuntimeError(f"trec_eval printed no {name} for {run_file}: {buf.getvalue()[-300:]!r}")
        out[m] = values[name]
    return out


def format_table(rows: dict[str, dict[str, float]], metrics=DEFAULT_METRICS) -> str:
    width = max([len("run")] + [len(r) for r in rows])
    head = f"{'run':<{width}}  " + "  ".join(f"{m:>8}" for m in metrics)
    lines = [head, "-" * len(head)]
    for name, vals in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{vals.get(m, float('nan')):>8.4f}" for m in metrics))
    return "\n".join(lines)


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.eval", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--qrels", required=True, help="qrels file or symbolic name (e.g. scifact-test, vaswani, dl19-passage)")
    p.add_argument("--run", required=True, nargs="+", help="run file(s), TREC or MS MARCO format")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), choices=list(METRICS),
                   help=f"default: {' '.join(DEFAULT_METRICS)}")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    rows = {r: evaluate(r, args.qrels, args.metrics) for r in args.run}
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.metrics))
    return rows


def main(argv=None):
    run(_main, argv, "csplade-eval")


if __name__ == "__main__":
    main()
