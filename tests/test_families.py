"""The head and variants work for the causal-LM families users bring (tiny random configs, offline)."""
import pytest
import torch

from csplade_pyserini.modeling.head import naive_sparse_pooling
from csplade_pyserini.modeling.model import CspladeModel

FAMILIES = ["Llama", "Qwen2", "Mistral", "Gemma2"]


def make_family_lm(family: str, vocab: int):
    import transformers

    cfg_cls = getattr(transformers, f"{family}Config")
    lm_cls = getattr(transformers, f"{family}ForCausalLM")
    kw = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    if family == "Gemma2":
        kw.update(head_dim=8, final_logit_softcapping=3.0, query_pre_attn_scalar=8, sliding_window=64)
    torch.manual_seed(0)
    lm = lm_cls(cfg_cls(**kw)).eval()
    with torch.no_grad():
        lm.get_output_embeddings().weight.normal_(0, 0.5)
    return lm


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("variant", ["causal", "echo", "bi"])
def test_family_pooling_equals_naive(family, variant, tokenizer):
    lm = make_family_lm(family, len(tokenizer))
    model = CspladeModel(lm, tokenizer, variant, chunk_tokens=4).eval()
    texts = ["microwave radiation causes brain cancer", "cells", "mice and human study"]
    f = model.features(model.token_lists(texts, "query : "), 32)
    with torch.no_grad():
        w = model(f.input_ids, f.attention_mask, f.pool_mask)
        logits = model.causal_lm(input_ids=f.input_ids, attention_mask=f.attention_mask, use_cache=False).logits
    torch.testing.assert_close(w, naive_sparse_pooling(logits, f.pool_mask, model.allowed), rtol=1e-5, atol=1e-5)
    assert (w > 0).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_family_bi_removes_causal_mask(family, tokenizer):
    a = tokenizer("the brain cancer", add_special_tokens=False, return_tensors="pt")["input_ids"]
    b = a.clone()
    b[0, -1] = tokenizer.convert_tokens_to_ids("mice")
    att = torch.ones_like(a)
    causal = CspladeModel(make_family_lm(family, len(tokenizer)), tokenizer, "causal")
    bi = CspladeModel(make_family_lm(family, len(tokenizer)), tokenizer, "bi")
    with torch.no_grad():
        torch.testing.assert_close(causal.hidden_states(a, att)[0, 0], causal.hidden_states(b, att)[0, 0])
        assert (bi.hidden_states(a, att)[0, 0] - bi.hidden_states(b, att)[0, 0]).abs().max() > 1e-4


@pytest.mark.parametrize("family", FAMILIES)
def test_family_log_softmax_head_equals_naive(family, tokenizer):
    """The log-softmax head normalizes what the model's own softmax sees (Gemma 2: the soft-capped logits)."""
    lm = make_family_lm(family, len(tokenizer))
    bias = torch.linspace(-1, 1, lm.get_output_embeddings().weight.shape[0])
    model = CspladeModel(lm, tokenizer, "echo", chunk_tokens=4, logit_norm="log_softmax", term_bias=bias,
                         logit_shift=-3.0).eval()
    texts = ["microwave radiation causes brain cancer", "cells", "mice and human study"]
    f = model.features(model.token_lists(texts, "query : "), 32)
    with torch.no_grad():
        w = model(f.input_ids, f.attention_mask, f.pool_mask)
        logits = model.causal_lm(input_ids=f.input_ids, attention_mask=f.attention_mask, use_cache=False).logits
    ref = naive_sparse_pooling(logits, f.pool_mask, model.allowed, logit_norm="log_softmax", term_bias=bias,
                               logit_shift=-3.0)
    torch.testing.assert_close(w, ref, rtol=1e-5, atol=1e-5)
    assert (w > 0).any()
