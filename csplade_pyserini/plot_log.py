"""python -m csplade_pyserini.plot_log: training log(s) (log.jsonl) -> one PNG of the curves.

    python -m csplade_pyserini.plot_log runs/a/log.jsonl runs/b/log.jsonl --output curves.png

One panel per logged quantity (loss parts, non-zeros, dead fraction, lambda, lr); one line per log.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cli import UsageError, run

PANELS = ["loss", "rank", "clm", "relu", "flops_q", "flops_d", "nnz_q", "nnz_d", "dead_q", "dead_d", "lambda_d",
          "accuracy", "lr"]


def read_log(path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"log not found: {path}")
    return [json.loads(line) for line in open(path, encoding="utf-8") if line.strip()]


def plot(logs: dict[str, list[dict]], output) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in PANELS if any(k in r for rows in logs.values() for r in rows)]
    if not keys:
        raise UsageError("the logs hold no known quantity")
    cols = 3
    rows_n = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 2.8 * rows_n), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for name, rows in logs.items():
            pts = [(r["step"], r[key]) for r in rows if key in r]
            if pts:
                ax.plot(*zip(*pts), label=name, lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(output, dpi=110)
    return Path(output)


def _main(argv=None):
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.plot_log", description=__doc__.split("\n\n")[0])
    p.add_argument("logs", nargs="+", help="log.jsonl files (the label is the run directory's name)")
    p.add_argument("--output", required=True, help="PNG to write")
    a = p.parse_args(argv)
    out = plot({Path(x).parent.name: read_log(x) for x in a.logs}, a.output)
    print(out)


def main(argv=None):
    run(_main, argv, "csplade-plot-log")


if __name__ == "__main__":
    main()
