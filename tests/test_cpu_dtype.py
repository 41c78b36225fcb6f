"""Which dtype a bf16 card runs in on CPU: bf16 only where it is measured (or forced) to beat float32."""
import json

import pytest
import torch

from csplade_pyserini.modeling import backbone
from csplade_pyserini.modeling.backbone import BaseModelError, cpu_has_fast_bf16, resolve_dtype


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    monkeypatch.setenv("CSPLADE_CACHE", str(tmp_path))
    monkeypatch.delenv(backbone.BF16_ENV, raising=False)
    backbone._cached_bf16_probe.cache_clear()
    yield tmp_path
    backbone._cached_bf16_probe.cache_clear()


def test_env_override_wins(fresh, monkeypatch):
    monkeypatch.setattr(backbone, "bf16_probe", lambda: pytest.fail("probe must not run when forced"))
    monkeypatch.setenv(backbone.BF16_ENV, "1")
    assert cpu_has_fast_bf16() and resolve_dtype("bfloat16", "cpu") == "bfloat16"
    monkeypatch.setenv(backbone.BF16_ENV, "0")
    assert not cpu_has_fast_bf16() and resolve_dtype("bfloat16", "cpu") == "float32"
    monkeypatch.setenv(backbone.BF16_ENV, "yes")
    with pytest.raises(BaseModelError, match="must be 0 or 1"):
        cpu_has_fast_bf16()


def test_no_avx512_bf16_means_float32_without_probing(fresh, monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(backbone, "bf16_probe", lambda: pytest.fail("no bf16 units: nothing to measure"))
    assert resolve_dtype("bfloat16", "cpu") == "float32"
    assert resolve_dtype("float16", "cpu") == "float32"
    assert resolve_dtype("bfloat16", "cuda") == "bfloat16"


@pytest.mark.parametrize("ratio,fast", [(0.6, False), (1.8, True)])
def test_avx512_bf16_is_measured_once_and_cached(fresh, monkeypatch, ratio, fast):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    calls = []
    monkeypatch.setattr(backbone, "bf16_probe", lambda: calls.append(1) or ratio)
    assert cpu_has_fast_bf16() is fast
    assert cpu_has_fast_bf16() is fast and len(calls) == 1
    (entry,) = json.loads((fresh / "cpu_bf16.json").read_text()).values()
    assert entry == {"bf16_over_fp32": ratio, "fast": fast}
    backbone._cached_bf16_probe.cache_clear()  # a new process reads the answer from the cache file
    assert cpu_has_fast_bf16() is fast and len(calls) == 1


def test_probe_measures_something():
    assert 0 < backbone.bf16_probe(size=128, reps=2) < 1e4
