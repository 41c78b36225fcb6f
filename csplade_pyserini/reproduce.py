"""python -m csplade_pyserini.reproduce: run a regression (encoder card x collection) and check its scores.

    python -m csplade_pyserini.reproduce eval/regressions/vaswani-mini-smollm2-135m-causal-base.yaml
    python -m csplade_pyserini.reproduce eval/regressions/paper-llama3.2-1b-causal-msmarco.yaml \\
        --corpus-dir /data --encoder runs/my-1b-encoder --gpus 4

encode (sharded, resumable; one process per GPU with --gpus) -> impact index -> search every topic set (query
cache kept) -> trec_eval -> each metric against its expected value +- tolerance. Prints a pass/fail table, writes
eval/results/NAME.json and regenerates eval/results.md. Exit status 1 when a metric is out of tolerance.
A regression with `encoder: fusion` and `fusion: {runs: [NAME, ...], method: rrf|interpolation, weights: [...]}`
runs (or resumes) the regressions it names and checks their fused run (python -m csplade_pyserini.fuse).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .cli import UsageError, positive_int, run
from .modeling.backbone import machine_summary  # noqa: F401  (where the eval scripts import it from)
from .collection_specs import CollectionSpec, SpecError, _check_keys, load_yaml
from .paths import REPO_DIR
from .writer import avg_terms

REG_KEYS = {"name", "kind", "description", "collection", "encoder", "requires", "subset", "encode", "search",
            "tolerance", "cross_dtype_tolerance", "evaluations", "command", "measured_on", "role", "setup",
            "score_key", "sweep", "fusion", "documents_from", "segment"}
ROLES = ("shipped", "baseline", "ablation", "hybrid", "paper")
BM25 = "bm25"  # `encoder: bm25` runs Pyserini's BM25 on the same documents and queries
FUSION = "fusion"  # `encoder: fusion` fuses the runs of other regressions (`fusion: {runs: [NAME, ...], ...}`)
FUSION_KEYS = {"runs", "method", "weights", "rrf_k", "depth"}
CARD_SUMMARY = ("name", "variant", "passage_max_length", "passage_windows", "query_max_length", "passage_top_k",
                "query_top_k", "quantization_scale", "query_encoder", "training")


def default_workdir(name: str) -> Path:
    return REPO_DIR / "runs" / "reproduce" / name


def load_regression(path) -> dict:
    from .eval import METRICS

    d = load_yaml(path)
    where = str(path)
    _check_keys(d, REG_KEYS, {"name", "kind", "collection", "evaluations"}, where)
    if d["kind"] not in ("shipped", "paper"):
        raise SpecError(f"{where}: kind must be shipped or paper, got {d['kind']!r}")
    spec = CollectionSpec.load(d["collection"])
    for ts, metrics in d["evaluations"].items():
        if ts not in spec.topic_sets:
            raise SpecError(f"{where}: topic set {ts!r} is not in collection {spec.name!r} ({list(spec.topic_sets)})")
        for m, v in (metrics or {}).items():
            if m not in METRICS:
                raise SpecError(f"{where}: unknown metric {m!r} in {ts} (known: {list(METRICS)})")
            if not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise SpecError(f"{where}: expected value of {ts}.{m} must be a number in [0, 1], got {v!r}")
    for key in ("tolerance", "cross_dtype_tolerance"):
        v = d.get(key, 0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise SpecError(f"{where}: {key} must be a number in [0, 1), got {v!r}")
    d.setdefault("role", "paper" if d["kind"] == "paper" else "shipped")
    if d["role"] not in ROLES:
        raise SpecError(f"{where}: role must be one of {ROLES}, got {d['role']!r}")
    _check_keys(d.get("sweep") or {}, {"top_k"}, set(), f"{where}: sweep")
    ks = (d.get("sweep") or {}).get("top_k") or []
    if not isinstance(ks, list) or not all(isinstance(k, int) and k > 0 for k in ks):
        raise SpecError(f"{where}: sweep.top_k must be a list of positive ints, got {ks!r}")
    _check_keys(d.get("subset") or {}, {"max_docs", "seed", "max_queries"}, set(), f"{where}: subset")
    _check_keys(d.get("encode") or {}, {"batch_size", "max_length", "windows"}, set(), f"{where}: encode")
    w = (d.get("encode") or {}).get("windows")
    if w is not None and (not isinstance(w, int) or isinstance(w, bool) or w < 1):
        raise SpecError(f"{where}: encode.windows must be a positive int, got {w!r}")
    _check_keys(d.get("search") or {}, {"hits", "batch_size"}, set(), f"{where}: search")
    if "segment" in d:  # documents cut into segments (python -m csplade_pyserini.segment), searched with MaxP
        seg = d["segment"] or {}
        _check_keys(seg, {"words", "stride"}, {"words", "stride"}, f"{where}: segment")
        if not all(isinstance(seg[k], int) and not isinstance(seg[k], bool) for k in seg) or \
                not 1 <= seg["stride"] <= seg["words"]:
            raise SpecError(f"{where}: segment needs ints words >= 1 and stride in 1..words, got {seg!r}")
        if d.get("encoder") in (BM25, FUSION) or "documents_from" in d:
            raise SpecError(f"{where}: segment applies to a regression that encodes its own documents "
                            f"(not bm25, fusion or documents_from)")
    if (d.get("encoder") == FUSION) != ("fusion" in d):
        raise SpecError(f"{where}: `encoder: fusion` and a `fusion:` block go together")
    if "fusion" in d:
        _check_fusion(d, where)
    if "documents_from" in d:
        _check_documents_from(d, spec, where)
    d["_spec"], d["_path"] = spec, str(path)
    return d


def _check_documents_from(d: dict, spec, where: str) -> None:
    """`documents_from: NAME`: search the index of regression NAME (same collection and subset) instead of encoding
    the corpus again; only for an encoder whose passage side equals NAME's (checked when it runs)."""
    name = d["documents_from"]
    if not isinstance(name, str) or d.get("encoder") in (BM25, FUSION):
        raise SpecError(f"{where}: documents_from must name a regression, for an encoder other than bm25/fusion")
    sub_path = Path(where).parent / f"{name}.yaml"
    if not sub_path.is_file():
        raise SpecError(f"{where}: documents_from {name!r} names no regression ({sub_path} not found)")
    sub = load_yaml(sub_path)
    if sub.get("collection") != spec.name or sub.get("subset") != d.get("subset"):
        raise SpecError(f"{where}: documents_from {name!r} is on {sub.get('collection')} {sub.get('subset') or 'whole'}, "
                        f"not on this regression's documents ({spec.name} {d.get('subset') or 'whole'})")
    if sub.get("encoder") in (BM25, FUSION) or sub.get("documents_from"):
        raise SpecError(f"{where}: documents_from {name!r} must encode its own documents (not bm25, fusion or "
                        f"documents_from)")


