"""python -m csplade_pyserini.index: JsonVectorCollection shards -> Lucene impact index (Anserini, via Pyserini).

    python -m csplade_pyserini.index --input runs/vectors --index runs/index [--threads 2]
    python -m csplade_pyserini.index --bm25 --input corpus.jsonl --index runs/bm25-index   # BM25, for hybrids

Runs Anserini's IndexCollection with -collection JsonVectorCollection -impact -pretokenized, after checking the
shards (manifests, document counts, duplicate ids; every record of a shard without our manifest: terms without
whitespace, non-negative integer weights, at least one positive), and checks afterwards that every document was
indexed. When the shards' manifests name the encoder (our encode writes them), the index gets csplade-encoder.json:
the encoder's name and passage weighting, which search checks its query encoder against. Shards of two encoders are
refused.

With --bm25, --input is a corpus instead (a JSONL file or a directory of them, records {id|_id|docid, title and
text | contents}, checked first) and the index is a BM25 one (Anserini JsonCollection, Lucene's default English
analyzer with Porter stems): what search --bm25-index fuses with. It holds what BM25 search reads, the postings and
the docids, as the impact index does, so their sizes on disk compare; --store-positions, --store-docvectors and
--store-raw add what phrase queries, RM3 feedback and fetching the text need (Pyserini's prebuilt indexes store all
three: 10.1 MiB against 1.1 MiB for SciFact).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from .cli import UsageError, ensure_empty_dir, positive_int, run
from .terms import EMPTY_DOC_TERM, is_integral, is_one_token
from . import jvm

_ID = re.compile(r'^\{"id": ("(?:[^"\\]|\\.)*")')
_SPACE = re.compile(r"\s").search  # a term must hold none (the terms are joined by NUL, not whitespace, to check)
ENCODER_FILE = "csplade-encoder.json"  # in the index directory (Lucene leaves a file of that name alone)


def _quiet_anserini():
    from jnius import autoclass

    level = autoclass("org.apache.logging.log4j.Level")
    autoclass("org.apache.logging.log4j.core.config.Configurator").setRootLevel(level.WARN)


def vector_problem(vector) -> str | None:
    """What Anserini's pretokenized impact indexing would get wrong in one JsonVectorCollection record's ``vector``,
    or None. It repeats each term ``weight`` times and splits on whitespace, so a term holding a space becomes two
    terms; it truncates a fractional weight (0.7 indexes nothing); it skips a document without terms."""
    if not isinstance(vector, dict):
        return "no \"vector\" object"
    weights = vector.values()
    if vector and set(map(type, weights)) == {int} and min(weights) >= 0 and max(weights) > 0 and not _SPACE(
            "\0".join(vector)) and "" not in vector:  # the usual case, ~8x faster than the loop that names the problem
        return None
    for term, w in vector.items():
        if not is_one_token(term):
            return f"term {term!r} is empty or holds whitespace (pretokenized indexing splits terms on whitespace)"
        if not is_integral(w) or w < 0:
            return (f"term {term!r} has weight {w!r}; impact indexes take non-negative integers (quantize first, "
                    f"e.g. round(100 * w))")
    if not any(vector.values()):
        return (f"no term with a positive weight: Anserini would skip the document (give it a placeholder term, e.g. "
                f"{EMPTY_DOC_TERM!r} with weight 1, as our encode does)")
    return None


def check_shards(input_dir: str | Path) -> int:
    """Count documents in the collection directory; every shard must match its manifest, no id may repeat. A shard
    without a manifest (not written by our encode) has every record checked too (:func:`vector_problem`)."""
    from .writer import meta_dir

    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        raise UsageError(f"index input {input_dir} is not a directory")
    files = sorted(p for p in input_dir.rglob("*") if p.is_file())
    if not files:
        raise UsageError(f"index input {input_dir} holds no files")
    seen: dict[str, str] = {}
    total = 0
    for f in files:
        n = 0
        manifest = meta_dir(input_dir) / (f.name + ".json")
        check_vectors = not manifest.exists()
        with open(f, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                m = None if check_vectors else _ID.match(line)
                try:
                    rec = None if m else json.loads(line)
                    docid = json.loads(m.group(1)) if m else str(rec["id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UsageError(f"{f}:{lineno}: not a JsonVectorCollection record") from None
                problem = vector_problem(rec.get("vector")) if check_vectors else None
                if problem:
                    raise UsageError(f"{f}:{lineno}: document {docid!r}: {problem}")
                if docid in seen:
                    raise UsageError(f"{f}:{lineno}: duplicate document id {docid!r} (first in {seen[docid]})")
                seen[docid] = f"{f.name}:{lineno}"
                n += 1
        if manifest.exists():
            expected = json.loads(manifest.read_text())["docs_out"]
            if expected != n:
                raise UsageError(f"{f}: {n} documents, but its manifest says {expected} (incomplete shard?)")
        total += n
    _check_all_shards_present(input_dir, {f.name for f in files})
    return total


def _check_all_shards_present(input_dir: Path, names: set[str]) -> None:
    """Every shard of a sharded encoding must be there: manifests say how many there are."""
    from .writer import meta_dir, shard_filename

    nums = {json.loads(m.read_text()).get("shard_num", 1) for m in meta_dir(input_dir).glob("*.jsonl.json")}
    for n in nums:
        missing = [shard_filename(i, n) for i in range(n) if shard_filename(i, n) not in names]
        if missing:
            raise UsageError(f"{input_dir}: {len(missing)} of {n} shards missing ({', '.join(missing[:3])}"
                             f"{', ...' if len(missing) > 3 else ''}); encode them (--resume skips finished ones)")


def shard_encoder(input_dir) -> dict | None:
    """{"encoder": name, "passage_weighting": {...}} of the encoder that wrote the shards (from their manifests), or
    None when a shard's manifest does not say (vectors from elsewhere, or encoded before encode recorded it). Shards
    written by encoders of different passage weighting are a UsageError: one index, one encoder."""
    from .writer import meta_dir

    found = {}
    for m in sorted(meta_dir(input_dir).glob("*.jsonl.json")):
        d = json.loads(m.read_text())
        if "passage_weighting" not in d:
            return None
        found[m.name[:-len(".json")]] = {"encoder": d.get("encoder", {}).get("name"),
                                         "passage_weighting": d["passage_weighting"]}
    files = sorted(p.name for p in Path(input_dir).rglob("*") if p.is_file())
    if not found or set(files) - set(found):
        return None
    first = next(iter(found.values()))
    other = [(f, e) for f, e in found.items() if e["passage_weighting"] != first["passage_weighting"]]
    if other:
        f0 = next(iter(found))
        raise UsageError(f"{input_dir}: shard {other[0][0]} was encoded by {other[0][1]['encoder']!r} and {f0} by "
                         f"{first['encoder']!r}, which weigh passages differently: an index must hold one encoder's "
                         f"vectors")
    return first


def index_encoder(index_dir) -> dict | None:
    """What build_impact_index recorded about the encoder of an index's passages, or None (an index built
    elsewhere, or from vectors that do not say)."""
    f = Path(index_dir) / ENCODER_FILE
    if not f.is_file():
        return None
    try:
        d = json.loads(f.read_text())
        if not isinstance(d.get("passage_weighting"), dict):
            raise ValueError("no passage_weighting")
    except (json.JSONDecodeError, ValueError, AttributeError) as e:
        raise UsageError(f"{f}: not an index encoder record ({e}); delete it to search without the check") from None
    return d


def build_impact_index(input_dir, index_dir, threads: int = 2, store_raw: bool = False, overwrite: bool = False,
                       quiet: bool = False) -> dict:
    n_docs = check_shards(input_dir)
    encoder = shard_encoder(input_dir)
    ensure_empty_dir(index_dir, "index directory", overwrite)
    args = ["-collection", "JsonVectorCollection", "-input", str(input_dir), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads), "-impact", "-pretokenized"]
    if store_raw:
        args.append("-storeRaw")
    info = _index(args, index_dir, n_docs, quiet)
    if encoder is not None:  # search checks its query encoder against it
        (Path(index_dir) / ENCODER_FILE).write_text(json.dumps(encoder, indent=1) + "\n")
    return info


def build_bm25_index_from_corpus(corpus, index_dir, threads: int = 2, overwrite: bool = False,
                                 quiet: bool = False, **store) -> dict:
    """A BM25 index of a corpus (checked first: a bad record is a UsageError naming it), through a temporary
    JsonCollection of {"id", "contents"} (title and text joined as the encoder joins them)."""
    import tempfile

    from .bm25 import bm25_collection
    from .corpus import CorpusError, check_jsonl_corpus

    try:
        check = check_jsonl_corpus(corpus, ("text",))  # a title is optional: record_text joins what is there
    except CorpusError as e:
        raise UsageError(str(e)) from None
    ensure_empty_dir(index_dir, "index directory", overwrite)
    with tempfile.TemporaryDirectory(prefix="csplade-bm25-") as tmp:
        n, n_empty = bm25_collection(Path(corpus), Path(tmp))
        if n != check.n_docs:
            raise RuntimeError(f"{corpus}: {n} documents written of {check.n_docs} read")
        info = build_bm25_index(tmp, index_dir, threads, overwrite=True, quiet=quiet, **store)
    info["empty_skipped"] = check.n_docs - info["documents"]  # Anserini indexes no empty document
    if info["empty_skipped"] != n_empty:
        raise RuntimeError(f"{index_dir}: {info['documents']} documents indexed of {check.n_docs} in {corpus} "
                           f"({n_empty} empty)")
    return info


def build_bm25_index(input_dir, index_dir, threads: int = 2, overwrite: bool = False, quiet: bool = False,
                     store_positions: bool = False, store_docvectors: bool = False, store_raw: bool = False) -> dict:
    """A BM25 index (Anserini JsonCollection: {"id", "contents"}), for baselines and hybrids: postings and docids,
    plus positions, document vectors and raw records when asked (Pyserini's prebuilt indexes store all three)."""
    n_docs = sum(1 for f in Path(input_dir).rglob("*") if f.is_file() for line in open(f, encoding="utf-8")
                 if line.strip())
    ensure_empty_dir(index_dir, "index directory", overwrite)
    args = ["-collection", "JsonCollection", "-input", str(input_dir), "-index", str(index_dir),
            "-generator", "DefaultLuceneDocumentGenerator", "-threads", str(threads)]
    args += [flag for flag, on in (("-storePositions", store_positions), ("-storeDocvectors", store_docvectors),
                                   ("-storeRaw", store_raw)) if on]
    return _index(args, index_dir, n_docs, quiet, allow_empty=True)


def _index(args, index_dir, n_docs: int, quiet: bool, allow_empty: bool = False) -> dict:
    jvm.bootstrap()
    from jnius import autoclass

    if quiet:
        _quiet_anserini()
        args = [*args, "-quiet"]  # IndexCollection sets its own loggers to INFO unless told -quiet
    autoclass("io.anserini.index.IndexCollection").main(args)
    from pyserini.index.lucene import LuceneIndexReader

    stats = LuceneIndexReader(str(index_dir)).stats()
    if stats["documents"] != n_docs and not allow_empty:
        raise RuntimeError(f"{index_dir}: {stats['documents']} documents indexed of {n_docs} in the input")
    size = sum(f.stat().st_size for f in Path(index_dir).rglob("*") if f.is_file())
    return {"documents": stats["documents"], "input_documents": n_docs, "unique_terms": stats["unique_terms"],
            "total_terms": stats["total_terms"], "bytes": size}


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.index", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="directory of JsonVectorCollection shards (from the encode CLI); "
                                                  "with --bm25, a corpus JSONL file or directory")
    p.add_argument("--bm25", action="store_true", help="build a BM25 index of the corpus --input (for hybrids)")
    p.add_argument("--index", required=True, help="output index directory (must be empty or absent)")
    p.add_argument("--threads", type=positive_int, default=os.cpu_count() or 1, help="indexing threads (default: all cores)")
    p.add_argument("--store-raw", action="store_true", help="store each record's raw JSON (bigger index)")
    p.add_argument("--store-positions", action="store_true",
                   help="with --bm25: store term positions (phrase queries; bigger index)")
    p.add_argument("--store-docvectors", action="store_true",
                   help="with --bm25: store document vectors (Pyserini's RM3 / Rocchio feedback; bigger index)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty index directory")
    return p


def _main(argv=None):
    args = build_parser().parse_args(argv)
    if not args.bm25 and (args.store_positions or args.store_docvectors):
        raise UsageError("--store-positions and --store-docvectors are for a BM25 index (--bm25); an impact index "
                         "has neither")
    if args.bm25:
        info = build_bm25_index_from_corpus(args.input, args.index, args.threads, args.overwrite,
                                            store_positions=args.store_positions,
                                            store_docvectors=args.store_docvectors, store_raw=args.store_raw)
    else:
        info = build_impact_index(args.input, args.index, args.threads, args.store_raw, args.overwrite)
    skipped = f" ({info['empty_skipped']} empty documents skipped)" if info.get("empty_skipped") else ""
    print(f"[index] {'BM25: ' if args.bm25 else ''}{info['documents']:,} documents{skipped}, {info['unique_terms']:,} terms, "
          f"{info['bytes'] / 2**20:.1f} MiB -> {args.index}", file=sys.stderr)
    return info


def main(argv=None):
    run(_main, argv, "csplade-index")


if __name__ == "__main__":
    main()
