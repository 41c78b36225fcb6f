"""End to end on a slice of shipped SciFact with the real SmolLM2-135M base: encode CLI -> Anserini impact index
-> Pyserini LuceneImpactSearcher with our query encoder -> trec_eval."""
import json

import pytest

from csplade_pyserini.paths import data_dir

pytestmark = pytest.mark.slow
N_QUERIES, N_DOCS = 8, 24


@pytest.fixture(scope="module")
def slice_dir(tmp_path_factory):
    d = data_dir() / "scifact"
    if not (d / "corpus.jsonl").exists():
        pytest.skip(f"shared data not at {data_dir()}")
    out = tmp_path_factory.mktemp("scifact")
    queries = open(d / "queries.test.tsv").read().splitlines()[:N_QUERIES]
    qids = {q.split("\t")[0] for q in queries}
    qrels = [line for line in open(d / "qrels.test.txt") if line.split()[0] in qids]
    judged = {line.split()[2] for line in qrels}
    docs = [json.loads(line) for line in open(d / "corpus.jsonl")]
    keep = [x for x in docs if x["id"] in judged]
    keep += [x for x in docs if x["id"] not in judged][: N_DOCS - len(keep)]
    keep.append({"id": "empty-doc", "title": "", "text": ""})
    (out / "corpus.jsonl").write_text("".join(json.dumps(x) + "\n" for x in keep))
    (out / "queries.tsv").write_text("\n".join(queries) + "\n")
    (out / "qrels.txt").write_text("".join(qrels))
    return out


@pytest.fixture(scope="module")
def slice_vectors(slice_dir, tmp_path_factory):
    """The slice encoded once by the encode CLI with the default encoder (shared by the tests below)."""
    from csplade_pyserini.encode import main as encode_main

    vec = tmp_path_factory.mktemp("vectors") / "vec"
    encode_main(["input", "--corpus", str(slice_dir / "corpus.jsonl"), "--fields", "title", "text",
                 "output", "--embeddings", str(vec), "encoder", "--batch-size", "8", "--device", "cpu"])
    return vec


def test_scifact_slice_end_to_end(slice_dir, slice_vectors, tmp_path):
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.search import search_topics
    from pyserini.search.lucene import LuceneImpactSearcher

    vec = slice_vectors
    recs = [json.loads(line) for line in open(vec / "embeddings.jsonl")]
    n_docs = N_DOCS + 1
    assert len(recs) == n_docs and recs[-1]["id"] == "empty-doc"
    for r in recs[:-1]:
        assert 0 < len(r["vector"]) <= 256
        assert all(isinstance(v, int) and v > 0 and " " not in t for t, v in r["vector"].items())

    info = build_impact_index(vec, tmp_path / "idx", threads=2, quiet=True)
    assert info["documents"] == n_docs

    # Pyserini's own searcher with our query encoder object
    qenc = CspladeQueryEncoder(device="cpu")
    searcher = LuceneImpactSearcher(str(tmp_path / "idx"), query_encoder=qenc, min_idf=-1)
    first_q = open(slice_dir / "queries.tsv").readline().split("\t")[1].strip()
    hits = searcher.search(first_q, k=5)
    assert len(hits) == 5 and hits[0].score >= hits[-1].score > 0
    assert searcher.doc("empty-doc") is not None  # the empty document is findable by id
    vec_q = qenc.encode(first_q)
    assert 0 < len(vec_q) <= 1024 and all(isinstance(v, int) and v > 0 for v in vec_q.values())

    run = search_topics(tmp_path / "idx", str(slice_dir / "queries.tsv"), output=tmp_path / "run.txt", hits=100,
                        threads=2, query_encoder=qenc, quiet=True)
    assert len(run) == N_QUERIES
    scores = evaluate(tmp_path / "run.txt", slice_dir / "qrels.txt")
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # impact search returns only documents sharing a term with the query: with a sparse query side (the default's
    # ~12-86 terms per query) a few judged documents are not retrieved at all, but most are, and ranked well above chance
    # (8 queries over 25 documents, ~1 judged each: a random order gives nDCG@10 ~0.2)
    assert scores["r@100"] >= 0.75, scores
    assert scores["ndcg@10"] >= 0.5, scores


def test_lexical_queries_on_the_model_index(slice_dir, slice_vectors, tmp_path, monkeypatch):
    """The default encoder's index (echo-corpusfit's passages) searched with inference-free queries (no LM loaded for
    them): the derived table gives the model's own-token weights (the echo copy predicts each word almost surely)
    without the expansions, and the ranking is as good on the slice; so does the default itself when it is a lexical
    card (its df curve read from the slice's index)."""
    import csplade_pyserini.encoder as encoder_mod
    from csplade_pyserini.encoder import CspladeEncoder, DEFAULT_ENCODER, load_query_encoder, resolve_card
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.search import search_topics

    passages = "smollm2-135m-echo-corpusfit"  # queries through the model; the default's passages
    assert resolve_card(passages).passage_side() == resolve_card(DEFAULT_ENCODER).passage_side()
    model = CspladeEncoder.load(passages, device="cpu")
    texts = [line.split("\t")[1] for line in open(slice_dir / "queries.tsv").read().splitlines()]
    lexical = load_query_encoder(passages, query_encoder="lexical")
    close, total = 0, 0
    for m, lx in zip(model.encode(texts, "query"), lexical.encode(texts, "query")):
        assert len(lx) < len(m)  # no expansions
        total += len(lx)
        close += sum(1 for t, v in lx.items() if abs(m.get(t, 0) - v) <= 10)
    assert close >= 0.8 * total, (close, total)
    build_impact_index(slice_vectors, tmp_path / "idx", threads=2, quiet=True)
    monkeypatch.setattr(encoder_mod, "load_causal_lm", lambda *a, **k: pytest.fail("lexical queries loaded the LM"))
    runs = [(passages, {"query_encoder": "lexical"})]
    if resolve_card(DEFAULT_ENCODER).query_encoder == "lexical":
        runs.append((DEFAULT_ENCODER, {}))
    for i, (name, overrides) in enumerate(runs):
        search_topics(tmp_path / "idx", str(slice_dir / "queries.tsv"), name, tmp_path / f"run{i}.txt", hits=100,
                      threads=2, quiet=True, card_overrides=overrides)
        scores = evaluate(tmp_path / f"run{i}.txt", slice_dir / "qrels.txt")
        assert scores["r@100"] >= 0.75 and scores["ndcg@10"] >= 0.5, (name, scores)
