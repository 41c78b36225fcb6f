"""BM25 beside CSPLADE: Pyserini's Lucene BM25 (k1=0.9, b=0.4) over the same documents and queries."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .corpus import corpus_files, doc_id, record_text


def bm25_collection(corpus: Path, out_dir: Path) -> tuple[int, int]:
    """The corpus (a JSONL file or a directory of them; {id|_id|docid, title and text | contents}) as an Anserini
    JsonCollection ({"id", "contents"}: title and text joined as the encoder joins them). Returns (documents, empty
    ones): Anserini indexes no empty document."""
    out_dir.mkdir(parents=True, exist_ok=True)
    n = empty = 0
    with open(out_dir / "docs.jsonl", "w", encoding="utf-8") as fh:
        for f in corpus_files(corpus):
            for line in open(f, encoding="utf-8"):
                d = json.loads(line)
                text = record_text(d)
                fh.write(json.dumps({"id": str(doc_id(d, None)), "contents": text}) + "\n")
                n += 1
                empty += not text
    return n, empty


def bm25_results(index, topics: dict, hits: int, threads: int, searcher: str = "direct"
                 ) -> dict[str, list[tuple[str, float]]]:
    """{qid: [(docid, score), ...]} best first: Pyserini's LuceneSearcher rankings (BM25 k1=0.9, b=0.4) over
    ``index``. ``searcher="direct"`` computes them with lucene_direct (the same hits and scores, without reading
    each hit's stored document; one thread), and falls back to Pyserini's ``batch_search`` on ``threads`` for an
    index without ``id`` doc values; ``"pyserini"`` always uses it."""
    from . import jvm
    from .lucene_direct import NoDocIds, check_searcher, search_all

    check_searcher(searcher)
    jvm.bootstrap()
    if searcher == "direct":
        try:
            return search_all(index, topics, hits, "bm25")
        except NoDocIds:
            pass
    from pyserini.search.lucene import LuceneSearcher

    s = LuceneSearcher(str(index))
    qids = list(topics)
    res = s.batch_search([topics[q] for q in qids], qids, k=hits, threads=threads)
    return {q: [(h.docid, float(h.score)) for h in res.get(q, [])] for q in qids}


def bm25_search(index: Path, topics: dict, output: Path, hits: int, threads: int, searcher: str = "direct") -> float:
    from .search import write_run

    t = time.time()
    write_run(bm25_results(index, topics, hits, threads, searcher), output, tag="bm25")
    return time.time() - t
