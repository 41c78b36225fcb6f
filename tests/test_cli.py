"""CLI-level tests on a tiny random model: encode output layout, counts, errors, index/search/eval wiring."""
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from csplade_pyserini.cli import UsageError


def _corpus(tmp_path, docs=None):
    docs = docs or [{"id": "d1", "title": "brain", "text": "microwave radiation causes brain cancer"},
                    {"id": "d2", "title": "", "text": ""},
                    {"id": "d3", "title": "cells", "text": " ".join(["cells"] * 40)},
                    {"id": "d4", "title": "mice", "text": "mice and human study"}]
    p = tmp_path / "corpus.jsonl"
    p.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return p


def test_encode_writes_json_vector_collection(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import main

    corpus = _corpus(tmp_path)
    out = tmp_path / "vec"
    main(["input", "--corpus", str(corpus), "--fields", "title", "text", "output", "--embeddings", str(out),
          "encoder", "--encoder", str(tiny_checkpoint), "--batch-size", "3", "--device", "cpu"])
    files = sorted(p.name for p in out.iterdir())
    assert files == ["embeddings.jsonl"], "the collection directory must hold nothing but shards"
    recs = [json.loads(line) for line in open(out / "embeddings.jsonl")]
    assert [r["id"] for r in recs] == ["d1", "d2", "d3", "d4"]  # every document in is a document out, in order
    assert recs[0]["contents"] == "brain\nmicrowave radiation causes brain cancer"
    for r in recs:
        assert r["vector"] and all(isinstance(v, int) and v > 0 for v in r["vector"].values())
        assert not any(any(c.isspace() for c in t) for t in r["vector"])
        assert len(r["vector"]) <= 16  # the card's passage_top_k
    assert recs[1]["vector"] == {"<csplade:empty>": 1}
    manifest = json.loads((tmp_path / "vec.manifest" / "embeddings.jsonl.json").read_text())
    assert manifest["docs_in"] == manifest["docs_out"] == 4
    assert manifest["empty_texts"] == 1 and manifest["empty_vectors"] == 1 and manifest["truncated"] == 1
    assert len(manifest["sha256"]) == 64


def test_encode_refuses_non_empty_output_and_bad_corpus(tmp_path, tiny_checkpoint, capsys):
    from csplade_pyserini.encode import main

    corpus = _corpus(tmp_path)
    out = tmp_path / "vec"
    out.mkdir()
    (out / "other.txt").write_text("x")
    argv = ["input", "--corpus", str(corpus), "output", "--embeddings", str(out), "encoder", "--encoder",
            str(tiny_checkpoint), "--device", "cpu"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "exists and is not empty" in capsys.readouterr().err
    corpus.write_text('{"id": "1", "text": "a"}\n{"id": "1", "text": "b"}\n')
    with pytest.raises(SystemExit):
        main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "corpus.jsonl:2: duplicate document id '1'" in err[0]


def test_encode_unknown_encoder_is_one_line(tmp_path, capsys):
    from csplade_pyserini.encode import main

    corpus = _corpus(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(["input", "--corpus", str(corpus), "output", "--embeddings", str(tmp_path / "v"), "encoder",
              "--encoder", "no-such-encoder"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown encoder 'no-such-encoder'" in err[0]


@pytest.mark.parametrize("flag, value", [("--batch-size", "0"), ("--max-length", "0"), ("--max-length", "-3")])
def test_encode_and_search_refuse_sizes_below_one(tmp_path, capsys, flag, value):
    """A batch size of 0 failed deep inside (range step 0) and a max length of 0 quietly meant the card's."""
    from csplade_pyserini.encode import main as encode_main
    from csplade_pyserini.search import main as search_main

    corpus = _corpus(tmp_path)
    with pytest.raises(SystemExit) as e:
        encode_main(["input", "--corpus", str(corpus), "output", "--embeddings", str(tmp_path / "v"), "encoder",
                     flag, value])
    assert e.value.code == 2 and f"argument {flag}: expected an integer >= 1, got {value}" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        search_main(["--index", str(tmp_path), "--topics", "t.tsv", "--output", str(tmp_path / "r.txt"), flag, value])
    assert e.value.code == 2 and f"argument {flag}: expected an integer >= 1, got {value}" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


@pytest.mark.parametrize("flag, value, low", [("--max-docs", "-5", 0), ("--batch-size", "0", 1), ("--hits", "0", 1),
                                             ("--threads", "x", 1)])
def test_demo_refuses_bad_counts_before_any_work(tmp_path, capsys, flag, value, low):
    from csplade_pyserini.demo import main

    with pytest.raises(SystemExit) as e:
        main([flag, value, "--workdir", str(tmp_path / "demo")])
    shown = value if value.lstrip("-").isdigit() else repr(value)
    assert e.value.code == 2 and f"argument {flag}: expected an integer >= {low}, got {shown}" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("module, argv, flag, low", [
    ("mine_negatives", ["--corpus", "c", "--topics", "t", "--qrels", "q", "--output", "o", "--depth", "0"], "--depth", 1),
    ("index", ["--input", "v", "--index", "i", "--threads", "0"], "--threads", 1),
    ("search", ["--index", "i", "--topics", "t", "--output", "o", "--hits", "0"], "--hits", 1),
    ("fuse", ["--runs", "a", "b", "--output", "o", "--depth", "0"], "--depth", 1),
    ("reproduce", ["r.yaml", "--gpus", "0"], "--gpus", 1),
    ("fit_query_weights", ["--knots", "1"], "--knots", 2),
    ("calibrate", ["--passages", "0"], "--passages", 1),
])
def test_count_flags_below_their_minimum_are_usage_errors(module, argv, flag, low, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(f"csplade_pyserini.{module}").main(argv)
    assert e.value.code == 2
    assert f"argument {flag}: expected an integer >= {low}" in capsys.readouterr().err


def test_shards_cover_the_corpus_exactly(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus

    docs = [{"id": f"d{i}", "text": "cells cancer " * (i % 5)} for i in range(11)]
    corpus = _corpus(tmp_path, docs)
    out = tmp_path / "vec"
    for s in range(3):
        encode_corpus(corpus, out, str(tiny_checkpoint), shard_id=s, shard_num=3, device="cpu", quiet=True)
    ids = [json.loads(line)["id"] for f in sorted(out.iterdir()) for line in open(f)]
    assert sorted(ids) == sorted(d["id"] for d in docs) and len(ids) == 11
    with pytest.raises(UsageError, match="exists"):
        encode_corpus(corpus, out, str(tiny_checkpoint), shard_id=1, shard_num=3, device="cpu", quiet=True)


def test_quiet_encode_prints_nothing(tmp_path, tiny_checkpoint, capfd):
    """quiet=True also hides transformers' "Loading weights" bar (shown without it), and leaves the bar's global
    setting as it was."""
    from transformers.utils import logging as hf_logging

    from csplade_pyserini.encode import encode_corpus

    corpus = _corpus(tmp_path, [{"id": "d0", "text": "cells cancer"}])
    encode_corpus(corpus, tmp_path / "loud", str(tiny_checkpoint), device="cpu")
    assert "Loading weights" in capfd.readouterr().err
    encode_corpus(corpus, tmp_path / "quiet", str(tiny_checkpoint), device="cpu", quiet=True)
    assert capfd.readouterr().err == ""
    assert hf_logging.is_progress_bar_enabled()


def test_index_search_eval_with_tiny_model(tmp_path, tiny_checkpoint, capsys):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.eval import evaluate
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.search import search_topics

    corpus = _corpus(tmp_path)
    encode_corpus(corpus, tmp_path / "vec", str(tiny_checkpoint), fields=["title", "text"], device="cpu", quiet=True)
    info = build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    assert info["documents"] == 4  # the empty document is in the index too
    with pytest.raises(UsageError, match="not empty"):
        build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    topics = {"q1": "brain cancer", "q2": "mice"}
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d4 1\n")
    run1 = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), tmp_path / "run.txt", hits=10,
                         threads=1, device="cpu", encoded_queries=tmp_path / "q.jsonl", quiet=True)
    assert set(run1) == {"q1", "q2"} and all(len(h) >= 1 for h in run1.values())
    scores = evaluate(tmp_path / "run.txt", tmp_path / "qrels.txt")
    assert set(scores) == {"ndcg@10", "mrr@10", "r@100", "r@1000", "map"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    # the query cache reproduces the run without the model
    run2 = search_topics(tmp_path / "idx", topics, "no-such-encoder", tmp_path / "run2.txt", hits=10, threads=1,
                         encoded_queries=tmp_path / "q.jsonl", quiet=True)
    assert run2 == run1
    cache = [json.loads(line) for line in open(tmp_path / "q.jsonl")]
    assert [c["id"] for c in cache] == ["q1", "q2"] and cache[0]["contents"] == "brain cancer"
    # the cache records its query encoder: another one's file is an error (reproduce's scratch file: encoded again)
    recorded = json.loads((tmp_path / "q.jsonl.encoder.json").read_text())
    assert recorded["encoder"] == str(tiny_checkpoint)
    other = dict(encoded_queries=tmp_path / "q.jsonl", hits=10, threads=1, device="cpu", quiet=True,
                 card_overrides={"query_top_k": 1})
    with pytest.raises(UsageError, match="another query encoder"):
        search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), tmp_path / "run3.txt", **other)
    run3 = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), tmp_path / "run3.txt",
                         stale_queries="replace", **other)
    assert all(len(json.loads(line)["vector"]) == 1 for line in open(tmp_path / "q.jsonl"))
    assert json.loads((tmp_path / "q.jsonl.encoder.json").read_text())["identity"] != recorded["identity"]
    # a file with no record (Pyserini's, or older) is read as it is
    (tmp_path / "q.jsonl.encoder.json").unlink()
    assert search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), tmp_path / "run4.txt", hits=10,
                         threads=1, encoded_queries=tmp_path / "q.jsonl", quiet=True) == run3
    # a query none of whose terms is in the index gets no lines, and the summary counts it
    (tmp_path / "none.jsonl").write_text('{"id": "q9", "contents": "zzz", "vector": {"no-such-term": 5}}\n')
    capsys.readouterr()
    got = search_topics(tmp_path / "idx", {"q1": "brain cancer", "q9": "zzz"}, str(tiny_checkpoint),
                        tmp_path / "run5.txt", hits=10, threads=1, encoded_queries=tmp_path / "none.jsonl",
                        stale_queries="keep")
    assert got["q9"] == [] and got["q1"] and "| 1 without hits" in capsys.readouterr().err


