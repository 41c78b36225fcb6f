"""Lucene search without reading each hit's stored document: Pyserini's rankings and scores, a few times faster.

Pyserini's ``LuceneSearcher.search`` and ``LuceneImpactSearcher.search`` run Anserini's ``SimpleSearcher`` /
``SimpleImpactSearcher``: Lucene's top k (ties broken by docid), then every hit's stored document is loaded
to read its id, and a ``ScoredDoc`` Java object per hit crosses into Python. On whole SciFact (5,183 documents,
top 1000, 2 AVX2 cores) Lucene's own search takes ~2 ms of BM25's ~60 ms (the stored ``raw`` text of 1,000
documents) and of the impact index's ~30 ms; a Java array of 1,000 objects costs pyjnius ~10 ms on its own.

:class:`DirectSearcher` asks Lucene for the same top k, sorted the same way (score, then the ``id`` doc value),
and gets it back as one string (Lucene's ``TopDocs`` written by the Jackson in Anserini's jar): the docid is the
sort value, so no document is read. Then it adjusts the scores as Anserini's ``ScoreTiesAdjusterReranker`` does
(rounded to 4 decimals; a run of scores within 1e-4 of each other steps down by 1e-6 each, in float32), so the
output equals Pyserini's hit for hit, score for score (tests/test_lucene_direct.py checks it on small indexes
full of ties; ``eval/bench/query_latency.py --direct`` counts equal rankings on a real one).
It serves single queries (``searcher.CspladeSearcher``) and whole runs (``search_all``: the search CLI, BM25 runs of
demo/reproduce/mine_negatives), one query after another on one thread: on whole SciFact (300 test queries, top 1000,
2 AVX-512 cores) BM25 through it takes 2.0 s against 11.5 s for Pyserini's ``batch_search`` on 2 threads, the same
300 rankings. An index without ``id`` doc values (built by other tools) raises ``NoDocIds``; the callers then use
Pyserini's searchers.
"""
from __future__ import annotations

import base64
import json
import math
import struct

from . import jvm
from .cli import UsageError, check_index

_F32 = struct.Struct("<f")
_STEP = 1e-6  # Anserini's tie step (float 1.0E-6f), and its tie window 1.0E-4f
_WINDOW = 1e-4


def _f32(x: float) -> float:
    """x rounded to float32 (every +, -, * below is Java float arithmetic: exact in double, then rounded once)."""
    return _F32.unpack(_F32.pack(x))[0]


_STEP32, _WINDOW32 = _f32(_STEP), _f32(_WINDOW)


def adjust_ties(scores: list[float]) -> list[float]:
    """Anserini's ScoreTiesAdjusterReranker, in float32: each score rounded to 4 decimals (Java Math.round, half
    up); a score within 1e-4 of the (adjusted) one before it is lowered by 1e-6 × its place in the run of ties."""
    out: list[float] = []
    count = 0
    for i, s in enumerate(scores):
        v = _f32(math.floor(s * 10000.0 + 0.5) / 10000.0)
        if i == 0 or _f32(out[-1] - v) > _WINDOW32:
            count = 0
        else:
            count += 1
            v = _f32(v - _f32(_STEP32 * count))
        out.append(v)
    return out


SEARCHERS = ("direct", "pyserini")  # how a run over many topics is searched (the CLIs' --searcher)


def check_searcher(searcher: str) -> None:
    if searcher not in SEARCHERS:
        raise UsageError(f"searcher must be one of {', '.join(SEARCHERS)}, got {searcher!r}")


class NoDocIds(UsageError):
    """The index has no ``id`` doc values, so DirectSearcher cannot name hits without reading stored documents."""


