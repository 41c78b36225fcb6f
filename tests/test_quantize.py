"""Precisions: each loads and encodes on CPU (or skips with the backend's reason); top terms stay close to fp32."""
import pytest

from csplade_pyserini.quantize import PRECISIONS, PrecisionUnavailable, model_bytes

TEXT = "microwave radiation causes brain cancer in mice and human cells"
# top-8 overlap with fp32 required per precision on the tiny random model (8-bit: near-identical; 4-bit: coarse)
MIN_OVERLAP = {"fp32": 1.0, "bf16": 0.75, "fp16": 0.75, "torch-int8-dynamic": 0.6, "torchao-int8-weight-only": 0.75,
               "torchao-int8-dynamic": 0.6, "torchao-int4-weight-only": 0.4, "bnb-int8": 0.6, "bnb-nf4": 0.4}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, lm_session, tokenizer_session):
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.modeling.card import EncoderCard

    d = tmp_path_factory.mktemp("q")
    lm_session.save_pretrained(d / "base")
    tokenizer_session.save_pretrained(d / "base")
    EncoderCard(name="tiny", base_model=str(d / "base"), dtype="float32", query_top_k=64,
                query_max_length=16).save(d / "enc")
    enc = CspladeEncoder.load(str(d / "enc"), device="cpu", precision="fp32")
    return d / "enc", enc.encode([TEXT], "query")[0], model_bytes(enc.model)


def _top(vec, k=8):
    return {t for t, _ in sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:k]}


@pytest.mark.parametrize("precision", list(PRECISIONS))
def test_precision_loads_encodes_and_keeps_top_terms(precision, reference):
    from csplade_pyserini.encoder import CspladeEncoder

    enc_dir, ref, ref_bytes = reference
    try:
        enc = CspladeEncoder.load(str(enc_dir), device="cpu", precision=precision)
    except PrecisionUnavailable as e:
        pytest.skip(f"{precision}: {e}")
    got = enc.encode([TEXT], "query")[0]
    assert got and all(isinstance(w, int) and w > 0 for w in got.values())
    overlap = len(_top(got) & _top(ref)) / 8
    assert overlap >= MIN_OVERLAP[precision], (precision, overlap)
    if precision not in ("fp32", "bf16", "fp16"):
        assert enc.precision["quantized_linears"] > 0
    if precision in ("torchao-int8-weight-only", "torch-int8-dynamic", "bnb-int8"):
        assert model_bytes(enc.model) < ref_bytes


def test_unknown_precision_is_a_clear_error():
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.quantize import check_precision

    with pytest.raises(UsageError, match="unknown precision 'int3'"):
        check_precision("int3")


def test_quantize_cli_refuses_an_unknown_precision_even_without_texts(capsys):
    from csplade_pyserini.quantize import main

    with pytest.raises(SystemExit) as e:
        main(["--precision", "int3"])  # without texts it lists the precisions; with a bad one it must not exit 0
    assert e.value.code == 2 and "invalid choice: 'int3'" in capsys.readouterr().err


def test_study_time_limit_stops_a_slow_precision_and_keeps_what_it_measured():
    """quantization_study's per-precision limit raises between Python steps and leaves no alarm behind."""
    import importlib.util
    import signal
    import time
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "eval" / "bench" / "quantization_study.py"
    spec = importlib.util.spec_from_file_location("quantization_study", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    row = {}
    with pytest.raises(study.StudyTimeout, match="limit per precision"):
        with study.time_limit(0.2):
            row["first"] = 1
            while True:
                time.sleep(0.01)
    assert row == {"first": 1}
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    with study.time_limit(0):  # no limit
        time.sleep(0.01)
    with study.time_limit(5):  # finishes in time: nothing raised, the alarm is cleared
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert study.seconds_for(["480", "bf16=150"], "bf16") == 150
    assert study.seconds_for(["480", "bf16=150"], "fp32") == 480
    assert study.seconds_for(["0"], "fp32") == 0
    with pytest.raises(SystemExit, match="not SECONDS"):
        study.seconds_for(["bf16=soon"], "bf16")
