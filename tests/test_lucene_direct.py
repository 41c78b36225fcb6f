"""lucene_direct.DirectSearcher and searcher.CspladeSearcher give Pyserini's hits and scores exactly, ties included."""
from __future__ import annotations

import json
import random

import pytest

from csplade_pyserini.cli import UsageError


def test_adjust_ties_is_anserinis_float32_arithmetic():
    from csplade_pyserini.lucene_direct import _f32, adjust_ties

    # 3.53125 * 10000 = 35312.5: Java's Math.round goes up (Python's round() would give 35312)
    assert adjust_ties([3.53125]) == [_f32(3.5313)]
    # a run of ties steps down by 1e-6 (float32) per place; a gap > 1e-4 starts a new run
    got = adjust_ties([2.0, 2.0, 2.0, 1.0, 1.0])
    assert got == [2.0, _f32(2.0 - _f32(1e-6)), _f32(2.0 - _f32(_f32(1e-6) * 2)), 1.0, _f32(1.0 - _f32(1e-6))]
    assert got[1] < got[0] and got[2] < got[1]
    # within 1e-4 of the adjusted score before it: still the same run
    assert adjust_ties([5.0, 4.99995])[1] == _f32(_f32(5.0) - _f32(1e-6))
    assert adjust_ties([]) == []


def _vectors(tmp_path, n=80, seed=3):
    """An impact collection with many exact ties (ints on few terms, duplicated vectors, ids not in index order)."""
    rng = random.Random(seed)
    terms = [f"t{i}" for i in range(12)]
    base = [{t: rng.randint(1, 9) for t in rng.sample(terms, rng.randint(1, 4))} for _ in range(n // 2)]
    docs = base + [dict(v) for v in base]  # every vector twice: equal scores, broken by docid
    ids = [f"doc{rng.randint(0, 10**6):07d}-{i}" for i in range(n)]
    (tmp_path / "vec").mkdir()
    for part in range(4):  # indexed by 4 threads: 4 segments, so the sort merges across segments
        with open(tmp_path / "vec" / f"part{part}.jsonl", "w") as f:
            for i, v in list(zip(ids, docs))[part::4]:
                f.write(json.dumps({"id": i, "contents": "", "vector": v}) + "\n")
    return terms


def test_direct_impact_search_equals_pyserini(tmp_path):
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.lucene_direct import DirectSearcher
    from pyserini.search.lucene import LuceneImpactSearcher

    terms = _vectors(tmp_path)
    for _ in range(5):  # 4 threads write 4 segments, unless a loaded machine lets one thread take every file: again
        build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=4, quiet=True, overwrite=True)
        if len(list((tmp_path / "idx").glob("*.si"))) > 1:
            break
    assert len(list((tmp_path / "idx").glob("*.si"))) > 1  # several segments
    rng = random.Random(0)
    queries = {f"q{i}": {t: rng.randint(1, 50) for t in rng.sample(terms, rng.randint(1, 5))} for i in range(25)}
    qenc = CspladeQueryEncoder("never-loaded")  # every query is in its cache
    qenc.cache = dict(queries)
    pyserini = LuceneImpactSearcher(str(tmp_path / "idx"), qenc, min_idf=-1)
    direct = DirectSearcher(tmp_path / "idx", "impact")
    assert direct.num_docs == 80
    n_tied = 0
    for q, vec in queries.items():
        for k in (3, 10, 1000):  # small k: the cut falls inside runs of ties, which are kept by docid
            want = [(h.docid, h.score) for h in pyserini.search(q, k=k)]
            assert direct.search(vec, k) == want, (q, k)
        n_tied += len({s for _, s in want}) < len(want)
    assert n_tied > 10  # the check covered ties
    assert direct.search({}, 10) == [] and direct.search({"no-such-term": 5}, 10) == []
    with pytest.raises(UsageError, match="k must be >= 1"):
        direct.search(queries["q0"], 0)
    with pytest.raises(UsageError, match=r"\{term: weight\} vector"):
        direct.search("text", 10)
    with pytest.raises(UsageError, match="1500 terms; Lucene takes at most 1024"):
        direct.search({f"x{i}": 1 for i in range(1500)}, 10)
    with pytest.raises(UsageError, match="not a Lucene index"):
        DirectSearcher(tmp_path / "vec", "impact")


def test_direct_bm25_search_equals_pyserini(tmp_path):
    from csplade_pyserini.index import build_bm25_index_from_corpus
    from csplade_pyserini.lucene_direct import DirectSearcher
    from pyserini.search.lucene import LuceneSearcher

    rng = random.Random(1)
    words = "cells cancer brain radiation mice human gene protein risk study results microwave".split()
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 12))) for _ in range(30)]
    docs = [{"id": f"d{rng.randint(0, 999):03d}-{i}", "title": "", "text": t} for i, t in enumerate(texts + texts)]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    build_bm25_index_from_corpus(tmp_path / "corpus.jsonl", tmp_path / "bm25", threads=1, quiet=True)
    pyserini, direct = LuceneSearcher(str(tmp_path / "bm25")), DirectSearcher(tmp_path / "bm25", "bm25")
    for q in ["brain cancer", "Mice and human studies", "radiation risk of microwaves", "the", "gene? protein!"]:
        for k in (2, 7, 1000):
            assert direct.search(q, k) == [(h.docid, h.score) for h in pyserini.search(q, k=k)], (q, k)
    with pytest.raises(UsageError, match="searched with a string"):
        direct.search({"brain": 1}, 10)
    with pytest.raises(UsageError, match="more than 1024 distinct terms"):
        direct.search(" ".join(f"w{i}x" for i in range(1100)), 10)


