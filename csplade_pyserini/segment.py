"""python -m csplade_pyserini.segment: split long documents into overlapping segments, for MaxP search.

    python -m csplade_pyserini.segment --corpus corpus.jsonl --output segments.jsonl \\
      [--fields title text] [--words 150] [--stride 75] [--docid-delimiter '#']

Each document becomes segments DOC#0, DOC#1, ...: windows of --words whitespace-separated words of its last field,
starting every --stride words, until a window reaches the end; the leading fields (the title) are copied into every
segment, as in Pyserini's msmarco-doc-segmented. A document no longer than one window is one segment; an empty one
is one empty segment (kept and counted). Encode and index the segments like any corpus (same --fields), then
`search --max-passage` scores each document by its best segment (MaxP). Records are checked first, as `encode`
checks them; an id that already contains the delimiter is an error (MaxP would cut it there).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli import UsageError, run
from .terms import is_one_token


def windows(words: list[str], size: int, stride: int) -> list[list[str]]:
    """Windows of ``size`` words every ``stride`` words, the last one reaching the end ([[]] for no words)."""
    out = [words[:size]]
    start = 0
    while start + size < len(words):
        start += stride
        out.append(words[start:start + size])
    return out


def segment_corpus(corpus, output, fields=("text",), words: int = 150, stride: int = 75, docid_field=None,
                   delimiter: str = "\n", docid_delimiter: str = "#", overwrite: bool = False,
                   quiet: bool = False) -> dict:
    """Write the segments of every document to ``output`` (JSONL); returns the counts."""
    from tqdm import tqdm

    from .corpus import CorpusError, check_jsonl_corpus, field_batches

    if words < 1 or not 1 <= stride <= words:
        raise UsageError(f"--words must be >= 1 and --stride in 1..--words (a larger stride skips text); "
                         f"got --words {words} --stride {stride}")
    if not is_one_token(docid_delimiter):
        raise UsageError(f"--docid-delimiter must be non-empty and without whitespace, got {docid_delimiter!r}")
    out = Path(output)
    if out.exists() and not overwrite:
        raise UsageError(f"output {out} exists (pass --overwrite to replace it)")
    fields = list(fields)
    check = check_jsonl_corpus(corpus, fields, docid_field, delimiter, split_contents=True)
    for i in check.ids:
        if docid_delimiter in i:
            raise CorpusError(f"{corpus}: document id {i!r} contains the docid delimiter {docid_delimiter!r}; "
                              f"MaxP would cut it there (pass another --docid-delimiter)")
    counts = {"docs_in": check.n_docs, "segments_out": 0, "docs_split": 0, "empty_docs": 0, "max_segments": 0}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    body, lead = fields[-1], fields[:-1]
    with open(tmp, "w", encoding="utf-8") as fh, tqdm(total=check.n_docs, unit="doc", desc="segment",
                                                     disable=quiet, mininterval=2) as bar:
        for batch in field_batches(corpus, fields, docid_field, delimiter, 1024):
            for j, docid in enumerate(batch["id"]):
                text = batch[body][j] or ""
                parts = windows(text.split(), words, stride)
                for k, part in enumerate(parts):
                    rec = {"id": f"{docid}{docid_delimiter}{k}", **{f: batch[f][j] or "" for f in lead},
                           body: " ".join(part)}
                    fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                counts["segments_out"] += len(parts)
                counts["docs_split"] += len(parts) > 1
                counts["empty_docs"] += not text.strip()
                counts["max_segments"] = max(counts["max_segments"], len(parts))
            bar.update(len(batch["id"]))
    tmp.replace(out)
    if not quiet:
        print(f"[segment] {counts['docs_in']:,} docs -> {counts['segments_out']:,} segments ({counts['docs_split']:,} "
              f"split, at most {counts['max_segments']} each; {counts['empty_docs']} empty, kept as one segment) "
              f"-> {out}", file=sys.stderr)
    return counts


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.segment", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--corpus", required=True, help="JSONL file, or a directory of JSONL files")
    p.add_argument("--output", required=True, help="JSONL file of segments")
    p.add_argument("--fields", nargs="+", default=["text"],
                   help="fields read (as encode reads them); the last is segmented, the others copied into every "
                        "segment (default: text)")
    p.add_argument("--words", type=int, default=150, help="words per segment (default: 150)")
    p.add_argument("--stride", type=int, default=75, help="words between segment starts (default: 75)")
    p.add_argument("--docid-field", default=None, help="id field if not id/_id/docid")
    p.add_argument("--delimiter", default="\n", help="delimiter of fields inside 'contents' (default: newline)")
    p.add_argument("--docid-delimiter", default="#", help="between a document's id and its segment number (default: #)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    return segment_corpus(a.corpus, a.output, a.fields, a.words, a.stride, a.docid_field,
                          a.delimiter.replace("\\n", "\n"), a.docid_delimiter, a.overwrite)


def main(argv=None):
    run(_main, argv, "csplade-segment")


if __name__ == "__main__":
    main()
