"""python -m csplade_pyserini.eval: score a run with Pyserini's trec_eval (Anserini's jtrec_eval).

    python -m csplade_pyserini.eval --qrels scifact-test --run runs/run.scifact.txt

    python -m csplade_pyserini.eval --qrels scifact-test --run A.txt B.txt --compare

Metrics: nDCG@10, MRR@10 (computed in its own call: trec_eval's -M cuts every measure of a call), R@100,
R@1000, MAP. Queries in the qrels without hits count as zero (-c). ``--compare`` (two runs) adds a paired
comparison per metric over the same queries: B - A, per-query wins / ties / losses, a two-sided paired
randomization test (sign flips of the per-query differences, seeded) and a bootstrap 95% interval of the mean
difference.
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


def per_query(run_file, qrels, metric: str) -> dict[str, float]:
    """{qid: value} of one metric for every query the qrels judge (trec_eval -q; a query the run lacks is 0, as
    -c counts it), so that the mean equals :func:`evaluate`'s value."""
    from .topics import qrels_path

    qrels_file = qrels_path(str(qrels))
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if not Path(run_file).is_file():
        raise UsageError(f"run file not found: {run_file}")
    jvm.bootstrap()
    from pyserini.eval.trec_eval import trec_eval

    flags, name = METRICS[metric]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        trec_eval(["trec_eval", "-c", "-q", *flags, str(qrels_file), str(run_file)])
    judged = []
    for line in open(qrels_file, encoding="utf-8"):
        parts = line.split()
        if len(parts) >= 4 and parts[0] not in judged:
            judged.append(parts[0])
    values = {q: 0.0 for q in dict.fromkeys(judged)}
    for line in buf.getvalue().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == name and parts[1] != "all" and parts[1] in values:
            values[parts[1]] = float(parts[2])
    return values


def paired_comparison(a: dict[str, float], b: dict[str, float], samples: int = 10000, seed: int = 13) -> dict:
    """B - A over the queries both score: mean difference, wins / ties / losses of B, a two-sided paired
    randomization p-value (random sign flips of the differences; (hits + 1) / (samples + 1)) and a bootstrap 95%
    interval of the mean difference."""
    import random

    qids = [q for q in a if q in b]
    if not qids:
        raise UsageError("the two runs share no judged query")
    d = [b[q] - a[q] for q in qids]
    n = len(d)
    mean = sum(d) / n
    rng = random.Random(seed)
    hits = 0
    for _ in range(samples):
        if abs(sum(x if rng.random() < 0.5 else -x for x in d)) / n >= abs(mean) - 1e-12:
            hits += 1
    boots = sorted(sum(d[rng.randrange(n)] for _ in range(n)) / n for _ in range(samples))
    return {"queries": n, "mean_a": sum(a[q] for q in qids) / n, "mean_b": sum(b[q] for q in qids) / n,
            "diff": mean, "wins": sum(x > 0 for x in d), "ties": sum(x == 0 for x in d),
            "losses": sum(x < 0 for x in d), "p_randomization": (hits + 1) / (samples + 1),
            "ci95": [boots[int(0.025 * samples)], boots[int(0.975 * samples) - 1]], "samples": samples, "seed": seed}


def compare_runs(run_a, run_b, qrels, metrics=DEFAULT_METRICS, samples: int = 10000, seed: int = 13) -> dict:
    return {m: paired_comparison(per_query(run_a, qrels, m), per_query(run_b, qrels, m), samples, seed)
            for m in metrics}


def format_comparison(cmp: dict, run_a, run_b) -> str:
    lines = [f"paired comparison, B - A: A = {run_a}, B = {run_b}",
             f"{'metric':<8}  {'A':>7}  {'B':>7}  {'B-A':>8}  {'95% CI':>19}  {'p':>7}  wins/ties/losses (queries)"]
    for m, c in cmp.items():
        lo, hi = c["ci95"]
        lines.append(f"{m:<8}  {c['mean_a']:>7.4f}  {c['mean_b']:>7.4f}  {c['diff']:>+8.4f}  "
                     f"[{lo:>+8.4f}, {hi:>+8.4f}]  {c['p_randomization']:>7.4f}  "
                     f"{c['wins']}/{c['ties']}/{c['losses']} ({c['queries']})")
    lines.append(f"p: two-sided paired randomization test, {next(iter(cmp.values()))['samples']:,} sign flips, seeded")
    return "\n".join(lines)


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
    p.add_argument("--compare", action="store_true",
                   help="with two runs A B: paired comparison B - A per metric (wins/ties/losses, randomization "
                        "test p, bootstrap 95%% interval)")
    p.add_argument("--samples", type=int, default=10000, help="permutations and bootstrap samples of --compare")
    p.add_argument("--seed", type=int, default=13, help="seed of --compare")
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    if args.compare and len(args.run) != 2:
        raise UsageError(f"--compare takes exactly two runs (A B), got {len(args.run)}")
    if args.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {args.samples}")
    rows = {r: evaluate(r, args.qrels, args.metrics) for r in args.run}
    if args.compare:
        cmp = compare_runs(args.run[0], args.run[1], args.qrels, args.metrics, args.samples, args.seed)
        print(json.dumps({"runs": rows, "comparison": cmp}, indent=2) if args.json
              else format_table(rows, args.metrics) + "\n\n" + format_comparison(cmp, *args.run))
        return {"runs": rows, "comparison": cmp}
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.metrics))
    return rows


def main(argv=None):
    run(_main, argv, "csplade-eval")


if __name__ == "__main__":
    main()
