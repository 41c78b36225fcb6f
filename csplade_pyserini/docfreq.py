"""Document frequencies of index terms, read from a Lucene impact index (for a lexical query side with a df curve).

    df = LuceneDocFreq("runs/index", terms)   # terms: the encoder's TermMap (token id <-> index term)
    df(token_id), df.n_docs

Terms are looked up raw in the index's ``contents`` field (Lucene ``IndexReader.docFreq``, no analyzer: CSPLADE
terms are token strings such as ``Ġcell``), once per token id, then cached.
"""
from __future__ import annotations

from pathlib import Path

CONTENTS_FIELD = "contents"  # Anserini's field for a JsonVectorCollection's vector


class LuceneDocFreq:
    def __init__(self, index: str | Path, terms):
        from .cli import check_index
        from .jvm import bootstrap

        bootstrap()
        from jnius import autoclass
        from pyserini.index.lucene import LuceneIndexReader

        check_index(index)
        self._term = autoclass("org.apache.lucene.index.Term")
        self._reader = LuceneIndexReader(str(index)).reader
        self.n_docs = int(self._reader.numDocs())
        self.terms = terms
        self.source = f"index {index} ({self.n_docs:,} documents)"
        self._cache: dict[int, int] = {}

    def __call__(self, token_id: int) -> int:
        df = self._cache.get(token_id)
        if df is None:
            term = self.terms.get(token_id)
            df = int(self._reader.docFreq(self._term(CONTENTS_FIELD, term))) if term is not None else 0
            self._cache[token_id] = df
        return df
