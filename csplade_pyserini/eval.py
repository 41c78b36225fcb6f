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
import math
import sys
from pathlib import Path

from .cli import UsageError, positive_int, run
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


TREC_LAYOUTS = {"run": ("qid Q0 docid rank score tag", 6, (3, int), (4, float)),
                "qrels": ("qid iter docid relevance", 4, (3, int), None)}


def check_trec_lines(path: Path, kind: str) -> int:
    """The number of records in a TREC run or qrels file; a line without its fields, or with a rank, score or
    relevance that is not a number, is a UsageError naming it (trec_eval would fail on it deep inside)."""
    layout, n_fields, *numbers = TREC_LAYOUTS[kind]
    n = 0
    qid, docids = None, set()  # a run's documents of the current query (runs are written query by query)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                parts = raw.decode("utf-8").split()
            except UnicodeDecodeError as e:
                raise UsageError(f"{path}:{lineno}: invalid UTF-8 at byte {e.start}") from None
            if not parts:
                continue
            if len(parts) != n_fields:
                raise UsageError(f"{path}:{lineno}: {len(parts)} fields, a {kind} line has {n_fields} ({layout}): "
                                 f"{raw.decode().strip()[:80]!r}")
            for i, cast in filter(None, numbers):
                try:
                    if not math.isfinite(cast(parts[i])):  # trec_eval sorts by score: NaN would reorder silently
                        raise ValueError
                except ValueError:
                    raise UsageError(f"{path}:{lineno}: {layout.split()[i]} {parts[i]!r} is not "
                                     f"{'an integer' if cast is int else 'a finite number'}") from None
            if kind == "run":
                if parts[0] != qid:
                    qid, docids = parts[0], set()
                if parts[2] in docids:
                    raise UsageError(f"{path}:{lineno}: document {parts[2]!r} is ranked twice for query {qid!r} "
                                     f"(trec_eval refuses a run with duplicates)")
                docids.add(parts[2])
            n += 1
    return n


def _checked(run_file, qrels, metrics) -> tuple[Path, Path]:
    """The qrels file and the run file, after the checks every trec_eval call needs (clear errors, not Java's)."""
    from .topics import qrels_path

    qrels_file = qrels_path(str(qrels))
    run_file = Path(run_file)
    if not run_file.is_file():
        raise UsageError(f"run file not found: {run_file}")
    if not check_trec_lines(run_file, "run"):
        raise UsageError(f"run file {run_file} is empty")
    check_trec_lines(qrels_file, "qrels")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise UsageError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    jvm.bootstrap()  # puts the chosen Java's bin/ first on PATH: trec_eval starts `java` from there
    return qrels_file, run_file


def metric_groups(metrics) -> list[list[str]]:
    """The metrics in as few trec_eval calls as give the same numbers: every metric without a ``-M`` cut in one call,
    each ``-M`` metric (MRR@10) in its own (``-M`` cuts every measure of its call). Each call re-reads the run, so a
    709-query run costs ~6 s a call here."""
    plain = [m for m in metrics if "-M" not in METRICS[m][0]]
    return ([plain] if plain else []) + [[m] for m in metrics if "-M" in METRICS[m][0]]


def _merged_flags(flags: list[str]) -> list[str]:
    """trec_eval keeps only the last ``-m`` of a measure: ``-m recall.100 -m recall.1000`` prints recall_1000 alone.
    Merge the cutoffs of one measure into one ``-m`` (``recall.100,1000``), in order of first appearance."""
    out, measures = [], {}
    it = iter(flags)
    for f in it:
        if f != "-m":
            out.append(f)
            continue
        name, _, params = next(it).partition(".")
        if name in measures:
            measures[name] += [params] if params else []
        else:
            measures[name] = [params] if params else []
            out += ["-m", name]  # completed below, once every cutoff is known
    return [f"{f}.{','.join(measures[f])}" if prev == "-m" and measures.get(f) else f
            for prev, f in zip([None, *out], out)]


