"""BM25 beside CSPLADE: Pyserini's Lucene BM25 (k1=0.9, b=0.4) over the same documents and queries."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .corpus import doc_id, record_text


def bm25_collection(corpus: Path, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "docs.jsonl", "w", encoding="utf-8") as fh:
        for line in open(corpus, encoding="utf-8"):
            d = json.loads(line)
            fh.write(json.dumps({"id": str(doc_id(d, None)), "contents": record_text(d)}) + "\n")


def bm25_search(index: Path, topics: dict, output: Path, hits: int, threads: int) -> float:
    from . import jvm

    jvm.bootstrap()
    from pyserini.search.lucene import LuceneSearcher

    from .search import write_run

    t = time.time()
    s = LuceneSearcher(str(index))
    qids = list(topics)
    res = s.batch_search([topics[q] for q in qids], qids, k=hits, threads=threads)
    write_run({q: [(h.docid, float(h.score)) for h in res.get(q, [])] for q in qids}, output, tag="bm25")
    return time.time() - t