class DirectSearcher:
    """One Lucene index, searched as Pyserini searches it: ``similarity="impact"`` (an impact index: query vectors
    {term: weight}, Anserini's ImpactSimilarity) or ``"bm25"`` (a text index: query strings through Anserini's
    default English analyzer, BM25 with ``k1``, ``b``; Pyserini's defaults 0.9, 0.4)."""

    def __init__(self, index, similarity: str = "impact", k1: float = 0.9, b: float = 0.4):
        if similarity not in ("impact", "bm25"):
            raise UsageError(f"similarity must be 'impact' or 'bm25', got {similarity!r}")
        self.index = check_index(index)
        self.similarity = similarity
        jvm.bootstrap()
        from jnius import autoclass, cast

        reader = autoclass("org.apache.lucene.index.DirectoryReader").open(
            autoclass("org.apache.lucene.store.FSDirectory").open(autoclass("java.nio.file.Paths").get(str(self.index))))
        self._reader = reader
        leaves = reader.leaves()
        for i in range(leaves.size()):  # the sort key, and where each hit's docid comes from
            info = leaves.get(i).reader().getFieldInfos().fieldInfo("id")
            if info is None or info.getDocValuesType().toString() == "NONE":
                reader.close()
                raise NoDocIds(f"{self.index}: no 'id' doc values in this index, so hits cannot be named without "
                                 f"reading stored documents (search it with Pyserini's searchers)")
        self._searcher = autoclass("org.apache.lucene.search.IndexSearcher")(
            cast("org.apache.lucene.index.IndexReader", reader))
        if similarity == "impact":
            self._searcher.setSimilarity(autoclass("io.anserini.search.similarity.ImpactSimilarity")())
        else:
            self._searcher.setSimilarity(autoclass("org.apache.lucene.search.similarities.BM25Similarity")(k1, b))
            self._analyzer = autoclass("io.anserini.analysis.DefaultEnglishAnalyzer").newDefaultInstance()
        sort_field = autoclass("org.apache.lucene.search.SortField")
        self._sort = autoclass("org.apache.lucene.search.Sort")(  # Anserini's BREAK_SCORE_TIES_BY_DOCID
            sort_field.FIELD_SCORE, sort_field("id", autoclass("org.apache.lucene.search.SortField$Type").STRING_VAL))
        self._generator = autoclass("io.anserini.search.query.BagOfWordsQueryGenerator")()
        self._json = autoclass("com.fasterxml.jackson.databind.ObjectMapper")()
        self._map, self._float = autoclass("java.util.HashMap"), autoclass("java.lang.Float")
        self._max_clauses = autoclass("org.apache.lucene.search.IndexSearcher").getMaxClauseCount()

    @property
    def num_docs(self) -> int:
        return self._reader.numDocs()

    def search(self, query, k: int = 10) -> list[tuple[str, float]]:
        """[(docid, score), ...] best first, at most ``k``: ``query`` is a {term: weight} vector (impact) or a
        string (bm25)."""
        if k < 1:
            raise UsageError(f"k must be >= 1, got {k}")
        if self.similarity == "impact":
            if not isinstance(query, dict):
                raise UsageError(f"an impact index is searched with a {{term: weight}} vector, got {type(query).__name__}")
            if not query:
                return []
            if len(query) > self._max_clauses:
                raise UsageError(f"the query vector has {len(query)} terms; Lucene takes at most {self._max_clauses} "
                                 f"clauses per query: keep its {self._max_clauses} largest (a card's query top-k)")
            jq = self._map()
            for term, w in query.items():
                jq.put(term, self._float(float(w)))
            q = self._generator.buildQuery("contents", jq)
        else:
            if not isinstance(query, str):
                raise UsageError(f"a BM25 index is searched with a string, got {type(query).__name__}")
            from jnius import JavaException

            try:
                q = self._generator.buildQuery("contents", self._analyzer, query)
            except JavaException as e:
                if "TooManyClauses" not in str(e):
                    raise
                raise UsageError(f"the query text has more than {self._max_clauses} distinct terms, Lucene's limit "
                                 f"per query: {query[:60]!r}...") from None
        return self._hits(self._searcher.search(q, k, self._sort, True))

    def _hits(self, top_docs) -> list[tuple[str, float]]:
        docs = json.loads(self._json.writeValueAsString(top_docs))["scoreDocs"]
        ids = []
        for d in docs:
            ref = d["fields"][1]  # the id's BytesRef: base64 bytes, offset, length
            off = ref["offset"]
            ids.append(base64.b64decode(ref["bytes"])[off:off + ref["length"]].decode("utf-8"))
        return list(zip(ids, adjust_ties([_f32(d["score"]) for d in docs])))

    def close(self) -> None:
        self._reader.close()


def search_all(index, queries: dict, k: int, similarity: str = "impact", progress=None) -> dict[str, list]:
    """{qid: [(docid, score), ...]} for every ``queries`` entry (qid -> {term: weight} for an impact index, qid ->
    text for BM25), one DirectSearcher, in order; ``progress(n)`` after each query. Raises NoDocIds for an index
    without ``id`` doc values (search it with Pyserini's batch_search)."""
    searcher = DirectSearcher(index, similarity)
    try:
        out = {}
        for qid, query in queries.items():
            out[qid] = searcher.search(query, k)
            if progress is not None:
                progress(1)
        return out
    finally:
        searcher.close()
