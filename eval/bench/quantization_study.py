"""Quantization and efficiency study: encoder precision x quality x speed x memory, and the index-side knobs.

    python eval/bench/quantization_study.py                      # default encoder, every precision, CPU
    python eval/bench/quantization_study.py --encoder NAME --precisions fp32 torchao-int8-weight-only --device cuda

Encoder side, for each precision (csplade_pyserini.quantize.PRECISIONS; one that cannot run here is reported with
its error): model memory, query encoding latency at batch 1 (p50/p99 over the queries), passage encoding docs/s at
batch 64, top-10 term agreement with fp32, and retrieval quality with *both* sides encoded at that precision on two
small setups cut from the shipped test sets (the first N queries of SciFact test and of Vaswani, over their judged
documents plus a seeded sample), BM25 beside them on the same documents.

Index side (fp32 encoder): the document weights are computed once in float, then written at every quantization scale
x top-k (exactly what encoding with those card settings gives), indexed, searched: nDCG@10, index size, search QPS.

Writes eval/quantization/study.json, study.md and two PNGs (quality vs speed; quality vs index size).

On a machine without Java or Pyserini (the GPU machine, eval/gpu/README.md) the study runs in three phases over one
--work folder: --phase prepare here (the two setups), --phase encode there (the encoder side: each precision's
timings, memory, agreement and its passage and query vectors; nothing is indexed), --phase score here again (index,
search, BM25 and the index side, then the outputs, which name the machine that encoded).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def setup_data(name: str, n_queries: int, n_docs: int, work: Path) -> dict:
    """A small setup: the first n_queries judged topics, their judged docs + a seeded sample (n_docs in all)."""
    from csplade_pyserini.collection_specs import CollectionSpec, convert_corpus, subset_corpus
    from csplade_pyserini.topics import load_topics

    spec = CollectionSpec.load(name)
    ts = next(iter(spec.topic_sets))
    topics_ref, qrels = spec.topics_and_qrels(ts, None, work)
    judged = {line.split()[0] for line in open(qrels, encoding="utf-8") if line.strip()}
    topics = {q: t for q, t in load_topics(topics_ref).items() if q in judged}
    topics = dict(list(topics.items())[:n_queries])
    from csplade_pyserini.eval import filter_qrels

    qrels = filter_qrels(qrels, topics, work / f"{name}.qrels.txt")
    corpus = convert_corpus(spec, spec.corpus_path(None), work / f"{name}.corpus.jsonl")
    sub = work / f"{name}.subset.jsonl"
    n, n_judged, _ = subset_corpus(corpus, qrels, n_docs, 13, sub, set(topics))
    docs = [json.loads(line) for line in open(sub, encoding="utf-8")]
    from csplade_pyserini.corpus import doc_id, record_text

    return {"name": name, "topics": topics, "qrels": qrels, "corpus": sub,
            "docs": [(str(doc_id(d, None)), record_text(d)) for d in docs], "n_judged": n_judged}


def write_collection(docs, vectors, out_dir: Path):
    from csplade_pyserini.terms import EMPTY_DOC_TERM

    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "docs.jsonl", "w", encoding="utf-8") as f:
        for (did, _), vec in zip(docs, vectors):
            f.write(json.dumps({"id": did, "contents": "", "vector": vec or {EMPTY_DOC_TERM: 1}},
                               ensure_ascii=False) + "\n")


def search_eval(index: Path, qvecs: dict, qrels, hits=1000) -> tuple[dict, float]:
    """Search with pre-encoded queries ({qid: (text, vector)}, the precision's own vectors) through the project's
    search path (query cache of CspladeQueryEncoder, batch search); returns metrics and search queries/s."""
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.search import search_topics

    qenc = CspladeQueryEncoder()  # every query is in its cache: the model is never loaded
    qenc.cache.update({text: vec for text, vec in qvecs.values()})
    run = index.parent / (index.name + ".run.txt")
    t = time.time()
    search_topics(index, {q: text for q, (text, _) in qvecs.items()}, output=run, hits=hits, threads=2,
                  query_encoder=qenc, quiet=True)
    secs = time.time() - t
    return evaluate(run, qrels, ["ndcg@10", "r@100"]), len(qvecs) / max(secs, 1e-9)


def dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def encoder_side(a, setups, work: Path, score: bool = True) -> list[dict]:
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.quantize import PRECISIONS, PrecisionUnavailable

    rows, ref_q = [], None
    sample_q = list(setups[0]["topics"].values())
    bench_docs = [t for _, t in setups[0]["docs"]][:64]
    for prec in a.precisions:
        row = {"precision": prec, "device": a.device, "description": PRECISIONS[prec][0]}
        try:
            with time_limit(a.limits[prec]):
                t0 = time.time()
                enc = CspladeEncoder.load(a.encoder, device=a.device, precision=prec, batch_size=64)
                row["load_s"] = round(time.time() - t0, 1)
                qv = measure_precision(enc, row, sample_q, bench_docs, setups, work, prec, score)
                ref_q = ref_q or qv
                row["top10_agreement_vs_first"] = round(sum(top_agreement(x, y) for x, y in zip(qv, ref_q))
                                                        / len(qv), 3)
        except PrecisionUnavailable as e:
            row["error"] = str(e)
            rows.append(row)
            print(f"[study] {prec}: unavailable: {e}", file=sys.stderr)
            continue
        except StudyTimeout as e:
            row["stopped"] = str(e)  # the measurements made before the limit stay in the row
            rows.append(row)
            print(f"[study] {prec}: stopped: {json.dumps(row)}", file=sys.stderr)
            continue
        rows.append(row)
        print(f"[study] {prec}: {json.dumps(row)}", file=sys.stderr)
        if a.partial_file:  # progress survives an interrupted study
            Path(a.partial_file).write_text(json.dumps(rows, indent=1) + "\n")
        if getattr(a, "encoded_meta", None) is not None:  # --phase encode: a killed run still brings back its rows
            write_encoded(work, a.encoded_meta, rows, complete=False)
        del enc
    return rows


def top_agreement(vec: dict, ref: dict, k: int = 10) -> float:
    """Share of ``ref``'s k highest-weight terms (fewer if it has fewer) that are among ``vec``'s k highest."""
    top = lambda v: {t for t, _ in sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[:k]}  # noqa: E731
    want = top(ref)
    return len(top(vec) & want) / len(want) if want else float(not vec)


class StudyTimeout(Exception):
    pass


def seconds_for(limits: list[str], precision: str) -> float:
    """The time limit of one precision from ["480", "bf16=150", ...] (a bare number is the default)."""
    from csplade_pyserini.quantize import PRECISIONS

    default, named = 0.0, {}
    for item in limits:
        name, sep, value = item.rpartition("=")
        try:
            seconds = float(value)
        except ValueError:
            raise SystemExit(f"--max-seconds-per-precision: {item!r} is not SECONDS or PRECISION=SECONDS")
        if sep and name not in PRECISIONS:
            raise SystemExit(f"--max-seconds-per-precision: unknown precision {name!r} (choose from {', '.join(PRECISIONS)})")
        if sep:
            named[name] = seconds
        else:
            default = seconds
    return named.get(precision, default)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Stop one precision's measurements after ``seconds`` (0: no limit); the row says what was measured."""
    if not seconds:
        yield
        return

    def handler(signum, frame):
        raise StudyTimeout(f"over the {seconds:g} s limit per precision (--max-seconds-per-precision)")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def measure_precision(enc, row, sample_q, bench_docs, setups, work, prec, score=True) -> list[dict]:
    """Fills ``row`` as it goes (so a stopped precision still reports what it measured); returns the sample queries'
    vectors, for the top-term agreement between precisions. Each setup's passage and query vectors are written to
    ``work`` (``row["encoded"]`` lists the setups done); ``score`` also indexes and searches them here."""
    from csplade_pyserini.quantize import model_bytes

    row["model_mib"] = round(model_bytes(enc.model) / 2**20, 1)
    for text in sample_q[:3]:  # warm-up
        enc.encode([text], "query")
    lat = []
    for text in sample_q:
        t = time.perf_counter()
        enc.encode([text], "query")
        lat.append((time.perf_counter() - t) * 1000)
    row["query_ms_p50"], row["query_ms_p99"] = round(pct(lat, 50), 1), round(pct(lat, 99), 1)
    t = time.perf_counter()
    enc.encode(bench_docs, "passage", batch_size=64)
    row["docs_per_s_b64"] = round(len(bench_docs) / (time.perf_counter() - t), 2)
    qv = enc.encode(sample_q, "query")
    row["encoded"] = []
    for s in setups:
        vecs = enc.encode([t for _, t in s["docs"]], "passage", batch_size=16)
        coll = work / f"{prec}.{s['name']}.vectors"
        shutil.rmtree(coll, ignore_errors=True)
        write_collection(s["docs"], vecs, coll)
        qvecs = enc.encode(list(s["topics"].values()), "query")
        (work / f"{prec}.{s['name']}.queries.json").write_text(json.dumps(dict(zip(s["topics"], qvecs))) + "\n")
        row["encoded"].append(s["name"])
        if score:
            row[s["name"]] = score_setup(prec, s, work)
    return qv


def score_setup(prec: str, s: dict, work: Path) -> dict:
    """Index a precision's passage vectors of one setup and search them with its own query vectors."""
    from csplade_pyserini.index import build_impact_index

    coll, idx = work / f"{prec}.{s['name']}.vectors", work / f"{prec}.{s['name']}.index"
    build_impact_index(coll, idx, 2, overwrite=True, quiet=True)
    qv = json.loads((work / f"{prec}.{s['name']}.queries.json").read_text())
    m, qps = search_eval(idx, {q: (text, qv[q]) for q, text in s["topics"].items()}, s["qrels"])
    return {k: round(v, 4) for k, v in m.items()}


def index_side(a, setups, work: Path) -> list[dict]:
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.sparse import quantize

    enc = CspladeEncoder.load(a.encoder, device=a.device, precision="fp32")
    model, card = enc.model, enc.card
    rows = []
    for s in setups:
        weights = []  # float weights, kept sparse
        texts = [t for _, t in s["docs"]]
        with torch.inference_mode():
            for i in range(0, len(texts), 16):
                f = model.features(model.token_lists(texts[i:i + 16], card.passage_prefix),
                                   card.passage_max_length).to(model.device)
                w = model(f.input_ids, f.attention_mask, f.pool_mask).float().cpu()
                weights += [row.to_sparse() for row in w]
        qv = enc.encode(list(s["topics"].values()), "query")
        qvecs = dict(zip(s["topics"], zip(s["topics"].values(), qv)))
        for scale in a.scales:
            for k in a.top_ks:
                vecs = []
                for sw in weights:
                    dense = sw.to_dense().unsqueeze(0)
                    ids, ints = quantize(dense, scale, k)[0]
                    vecs.append({model.terms.term(i): q for i, q in zip(ids, ints)})
                name = f"{s['name']}.s{scale:g}.k{k}"
                coll, idx = work / f"{name}.vectors", work / f"{name}.index"
                shutil.rmtree(coll, ignore_errors=True)
                write_collection(s["docs"], vecs, coll)
                build_impact_index(coll, idx, 2, overwrite=True, quiet=True)
                # queries keep the card's scale: doc ints carry the scale being studied
                m, qps = search_eval(idx, qvecs, s["qrels"])
                rows.append({"setup": s["name"], "scale": scale, "top_k": k or "all",
                             "terms_per_doc": round(sum(len(v) for v in vecs) / len(vecs), 1),
                             "index_mib": round(dir_bytes(idx) / 2**20, 3), "search_qps": round(qps, 1),
                             **{mk: round(mv, 4) for mk, mv in m.items()}})
                print(f"[study] index {rows[-1]}", file=sys.stderr)
    return rows


def bm25_rows(setups, work: Path) -> dict:
    from csplade_pyserini.bm25 import bm25_collection, bm25_search
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.index import build_bm25_index

    out = {}
    for s in setups:
        coll, idx, run = work / f"bm25.{s['name']}", work / f"bm25.{s['name']}.index", work / f"bm25.{s['name']}.run"
        bm25_collection(s["corpus"], coll)
        build_bm25_index(coll, idx, 2, overwrite=True, quiet=True)
        bm25_search(idx, s["topics"], run, 1000, 2)
        out[s["name"]] = {k: round(v, 4) for k, v in evaluate(run, s["qrels"], ["ndcg@10", "r@100"]).items()}
        out[s["name"]]["index_mib"] = round(dir_bytes(idx) / 2**20, 3)
    return out


def plots(result: dict, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    setups = list(result["bm25"])
    ok = [r for r in result["precisions"] if "error" not in r and "query_ms_p50" in r]
    fig, axes = plt.subplots(1, len(setups), figsize=(6 * len(setups), 4.5), squeeze=False)
    for ax, s in zip(axes[0], setups):
        for r in (r for r in ok if s in r):
            ax.scatter(1000 / r["query_ms_p50"], r[s]["ndcg@10"], label=r["precision"])
            ax.annotate(r["precision"], (1000 / r["query_ms_p50"], r[s]["ndcg@10"]), fontsize=7)
        ax.axhline(result["bm25"][s]["ndcg@10"], color="gray", ls="--", label="BM25")
        ax.set_xlabel("queries/s at batch 1 (encoding)")
        ax.set_ylabel("nDCG@10")
        ax.set_title(s)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_speed.png", dpi=110)
    plt.close(fig)
    if not result["index"]:  # --skip-index-side: no second plot
        return
    fig, axes = plt.subplots(1, len(setups), figsize=(6 * len(setups), 4.5), squeeze=False)
    for ax, s in zip(axes[0], setups):
        for scale in sorted({r["scale"] for r in result["index"]}):
            pts = sorted((r["index_mib"], r["ndcg@10"]) for r in result["index"] if r["setup"] == s and
                         r["scale"] == scale)
            ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=f"scale {scale:g}")
        ax.axhline(result["bm25"][s]["ndcg@10"], color="gray", ls="--", label="BM25")
        ax.set_xlabel("index size (MiB); points: top-k per document")
        ax.set_ylabel("nDCG@10")
        ax.set_title(s)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "quality_vs_index_size.png", dpi=110)
    plt.close(fig)