def test_index_records_its_encoder_and_search_checks_it(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import ENCODER_FILE, build_impact_index, index_encoder
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.search import search_topics

    tiny = resolve_card(str(tiny_checkpoint))
    encode_corpus(_corpus(tmp_path), tmp_path / "vec", str(tiny_checkpoint), device="cpu", quiet=True)
    build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    built = index_encoder(tmp_path / "idx")
    assert built["encoder"] == "tiny-encoder"
    assert built["passage_weighting"] == json.loads(json.dumps(tiny.passage_weighting()))
    topics = {"q1": "brain cancer"}
    kw = dict(hits=5, threads=1, device="cpu", quiet=True)

    def card(name, **settings):
        dataclasses.replace(tiny.with_overrides(**settings), name=name).save(tmp_path / name)
        return str(tmp_path / name)
    # top-k, scale, lengths and the query side do not change what a passage term weighs: searched as is
    same = search_topics(tmp_path / "idx", topics, card("reading", passage_top_k=3, quantization_scale=10.0,
                                                        passage_max_length=64, query_max_length=16), **kw)
    assert same["q1"]
    other = card("shifted", logit_shift=2.0, input_bonus=1.0)
    with pytest.raises(UsageError, match=r"weighs passages differently \(input_bonus, logit_shift\)"):
        search_topics(tmp_path / "idx", topics, other, **kw)
    assert search_topics(tmp_path / "idx", topics, other, ignore_index_encoder=True, **kw)["q1"] is not None
    # the Python route: CspladeQueryEncoder.use_index checks the same way (check=False skips it)
    from csplade_pyserini.encoders import CspladeQueryEncoder

    with pytest.raises(UsageError, match="logit_shift"):
        CspladeQueryEncoder(other, device="cpu").use_index(tmp_path / "idx")
    CspladeQueryEncoder(other, device="cpu").use_index(tmp_path / "idx", check=False)
    CspladeQueryEncoder(str(tiny_checkpoint), device="cpu").use_index(tmp_path / "idx")
    # shards of two encoders are refused before indexing; a record that is not one is named
    encode_corpus(_corpus(tmp_path), tmp_path / "vec2", other, shard_id=1, shard_num=2, device="cpu", quiet=True)
    encode_corpus(_corpus(tmp_path), tmp_path / "vec2", str(tiny_checkpoint), shard_id=0, shard_num=2, device="cpu",
                  quiet=True)
    with pytest.raises(UsageError, match="one encoder's vectors"):
        build_impact_index(tmp_path / "vec2", tmp_path / "idx2", threads=1, quiet=True)
    (tmp_path / "idx" / ENCODER_FILE).write_text("[]")
    with pytest.raises(UsageError, match="not an index encoder record"):
        search_topics(tmp_path / "idx", topics, other, **kw)


def test_hybrid_search_fuses_with_a_bm25_index(tmp_path, tiny_checkpoint, capsys):
    from csplade_pyserini.bm25 import bm25_results
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.index import main as index_main
    from csplade_pyserini.search import main as search_main
    from csplade_pyserini.search import search_topics

    corpus = _corpus(tmp_path)
    encode_corpus(corpus, tmp_path / "vec", str(tiny_checkpoint), fields=["title", "text"], device="cpu", quiet=True)
    build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    index_main(["--bm25", "--input", str(corpus), "--index", str(tmp_path / "bm25")])
    assert "3 documents (1 empty documents skipped)" in capsys.readouterr().err  # d2 is empty: counted, not lost
    # postings and docids only (what BM25 search reads); --store-* add what feedback and fetching text need
    index_main(["--bm25", "--input", str(corpus), "--index", str(tmp_path / "bm25-full"), "--store-raw",
                "--store-positions", "--store-docvectors"])
    from pyserini.index.lucene import LuceneIndexReader

    lean, full = LuceneIndexReader(str(tmp_path / "bm25")), LuceneIndexReader(str(tmp_path / "bm25-full"))
    assert lean.doc_raw("d4") is None and "mice" in full.doc_raw("d4")
    assert not lean.get_document_vector("d4") and full.get_document_vector("d4")
    positions = [lean.get_postings_list("mice")[0].positions, full.get_postings_list("mice")[0].positions]
    assert all(p < 0 for p in positions[0]) and positions[1] and all(p >= 0 for p in positions[1])  # -1: none stored
    topics = {"q1": "brain cancer", "q2": "mice study"}
    assert bm25_results(tmp_path / "bm25-full", topics, 10, 1) == bm25_results(tmp_path / "bm25", topics, 10, 1)
    kw = dict(hits=10, threads=1, device="cpu", quiet=True)
    alone = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), **kw)
    bm25 = bm25_results(tmp_path / "bm25", topics, 10, 1)
    assert [d for d, _ in bm25["q2"]][:1] == ["d4"]

    def order(hits):  # fuse breaks ties by docid
        return [d for d, _ in sorted(hits, key=lambda x: (-x[1], x[0]))]
    hybrid = dict(kw, bm25_index=tmp_path / "bm25", fusion="interpolation")
    only_csplade = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), fusion_weights=[1.0, 0.0], **hybrid)
    only_bm25 = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), fusion_weights=[0.0, 1.0], **hybrid)
    for q in topics:
        assert [d for d, _ in only_csplade[q]] == order(alone[q])
        assert [d for d, _ in only_bm25[q]] == order(bm25[q])
    both = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), fusion_weights=[0.5, 0.5], **hybrid)
    assert all({d for d, _ in both[q]} == {d for d, _ in alone[q] + bm25[q]} for q in topics)
    # the CLI writes the fused run, tagged as such
    (tmp_path / "topics.tsv").write_text("q1\tbrain cancer\nq2\tmice study\n")
    search_main(["--index", str(tmp_path / "idx"), "--topics", str(tmp_path / "topics.tsv"), "--encoder",
                 str(tiny_checkpoint), "--output", str(tmp_path / "run.txt"), "--bm25-index", str(tmp_path / "bm25"),
                 "--device", "cpu", "--threads", "1"])
    lines = open(tmp_path / "run.txt").read().split("\n")
    assert lines[0].startswith("q1 Q0 ") and lines[0].endswith(" csplade-fused")
    assert "fusion (rrf k 60)" in capsys.readouterr().err  # the tiny card has no hybrid setting: rrf
    # bad settings fail before any search, naming the problem
    with pytest.raises(UsageError, match="interpolation's"):
        search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), bm25_index=tmp_path / "bm25", fusion="rrf",
                      fusion_weights=[1.0, 1.0], **kw)
    with pytest.raises(UsageError, match="--bm25-index .* not a Lucene index"):
        search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), bm25_index=tmp_path / "vec", **kw)
    with pytest.raises(SystemExit) as e:
        search_main(["--index", str(tmp_path / "idx"), "--topics", str(tmp_path / "topics.tsv"), "--output",
                     str(tmp_path / "r.txt"), "--fusion", "interpolation"])
    assert e.value.code != 0 and "pass --bm25-index too" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(SystemExit):
        index_main(["--bm25", "--input", str(tmp_path / "bad.jsonl"), "--index", str(tmp_path / "bm25b")])
    assert "bad.jsonl:2: duplicate document id 'a'" in capsys.readouterr().err


