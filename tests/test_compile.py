"""The --compile path: the torch.compile'd body gives the eager model's outputs, for every variant, and the option
reaches the encoder from the CLIs' Python entry points. Tiny random models (fp32), so compile time stays small."""
from __future__ import annotations

import pytest
import torch

from csplade_pyserini.encoder import CspladeEncoder

TEXTS = ["the cell cancer risk", "mouse brain gene study results show increase", "a", "phones cause radiation ?"]


@pytest.mark.parametrize("variant", ["causal", "echo", "bi"])
def test_compiled_body_matches_eager(tiny_checkpoint, variant):
    eager = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", variant=variant)
    compiled = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", variant=variant, compile=True)
    assert compiled.precision.get("compiled") is True and compiled.model._compiled_body is not None
    m_e, m_c = eager.model, compiled.model
    calls, body = [], m_c._compiled_body
    m_c._compiled_body = lambda *a: calls.append(1) or body(*a)  # noqa: E731 (a spy: the compiled body is what runs)
    for batch in ([TEXTS[0]], TEXTS):  # batch 1 (single queries) and a padded batch: two compiled shapes
        f = m_e.features(m_e.token_lists(batch, "query: "), 16)
        with torch.inference_mode():
            w_e = m_e(f.input_ids, f.attention_mask, f.pool_mask)
            w_c = m_c(f.input_ids, f.attention_mask, f.pool_mask)
        torch.testing.assert_close(w_c, w_e, atol=1e-4, rtol=1e-4)
    assert compiled.encode(TEXTS, "passage") == eager.encode(TEXTS, "passage")
    assert len(calls) >= 3


def test_compiled_model_still_trains_eagerly(tiny_checkpoint):
    """Gradients bypass the compiled (inference-only, frozen-weight) body."""
    enc = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", compile=True)
    m = enc.model
    f = m.features(m.token_lists(TEXTS[:2], ""), 16)
    m.train()
    with torch.enable_grad():
        w = m(f.input_ids, f.attention_mask, f.pool_mask)
        w.sum().backward()
    assert any(p.grad is not None for p in m.parameters() if p.requires_grad)


def test_compile_flag_in_cli_help(capsys):
    from csplade_pyserini.search import build_parser

    assert "--compile" in build_parser().format_help()