def _trec_eval(run_file: Path, qrels_file: Path, metrics, per_query: bool = False) -> dict[str, dict[str, float]]:
    """{metric: {qid: value}} from one trec_eval -c call over ``metrics`` (a str: one metric), "all" for the mean
    (per-query rows with -q)."""
    from pyserini.eval.trec_eval import trec_eval

    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    flags = _merged_flags([f for m in metrics for f in METRICS[m][0]])
    buf, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
            trec_eval(["trec_eval", "-c", *(["-q"] if per_query else []), *flags, str(qrels_file), str(run_file)])
    except (IndexError, ValueError):  # Pyserini parses trec_eval's output, which is empty when trec_eval failed
        raise UsageError(f"trec_eval failed on {run_file} with {qrels_file}: "
                         f"{' '.join(err.getvalue().split())[:300] or 'no message'}") from None
    sys.stderr.write(err.getvalue())
    wanted = {METRICS[m][1] for m in metrics}
    printed: dict[str, dict[str, float]] = {}  # measure -> {qid or "all": value}, the output read once
    for line in buf.getvalue().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in wanted:
            printed.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    out = {}
    for m in metrics:
        name = METRICS[m][1]
        if "all" not in printed.get(name, {}):
            raise RuntimeError(f"trec_eval printed no {name} for {run_file}: {buf.getvalue()[-300:]!r}")
        out[m] = printed[name]
    return out


def evaluate(run_file, qrels, metrics=DEFAULT_METRICS) -> dict[str, float]:
    qrels_file, run_file = _checked(run_file, qrels, metrics)
    got = {}
    for group in metric_groups(metrics):
        got.update({m: v["all"] for m, v in _trec_eval(run_file, qrels_file, group).items()})
    return {m: got[m] for m in metrics}


def per_query_and_means(run_file, qrels, metrics) -> dict[str, tuple[dict[str, float], float]]:
    """{metric: ({qid: value} for every query the qrels judge, trec_eval's mean)}: trec_eval -q, grouped as
    :func:`evaluate` groups its calls; a query the run lacks is 0, as -c counts it, so the values average to the mean
    (to trec_eval's 4 printed decimals)."""
    qrels_file, run_file = _checked(run_file, qrels, metrics)
    with open(qrels_file, encoding="utf-8") as fh:
        judged = dict.fromkeys(line.split()[0] for line in fh if len(line.split()) >= 4)
    out = {}
    for group in metric_groups(metrics):
        for m, got in _trec_eval(run_file, qrels_file, group, per_query=True).items():
            out[m] = ({q: got.get(q, 0.0) for q in judged}, got["all"])
    return {m: out[m] for m in metrics}


def per_query_and_mean(run_file, qrels, metric: str) -> tuple[dict[str, float], float]:
    """({qid: value} of one metric for every query the qrels judge, trec_eval's mean): see per_query_and_means."""
    return per_query_and_means(run_file, qrels, [metric])[metric]


def per_query(run_file, qrels, metric: str) -> dict[str, float]:
    """{qid: value} of one metric for every query the qrels judge (see :func:`per_query_and_mean`)."""
    return per_query_and_mean(run_file, qrels, metric)[0]


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


def compare_runs(run_a, run_b, qrels, metrics=DEFAULT_METRICS, samples: int = 10000, seed: int = 13,
                 means: dict | None = None) -> dict:
    """{metric: paired_comparison(A, B)}; ``means``, if given, receives {run: {metric: trec_eval's mean}} from the
    same trec_eval calls (what :func:`evaluate` would return), so a caller need not run trec_eval again."""
    out = {}
    got_a, got_b = per_query_and_means(run_a, qrels, metrics), per_query_and_means(run_b, qrels, metrics)
    for m in metrics:
        (qa, ma), (qb, mb) = got_a[m], got_b[m]
        if means is not None:
            means.setdefault(run_a, {})[m], means.setdefault(run_b, {})[m] = ma, mb
        out[m] = paired_comparison(qa, qb, samples, seed)
    return out


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
    p.add_argument("--samples", type=positive_int, default=10000, help="permutations and bootstrap samples of --compare")
    p.add_argument("--seed", type=int, default=13, help="seed of --compare")
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    if args.compare and len(args.run) != 2:
        raise UsageError(f"--compare takes exactly two runs (A B), got {len(args.run)}")
    if args.samples < 1:
        raise UsageError(f"--samples must be >= 1, got {args.samples}")
    if args.compare:
        rows: dict = {}
        cmp = compare_runs(args.run[0], args.run[1], args.qrels, args.metrics, args.samples, args.seed, rows)
        print(json.dumps({"runs": rows, "comparison": cmp}, indent=2) if args.json
              else format_table(rows, args.metrics) + "\n\n" + format_comparison(cmp, *args.run))
        return {"runs": rows, "comparison": cmp}
    rows = {r: evaluate(r, args.qrels, args.metrics) for r in args.run}
    print(json.dumps(rows, indent=2) if args.json else format_table(rows, args.metrics))
    return rows


def main(argv=None):
    run(_main, argv, "csplade-eval")


if __name__ == "__main__":
    main()