def test_index_detects_incomplete_shard(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import build_impact_index

    encode_corpus(_corpus(tmp_path), tmp_path / "vec", str(tiny_checkpoint), device="cpu", quiet=True)
    f = tmp_path / "vec" / "embeddings.jsonl"
    f.write_text("".join(open(f).readlines()[:-1]))
    with pytest.raises(UsageError, match="3 documents, but its manifest says 4"):
        build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)


@functools.lru_cache(maxsize=1)
def _documented_flags() -> dict:
    """{verb: flags} that the command blocks of README.md and eval/**/README.md pass to `python -m
    csplade_pyserini.<verb>` or `csplade-<verb>` (a launcher line's flags are Pyserini's and are not collected)."""
    root = Path(__file__).resolve().parents[1]
    flags: dict = {}
    for path in [root / "README.md", *sorted((root / "eval").glob("**/README.md"))]:
        for block in re.findall(r"```(?:bash|sh)?\n(.*?)```", path.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0]
                for m in re.finditer(r"(?:^|[\s;&(|`])(?:python -m csplade_pyserini\.(\w+)|csplade-(\w[\w-]*))"
                                     r"((?:(?![;&|]).)*)", line):
                    verb = m.group(1) or m.group(2).replace("-", "_")
                    if verb != "pyserini":
                        flags.setdefault(verb, set()).update(re.findall(r"(?<![\w-])--[\w-]+", m.group(3)))
    return flags


