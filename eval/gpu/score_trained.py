"""Score what the GPU training call brought back: index its passages here, search with its encoder, evaluate.

    python eval/gpu/score_trained.py BACK [--name h100] [--start smollm2-135m-echo-corpusfit]

BACK holds the call's files (encoders.tar.gz, vectors_{scifact,vaswani}.tar.gz, dev.jsonl, train.log). The chosen encoder's passages of all of
SciFact and Vaswani are indexed (Lucene impact, as `index` does), its test queries encoded here (CPU) and searched,
and each run scored with trec_eval against the same setups' regressions: scifact-full and vaswani-full, BM25 and the
encoder training started from (eval/results/*.json). Writes eval/training/gpu_NAME.json and prints a table; shipping
is a separate, deliberate step (README, "Shipping your own").
"""
from __future__ import annotations

import argparse
import json
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPS = {"scifact": ("scifact-full", "scifact-test"), "vaswani": ("vaswani-full", "vaswani")}
METRICS = ["ndcg@10", "mrr@10", "r@100", "map"]


def regression(name: str) -> dict | None:
    f = ROOT / "eval" / "results" / f"{name}.json"
    return json.loads(f.read_text())["metrics"]["test"] if f.exists() else None


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("back")
    p.add_argument("--name", default="h100")
    p.add_argument("--start", default="smollm2-135m-echo-corpusfit")
    a = p.parse_args(argv)
    back = Path(a.back)
    work = ROOT / "runs" / f"gpu-{a.name}"
    for tgz, dest in (("encoders.tar.gz", work), ("vectors_scifact.tar.gz", work / "vectors"),
                      ("vectors_vaswani.tar.gz", work / "vectors")):
        if not (back / tgz).exists():
            raise SystemExit(f"{back / tgz} is missing: the call trained nothing that dev preferred to the start "
                             f"(see dev.jsonl) or stopped early (see train.log)")
        with tarfile.open(back / tgz) as t:
            t.extractall(dest, filter="data")
    encoders = sorted(work.glob("run-*/encoder/card.json"))
    if len(encoders) != 1:
        raise SystemExit(f"expected the one chosen encoder in {back / 'encoders.tar.gz'}, found {len(encoders)}")
    enc = encoders[0].parent
    from csplade_pyserini import jvm

    jvm.bootstrap()
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.search import search_topics
    from csplade_pyserini.topics import load_topics, qrels_path

    out = {"encoder": str(enc.relative_to(ROOT)), "card": json.loads((enc / "card.json").read_text()),
           "dev": [json.loads(line) for line in open(back / "dev.jsonl")] if (back / "dev.jsonl").exists() else [],
           "setups": {}}
    for c, (setup, topics) in SETUPS.items():
        index = work / f"{c}-index"
        build_impact_index(work / "vectors" / c, index, 2, overwrite=True, quiet=True)
        run = work / f"{c}.run.txt"
        search_topics(index, load_topics(topics), str(enc), output=run, quiet=True)
        got = {k: round(v, 4) for k, v in evaluate(run, qrels_path(topics), METRICS).items()}
        out["setups"][setup] = {"trained": got, "bm25": regression(f"{setup}-bm25"),
                                "start": regression(f"{setup}-{a.start}")}
    dest = ROOT / "eval" / "training" / f"gpu_{a.name}.json"
    dest.write_text(json.dumps(out, indent=1) + "\n")
    print(f"| setup | run | {' | '.join(METRICS)} |\n| --- | --- | {' | '.join('---:' for _ in METRICS)} |")
    for setup, rows in out["setups"].items():
        for who, m in rows.items():
            if m:
                print(f"| {setup} | {who} | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |")
    print(f"written {dest.relative_to(ROOT)}")
    return out


if __name__ == "__main__":
    main()