def markdown(result: dict) -> str:
    setups = list(result["bm25"])
    lines = [f"# Quantization study: `{result['encoder']}` on {result['machine']}", "",
             f"Generated by `{result['command']}` on {result['date'][:10]}; do not edit. Setups: "
             + "; ".join(f"{s}: {result['setups'][s]['queries']} queries over {result['setups'][s]['docs']} docs"
                         for s in setups) + ".", "",
             *(["The encode phase did not finish (stopped at the call's time limit): precisions not listed below "
                "were not run.", ""] if result.get("incomplete") else []),
             "## Encoder precision", "",
             "| precision | model MiB | query ms p50 | p99 | docs/s (b64) | top-10 agreement | "
             + " | ".join(f"{s} nDCG@10 | {s} R@100" for s in setups) + " |",
             "| --- | ---: | ---: | ---: | ---: | ---: | " + " | ".join("---: | ---:" for _ in setups) + " |"]
    lines.append("| BM25 | | | | | | " + " | ".join(f"{result['bm25'][s]['ndcg@10']:.4f} | "
                                                  f"{result['bm25'][s]['r@100']:.4f}" for s in setups) + " |")
    for r in result["precisions"]:
        if "error" in r:
            lines.append(f"| {r['precision']} | unavailable: {r['error']} |")
            continue
        cell = lambda k: str(r[k]) if k in r else "—"  # noqa: E731 (a stopped precision lacks some)
        lines.append(f"| {r['precision']}{' (stopped)' if 'stopped' in r else ''} | {cell('model_mib')} | "
                     f"{cell('query_ms_p50')} | {cell('query_ms_p99')} | {cell('docs_per_s_b64')} | "
                     f"{cell('top10_agreement_vs_first')} | "
                     + " | ".join(f"{r[s]['ndcg@10']:.4f} | {r[s]['r@100']:.4f}" if s in r else "— | —"
                                  for s in setups) + " |")
    stopped = [r for r in result["precisions"] if "stopped" in r]
    if stopped:
        lines += ["", "Stopped at the time limit (— = not reached): " + "; ".join(
            f"{r['precision']}: {r['stopped']}" for r in stopped) + "."]
    lines += ["", "Top-10 agreement: over the sample queries, the mean share of the first precision's 10 "
              "highest-weight terms of a query (all of them where it has fewer) that this precision also ranks in "
              "its 10 highest.", "", "## Index side (fp32 encoder)", ""]
    if not result["index"]:
        lines.append("Not run (--skip-index-side).")
    else:
        lines += ["| setup | scale | top-k | terms/doc | index MiB | search QPS | nDCG@10 | R@100 |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in result["index"]:
        lines.append(f"| {r['setup']} | {r['scale']:g} | {r['top_k']} | {r['terms_per_doc']} | {r['index_mib']} | "
                     f"{r['search_qps']} | {r['ndcg@10']:.4f} | {r['r@100']:.4f} |")
    lines += ["", "![quality vs speed](quality_vs_speed.png)", ""]
    if result["index"]:
        lines += ["![quality vs index size](quality_vs_index_size.png)", ""]
    return "\n".join(lines)


PHASES = ("all", "prepare", "encode", "score")


def save_setups(setups, work: Path) -> None:
    (work / "setups.json").write_text(json.dumps([{**s, "qrels": str(Path(s["qrels"]).name),
                                                   "corpus": str(Path(s["corpus"]).name)} for s in setups]) + "\n")


def load_setups(work: Path) -> list[dict]:
    return [{**s, "qrels": str(work / s["qrels"]), "corpus": str(work / s["corpus"])}
            for s in json.loads((work / "setups.json").read_text())]


def main(argv=None):
    from csplade_pyserini.quantize import PRECISIONS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default=None, help="encoder card (default: the project's default encoder)")
    p.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=list(PRECISIONS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--queries", type=int, default=40, help="queries per setup (default: 40)")
    p.add_argument("--docs", type=int, default=200, help="documents per setup (judged + sample; default: 200)")
    p.add_argument("--scales", type=float, nargs="+", default=[10, 100, 1000])
    p.add_argument("--top-ks", type=int, nargs="+", default=[64, 128, 256, 0], help="0 = all terms")
    p.add_argument("--skip-index-side", action="store_true")
    p.add_argument("--max-seconds-per-precision", nargs="+", default=["0"], metavar="[PRECISION=]SECONDS",
                   help="stop a precision after this long and report what it measured: one number for all "
                        "(0: no limit), then PRECISION=SECONDS for exceptions, e.g. 480 bf16=150")
    p.add_argument("--phase", choices=PHASES, default="all",
                   help="all (default): everything here. For a machine without Java or Pyserini (the GPU machine): "
                        "prepare (here: the setups into --work), encode (there: the encoder side, vectors and rows "
                        "into --work, nothing searched), score (here again, on that --work: index, search, BM25, "
                        "the index side, the outputs)")
    p.add_argument("--output-dir", default=str(ROOT / "eval" / "quantization"))
    p.add_argument("--work", default=str(ROOT / "runs" / "quantization-study"))
    a = p.parse_args(argv)
    a.limits = {prec: seconds_for(a.max_seconds_per_precision, prec) for prec in a.precisions}  # bad values fail now
    work, out = Path(a.work), Path(a.output_dir)
    work.mkdir(parents=True, exist_ok=True)
    # the encode phase rewrites encoded.json after every precision instead (write_encoded)
    a.partial_file = None if a.phase == "encode" else str(out / "study.partial.json")
    for phase, needed, step in (("encode", "setups.json", "prepare"), ("score", "encoded.json", "encode")):
        if a.phase == phase and not (work / needed).exists():
            raise SystemExit(f"{work / needed} is missing: run --phase {step} (with the same --work) first")
    if a.phase != "encode":  # the encode phase runs where there is no Java and no Pyserini
        from csplade_pyserini import jvm

        jvm.bootstrap()
    if a.encoder is None:
        from csplade_pyserini.encoder import default_encoder

        a.encoder = default_encoder()
    torch.manual_seed(0)
    command = "python eval/bench/quantization_study.py " + " ".join(argv or sys.argv[1:])
    if a.phase == "prepare":
        save_setups([setup_data(n, a.queries, a.docs, work) for n in ("scifact", "vaswani")], work)
        print(f"[study] setups written to {work / 'setups.json'}: run --phase encode on the other machine with "
              f"this folder as --work, bring it back, then --phase score", file=sys.stderr)
        return None
    if a.phase == "all":
        setups = [setup_data(n, a.queries, a.docs, work) for n in ("scifact", "vaswani")]
    else:
        setups = load_setups(work)
    meta = {"encoder": a.encoder, "device": a.device, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": machine(a.device), "command": command,
            "loadavg_at_start": open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []}
    if a.phase == "encode":
        a.encoded_meta = meta
        write_encoded(work, meta, [], complete=False)  # an earlier run's file never survives into this one's
        rows = encoder_side(a, setups, work, score=False)
        write_encoded(work, meta, rows, complete=True)
        print(f"[study] encoder side written to {work / 'encoded.json'}: bring {work} back and run --phase score",
              file=sys.stderr)
        return None
    out.mkdir(parents=True, exist_ok=True)
    if a.phase == "score":
        encoded = json.loads((work / "encoded.json").read_text())
        meta = {k: encoded[k] for k in meta if k in encoded}
        meta["command"] = encoded["command"] + f" (scored here: {command})"
        if not encoded.get("complete", True):
            print("[study] encoded.json is from an encode phase that did not finish: the precisions after the last "
                  "one listed were not run", file=sys.stderr)
            meta["incomplete"] = True
        rows = encoded["precisions"]
        for r in rows:
            for name in r.get("encoded", []):
                r[name] = score_setup(r["precision"], next(s for s in setups if s["name"] == name), work)
    result = {**meta, "setups": {s["name"]: {"queries": len(s["topics"]), "docs": len(s["docs"]),
                                              "judged": s["n_judged"]} for s in setups},
              "bm25": bm25_rows(setups, work)}
    result["precisions"] = encoder_side(a, setups, work) if a.phase == "all" else rows
    result["index"] = [] if a.skip_index_side else index_side(a, setups, work)
    (out / "study.json").write_text(json.dumps(result, indent=1) + "\n")
    plots(result, out)
    (out / "study.md").write_text(markdown(result))
    Path(a.partial_file).unlink(missing_ok=True)  # the finished study.json supersedes it
    print(markdown(result))
    return result


def write_encoded(work: Path, meta: dict, rows: list, complete: bool) -> None:
    """The encode phase's result, rewritten after every precision (``complete`` once all have run)."""
    (work / "encoded.json").write_text(json.dumps({**meta, "complete": complete, "precisions": rows}, indent=1) + "\n")


def machine(device: str) -> str:
    from csplade_pyserini.modeling.backbone import machine_summary

    return f"{machine_summary(device)}, torch {torch.__version__}"


if __name__ == "__main__":
    main()