def test_documented_commands_are_found():
    """The README parser finds the commands (so test_help's flag check below cannot pass by finding none)."""
    flags = _documented_flags()
    assert {"encode", "index", "search", "train", "reproduce"} <= set(flags)
    assert {"--corpus", "--embeddings", "--encoder"} <= flags["encode"] and "--bm25" in flags["index"]


@pytest.mark.parametrize("verb", ["encode", "index", "search", "eval", "explain", "demo", "train", "mine_negatives",
                                  "plot_log", "reproduce", "fuse", "ship", "calibrate", "fit_query_weights",
                                  "quantize", "results", "pyserini_cli", "segment"])
def test_help(verb):
    out = subprocess.run([sys.executable, "-m", f"csplade_pyserini.{verb}", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout.lower()
    # nothing else: start-up noise of dependencies (torchao's CUDA-only kernels on a CPU machine) is filtered
    assert out.stderr == "", out.stderr
    # every flag the READMEs' commands give this verb is one its --help lists (docs kept current)
    stale = sorted(f for f in _documented_flags().get(verb, ()) if f not in out.stdout)
    assert not stale, f"README commands pass {stale} to {verb}, which its --help does not list"


def test_training_imports_print_no_offline_kernel_noise():
    """peft imports bitsandbytes, which on AVX-512 BF16 CPUs asks the hub for a kernel and warns twice offline."""
    pytest.importorskip("bitsandbytes")
    out = subprocess.run([sys.executable, "-c", "import csplade_pyserini, peft, bitsandbytes"], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    assert "kernels-community" not in out.stderr and "publisher trust" not in out.stderr, out.stderr


def test_resume_does_not_skip_a_shard_of_other_documents(tmp_path, tiny_checkpoint):
    """--resume skipped a complete shard even after the corpus changed, so added documents never reached the index."""
    from csplade_pyserini.encode import encode_corpus

    docs = [{"id": "d0", "text": "cells"}, {"id": "d1", "text": "mice"}]
    kw = dict(device="cpu", quiet=True)
    encode_corpus(_corpus(tmp_path, docs), tmp_path / "v", str(tiny_checkpoint), **kw)
    assert encode_corpus(_corpus(tmp_path, docs), tmp_path / "v", str(tiny_checkpoint), resume=True, **kw)["docs_in"] == 2
    with pytest.raises(UsageError, match="encoded from 2 documents; the corpus now gives this shard 3"):
        encode_corpus(_corpus(tmp_path, docs + [{"id": "d2", "text": "brain"}]), tmp_path / "v", str(tiny_checkpoint),
                      resume=True, **kw)
    renamed = [docs[0], {"id": "d9", "text": "mice"}]
    with pytest.raises(UsageError, match="other document ids than the corpus now has"):
        encode_corpus(_corpus(tmp_path, renamed), tmp_path / "v", str(tiny_checkpoint), resume=True, **kw)
    again = encode_corpus(_corpus(tmp_path, renamed), tmp_path / "v", str(tiny_checkpoint), resume=True,
                          overwrite=True, **kw)
    assert again["docs_out"] == 2 and "d9" in (tmp_path / "v" / "embeddings.jsonl").read_text()


@pytest.mark.parametrize("legacy_progress,pipeline", [(False, "off"), (True, "off"), (False, "on")],
                         ids=["timed", "progress-without-seconds", "pipelined"])
def test_interrupted_shard_resumes_without_loss_or_duplicates(tmp_path, tiny_checkpoint, monkeypatch, legacy_progress,
                                                              pipeline):
    from csplade_pyserini import writer as writer_mod
    from csplade_pyserini.encode import encode_corpus

    docs = [{"id": f"d{i}", "text": "cells cancer mice " * (i % 4)} for i in range(40)]
    corpus = _corpus(tmp_path, docs)
    ref = encode_corpus(corpus, tmp_path / "ref", str(tiny_checkpoint), batch_size=2, device="cpu", quiet=True)

    calls = {"n": 0}
    real_write = writer_mod.AtomicJsonlWriter.write

    def dying_write(self, batch_info, fields=None):
        calls["n"] += 1
        if calls["n"] == 2:  # killed while writing the second batch: half of it reaches the file
            real_write(self, {k: v[:3] for k, v in batch_info.items()}, fields)
            self.file.flush()
            raise KeyboardInterrupt
        real_write(self, batch_info, fields)

    monkeypatch.setattr(writer_mod.AtomicJsonlWriter, "write", dying_write)
    out = tmp_path / "vec"
    with pytest.raises(KeyboardInterrupt):  # pipelined: raised in the writer thread, re-raised here
        encode_corpus(corpus, out, str(tiny_checkpoint), batch_size=2, device="cpu", quiet=True, pipeline=pipeline)
    assert calls["n"] == 2  # no batch was written after the one that died
    monkeypatch.setattr(writer_mod.AtomicJsonlWriter, "write", real_write)
    assert not (out / "embeddings.jsonl").exists()  # nothing half-done is visible to the indexer
    with pytest.raises(UsageError, match="interrupted run.*--resume"):
        encode_corpus(corpus, out, str(tiny_checkpoint), batch_size=2, device="cpu", quiet=True)
    progress_file = tmp_path / "vec.manifest" / "embeddings.jsonl.progress.json"
    progress = json.loads(progress_file.read_text())
    assert progress["docs"] > 0 and progress["seconds"] > 0  # the interrupted run's encoding time is kept
    if legacy_progress:  # written by a version that did not record the time: only the resumed run is timed
        progress_file.write_text(json.dumps({k: v for k, v in progress.items() if k != "seconds"}))
    done = encode_corpus(corpus, out, str(tiny_checkpoint), batch_size=2, device="cpu", quiet=True, resume=True,
                         pipeline=pipeline)
    assert (out / "embeddings.jsonl").read_text() == (tmp_path / "ref" / "embeddings.jsonl").read_text()
    assert done["docs_out"] == 40 and done["empty_texts"] == ref["empty_texts"] == 10
    # docs/s counts the time of both runs over all 40 docs, not 40 docs over the resumed run's time alone
    assert done["resumed_docs"] == progress["docs"]
    assert done["timed_docs"] == (40 - progress["docs"] if legacy_progress else 40)
    if not legacy_progress:
        assert done["seconds"] >= progress["seconds"]
    assert done["docs_per_s"] == round(done["timed_docs"] / max(done["seconds"], 1e-9), 2)  # of the recorded seconds
    again = encode_corpus(corpus, out, str(tiny_checkpoint), device="cpu", quiet=True, resume=True)
    assert again["sha256"] == done["sha256"] == ref["sha256"]  # a finished shard is skipped


def test_index_detects_missing_shard(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import build_impact_index

    docs = [{"id": f"d{i}", "text": "cells cancer"} for i in range(6)]
    corpus = _corpus(tmp_path, docs)
    for s in (0, 2):  # shard 1 of 3 never encoded
        encode_corpus(corpus, tmp_path / "vec", str(tiny_checkpoint), shard_id=s, shard_num=3, device="cpu", quiet=True)
    with pytest.raises(UsageError, match=r"1 of 3 shards missing \(embeddings-001-of-003.jsonl\)"):
        build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)


def test_max_passage_docs_keeps_each_documents_best_segment():
    from csplade_pyserini.search import max_passage_docs

    got = [("d1#2", 9.0), ("d2#0", 8.0), ("d1#0", 7.0), ("q1#1", 6.5), ("d3", 6.0), ("d2#5", 5.0), ("d4#0", 4.0)]
    assert max_passage_docs(got) == [("d1", 9.0), ("d2", 8.0), ("q1", 6.5), ("d3", 6.0), ("d4", 4.0)]
    assert max_passage_docs(got, hits=2) == [("d1", 9.0), ("d2", 8.0)]
    assert max_passage_docs(got, drop="q1") == [("d1", 9.0), ("d2", 8.0), ("d3", 6.0), ("d4", 4.0)]
    assert max_passage_docs([("a_1", 2.0), ("a_2", 1.0)], delimiter="_") == [("a", 2.0)]


def test_search_max_passage_over_a_segmented_index(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.search import main, search_topics

    segments = [("d1#0", "the study of mice"), ("d1#1", "brain cancer risk in mice"), ("d2#0", "brain cells"),
                ("d2#1", "cancer cells and radiation"), ("d2#2", "microwave phones"), ("d3#0", "protein gene")]
    corpus = _corpus(tmp_path, [{"id": i, "text": t} for i, t in segments])
    encode_corpus(corpus, tmp_path / "vec", str(tiny_checkpoint), device="cpu", quiet=True)
    build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    topics = {"q1": "brain cancer", "q2": "mice"}
    common = dict(threads=1, device="cpu", quiet=True, encoded_queries=tmp_path / "q.jsonl")
    seg = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), hits=10, **common)
    docs = search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), tmp_path / "run.txt", hits=10,
                         max_passage=True, max_passage_hits=2, **common)
    for q in topics:
        best = {}
        for docid, score in seg[q]:
            best.setdefault(docid.split("#")[0], score)
        assert all("#" not in d for d, _ in docs[q]) and len(docs[q]) == min(2, len(best))
        assert docs[q] == sorted(best.items(), key=lambda kv: -kv[1])[:2]  # each document's best segment
    lines = (tmp_path / "run.txt").read_text().splitlines()
    assert [ln.split()[3] for ln in lines if ln.startswith("q1 ")] == ["1", "2"][:len(docs["q1"])]
    with pytest.raises(UsageError, match="--max-passage needs"):
        search_topics(tmp_path / "idx", topics, str(tiny_checkpoint), hits=10, max_passage=True, max_passage_hits=0,
                      **common)
    main(["--index", str(tmp_path / "idx"), "--topics", str(_topics_file(tmp_path, topics)), "--output",
          str(tmp_path / "cli.txt"), "--encoder", str(tiny_checkpoint), "--device", "cpu", "--hits", "10",
          "--encoded-queries", str(tmp_path / "q.jsonl"), "--max-passage", "--max-passage-hits", "2"])
    assert (tmp_path / "cli.txt").read_text() == (tmp_path / "run.txt").read_text()  # the CLI flags reach it


