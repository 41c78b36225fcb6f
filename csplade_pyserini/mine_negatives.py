"""python -m csplade_pyserini.mine_negatives: hard negatives with BM25 (Pyserini) -> Tevatron training JSONL.

    python -m csplade_pyserini.mine_negatives --corpus ../shared/data/scifact/corpus.jsonl \\
        --topics scifact-train --qrels scifact-train --output runs/scifact-train.bm25.jsonl [--depth 30]

For every query with judged positives: the positives, and the top --depth BM25 hits that are not judged
relevant as negatives. With --index, an existing impact index is searched instead (with --encoder), e.g. to mine
negatives with a first CSPLADE model. Beside the JSONL goes OUTPUT.mined.json, the command that wrote it: a model
trained on the file records it, and its shipped card lists it as a "mine" stage before the training stage.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from .cli import UsageError, positive_int, run


def read_qrels(path) -> dict[str, set[str]]:
    """qid -> its judged positives (relevance > 0); a malformed line is a UsageError naming it."""
    from .eval import check_trec_lines

    check_trec_lines(Path(path), "qrels")
    rel: dict[str, set[str]] = {}
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if parts and int(parts[3]) > 0:
            rel.setdefault(parts[0], set()).add(parts[2])
    return rel


def mine(corpus, topics, qrels, output, depth=30, threads=2, index=None, encoder=None) -> dict:
    from . import jvm
    from .corpus import check_jsonl_corpus, doc_id
    from .topics import load_topics, qrels_path

    check_jsonl_corpus(corpus, ["title", "text"])
    docs = {}
    for line in open(corpus, encoding="utf-8"):
        d = json.loads(line)
        docs[str(doc_id(d, None))] = {"title": d.get("title", ""), "text": d.get("text", d.get("contents", ""))}
    topics = load_topics(topics)
    rel = read_qrels(qrels_path(qrels))
    unjudged = sum(q not in rel for q in topics)
    missing = {d for q in topics for d in rel.get(q, ()) if d not in docs}  # judged, not in this corpus
    qids = [q for q in topics if rel.get(q, set()) - missing]
    if not qids:
        raise UsageError("no topic has a judged positive in the qrels that is in the corpus")
    jvm.bootstrap()
    with tempfile.TemporaryDirectory() as tmp:
        if index is None:
            from .bm25 import bm25_results
            from .index import build_bm25_index_from_corpus

            build_bm25_index_from_corpus(corpus, Path(tmp) / "idx", threads, quiet=True)
            hits = bm25_results(Path(tmp) / "idx", {q: topics[q] for q in qids}, depth + 20, threads)
            ranked = {q: [d for d, _ in got] for q, got in hits.items()}
        else:
            from .search import search_topics

            out = search_topics(index, {q: topics[q] for q in qids}, encoder, hits=depth + 20, threads=threads,
                                quiet=True)
            ranked = {q: [d for d, _ in hits] for q, hits in out.items()}
    n_neg = 0
    with open(output, "w", encoding="utf-8") as fh:
        for q in qids:
            negs = [d for d in ranked[q] if d not in rel[q] and d in docs][:depth]
            n_neg += len(negs)
            fh.write(json.dumps({
                "query_id": q, "query": topics[q],
                "positive_passages": [{"docid": d, **docs[d]} for d in sorted(rel[q]) if d in docs],
                "negative_passages": [{"docid": d, **docs[d]} for d in negs]}, ensure_ascii=False) + "\n")
    return {"queries": len(qids), "negatives_per_query": n_neg / len(qids), "topics": len(topics),
            "skipped_unjudged": unjudged, "skipped_positives_not_in_corpus": len(topics) - unjudged - len(qids),
            "positives_not_in_corpus": len(missing)}


PROVENANCE_SUFFIX = ".mined.json"


def provenance_path(train_data) -> Path:
    return Path(str(train_data) + PROVENANCE_SUFFIX)


def write_provenance(output, argv: list[str], info: dict, index=None, encoder=None) -> Path:
    """OUTPUT.mined.json: the command line that mined OUTPUT and what ranked the negatives."""
    import shlex

    rec = {"stage": "mine", "command": shlex.join(["python", "-m", "csplade_pyserini.mine_negatives", *argv]),
           "source": f"CSPLADE index {index} searched with {encoder}" if index else "BM25 (Pyserini)", **info}
    path = provenance_path(output)
    path.write_text(json.dumps(rec, indent=2) + "\n", encoding="utf-8")
    return path


def read_provenance(train_data) -> dict | None:
    """The mine stage recorded beside a training file, or None (a file written another way)."""
    path = provenance_path(train_data) if train_data else None
    if not path or not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    return rec if isinstance(rec, dict) and rec.get("command") else None


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.mine_negatives", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpus", required=True, help="corpus JSONL (id, title, text)")
    p.add_argument("--topics", required=True, help="training topics: file or name (e.g. scifact-train)")
    p.add_argument("--qrels", required=True, help="training qrels: file or name")
    p.add_argument("--output", required=True, help="Tevatron JSONL to write")
    p.add_argument("--depth", type=positive_int, default=30, help="negatives kept per query from the top of the ranking")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--index", default=None, help="search this CSPLADE impact index instead of BM25")
    p.add_argument("--encoder", default=None, help="query encoder for --index")
    return p


def _main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    info = mine(a.corpus, a.topics, a.qrels, a.output, a.depth, a.threads, a.index, a.encoder)
    write_provenance(a.output, argv, {**info, "depth": a.depth}, a.index, a.encoder)
    skipped = [f"{info[k]} {what}" for k, what in (
        ("skipped_unjudged", "without a judged positive"),
        ("skipped_positives_not_in_corpus", "whose judged positives are not in the corpus")) if info[k]]
    print(f"[mine] {info['queries']} of {info['topics']} queries, {info['negatives_per_query']:.1f} negatives each -> "
          f"{a.output}" + (f" | skipped: {', '.join(skipped)}" if skipped else "")
          + (f" | {info['positives_not_in_corpus']} judged documents not in the corpus (left out)"
             if info["positives_not_in_corpus"] else ""), file=sys.stderr)


def main(argv=None):
    run(_main, argv, "csplade-mine-negatives")


if __name__ == "__main__":
    main()
