"""python -m csplade_pyserini.fuse: fuse TREC runs (e.g. CSPLADE and BM25) into one hybrid run.

    python -m csplade_pyserini.fuse --runs runs/csplade.txt runs/bm25.txt --method interpolation \\
        --weights 0.5 0.5 --output runs/hybrid.txt

Methods, per query, over each run's top --depth hits:
  rrf            sum of 1 / (rrf_k + rank)            (Cormack et al. 2009; no tuning; Pyserini's default)
  interpolation  sum of weight_i * minmax_i(score)   (each run's scores min-max scaled to [0, 1] per query, so the
                 weights mean the same whatever the runs' score ranges: impact scores in the thousands, BM25 in
                 the tens; Pyserini's own `interpolation` mixes raw scores). A document missing from a run gets 0
                 from it.
Ties are broken by docid, so the output is deterministic. Same idea as `python -m pyserini.fusion`; this one
reads any run our `search` writes, checks its input, and is importable without Java.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from .cli import UsageError, positive_int, run

METHODS = ("rrf", "interpolation")
RRF_K = 60.0  # rrf's constant when none is given (Cormack et al.; Pyserini's)


def describe(method: str, weights: list[float] | None = None, rrf_k: float = RRF_K) -> str:
    """A fusion setting in a few words, e.g. "interpolation 0.6/0.4" or "rrf k 60"."""
    if method == "rrf":
        return f"rrf k {rrf_k:g}"
    return f"{method} " + "/".join(f"{w:g}" for w in (weights or [1.0, 1.0]))


def read_run(path) -> dict[str, list[tuple[str, float]]]:
    """A TREC run file (`qid Q0 docid rank score tag`) -> {qid: [(docid, score), ...]} best first (re-sorted by
    score; a docid listed twice for a query keeps its higher score)."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"run file not found: {path}")
    best: dict[str, dict[str, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 5:
                raise UsageError(f"{path}:{n}: expected 'qid Q0 docid rank score [tag]', got {line.strip()!r}")
            qid, docid, score = parts[0], parts[2], parts[4]
            try:
                s = float(score)
            except ValueError:
                raise UsageError(f"{path}:{n}: score {score!r} is not a number") from None
            if not math.isfinite(s):
                raise UsageError(f"{path}:{n}: score {score!r} is not finite")
            q = best.setdefault(qid, {})
            if s > q.get(docid, -math.inf):
                q[docid] = s
    return {q: _ranked(d) for q, d in best.items()}


def _ranked(scores: dict[str, float], hits: int | None = None) -> list[tuple[str, float]]:
    """Best first; ties by docid."""
    return sorted(scores.items(), key=lambda x: (-x[1], x[0]))[:hits]


def rrf(runs: list[dict], rrf_k: float = RRF_K, depth: int = 1000, hits: int = 1000) -> dict:
    """Reciprocal rank fusion: score(d) = sum over runs of 1 / (rrf_k + rank of d in that run)."""
    if rrf_k < 0:
        raise UsageError(f"rrf_k must be >= 0, got {rrf_k}")
    out = {}
    for q in _qids(runs):
        acc: dict[str, float] = {}
        for r in runs:
            for rank, (d, _) in enumerate(r.get(q, [])[:depth], 1):
                acc[d] = acc.get(d, 0.0) + 1.0 / (rrf_k + rank)
        out[q] = _ranked(acc, hits)
    return out


def interpolation(runs: list[dict], weights: list[float], depth: int = 1000, hits: int = 1000) -> dict:
    """score(d) = sum_i weights[i] * (s_i(d) - min_i) / (max_i - min_i), min/max over run i's top ``depth`` hits
    for that query (all 1.0 when they are equal); 0 where d is not in run i's top ``depth``."""
    if len(weights) != len(runs):
        raise UsageError(f"{len(runs)} runs but {len(weights)} weights")
    if any(w < 0 or not math.isfinite(w) for w in weights) or not any(weights):
        raise UsageError(f"weights must be finite, >= 0 and not all 0, got {weights}")
    out = {}
    for q in _qids(runs):
        acc: dict[str, float] = {}
        for r, w in zip(runs, weights):
            top = r.get(q, [])[:depth]
            if not top or not w:
                continue
            hi, lo = top[0][1], top[-1][1]
            for d, s in top:
                acc[d] = acc.get(d, 0.0) + w * ((s - lo) / (hi - lo) if hi > lo else 1.0)
        out[q] = _ranked(acc, hits)
    return out


def _qids(runs: list[dict]) -> list[str]:
    return list(dict.fromkeys(q for r in runs for q in r))


def fuse(runs: list[dict], method: str = "rrf", weights: list[float] | None = None, rrf_k: float = RRF_K,
         depth: int = 1000, hits: int = 1000) -> dict:
    if len(runs) < 2:
        raise UsageError(f"fusion needs at least two runs, got {len(runs)}")
    if depth < 1 or hits < 1:
        raise UsageError(f"depth and hits must be >= 1, got depth={depth}, hits={hits}")
    if method == "rrf":
        return rrf(runs, rrf_k, depth, hits)
    if method == "interpolation":
        return interpolation(runs, weights if weights is not None else [1.0] * len(runs), depth, hits)
    raise UsageError(f"unknown fusion method {method!r}; expected one of {', '.join(METHODS)}")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.fuse", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--runs", nargs="+", required=True, help="two or more TREC run files")
    p.add_argument("--output", required=True, help="fused TREC run to write")
    p.add_argument("--method", choices=METHODS, default="rrf", help="fusion method (default: rrf)")
    p.add_argument("--weights", nargs="+", type=float, default=None,
                   help="interpolation: one weight per run (default: equal weights)")
    p.add_argument("--rrf-k", type=float, default=RRF_K, help=f"rrf: the constant k (default: {RRF_K:g})")
    p.add_argument("--depth", type=positive_int, default=1000, help="hits read from each run per query (default: 1000)")
    p.add_argument("--hits", type=positive_int, default=1000, help="hits written per query (default: 1000)")
    p.add_argument("--run-tag", default="csplade-fused", help="tag in the last column of the fused run")
    return p


def _main(argv=None):
    import sys

    from .search import write_run

    a = build_parser().parse_args(argv)
    if a.weights is not None and a.method != "interpolation":
        raise UsageError("--weights applies to --method interpolation only")
    runs = [read_run(r) for r in a.runs]
    fused = fuse(runs, a.method, a.weights, a.rrf_k, a.depth, a.hits)
    write_run(fused, a.output, tag=a.run_tag)
    print(f"[fuse] {a.method} of {len(runs)} runs, {len(fused)} queries -> {a.output}", file=sys.stderr)
    return fused


def main(argv=None):
    run(_main, argv, "csplade-fuse")


if __name__ == "__main__":
    main()