def _topics_file(tmp_path, topics):
    p = tmp_path / "topics.tsv"
    p.write_text("".join(f"{q}\t{t}\n" for q, t in topics.items()))
    return p


def test_segment_windows_and_corpus(tmp_path, capsys):
    from csplade_pyserini.corpus import CorpusError
    from csplade_pyserini.segment import main, segment_corpus, windows

    w = [str(i) for i in range(10)]
    assert windows(w, 4, 2) == [w[0:4], w[2:6], w[4:8], w[6:10]]  # the last window reaches the end
    assert windows(w, 4, 3) == [w[0:4], w[3:7], w[6:10]] and windows(w, 10, 5) == [w] and windows([], 4, 2) == [[]]
    assert windows(w, 4, 4) == [w[0:4], w[4:8], w[8:10]]
    docs = [{"id": "d1", "title": "T", "text": " ".join(w)}, {"id": "d2", "title": "", "text": ""},
            {"id": "d3", "title": "U", "text": "short one"}]
    corpus = _corpus(tmp_path, docs)
    counts = segment_corpus(corpus, tmp_path / "seg.jsonl", ["title", "text"], words=4, stride=3, quiet=True)
    segs = [json.loads(line) for line in open(tmp_path / "seg.jsonl")]
    assert [s["id"] for s in segs] == ["d1#0", "d1#1", "d1#2", "d2#0", "d3#0"]  # every document has a segment
    assert segs[1] == {"id": "d1#1", "title": "T", "text": "3 4 5 6"} and segs[3]["text"] == ""
    assert counts == {"docs_in": 3, "segments_out": 5, "docs_split": 1, "empty_docs": 1, "max_segments": 3}
    with pytest.raises(UsageError, match="exists"):
        segment_corpus(corpus, tmp_path / "seg.jsonl", ["title", "text"], words=4, stride=3, quiet=True)
    with pytest.raises(UsageError, match="--stride in 1..--words"):
        segment_corpus(corpus, tmp_path / "x.jsonl", words=4, stride=5)
    with pytest.raises(CorpusError, match="'d#1' contains the docid delimiter"):
        segment_corpus(_corpus(tmp_path, [{"id": "d#1", "text": "a"}]), tmp_path / "y.jsonl", quiet=True)
    with pytest.raises(SystemExit) as e:  # a bad record is one line naming it, exit 2
        main(["--corpus", str(_corpus(tmp_path, [{"id": "a", "txt": "x"}])), "--output", str(tmp_path / "z.jsonl")])
    assert e.value.code == 2 and "corpus.jsonl:1: missing field(s) ['text']" in capsys.readouterr().err
    assert not (tmp_path / "z.jsonl").exists()
