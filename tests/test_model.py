import pytest
import torch

from csplade_pyserini.modeling.head import naive_sparse_pooling
from csplade_pyserini.modeling.model import CspladeModel

TEXTS = ["microwave radiation causes brain cancer", "cells", "what does the protein gene do in human cells ?",
         "mice and human study results show increase of risk"]


def _model(lm, tok, variant="causal", chunk=5):
    return CspladeModel(lm, tok, variant, chunk_tokens=chunk).eval()


def _encode(model, texts, prefix="passage : ", max_length=64):
    f = model.features(model.token_lists(texts, prefix), max_length)
    with torch.no_grad():
        return model(f.input_ids, f.attention_mask, f.pool_mask), f


@pytest.mark.parametrize("variant", ["causal", "echo", "bi"])
def test_pooling_equals_naive_reference(lm, tokenizer, variant):
    model = _model(lm, tokenizer, variant)
    w, f = _encode(model, TEXTS)
    with torch.no_grad():
        logits = model.causal_lm(input_ids=f.input_ids, attention_mask=f.attention_mask, use_cache=False).logits
    ref = naive_sparse_pooling(logits, f.pool_mask, model.allowed)
    torch.testing.assert_close(w, ref, rtol=1e-5, atol=1e-5)
    assert (w > 0).any(), "random head should give some non-zero weights"


def test_bos_prefix_padding_and_specials_are_not_pooled(lm, tokenizer):
    model = _model(lm, tokenizer)
    assert model.bos_id == tokenizer.bos_token_id
    toks = model.token_lists(["cells <extra_special> cancer"], "query : ")
    f = model.features(toks, 64)
    ids, pool = f.input_ids[0].tolist(), f.pool_mask[0].tolist()
    assert ids[0] == tokenizer.bos_token_id and not pool[0]
    words = tokenizer.convert_ids_to_tokens(ids)
    pooled = [t for t, p in zip(words, pool) if p]
    assert pooled == ["cells", "cancer"], pooled  # not BOS, not 'query', ':', not the special token
    # padding: a short text padded in a batch pools nothing past its end
    f2 = model.features(model.token_lists(["cells", "the brain and the cells of mice"], ""), 64)
    assert f2.attention_mask[0].sum() < f2.attention_mask.shape[1]
    assert not f2.pool_mask[0][f2.attention_mask[0] == 0].any()


@pytest.mark.parametrize("variant", ["causal", "echo", "bi"])
def test_output_does_not_depend_on_batch(lm, tokenizer, variant):
    model = _model(lm, tokenizer, variant)
    batched, _ = _encode(model, TEXTS)
    for i, t in enumerate(TEXTS):
        single, _ = _encode(model, [t])
        torch.testing.assert_close(batched[i], single[0], rtol=1e-5, atol=1e-5)


def test_special_ids_never_get_weight(lm, tokenizer):
    with torch.no_grad():
        lm.lm_head.weight[:5] += 50.0  # make special-token logits huge
    w, _ = _encode(_model(lm, tokenizer), TEXTS)
    assert torch.all(w[:, :5] == 0)


def test_echo_pools_only_second_copy(lm, tokenizer):
    model = _model(lm, tokenizer, "echo")
    f = model.features(model.token_lists(["brain cancer risk"], "passage : "), 64)
    ids, pool = f.input_ids[0].tolist(), f.pool_mask[0].tolist()
    n = (len(ids) - 1) // 2  # BOS + two copies
    assert ids[1:1 + n] == ids[1 + n:]
    assert not any(pool[:1 + n])
    assert pool[1 + n:] == [False, False, True, True, True]  # 'passage', ':' then the text
    # the echo result equals max-pooling the second copy of the doubled input with the causal model
    w_echo, _ = _encode(model, ["brain cancer risk"])
    causal = _model(lm, tokenizer, "causal")
    with torch.no_grad():
        logits = causal.causal_lm(input_ids=f.input_ids, attention_mask=f.attention_mask, use_cache=False).logits
    torch.testing.assert_close(w_echo, naive_sparse_pooling(logits, f.pool_mask, causal.allowed), rtol=1e-5, atol=1e-5)


def test_bi_lets_early_tokens_see_later_ones(lm, tokenizer):
    import copy

    a = tokenizer("the brain cancer", add_special_tokens=False, return_tensors="pt")["input_ids"]
    b = a.clone()
    b[0, -1] = tokenizer.convert_tokens_to_ids("mice")
    att = torch.ones_like(a)
    causal = _model(copy.deepcopy(lm), tokenizer, "causal")
    bi = _model(lm, tokenizer, "bi")
    with torch.no_grad():
        hc_a, hc_b = causal.hidden_states(a, att), causal.hidden_states(b, att)
        hb_a, hb_b = bi.hidden_states(a, att), bi.hidden_states(b, att)
    torch.testing.assert_close(hc_a[0, 0], hc_b[0, 0])  # causal: the first token cannot see the last
    assert (hb_a[0, 0] - hb_b[0, 0]).abs().max() > 1e-4  # bi: it can
    # and bi still ignores padding keys
    padded = torch.cat([a, torch.zeros(1, 3, dtype=torch.long)], 1)
    att_p = torch.cat([att, torch.zeros(1, 3, dtype=torch.long)], 1)
    with torch.no_grad():
        torch.testing.assert_close(bi.hidden_states(padded, att_p)[0, :3], hb_a[0], rtol=1e-5, atol=1e-5)


def test_truncation_and_empty_texts_are_counted(lm, tokenizer):
    model = _model(lm, tokenizer)
    long = " ".join(["cells"] * 50)
    f = model.features(model.token_lists([long, "", "cancer"], "passage : "), 16)
    assert f.input_ids.shape[1] == 16
    assert f.n_truncated == 1 and f.n_empty == 1
    with torch.no_grad():
        w = model(f.input_ids, f.attention_mask, f.pool_mask)
    assert torch.all(w[1] == 0), "an empty text has an empty vector"


def test_lowercase_option_tokenizes_the_lowercased_text_only(lm, tokenizer):
    lower = CspladeModel(lm, tokenizer, "causal", lowercase=True)
    plain = CspladeModel(lm, tokenizer, "causal")
    assert lower.token_lists(["Brain CANCER"], "passage : ") == plain.token_lists(["brain cancer"], "passage : ")
