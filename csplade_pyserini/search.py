"""python -m csplade_pyserini.search: encode topics with a CSPLADE encoder and search a Lucene impact index.

    python -m csplade_pyserini.search --index runs/index --topics scifact-test \\
        --encoder smollm2-135m-causal-base --output runs/run.txt [--hits 1000] [--threads 2]

Queries are encoded in batches, then searched one after another through lucene_direct (Pyserini's
LuceneImpactSearcher rankings and scores, hit for hit, without reading each hit's stored document: several times
faster than its batch_search); --searcher pyserini uses Pyserini's own multi-threaded batch_search instead, as does
an index without docid doc values (built by other tools). With
--encoded-queries FILE, encoded queries are read from FILE when it exists and written to it otherwise (the JSONL
layout of Pyserini's CachedDataQueryEncoder), so a run can be repeated without the model. FILE.encoder.json beside
it records the query encoder that wrote it (card settings and files, and the index for a df curve); a FILE written
by another one is an error rather than silently reused (a FILE with no record, e.g. from Pyserini, is read as it
is). A lexical card with a df curve (the default) weighs each query token by its document frequency in the --index
searched.

An index built by `python -m csplade_pyserini.index` from our encode's vectors records the encoder of its passages
(csplade-encoder.json); search then refuses an --encoder that weighs passages differently (its queries were made
for other passages), naming the settings that differ. A card that changes only the query side (e.g. a lexical
sibling) or only top-k, scale, length or dtype searches the index as is; --ignore-index-encoder skips the check.

Hybrid: with --bm25-index (a BM25 index of the same documents: `python -m csplade_pyserini.index --bm25`), each
topic is also searched with BM25, and the two rankings (their top --fusion-depth each) are fused as
`python -m csplade_pyserini.fuse` fuses run files: --fusion rrf (no weights) or interpolation with --fusion-weights
W_CSPLADE W_BM25 (per-query min-max scaled scores). What is not given comes from the encoder card's `hybrid` (the
fusion tuned for it on training queries; the default encoder's: interpolation 0.6 / 0.4), else rrf with k 60.
The run written is the fused one.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .cli import UsageError, add_encoder_args, check_index, encoder_overrides, positive_int, run


def search_topics(index, topics, encoder="smollm2-135m-causal-base", output=None, hits=1000, batch_size=32,
                  threads=None, output_format="trec", remove_query=False, encoded_queries=None, device="auto",
                  max_length=None, run_tag=None, card_overrides=None, query_encoder=None, quiet=False,
                  compile=False, ignore_index_encoder=False, bm25_index=None, fusion=None, fusion_weights=None,
                  fusion_depth=1000, rrf_k=None, stale_queries="error", searcher="direct", freeze_gc=False,
                  max_passage=False, max_passage_hits=100, max_passage_delimiter="#") -> dict:
    """Search every topic; returns {qid: [(docid, score), ...]} and writes the run file if ``output`` is given.
    With ``bm25_index`` the result is the fusion (fuse.fuse) of this ranking and BM25's, each to ``fusion_depth``;
    settings not given come from the card's ``hybrid`` (EncoderCard.fusion: rrf, k 60, for a card without one).
    An ``encoded_queries`` file that records another query encoder (encoders.query_identity, written beside it) is
    a UsageError, or with ``stale_queries="replace"`` encoded again (reproduce's scratch files); ``"keep"`` uses
    the file as it is. ``searcher``: "direct" (lucene_direct, one thread; Pyserini's batch_search for an index
    without docid doc values) or "pyserini" (its batch_search on ``threads``): the same rankings. ``freeze_gc``
    calls gc.freeze() once the queries are encoded (searcher.freeze_python_gc; the CLI does, a library call by
    default does not: it is process-wide). ``max_passage``: the index holds segments (docid ``DOC<delimiter>N``), and
    each query's ranking of ``hits`` segments becomes its ``max_passage_hits`` documents, each scored by its best
    segment (MaxP; Pyserini's --max-passage, applied after any fusion)."""
    from tqdm import tqdm

    from .encoders import CspladeQueryEncoder
    from .lucene_direct import check_searcher
    from .topics import load_topics

    check_searcher(searcher)
    if max_passage and (max_passage_hits < 1 or not max_passage_delimiter):
        raise UsageError("--max-passage needs --max-passage-hits >= 1 and a non-empty --max-passage-delimiter")
    topics = load_topics(topics) if isinstance(topics, str) else dict(topics)
    check_index(index)
    depth = hits
    if bm25_index is not None:
        from .fuse import describe, fuse

        check_index(bm25_index, "--bm25-index")
        fusion, fusion_weights, rrf_k, from_card = checked_fusion(encoder, fusion, fusion_weights, rrf_k,
                                                                  fusion_depth, hits)
        depth = max(hits, fusion_depth)
    threads = threads or os.cpu_count() or 1
    cache = Path(encoded_queries) if encoded_queries else None
    card_overrides = dict(card_overrides or {}, query_max_length=max_length)
    if query_encoder is None and not ignore_index_encoder:
        check_index_encoder(index, encoder, card_overrides)
    qenc = query_encoder or CspladeQueryEncoder(encoder, device=device, batch_size=batch_size, compile=compile,
                                                 **card_overrides)
    # a lexical query side with a df curve weighs tokens by this index's frequencies
    if isinstance(qenc, CspladeQueryEncoder):
        qenc.use_index(index, check=False)  # checked above, or told not to
    elif hasattr(qenc, "use_index"):
        qenc.use_index(index)
    identity = None
    if cache is not None and query_encoder is None and stale_queries != "keep":
        identity = _queries_identity(cache, encoder, card_overrides, index, stale_queries)
    n_cached = qenc.load_cache(cache) if cache is not None and cache.exists() else 0
    texts = list(topics.values())
    t0 = time.time()
    todo = [t for t in dict.fromkeys(texts) if t not in qenc.cache]
    if todo:
        with tqdm(total=len(todo), unit="query", desc="encode queries", disable=quiet, mininterval=1) as bar:
            qenc.encode_batch(todo, progress=bar.update)
    t_encode = time.time() - t0
    if cache is not None and todo:
        qenc.save_cache(cache, topics)
        if identity is not None:
            from .encoders import record_query_identity

            record_query_identity(cache, identity, str(encoder))
    if freeze_gc:
        from .searcher import freeze_python_gc

        freeze_python_gc()
    qids = list(topics)
    k = depth + (1 if remove_query else 0)
    t1 = time.time()
    with tqdm(total=len(qids), unit="query", desc="search", disable=quiet, mininterval=1) as bar:
        found = _impact_results(index, qenc, topics, k, threads, searcher, bar.update)
    results = {q: _cut(found.get(q, []), q, remove_query, depth) for q in qids}
    t_search = time.time() - t1
    fused = ""
    if bm25_index is not None:
        from .bm25 import bm25_results

        t2 = time.time()
        bm25 = bm25_results(bm25_index, topics, k, threads, searcher)
        bm25 = {q: _cut(got, q, remove_query, depth) for q, got in bm25.items()}
        both = fuse([results, bm25], fusion, fusion_weights, rrf_k, fusion_depth, hits)
        results = {q: both.get(q, []) for q in qids}  # a topic neither run found: no hits, still there
        source = ", from the card" if from_card else ""
        fused = f", BM25 + fusion ({describe(fusion, fusion_weights, rrf_k)}{source}) {time.time() - t2:.1f} s"
    if max_passage:
        results = {q: max_passage_docs(got, max_passage_delimiter, max_passage_hits, q if remove_query else None)
                   for q, got in results.items()}
    if output:
        write_run(results, output, output_format, run_tag or ("csplade-fused" if bm25_index else "csplade"))
    if not quiet:
        no_hits = sum(not results.get(q) for q in qids)  # written as no lines; trec_eval -c scores them 0
        print(f"[search] {len(qids)} queries ({n_cached} from cache): encode {t_encode:.1f} s, search {t_search:.1f} s"
              f"{fused}{f' -> {output}' if output else ''}"
              f"{f' | {no_hits} without hits' if no_hits else ''}", file=sys.stderr)
    return results


def _impact_results(index, qenc, topics: dict, k: int, threads: int, searcher: str, progress) -> dict:
    """{qid: [(docid, score), ...]}: each topic's encoded vector (from ``qenc``'s cache) searched directly, or with
    Pyserini's LuceneImpactSearcher.batch_search (``searcher="pyserini"``, or an index without docid doc values)."""
    if searcher == "direct":
        from .lucene_direct import NoDocIds, search_all

        try:
            return search_all(index, {q: qenc.encode(t) for q, t in topics.items()}, k, "impact", progress)
        except NoDocIds:
            pass
    from pyserini.search.lucene import LuceneImpactSearcher

    pyserini_searcher = LuceneImpactSearcher(str(index), qenc, min_idf=-1)  # -1: keep terms found in every document
    qids, out, step = list(topics), {}, 2048
    for s in range(0, len(qids), step):
        part = qids[s:s + step]
        res = pyserini_searcher.batch_search([topics[q] for q in part], part, k=k, threads=threads)
        out.update({q: [(h.docid, float(h.score)) for h in res.get(q, [])] for q in part})
        progress(len(part))
    return out


def _queries_identity(cache: Path, encoder, card_overrides: dict, index, stale: str) -> str | None:
    """This search's query-encoder identity (None when the encoder names no card); a cache recorded with another
    one is an error naming both, or (``stale == "replace"``) deleted so its queries are encoded again."""
    from .encoders import identity_path, query_identity, recorded_query_identity

    card = _card_of(encoder)
    if card is None:
        return None
    identity = query_identity(card.with_overrides(**card_overrides), index)
    recorded = recorded_query_identity(cache) if cache.exists() else None
    if recorded is not None and recorded.get("identity") != identity:
        if stale != "replace":
            raise UsageError(f"--encoded-queries {cache} holds queries encoded by another query encoder "
                             f"({recorded.get('encoder')!r}, other settings, weights or index) than this search's "
                             f"({card.name!r}); delete it (and {identity_path(cache).name}) or name another file")
        cache.unlink()
        identity_path(cache).unlink()
    return identity


def _card_of(encoder):
    """The encoder's card, or None when the name resolves to nothing (queries all from --encoded-queries need no
    encoder; where one is needed, loading it reports the name)."""
    from .encoder import EncoderNotFoundError, resolve_card
    from .modeling.card import EncoderCard

    try:
        return encoder if isinstance(encoder, EncoderCard) else resolve_card(encoder)
    except EncoderNotFoundError:
        return None


def _fusion_settings(encoder, fusion, weights, rrf_k):
    """(method, weights, rrf_k, whether the card's hybrid supplied any of them): what is given, the rest from the
    card's hybrid (EncoderCard.fusion; a method given that is not the card's takes none of its numbers)."""
    from .fuse import RRF_K

    card = _card_of(encoder)
    own = card.fusion() if card is not None and card.hybrid is not None else None
    method = fusion or ("interpolation" if weights is not None else own["method"] if own else "rrf")
    from_card = False
    if own is not None and method == own["method"]:
        if method == "interpolation" and weights is None:
            weights, from_card = own["weights"], True
        if method == "rrf" and rrf_k is None:
            rrf_k, from_card = own["rrf_k"], True
    return method, weights, RRF_K if rrf_k is None else float(rrf_k), from_card


def checked_fusion(encoder, fusion, weights, rrf_k, depth: int, hits: int):
    """_fusion_settings, checked before any work: weights given to rrf, an unknown method, a depth or hits < 1
    are UsageErrors."""
    from .fuse import fuse

    method, weights, rrf_k, from_card = _fusion_settings(encoder, fusion, weights, rrf_k)
    if method == "rrf" and weights is not None:
        raise UsageError("fusion weights (--fusion-weights) are interpolation's: choose interpolation "
                         "(--fusion interpolation); rrf takes none")
    fuse([{}, {}], method, weights, rrf_k, depth, hits)
    return method, weights, rrf_k, from_card


def _cut(got: list, qid: str, remove_query: bool, hits: int) -> list:
    if remove_query:
        got = [(d, sc) for d, sc in got if d != qid]
    return got[:hits]


def max_passage_docs(got: list, delimiter: str = "#", hits: int = 100, drop: str | None = None) -> list:
    """Segment hits [(docid, score)], best first -> document hits: a segment's document is its docid up to the first
    ``delimiter``, scored by its best segment (the first one met), at most ``hits`` documents (``drop``: a document
    id left out, the query's own). Pyserini's output writer does the same for --max-passage."""
    seen, out = set(), []
    for docid, score in got:
        doc = docid.split(delimiter)[0]
        if doc in seen or doc == drop:
            continue
        seen.add(doc)
        out.append((doc, score))
        if len(out) == hits:
            break
    return out


def check_index_encoder(index, encoder, card_overrides=None) -> None:
    """UsageError when the index records passages of an encoder whose passage weighting differs from this card's
    (index.index_encoder; an index that records none is not checked)."""
    from .index import ENCODER_FILE, index_encoder

    built = index_encoder(index)
    card = _card_of(encoder) if built is not None else None
    if card is None:
        return
    card = card.with_overrides(**(card_overrides or {}))
    mine, theirs = card.passage_weighting(), built["passage_weighting"]
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    if differ:
        raise UsageError(f"index {index} holds passages encoded by {built.get('encoder')!r} ({Path(index) / ENCODER_FILE}), "
                         f"and --encoder {card.name!r} weighs passages differently ({', '.join(differ)}): its queries "
                         f"were made for other passages. Search with {built.get('encoder')!r} or a card with its "
                         f"passage side (e.g. a lexical sibling); --ignore-index-encoder searches anyway")


def write_run(results: dict, output, output_format: str = "trec", tag: str = "csplade") -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for qid, hits in results.items():
            for rank, (docid, score) in enumerate(hits, 1):
                if output_format == "msmarco":
                    fh.write(f"{qid}\t{docid}\t{rank}\n")
                else:
                    fh.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")
    tmp.replace(output)


def build_parser():
    from .lucene_direct import SEARCHERS

    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.search", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--index", required=True, help="Lucene impact index directory")
    p.add_argument("--topics", required=True,
                   help="topics file (TSV 'qid<TAB>text', .tsv.gz, JSONL) or name (scifact-test, vaswani, "
                        "beir-v1.0.0-scifact-test, msmarco-passage-dev-subset, dl19-passage, dl20, ...)")
    p.add_argument("--output", required=True, help="run file to write")
    p.add_argument("--hits", type=positive_int, default=1000, help="hits per query (default: 1000)")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1,
                   help="search threads of --searcher pyserini (default: all cores); direct search runs on one")
    p.add_argument("--searcher", choices=SEARCHERS, default="direct",
                   help="direct (default): Lucene top k without reading stored documents, one thread; pyserini: "
                        "Pyserini's batch_search. Both give the same rankings and scores")
    p.add_argument("--output-format", choices=["trec", "msmarco"], default="trec")
    p.add_argument("--remove-query", action="store_true", help="drop a hit whose docid equals the query id")
    p.add_argument("--encoded-queries", default=None,
                   help="JSONL query cache: read if it exists, else written (with FILE.encoder.json, the query "
                        "encoder that wrote it: another encoder's FILE is an error)")
    m = p.add_argument_group("segmented documents (MaxP, as Pyserini's --max-passage)")
    m.add_argument("--max-passage", action="store_true",
                   help="the index holds segments with docids DOC#N: write each document once, scored by its best "
                        "segment among the --hits retrieved")
    m.add_argument("--max-passage-hits", type=positive_int, default=100, help="documents per query with --max-passage (default: 100)")
    m.add_argument("--max-passage-delimiter", default="#", help="docid delimiter of segments (default: #)")
    p.add_argument("--run-tag", default=None,
                   help="tag in the last column of a TREC run (default: csplade, or csplade-fused for a hybrid)")
    h = p.add_argument_group("hybrid (CSPLADE + BM25)")
    h.add_argument("--bm25-index", default=None,
                   help="also search this BM25 index (python -m csplade_pyserini.index --bm25) and write the fused run")
    h.add_argument("--fusion", choices=["rrf", "interpolation"], default=None,
                   help="rrf: sum of 1/(k + rank), no weights; interpolation: weighted per-query min-max scaled "
                        "scores (default: the card's hybrid setting, else rrf)")
    h.add_argument("--fusion-weights", type=float, nargs=2, default=None, metavar=("W_CSPLADE", "W_BM25"),
                   help="interpolation weights (default: the card's, e.g. 0.6 0.4 for the default encoder, tuned on "
                        "SciFact dev; else 1 1)")
    h.add_argument("--fusion-depth", type=positive_int, default=1000, help="hits of each ranking fused (default: 1000)")
    h.add_argument("--rrf-k", type=float, default=None, help="rrf's k (default: the card's, else 60)")
    p.add_argument("--ignore-index-encoder", action="store_true",
                   help="search even if the index records passages of an encoder that weighs them differently")
    add_encoder_args(p, "query")
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    if args.bm25_index is None and (args.fusion or args.fusion_weights is not None or args.rrf_k is not None):
        raise UsageError("--fusion and --fusion-weights fuse with BM25: pass --bm25-index too")
    return search_topics(args.index, args.topics, args.encoder, args.output, args.hits, args.batch_size,
                         args.threads, args.output_format, args.remove_query, args.encoded_queries, args.device,
                         args.max_length, args.run_tag, encoder_overrides(args, "query"), compile=args.compile,
                         ignore_index_encoder=args.ignore_index_encoder, bm25_index=args.bm25_index,
                         fusion=args.fusion, fusion_weights=args.fusion_weights, fusion_depth=args.fusion_depth,
                         rrf_k=args.rrf_k, searcher=args.searcher, freeze_gc=True, max_passage=args.max_passage,
                         max_passage_hits=args.max_passage_hits, max_passage_delimiter=args.max_passage_delimiter)


def main(argv=None):
    run(_main, argv, "csplade-search")


if __name__ == "__main__":
    main()