def _check_fusion(d: dict, where: str) -> None:
    from .fuse import METHODS

    f = d["fusion"]
    if not isinstance(f, dict):
        raise SpecError(f"{where}: fusion must be a mapping, got {f!r}")
    _check_keys(f, FUSION_KEYS, {"runs", "method"}, f"{where}: fusion")
    runs = f["runs"]
    if not isinstance(runs, list) or len(runs) < 2 or not all(isinstance(r, str) for r in runs):
        raise SpecError(f"{where}: fusion.runs must list two or more regression names, got {runs!r}")
    if f["method"] not in METHODS:
        raise SpecError(f"{where}: fusion.method must be one of {METHODS}, got {f['method']!r}")
    w = f.get("weights")
    if w is not None and (f["method"] != "interpolation" or not isinstance(w, list) or len(w) != len(runs)
                          or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and x >= 0 for x in w)):
        raise SpecError(f"{where}: fusion.weights must be {len(runs)} numbers >= 0 (one per run, interpolation "
                        f"only), got {w!r}")
    for key in ("rrf_k", "depth"):
        v = f.get(key)
        low = 1 if key == "depth" else 0
        if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool) or v < low):
            raise SpecError(f"{where}: fusion.{key} must be a number >= {low}, got {v!r}")
    for name in runs:
        sub = Path(where).parent / f"{name}.yaml"
        if not sub.is_file():
            raise SpecError(f"{where}: fusion run {name!r} names no regression ({sub} not found)")


