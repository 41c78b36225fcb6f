"""python -m csplade_pyserini.results: regenerate eval/results.md, eval/results.json and the plot from eval/results/.

The reproduce runner calls this after every regression; run it by hand after editing regressions. Nothing in the
page is typed in: every number comes from a results JSON written by a measured run.

    python -m csplade_pyserini.results
"""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from .cli import run
from .paths import REPO_DIR

PAGE, JSON_FILE, PLOT = "results.md", "results.json", "results_ndcg_vs_index.png"
COLUMNS = ("ndcg@10", "mrr@10", "r@100", "map")


def load_results(results_dir: Path) -> list[dict]:
    """Every results JSON; a fusion run's ``index_bytes`` is the sum of its parts' as their own results JSONs now
    record them (a hybrid has no index of its own: it searches theirs), so a part re-run with another index layout
    changes the hybrid's row too (its recorded sum is kept where a part has no results JSON)."""
    results = [json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))]
    by_name = {r.get("name"): r for r in results}
    for r in results:
        parts = ((r.get("fusion") or {}).get("parts")) or []
        if parts and all(p.get("name") in by_name for p in parts):
            r["index_bytes"] = sum(by_name[p["name"]]["index_bytes"] for p in parts)
    return results


def training_summary(card: dict | None) -> str:
    t = (card or {}).get("training") or {}
    stages = t.get("stages") or ([t] if t.get("stage") else [])
    def one(s):
        if s.get("stage") == "calibrate":
            bonus = f", bonus {s['input_bonus']:g}" if s.get("input_bonus") else ""
            bonus += f", tf bonus {s['tf_bonus']:g}" if s.get("tf_bonus") else ""
            fit = s.get("fit_term_bias")
            bonus += f"; term bias fitted, {fit['best_step']} steps" if fit else ""
            margin = f", margin {s['margin']:g}" if s.get("margin") is not None else ""
            return f"calibrate ({s.get('passages')} passages{margin}{bonus})"
        if s.get("stage") == "mine":  # negatives mined for the next stage: no steps of its own
            return "mined negatives"
        if s.get("stage") == "fit_query_weights" and s.get("mode"):  # the lexical query table (or its df curve)
            kept = f", step {s['best_step']}" if s.get("best_step") is not None else ""
            return f"fit_query_weights {s['mode']} ({s.get('steps')} steps{kept})"
        if s.get("stage") == "query_expansion":  # the share of the model's expansion terms, chosen on a grid
            return f"query expansion {s.get('share'):g}"
        return f"{s.get('stage')} {s.get('steps')}"

    return " + ".join(one(s) for s in stages) or "none"


def _fmt(v, spec=".4f"):
    return "" if v is None else format(v, spec)