def test_cspladesearcher_equals_the_search_cli(tmp_path, tiny_checkpoint, monkeypatch):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import build_bm25_index_from_corpus, build_impact_index
    from csplade_pyserini.search import search_topics
    from csplade_pyserini.searcher import CspladeSearcher, Hit

    docs = [{"id": f"d{i}", "title": t, "text": x} for i, (t, x) in enumerate([
        ("brain", "microwave radiation causes brain cancer"), ("cells", "cells and cancer cells"),
        ("mice", "mice and human study"), ("gene", "gene protein increase risk"),
        ("phones", "phone radiation study results"), ("protein", "protein in human cells")])]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    encode_corpus(tmp_path / "corpus.jsonl", tmp_path / "vec", str(tiny_checkpoint), fields=["title", "text"],
                  device="cpu", quiet=True)
    build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    build_bm25_index_from_corpus(tmp_path / "corpus.jsonl", tmp_path / "bm25", threads=1, quiet=True)
    topics = {"q1": "brain cancer", "q2": "mice study", "q3": "protein in cells"}
    kw = dict(hits=4, threads=1, device="cpu", quiet=True)
    enc = str(tiny_checkpoint)
    import gc

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(1))  # process-wide: not in a test run
    alone = CspladeSearcher(tmp_path / "idx", enc)
    assert frozen == [1]  # a serving object freezes what it loaded (no full-collection stalls)
    CspladeSearcher(tmp_path / "idx", enc, freeze_gc=False)
    want = search_topics(tmp_path / "idx", topics, enc, **kw)
    assert frozen == [1]  # nor does a library call to search_topics (the CLI passes freeze_gc=True)
    for q, text in topics.items():
        got = alone.search(text, k=4)
        assert got == want[q] and all(isinstance(h, Hit) for h in got)
    for fusion, weights in (("rrf", None), ("interpolation", [0.7, 0.3])):
        hybrid = CspladeSearcher(tmp_path / "idx", enc, bm25_index=tmp_path / "bm25", fusion=fusion,
                                 fusion_weights=weights, fusion_depth=5)
        want = search_topics(tmp_path / "idx", topics, enc, bm25_index=tmp_path / "bm25", fusion=fusion,
                             fusion_weights=weights, fusion_depth=5, **kw)
        assert {q: hybrid.search(t, k=4) for q, t in topics.items()} == want
        assert hybrid.fusion["method"] == fusion
    # the search CLI's runs: direct (its default) and Pyserini's batch_search give the same hits and scores
    for extra in ({}, dict(bm25_index=tmp_path / "bm25", fusion="interpolation", fusion_weights=[0.7, 0.3])):
        direct = search_topics(tmp_path / "idx", topics, enc, remove_query=True, **extra, **kw)
        assert search_topics(tmp_path / "idx", topics, enc, remove_query=True, searcher="pyserini", **extra,
                             **kw) == direct
        assert all(direct.values())
    with pytest.raises(UsageError, match="searcher must be one of direct, pyserini"):
        search_topics(tmp_path / "idx", topics, enc, searcher="lucene", **kw)
    with pytest.raises(UsageError, match="interpolation's"):
        CspladeSearcher(tmp_path / "idx", enc, bm25_index=tmp_path / "bm25", fusion="rrf", fusion_weights=[1, 1])
    with pytest.raises(UsageError, match="k must be >= 1"):
        alone.search("brain", k=0)


def test_runs_fall_back_to_pyserini_for_an_index_without_docid_values(tmp_path, monkeypatch):
    """An index whose documents carry no ``id`` doc values (built by other tools) cannot be searched directly:
    search_all raises NoDocIds, and BM25 runs (and the search CLI) use Pyserini's batch_search instead."""
    from csplade_pyserini import lucene_direct
    from csplade_pyserini.bm25 import bm25_results
    from csplade_pyserini.index import build_bm25_index_from_corpus

    docs = [{"id": f"d{i}", "contents": " ".join(["cancer", "cells", "mice", "radiation"][: 1 + i % 4])}
            for i in range(12)]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    build_bm25_index_from_corpus(tmp_path / "c.jsonl", tmp_path / "bm25", threads=1, quiet=True)
    topics = {"q1": "cancer mice", "q2": "radiation"}
    direct = bm25_results(tmp_path / "bm25", topics, 5, 1)
    assert direct == bm25_results(tmp_path / "bm25", topics, 5, 1, searcher="pyserini") and all(direct.values())

    def no_ids(index, similarity="impact"):
        raise lucene_direct.NoDocIds(f"{index}: no 'id' doc values")

    monkeypatch.setattr(lucene_direct, "DirectSearcher", no_ids)
    with pytest.raises(lucene_direct.NoDocIds):
        lucene_direct.search_all(tmp_path / "bm25", topics, 5, "bm25")
    assert bm25_results(tmp_path / "bm25", topics, 5, 1) == direct