def fusion_label(f: dict) -> str:
    """A checked `fusion:` block -> "interpolation 0.3/0.7", "interpolation" (equal weights) or "rrf k=60"."""
    if f["method"] == "rrf":
        return f"rrf k={f.get('rrf_k', 60):g}"
    return " ".join(["interpolation", *(["/".join(f"{w:g}" for w in f["weights"])] if f.get("weights") else [])])


def encode_sharded(corpus, vectors, encoder, fields, batch_size, max_length, gpus: int, windows=None):
    """One encode process per GPU (shard i on GPU i), or in-process on one device; finished shards are skipped.
    ``windows`` overrides the card's passage_windows (the regression's ``encode: {windows: N}``)."""
    from .encode import encode_corpus

    if gpus <= 1:
        return [encode_corpus(corpus, vectors, encoder, fields, batch_size=batch_size, max_length=max_length,
                              resume=True, card_overrides={"passage_windows": windows})]
    procs = []
    for i in range(gpus):
        cmd = [sys.executable, "-m", "csplade_pyserini.encode", "input", "--corpus", str(corpus), "--fields", *fields,
               "--shard-id", str(i), "--shard-num", str(gpus), "output", "--embeddings", str(vectors), "--resume",
               "encoder", "--encoder", str(encoder), "--batch-size", str(batch_size), "--device", "cuda"]
        if max_length:
            cmd += ["--max-length", str(max_length)]
        if windows:
            cmd += ["--windows", str(windows)]
        procs.append(subprocess.Popen(cmd, env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(i))))
    if any(p.wait() for p in procs):
        raise RuntimeError("an encode shard failed; rerun the same command to resume the unfinished shards")
    from .writer import meta_dir

    return [json.loads(p.read_text()) for p in sorted(meta_dir(vectors).glob("*.jsonl.json"))]


