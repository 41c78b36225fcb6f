"""python -m csplade_pyserini.demo: the whole pipeline on shipped data, CSPLADE beside BM25.

encode (CSPLADE) -> Lucene impact index -> search -> trec_eval, and BM25 (Pyserini) on the same documents and
queries in the same run; prints one table. It also searches the same index with the other query sides and prints
those rows too: every other shipped lexical card (query_encoder lexical: no model call per query) that encodes
passages as this encoder does (for the default, smollm2-135m-echo-corpusfit-lexqdf: -lexq, the table derived from the
head, -lexqfit, the table fitted against the whole SciFact corpus, and -lexqdf-expand, the default's queries plus the
model's expansion terms, which runs the model per query); for a lexical card, also the model's own queries; for a
model card without such cards, the table derived from its head; for a card with a hybrid setting, its fusion with
the BM25 run (as search --bm25-index fuses). The default takes about 20 minutes
on 2 AVX2 CPU cores (nearly all of it encoding passages): SciFact test queries over
a subset of its corpus (every judged document plus a seeded random sample of the others, --max-docs in all).
--max-docs 0 uses the full corpus (about 2.5 hours on 2 AVX2 cores in float32; minutes on a GPU).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .cli import UsageError, int_at_least, positive_int, run
from .collection_specs import subset_corpus
from .bm25 import bm25_collection, bm25_search
from .encoder import DEFAULT_ENCODER
from .paths import REPO_DIR, data_dir
from .writer import avg_terms

COLLECTIONS = {"scifact": ("scifact/corpus.jsonl", "scifact-test"), "vaswani": ("vaswani/corpus.jsonl", "vaswani")}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.demo", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collection", choices=sorted(COLLECTIONS), default="scifact")
    p.add_argument("--max-docs", type=int_at_least(0), default=600,
                   help="documents in the demo corpus: all judged ones + a seeded sample (default: 600; 0 = all)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER, help=f"encoder name or path (default: {DEFAULT_ENCODER})")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default: auto = GPU if present)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="texts per forward pass (default: 16)")
    p.add_argument("--hits", type=positive_int, default=1000, help="hits per query (default: 1000)")
    p.add_argument("--threads", type=positive_int, default=2, help="indexing and search threads (default: 2)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--workdir", default=str(REPO_DIR / "runs" / "demo"),
                   help="scratch directory, replaced on every run (default: runs/demo)")
    return p


def other_query_side(encoder) -> str | None:
    """The query side the demo also searches the same index with: "lexical" (no model call per query) for a card
    whose queries go through the model and whose head the query table can be derived from (log-softmax pooling and a
    term bias) or that ships a table; "model" for a lexical card; None otherwise."""
    from .encoder import resolve_card

    card = resolve_card(encoder)
    if card.query_encoder == "lexical":
        return "model"
    derivable = card.logit_norm == "log_softmax" and bool(card.term_bias)
    return "lexical" if derivable or card.query_weights else None


def lexical_siblings(encoder) -> list[str]:
    """Shipped lexical cards (``query_encoder: lexical``) other than ``encoder`` that encode passages exactly as it
    does (``EncoderCard.passage_side``), so they search its index with their own query tables: e.g. for
    ``echo-corpusfit`` (or any of them) its ``-lexq`` (derived table), ``-lexqdf`` (df curve + offsets), ``-lexqfit``
    (fitted table) and ``-lexqdf-expand`` (-lexqdf's table plus the model's expansions)."""
    from .encoder import resolve_card, shipped_cards

    card = resolve_card(encoder)
    mine = card.passage_side()
    return [name for name, other in shipped_cards()
            if name != card.name and other.query_encoder == "lexical" and other.passage_side() == mine]


def _main(argv=None):
    from . import jvm
    from .encode import encode_corpus
    from .encoder import resolve_card
    from .eval import DEFAULT_METRICS, evaluate, format_table
    from .index import build_bm25_index, build_impact_index
    from .search import search_topics
    from .topics import load_topics, qrels_path

    args = build_parser().parse_args(argv)
    t_start = time.time()
    corpus_rel, topics_name = COLLECTIONS[args.collection]
    corpus = data_dir() / corpus_rel
    if not corpus.exists():
        raise UsageError(f"shipped corpus {corpus} not found (set CSPLADE_DATA to the shared data folder)")
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    qrels = qrels_path(topics_name)
    topics = load_topics(topics_name)
    n_docs, n_judged, n_total = subset_corpus(corpus, qrels, args.max_docs, args.seed, work / "corpus" / "corpus.jsonl")
    print(f"[demo] {args.collection}: {len(topics)} test queries; corpus {n_docs:,} of {n_total:,} docs "
          f"({n_judged} judged + {n_docs - n_judged} sampled, seed {args.seed})" if n_docs < n_total else
          f"[demo] {args.collection}: {len(topics)} test queries; full corpus of {n_total:,} docs", file=sys.stderr)
    jvm.bootstrap()

    # BM25 (Pyserini defaults k1=0.9, b=0.4), same documents, same queries
    bm25_collection(work / "corpus" / "corpus.jsonl", work / "bm25-collection")
    bm25_info = build_bm25_index(work / "bm25-collection", work / "bm25-index", args.threads, quiet=True)
    bm25_s = bm25_search(work / "bm25-index", topics, work / "run.bm25.txt", args.hits, args.threads)

    # CSPLADE
    enc_summary = encode_corpus(work / "corpus" / "corpus.jsonl", work / "vectors", args.encoder,
                                fields=("title", "text"), batch_size=args.batch_size, device=args.device)
    idx_info = build_impact_index(work / "vectors", work / "index", args.threads, quiet=True)
    t = time.time()
    search_topics(work / "index", topics, args.encoder, work / "run.csplade.txt", args.hits,
                  batch_size=args.batch_size, threads=args.threads, device=args.device,
                  encoded_queries=work / "queries.encoded.jsonl")
    csplade_s = time.time() - t
    name = f"CSPLADE {enc_summary['encoder']['name']}"
    rows = {"BM25 (Pyserini)": evaluate(work / "run.bm25.txt", qrels), name: evaluate(work / "run.csplade.txt", qrels)}
    extra = {
        "BM25 (Pyserini)": {"index_mib": bm25_info["bytes"] / 2**20, "search_s": bm25_s},
        name: {"index_mib": idx_info["bytes"] / 2**20, "search_s": csplade_s,
               "terms_per_doc": idx_info["total_terms"] and avg_terms(work / "vectors"),
               "encode_docs_per_s": enc_summary["docs_per_s"]},
    }
    # The same index searched with other query sides (modeling/lexical.py): the shipped lexical cards that share
    # this encoder's passages, each with its own query table; else the card's own other side (derived table / model).
    sides = [(f"CSPLADE {sib}, lexical queries{' + model expansions' if resolve_card(sib).query_expansion else ''}",
              sib, {}, sib) for sib in lexical_siblings(args.encoder)]
    other = other_query_side(args.encoder)
    if other == "model" or (other and not sides):  # a lexical card's model queries; else a derived table if no card
        sides.insert(0, (f"{name}, {other} queries", args.encoder, {"query_encoder": other}, other))
    for label, encoder, overrides, tag in sides:
        t = time.time()
        search_topics(work / "index", topics, encoder, work / f"run.csplade-{tag}.txt", args.hits,
                      batch_size=args.batch_size, threads=args.threads, card_overrides=overrides,
                      encoded_queries=work / f"queries.{tag}.jsonl", device=args.device)
        rows[label] = evaluate(work / f"run.csplade-{tag}.txt", qrels)
        extra[label] = {"index_mib": idx_info["bytes"] / 2**20, "search_s": time.time() - t, "same_index": True}
    # The fusion with BM25 tuned for this card on training queries (its `hybrid`), as search --bm25-index runs it
    card = resolve_card(args.encoder)
    if card.hybrid:
        from .fuse import describe, fuse, read_run
        from .search import write_run

        t = time.time()
        f = card.fusion()
        fused = fuse([read_run(work / "run.csplade.txt"), read_run(work / "run.bm25.txt")], f["method"], f["weights"],
                     f["rrf_k"], hits=args.hits)
        write_run(fused, work / "run.hybrid.txt", tag="csplade-fused")
        label = f"{name} + BM25 ({describe(f['method'], f['weights'], f['rrf_k'])})"
        rows[label] = evaluate(work / "run.hybrid.txt", qrels)
        extra[label] = {"index_mib": (idx_info["bytes"] + bm25_info["bytes"]) / 2**20,
                        "search_s": csplade_s + bm25_s + time.time() - t}
    total = time.time() - t_start
    print()
    print(f"{args.collection} test, {len(topics)} queries, {n_docs:,} docs; total time {total / 60:.1f} min")
    print(format_table(rows, DEFAULT_METRICS))
    for name, e in extra.items():
        bits = [f"index {e['index_mib']:.1f} MiB", f"query encode+search {e['search_s']:.1f} s"]
        if e.get("same_index"):
            bits[0] = "the same index"
        if "terms_per_doc" in e:
            bits += [f"{e['terms_per_doc']:.0f} terms/doc", f"encode {e['encode_docs_per_s']:.1f} docs/s"]
        print(f"  {name}: " + ", ".join(bits))
    result = {"collection": args.collection, "docs": n_docs, "queries": len(topics), "metrics": rows,
              "extra": extra, "encode": enc_summary, "seconds": round(total, 1)}
    (work / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n[demo] runs, indexes and results.json in {work}", file=sys.stderr)
    return result


def main(argv=None):
    run(_main, argv, "csplade-demo")


if __name__ == "__main__":
    main()
