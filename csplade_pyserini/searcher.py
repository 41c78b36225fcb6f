"""CspladeSearcher: one query in, ranked hits out, for serving an impact index (alone or fused with BM25).

    from csplade_pyserini.searcher import CspladeSearcher
    searcher = CspladeSearcher("runs/scifact/index")                       # the default encoder's query side
    searcher.search("does radiation cause cancer?", k=10)                  # [Hit(docid, score), ...]
    hybrid = CspladeSearcher("runs/scifact/index", bm25_index="runs/scifact/bm25-index")  # the card's fusion
    hybrid.search("does radiation cause cancer?", k=10)

The same rankings as ``python -m csplade_pyserini.search`` (Pyserini's LuceneImpactSearcher, and with a BM25 index
its LuceneSearcher and ``fuse``), hit for hit, through ``lucene_direct.DirectSearcher``, which does not read every
hit's stored document. The query side (lexical or model) is the card's; an index that records its passages'
encoder is checked against it (``check=False`` skips that).
"""
from __future__ import annotations

from typing import NamedTuple

from .fuse import fuse


class Hit(NamedTuple):
    docid: str
    score: float


class CspladeSearcher:
    """Search ``index`` (an impact index of the card's passages) with ``encoder``'s query side; with
    ``bm25_index``, fuse each query's top ``fusion_depth`` from both (settings not given: the card's ``hybrid``,
    else rrf with k 60, as the search CLI does). ``freeze_gc`` (default) calls ``gc.freeze()`` once everything is
    loaded (freeze_python_gc: no ~300 ms full-collection stalls)."""

    def __init__(self, index, encoder=None, bm25_index=None, fusion: str | None = None,
                 fusion_weights: list[float] | None = None, rrf_k: float | None = None, fusion_depth: int = 1000,
                 device: str = "cpu", compile: bool = False, check: bool = True, freeze_gc: bool = True,
                 **card_overrides):
        from .encoder import DEFAULT_ENCODER
        from .encoders import CspladeQueryEncoder
        from .lucene_direct import DirectSearcher

        encoder = encoder or DEFAULT_ENCODER
        self.query_encoder = CspladeQueryEncoder(encoder, device=device, compile=compile, **card_overrides)
        self.query_encoder.use_index(index, check=check)
        self.fusion = None
        if bm25_index is not None:  # bad settings fail here, not at the first query
            from .search import checked_fusion

            method, weights, k, _ = checked_fusion(encoder, fusion, fusion_weights, rrf_k, fusion_depth, 1)
            self.fusion = {"method": method, "weights": weights, "rrf_k": k, "depth": fusion_depth}
        self._impact = DirectSearcher(index, "impact")
        self._bm25 = DirectSearcher(bm25_index, "bm25") if bm25_index is not None else None
        if freeze_gc:
            freeze_python_gc()

    def encode(self, text: str) -> dict[str, int]:
        """The query vector {term: int} (not cached: a server sees each text once)."""
        return self.query_encoder.encoder.encode([text], "query")[0]

    def search(self, text: str, k: int = 10) -> list[Hit]:
        """The top ``k`` hits for one query, best first."""
        if self._bm25 is None:
            return [Hit(*h) for h in self._impact.search(self.encode(text), k)]
        f = self.fusion
        depth = max(k, f["depth"])
        runs = [{"q": self._impact.search(self.encode(text), depth)}, {"q": self._bm25.search(text, depth)}]
        return [Hit(*h) for h in fuse(runs, f["method"], f["weights"], f["rrf_k"], f["depth"], k).get("q", [])]

    def close(self) -> None:
        self._impact.close()
        if self._bm25 is not None:
            self._bm25.close()


def freeze_python_gc() -> None:
    """``gc.freeze()``: every object alive now (torch, transformers, Pyserini, the model) moves to Python's permanent
    generation, so full garbage collections stop walking them. Without it, one query in ~250 stalls ~300 ms in a
    generation-2 collection (eval/bench/direct_tail.py: max 290 ms per pass, 12-15 ms frozen; whole SciFact, 2 cores).
    Objects created later are collected as usual; frozen ones that become cyclic garbage are not freed (what a
    long-lived server loaded once can afford)."""
    import gc

    gc.freeze()