def accept_measured(path, measured: dict, metrics: dict, note: str) -> None:
    """Rewrite the YAML's ``evaluations:`` block with the measured values of its metrics (all REPORTED metrics for
    a topic set that lists none) and its ``measured_on`` line; comments and other keys stay as they are."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("evaluations:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith((" ", "#"))),
               len(lines))
    block = ["evaluations:"]
    for ts, ms in metrics.items():
        block.append(f"  {ts}:")
        block += [f"    {m}: {measured[ts][m]:.4f}" for m in (ms or REPORTED)]

    def without_measured_on(part):  # the old measured_on line and a folded continuation of it
        kept, skipping = [], False
        for line in part:
            skipping = line.startswith("measured_on:") or (skipping and line.startswith(" "))
            if not skipping:
                kept.append(line)
        return kept

    head, rest = without_measured_on(lines[:start]), without_measured_on(lines[end:])
    Path(path).write_text("\n".join(head + block + rest + [f"measured_on: {note}"]) + "\n", encoding="utf-8")


CROSS_DTYPE_TOLERANCE = 0.01


def measured_dtype(reg: dict) -> str:
    """The dtype a regression's expected values were measured in: named in its ``measured_on`` line (``--accept``
    writes it), else float32 (older lines, measured on CPUs without fast bf16, where bf16 cards ran in float32)."""
    m = re.search(r"\b(bfloat16|float16|float32)\b", str(reg.get("measured_on", "")))
    return m.group(1) if m else "float32"


def regression_tolerance(reg: dict, run_dtype: str | None) -> tuple[float, str]:
    """(tolerance, why). A run in another dtype than the expected values' rounds every weight differently, which
    moves a small setup's metrics by more than a same-dtype rerun does (measured: bf16 vs float32 reruns of the
    shipped encoders moved nDCG@10 by <= 0.003 and one 93-query MRR@10 by 0.0052); such a run is held to
    ``cross_dtype_tolerance`` (default 0.01) when that is wider than ``tolerance``."""
    tol = float(reg.get("tolerance", 0.005))
    want = measured_dtype(reg)
    if not run_dtype or run_dtype == want:
        return tol, f"same dtype as the expected values ({want})" if run_dtype else "no encoder dtype"
    cross = max(tol, float(reg.get("cross_dtype_tolerance", CROSS_DTYPE_TOLERANCE)))
    return cross, f"ran in {run_dtype}, expected values measured in {want}: cross-dtype tolerance"


def run_regression(path, corpus_dir=None, encoder=None, gpus=1, workdir=None, results_dir=None, threads=None,
                   accept: bool = False) -> dict:
    from .eval import evaluate
    from .search import search_topics
    from .topics import load_topics
    from .collection_specs import convert_corpus, subset_corpus

    reg = load_regression(path)
    spec: CollectionSpec = reg["_spec"]
    encoder = encoder or reg.get("encoder")
    if not encoder:
        raise UsageError(f"{reg['name']} needs --encoder: {reg.get('requires') or 'no encoder in the regression'}")
    threads = threads or os.cpu_count() or 1
    work = Path(workdir or default_workdir(reg["name"]))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    corpus = convert_corpus(spec, spec.corpus_path(corpus_dir), work / "corpus.jsonl")
    sub = reg.get("subset") or {}
    sets = {}
    for ts in reg["evaluations"]:
        topics_ref, qrels = spec.topics_and_qrels(ts, corpus_dir, work)
        topics = load_topics(topics_ref)
        judged = {line.split()[0] for line in open(qrels, encoding="utf-8") if line.strip()}
        topics = {q: t for q, t in topics.items() if q in judged}
        if sub.get("max_queries"):
            from .eval import filter_qrels

            topics = dict(list(topics.items())[: sub["max_queries"]])
            qrels = filter_qrels(qrels, topics, work / f"qrels.{ts}.txt")
        sets[ts] = (topics, qrels)
    if sub.get("max_docs"):
        qids = {q for topics, _ in sets.values() for q in topics}
        first_qrels = next(iter(sets.values()))[1]
        n, n_judged, n_total = subset_corpus(corpus, first_qrels, sub["max_docs"], sub.get("seed", 13),
                                             work / "subset.jsonl", qids)
        corpus = work / "subset.jsonl"
        print(f"[reproduce] subset: {n:,} of {n_total:,} docs ({n_judged} judged)", file=sys.stderr)
    enc_cfg = reg.get("encode") or {}
    search_cfg = reg.get("search") or {}
    hits = search_cfg.get("hits", 1000)
    stats: dict = {}
    fused = str(encoder) == FUSION  # `encoder` becomes the label of the fused parts below
    if fused:
        search, n_docs, info, parts = _fusion_parts(reg, work.parent, corpus_dir, gpus, results_dir, threads, hits)
        stats["fusion"] = {**reg["fusion"], "parts": parts}
        encoder = f"{fusion_label(reg['fusion'])}: {' + '.join(p['encoder'] for p in parts)}"
    elif str(encoder) == BM25:
        from .bm25 import bm25_collection, bm25_search
        from .index import build_bm25_index

        index, marker = work / "bm25-index", work / "bm25-index.done.json"
        if not marker.exists():
            bm25_collection(corpus, work / "bm25-collection")
            marker.write_text(json.dumps(build_bm25_index(work / "bm25-collection", index, threads, overwrite=True,
                                                          quiet=True)))
        info = json.loads(marker.read_text())
        n_docs = info["documents"]

        def search(ts, topics, run_file):
            bm25_search(index, topics, run_file, hits, threads)
    elif reg.get("documents_from"):  # the documents of another regression, encoded by an equal passage side
        src, res = _documents_from(reg, work.parent, encoder, corpus_dir, gpus, results_dir, threads)
        vectors, index, n_docs, info = src / "vectors", src / "index", res["docs"], {"bytes": res["index_bytes"]}
        stats.update({k: res[k] for k in ("terms_per_doc", "docs_per_s", "encode_seconds", "encode_timed_docs", "dtype")
                      if k in res})
        stats["documents_from"] = reg["documents_from"]
        from .encoder import resolve_card

        card = resolve_card(encoder).to_dict()
        stats["encoder_card"] = {k: card.get(k) for k in CARD_SUMMARY}
    else:
        vectors = work / "vectors"
        if reg.get("segment"):  # the segments are the index's documents; search writes documents (MaxP)
            from .segment import segment_corpus

            seg = reg["segment"]
            stats["segments"] = {**seg, **segment_corpus(corpus, work / "segments.jsonl", spec.fields(), seg["words"],
                                                         seg["stride"], overwrite=True, quiet=True)}
            corpus = work / "segments.jsonl"
        shards = encode_sharded(corpus, vectors, encoder, spec.fields(), enc_cfg.get("batch_size", 32),
                                enc_cfg.get("max_length"), gpus, enc_cfg.get("windows"))
        n_docs = sum(s["docs_out"] for s in shards)  # segments, with `segment`
        info = _impact_index(vectors, work / "index", n_docs, threads)
        index = work / "index"
        stats["terms_per_doc"] = round(avg_terms(vectors), 1)
        # a resumed shard's seconds may cover only the docs encoded after the resume (timed_docs)
        timed = sum(s.get("timed_docs", s["docs_in"]) for s in shards)
        stats["docs_per_s"] = round(timed / max(sum(s["seconds"] for s in shards), 1e-9), 2)
        stats["encode_seconds"] = round(sum(s["seconds"] for s in shards), 1)
        if timed != n_docs:
            stats["encode_timed_docs"] = timed  # encode_seconds is the time of these docs, not of all n_docs
        stats["encoder_card"] = {k: shards[0]["encoder"].get(k) for k in CARD_SUMMARY}
        # the dtype the passages were encoded in (a bf16 card runs in float32 on a CPU without fast bf16 kernels)
        stats["dtype"] = ", ".join(sorted({str(s["encoder"].get("dtype")) for s in shards}))
    maxp = {"max_passage": True, "max_passage_hits": hits} if reg.get("segment") else {}
    if not fused and str(encoder) != BM25:
        def search(ts, topics, run_file):
            search_topics(index, topics, encoder, run_file, hits, batch_size=search_cfg.get("batch_size", 32),
                          threads=threads, encoded_queries=work / f"queries.{ts}.jsonl", quiet=True,
                          stale_queries="replace", **maxp)
    rows, ok = [], True
    tol, tol_note = regression_tolerance(reg, stats.get("dtype"))
    measured_all: dict = {}
    for ts, (topics, qrels) in sets.items():
        run_file = work / f"run.{ts}.txt"
        search(ts, topics, run_file)
        if str(encoder) != BM25 and not fused:
            stats.setdefault("terms_per_query", {})[ts] = round(avg_terms(work / f"queries.{ts}.jsonl", "vector"), 1)
        expected = reg["evaluations"][ts] or {}
        measured = evaluate(run_file, qrels, list(dict.fromkeys([*expected, *REPORTED])))
        measured_all[ts] = {m: round(v, 4) for m, v in measured.items()}
        for m, want in expected.items():
            good = abs(measured[m] - want) <= tol + 1e-12
            ok &= good
            rows.append({"topic_set": ts, "metric": m, "expected": want, "measured": round(measured[m], 4),
                         "delta": round(measured[m] - want, 4), "pass": good})
    if accept:  # this run's values become the expected ones (a new regression, or a deliberate change)
        note = f"{datetime.date.today().isoformat()}, {machine_summary()}" + (f", {stats['dtype']}" if stats.get("dtype") else "")
        accept_measured(reg["_path"], measured_all, {ts: list(e or {}) for ts, e in reg["evaluations"].items()}, note)
        for r in rows:
            r.update(expected=r["measured"], delta=0.0, pass_=True)
            r["pass"] = r.pop("pass_")
        ok = True
    sweep = []
    for k in (reg.get("sweep") or {}).get("top_k") or []:
        if str(encoder) == BM25 or fused:
            break
        pruned = work / f"vectors-top{k}"
        if not pruned.exists():
            prune_vectors(vectors, pruned, k)
        kinfo = _impact_index(pruned, work / f"index-top{k}", n_docs, threads)
        point = {"top_k": k, "index_bytes": kinfo["bytes"], "terms_per_doc": round(avg_terms(pruned), 1)}
        for ts, (topics, qrels) in sets.items():
            run_file = work / f"run.{ts}.top{k}.txt"
            # the queries as encoded (and checked) for the full index above
            search_topics(work / f"index-top{k}", topics, encoder, run_file, hits, threads=threads,
                          encoded_queries=work / f"queries.{ts}.jsonl", quiet=True, stale_queries="keep", **maxp)
            point[ts] = {m: round(v, 4) for m, v in evaluate(run_file, qrels, ["ndcg@10", "r@100"]).items()}
        sweep.append(point)
    result = {"name": reg["name"], "kind": reg["kind"], "role": reg["role"], "setup": reg.get("setup"),
              "collection": spec.name, "encoder": str(encoder), "description": reg.get("description", ""),
              "tolerance": tol, "tolerance_note": tol_note, "pass": ok, "rows": rows, "metrics": measured_all,
              "docs": stats["segments"]["docs_in"] if "segments" in stats else n_docs,
              "queries": {ts: len(t) for ts, (t, _) in sets.items()}, "index_bytes": info["bytes"], **stats,
              "sweep": sweep, "seconds": round(time.time() - t0, 1),
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "machine": machine_summary() + (f", {gpus} GPU(s)" if gpus > 1 else "")
                         + (f", {stats['dtype']}" if stats.get("dtype") else ""),
              "command": f"python -m csplade_pyserini.reproduce {_rel(reg['_path'])}"}
    out_dir = Path(results_dir or REPO_DIR / "eval" / "results")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{reg['name']}.json").write_text(json.dumps(result, indent=2) + "\n")
    if reg.get("score_key") and ok and accept:  # a plain check run leaves the shipped card as it is
        record_card_scores(str(encoder), reg["score_key"], reg.get("setup") or reg["name"], measured_all)
    from .results import write_results

    write_results(out_dir, Path(path).parent, out_dir.parent)
    return result


REPORTED = ("ndcg@10", "mrr@10", "r@100", "map")  # measured for every regression, expected or not


def _fusion_parts(reg: dict, workroot: Path, corpus_dir, gpus, results_dir, threads, hits):
    """Run (or resume: encoding, indexes and query vectors are reused) each regression a fusion regression names,
    in ``workroot / NAME`` (beside the fusion's own workdir: runs/reproduce/NAME by default). Returns a search
    function that fuses their run files per topic set, the documents, the index bytes (the parts' sum: a hybrid
    serves every index it fuses) and a summary of the parts."""
    from .fuse import fuse, read_run
    from .search import write_run

    f = reg["fusion"]
    parts, n_docs = [], None
    for name in f["runs"]:
        sub = load_regression(Path(reg["_path"]).parent / f"{name}.yaml")
        if sub["_spec"].name != reg["_spec"].name or sub.get("subset") != reg.get("subset"):
            raise SpecError(f"{reg['_path']}: fusion run {name!r} is on {sub['_spec'].name} "
                            f"{sub.get('subset') or 'whole'}, not on this regression's documents")
        missing = set(reg["evaluations"]) - set(sub["evaluations"])
        if missing:
            raise SpecError(f"{reg['_path']}: fusion run {name!r} has no topic set {sorted(missing)}")
        print(f"[reproduce] fusion part {name}", file=sys.stderr)
        res = run_regression(sub["_path"], corpus_dir, None, gpus, workroot / name, results_dir, threads)
        if n_docs is not None and res["docs"] != n_docs:
            raise SpecError(f"{reg['_path']}: fusion parts index {n_docs} and {res['docs']} documents")
        n_docs = res["docs"]
        parts.append({"name": name, "encoder": res["encoder"], "pass": res["pass"], "index_bytes": res["index_bytes"],
                      "metrics": res["metrics"]})
    depth = int(f.get("depth", 1000))

    def search(ts, topics, run_file):
        runs = [read_run(workroot / name / f"run.{ts}.txt") for name in f["runs"]]
        fused = fuse(runs, f["method"], f.get("weights"), float(f.get("rrf_k", 60)), depth, hits)
        write_run({q: fused.get(q, []) for q in topics}, run_file, tag="csplade-fused")

    return search, n_docs, {"bytes": sum(p["index_bytes"] for p in parts)}, parts


def _documents_from(reg: dict, workroot: Path, encoder, corpus_dir, gpus, results_dir, threads):
    """Run (or resume) the regression `documents_from` names in ``workroot / NAME`` after checking that this
    regression's encoder writes the same passage vectors as its encoder (EncoderCard.passage_side: the settings and
    the term bias / adapter files). Returns (its workdir, its result)."""
    from .encoder import resolve_card

    name = reg["documents_from"]
    sub = load_regression(Path(reg["_path"]).parent / f"{name}.yaml")
    mine, theirs = resolve_card(encoder).passage_side(), resolve_card(sub["encoder"]).passage_side()
    differ = sorted(k for k in mine if mine[k] != theirs.get(k))
    if differ:
        raise SpecError(f"{reg['_path']}: encoder {encoder!r} does not encode passages as {sub['encoder']!r} of "
                        f"documents_from {name!r} (they differ in {differ}): its index would not be this encoder's")
    print(f"[reproduce] documents from {name}", file=sys.stderr)
    return workroot / name, run_regression(sub["_path"], corpus_dir, None, gpus, workroot / name, results_dir, threads)


def _impact_index(vectors: Path, index: Path, n_docs: int, threads) -> dict:
    from .index import build_impact_index

    marker = index.with_name(index.name + ".done.json")
    if not (marker.exists() and json.loads(marker.read_text()).get("documents") == n_docs):
        marker.write_text(json.dumps(build_impact_index(vectors, index, threads, overwrite=True, quiet=True)))
    return json.loads(marker.read_text())


def prune_vectors(src: Path, dst: Path, k: int) -> None:
    """Keep each document's k highest-weight terms (ties: term order), as encoding with passage_top_k=k would. A
    shard with a manifest gets one beside the pruned shard (its counts, and the encoder with passage_top_k k), so
    the index built from them records the encoder as well (index.shard_encoder)."""
    from .writer import meta_dir

    tmp = dst.with_name(dst.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    manifests = []
    for f in sorted(src.glob("*.jsonl")):
        n = 0
        with open(tmp / f.name, "w", encoding="utf-8") as out:
            for line in open(f, encoding="utf-8"):
                d = json.loads(line)
                d["vector"] = dict(sorted(d["vector"].items(), key=lambda kv: (-kv[1], kv[0]))[:k])
                out.write(json.dumps(d, ensure_ascii=False) + "\n")
                n += 1
        m = meta_dir(src) / (f.name + ".json")
        if m.exists():
            info = json.loads(m.read_text())
            keep = {key: info[key] for key in ("shard_id", "shard_num", "encoder", "encoder_identity",
                                               "passage_weighting") if key in info}
            if isinstance(keep.get("encoder"), dict):
                keep["encoder"] = dict(keep["encoder"], passage_top_k=k)
            manifests.append((f.name, {"docs_in": n, "docs_out": n, "pruned_from": str(src), "top_k": k, **keep}))
    if manifests:
        shutil.rmtree(meta_dir(dst), ignore_errors=True)
        meta_dir(dst).mkdir(parents=True)
        for name, info in manifests:
            (meta_dir(dst) / (name + ".json")).write_text(json.dumps(info, indent=2) + "\n")
    tmp.rename(dst)


def record_card_scores(encoder: str, key: str, setup: str, measured: dict) -> None:
    """Write an accepted regression's scores into the shipped encoder's card (what picks the default encoder), so a
    card's scores are its regressions' expected values; a check run that passes within tolerance changes nothing."""
    from .modeling.card import EncoderCard
    from .paths import encoders_dir

    card_dir = encoders_dir() / encoder
    if not (card_dir / "card.json").exists():
        return
    card = EncoderCard.load(card_dir)
    ts, m = next(iter(measured.items()))  # the regression's first topic set is the one a card reports
    card.scores = {**card.scores, key: {"setup": setup, "topic_set": ts, **m}}
    card.save(card_dir)


def _rel(p) -> str:
    try:
        return str(Path(p).resolve().relative_to(REPO_DIR))
    except ValueError:
        return str(p)


def print_table(result: dict) -> None:
    print(f"\n{result['name']}: {'PASS' if result['pass'] else 'FAIL'} (tolerance {result['tolerance']}: {result.get('tolerance_note', '')}, "
          f"{result['docs']:,} docs, {result['seconds'] / 60:.1f} min)")
    print(f"{'topic set':<10} {'metric':<8} {'expected':>9} {'measured':>9} {'delta':>8}  status")
    for r in result["rows"]:
        print(f"{r['topic_set']:<10} {r['metric']:<8} {r['expected']:>9.4f} {r['measured']:>9.4f} {r['delta']:>+8.4f}  "
              f"{'pass' if r['pass'] else 'FAIL'}")


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.reproduce", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("regression", nargs="+", help="eval/regressions/*.yaml file(s)")
    p.add_argument("--corpus-dir", default=None, help="folder holding user-provided corpora (msmarco-passage/, beir/...)")
    p.add_argument("--encoder", default=None, help="encoder name or path (overrides the regression's; needed for paper runs)")
    p.add_argument("--gpus", type=positive_int, default=1, help="encode with one process per GPU (default: 1)")
    p.add_argument("--threads", type=positive_int, default=None, help="indexing/search threads (default: all cores)")
    p.add_argument("--workdir", default=None, help="scratch folder (default: runs/reproduce/NAME; reused to resume; "
                                                  "a fusion regression's parts run beside it)")
    p.add_argument("--results-dir", default=None, help="where NAME.json goes (default: eval/results)")
    p.add_argument("--accept", action="store_true",
                   help="write the measured values into the regression YAML as its expected values (a new "
                        "regression, or a deliberate change); the run then passes")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    ok = True
    for path in a.regression:
        res = run_regression(path, a.corpus_dir, a.encoder, a.gpus,
                             a.workdir if len(a.regression) == 1 else None, a.results_dir, a.threads, a.accept)
        print_table(res)
        ok &= res["pass"]
    if not ok:
        raise SystemExit(1)


def main(argv=None):
    run(_main, argv, "csplade-reproduce")


if __name__ == "__main__":
    main()