def comparison_tables(results: list[dict]) -> list[str]:
    by_setup: dict[str, list[dict]] = {}
    for r in results:
        if r.get("setup") and r.get("role") in ("shipped", "baseline", "ablation", "hybrid"):
            by_setup.setdefault(r["setup"], []).append(r)
    order = {"baseline": 0, "shipped": 1, "hybrid": 2, "ablation": 3}
    lines = []
    for setup, rs in sorted(by_setup.items()):
        rs.sort(key=lambda r: (order[r["role"]], -(_first(r).get("ndcg@10") or 0)))
        ts = next(iter(rs[0].get("queries") or {"test": 0}))
        lines += [f"### {setup}", "",
                  f"{rs[0]['collection']} `{ts}`: {rs[0]['queries'].get(ts, '?')} queries over {rs[0]['docs']:,} "
                  f"documents. {rs[0].get('description', '')}", "",
                  "| run | role | variant | training (steps) | nDCG@10 | MRR@10 | R@100 | MAP | index MiB | "
                  "terms/doc | terms/query | docs/s | measured on |",
                  "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rs:
            m, card = _first(r), r.get("encoder_card") or {}
            tq = r.get("terms_per_query") or {}
            lines.append(
                f"| `{r['encoder']}` | {r['role']} | {card.get('variant', '—')}"
                f"{' (lexical queries)' if card.get('query_encoder') == 'lexical' else ''} | "
                f"{training_summary(card) if card else '—'} | "
                + " | ".join(_fmt(m.get(c)) for c in COLUMNS)
                + f" | {r['index_bytes'] / 2**20:.2f} | {_fmt(r.get('terms_per_doc'), '.1f') or '—'} | "
                f"{_fmt(next(iter(tq.values()), None), '.1f') or '—'} | {_fmt(r.get('docs_per_s'), '.2f') or '—'} | "
                f"{r['date'][:10]}, {r['machine']} |")
        lines.append("")
        for r in (r for r in rs if r.get("sweep")):
            ts = next(iter(r["metrics"]))
            lines += [f"Top-k sweep of `{r['encoder']}` (document vectors pruned to their k highest terms, same "
                      f"queries):", "", "| top-k | nDCG@10 | R@100 | index MiB | terms/doc |",
                      "| ---: | ---: | ---: | ---: | ---: |"]
            lines += [f"| {p['top_k']} | {_fmt(p[ts].get('ndcg@10'))} | {_fmt(p[ts].get('r@100'))} | "
                      f"{p['index_bytes'] / 2**20:.2f} | {p['terms_per_doc']:.1f} |" for p in r["sweep"]]
            lines.append("")
    return lines


def _first(r: dict) -> dict:
    return next(iter((r.get("metrics") or {}).values()), {})


def training_commands(results: list[dict]) -> list[str]:
    lines, seen = [], set()
    for r in results:
        card = r.get("encoder_card") or {}
        t = card.get("training") or {}
        stages = t.get("stages") or ([t] if t.get("stage") else [])
        if r.get("role") != "shipped" or not stages or card.get("name") in seen:
            continue
        seen.add(card.get("name"))
        lines += [f"`{card.get('name')}`:", "", "```"] + [s.get("command", s.get("note", "")) for s in stages]
        lines += ["```", ""]
    return (["## Training commands", ""] + lines) if lines else []


def calibration_tables(results: list[dict]) -> list[str]:
    """The margin x input-bonus grid each calibrated encoder was tuned on (training queries, from its card)."""
    lines, seen = [], set()
    for r in results:
        card = r.get("encoder_card") or {}
        t = card.get("training") or {}
        grid = t.get("grid") or []
        if t.get("stage") != "calibrate" or not grid or card.get("name") in seen:
            continue
        seen.add(card.get("name"))
        tf = t.get("tf_bonus") or 0.0
        tfs = sorted({g.get("tf_bonus", 0.0) for g in grid})
        grid = [g for g in grid if g.get("tf_bonus", 0.0) == tf]  # the slice at the chosen tf bonus
        bonuses = sorted({g.get("bonus", 0.0) for g in grid})
        lines += [f"`{card['name']}` ({card.get('variant')}): nDCG@10 on {t.get('tuned_on')} (training queries, "
                  f"ranked against {t.get('passages')} calibration passages' first-corpus share plus their judged "
                  f"passages) by margin (rows) and input bonus (columns); terms per query in brackets. Chosen: margin "
                  f"{t.get('margin'):g}, bonus {t.get('input_bonus') or 0:g}"
                  + (f", tf bonus {tf:g} (the table is that slice; tf bonuses tried: "
                     f"{', '.join(f'{x:g}' for x in tfs)})" if len(tfs) > 1 or tf else "") + ".", "",
                  "| margin | " + " | ".join(f"bonus {b:g}" for b in bonuses) + " |",
                  "| ---: | " + " | ".join("---:" for _ in bonuses) + " |"]
        for m in sorted({g["margin"] for g in grid}):
            cells = []
            for b in bonuses:
                g = next((g for g in grid if g["margin"] == m and g.get("bonus", 0.0) == b), None)
                cells.append("" if g is None else f"{g['ndcg@10']:.4f} ({g['terms_per_query']:.0f})")
            lines.append(f"| {m:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return (["## Calibration grids", ""] + lines) if lines else []


def plot(results: list[dict], out: Path) -> Path | None:
    setups = sorted({r["setup"] for r in results if r.get("setup") and r.get("role") != "paper"})
    if not setups:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(setups), figsize=(6 * len(setups), 4.5), squeeze=False)
    for ax, setup in zip(axes[0], setups):
        for r in (r for r in results if r.get("setup") == setup):
            ts = next(iter(r["metrics"]))
            pts = sorted([(p["index_bytes"] / 2**20, p[ts]["ndcg@10"]) for p in r.get("sweep") or []]
                         + [(r["index_bytes"] / 2**20, r["metrics"][ts]["ndcg@10"])])
            style = {"baseline": "s", "shipped": "o", "ablation": "x", "hybrid": "^"}.get(r["role"], "o")
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker=style, label=f"{r['encoder']} ({r['role']})")
        ax.set_xlabel("index size on disk (MiB)")
        ax.set_ylabel("nDCG@10")
        ax.set_title(setup)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("nDCG@10 against index size (points along a line: document top-k 32 ... 256)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def regression_tables(results_dir: Path, regressions_dir: Path) -> list[str]:
    from .collection_specs import SpecError
    from .reproduce import load_regression

    lines = []
    for kind in ("shipped", "paper"):
        lines += [f"### {kind}", "", "| regression | topic set | metric | expected | measured | status | measured on |",
                  "| --- | --- | --- | ---: | ---: | --- | --- |"]
        for p in sorted(regressions_dir.glob("*.yaml")):
            try:
                reg = load_regression(p)
            except SpecError:
                continue
            if reg["kind"] != kind:
                continue
            res_file = results_dir / f"{reg['name']}.json"
            res = json.loads(res_file.read_text()) if res_file.exists() else None
            got = {(r["topic_set"], r["metric"]): r for r in (res or {}).get("rows", [])}
            for ts, metrics in reg["evaluations"].items():
                for m, want in (metrics or {}).items():
                    r = got.get((ts, m))
                    status = "—" if r is None else ("pass" if r["pass"] else "FAIL")
                    lines.append(f"| `{reg['name']}` | {ts} | {m} | {want:.4f} | "
                                 f"{'' if r is None else format(r['measured'], '.4f')} | {status} | "
                                 f"{'' if res is None else res['date'][:10] + ', ' + res['machine']} |")
        lines.append("")
    return lines


def write_results(results_dir: Path | None = None, regressions_dir: Path | None = None,
                  out_dir: Path | None = None) -> Path:
    results_dir = Path(results_dir or REPO_DIR / "eval" / "results")
    regressions_dir = Path(regressions_dir or REPO_DIR / "eval" / "regressions")
    out_dir = Path(out_dir or results_dir.parent)
    results = load_results(results_dir)
    png = plot(results, out_dir / PLOT)
    (out_dir / JSON_FILE).write_text(json.dumps(
        {"generated": datetime.datetime.now().isoformat(timespec="seconds"), "runs": results}, indent=1) + "\n")
    lines = ["# Results", "",
             "Generated by `python -m csplade_pyserini.results` from `eval/results/*.json` (each written by "
             "`python -m csplade_pyserini.reproduce eval/regressions/NAME.yaml`); do not edit. The same data is in "
             f"`eval/{JSON_FILE}`.", "",
             "## Encoders against BM25", "",
             "Every row of a table ran on the same documents and queries. `baseline` rows are BM25 (Pyserini, "
             "k1=0.9, b=0.4; its index holds postings and docids, as the impact indexes do) and the untrained "
             "head; `ablation` rows are trained encoders that are not shipped; "
             "`hybrid` rows fuse other rows' runs (`python -m csplade_pyserini.fuse`; weights chosen on training "
             "queries; index MiB is the sum of the indexes it searches). docs/s is corpus encoding speed on the "
             "machine named.", ""]
    lines += comparison_tables(results)
    if png:
        lines += [f"![nDCG@10 against index size]({PLOT})", ""]
    lines += training_commands(results)
    lines += calibration_tables(results)
    lines += ["## Regressions", "",
              "`shipped` regressions run on the shared data with the shipped encoders; `paper` regressions hold the "
              "CSPLADE paper's reported numbers and need the corpus and trained weights.", ""]
    lines += regression_tables(results_dir, regressions_dir)
    lines += ["Run one: `python -m csplade_pyserini.reproduce eval/regressions/NAME.yaml [--corpus-dir DIR] "
              "[--encoder PATH] [--gpus N]`.", ""]
    page = out_dir / PAGE
    page.write_text("\n".join(lines))
    return page


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.results", description=__doc__.split("\n\n")[0])
    p.add_argument("--results-dir", default=None, help="results JSONs (default: eval/results)")
    p.add_argument("--regressions-dir", default=None, help="regression YAMLs (default: eval/regressions)")
    p.add_argument("--output-dir", default=None, help="where results.md/.json/.png go (default: eval/)")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    print(write_results(a.results_dir, a.regressions_dir, a.output_dir))


def main(argv=None):
    run(_main, argv, "csplade-results")


if __name__ == "__main__":
    main()
