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


def test_pool_lead_adds_the_position_that_predicts_the_first_text_token(lm, tokenizer):
    from tests.conftest import make_tokenizer

    echo = _model(lm, tokenizer, "echo")
    toks = echo.token_lists(["brain cancer risk"], "passage : ")
    f0, f1 = echo.features(toks, 64), echo.features(toks, 64, pool_lead=True)
    assert f0.lead_mask is None and torch.equal(f1.pool_mask, f0.pool_mask)  # the text's own positions: unchanged
    n = (f1.input_ids.shape[1] - 1) // 2
    assert f1.lead_mask[0].tolist() == [False] * (n + 2) + [True] + [False] * 3  # ':' of the second copy
    causal = _model(lm, tokenizer, "causal")
    assert causal.features(toks, 64, pool_lead=True).lead_mask[0].tolist() == [False, False, True, False, False, False]
    # no prefix: BOS predicts the first token; no BOS either (causal): nothing before it to pool
    assert causal.features(causal.token_lists(["brain"], ""), 64, pool_lead=True).lead_mask[0].tolist()[:2] == [True, False]
    # with windows, each window's lead position (every window has its own BOS and prefix-free text)
    fw = echo.features(echo.token_lists(["brain cancer risk of mice"], ""), 4, windows=2, pool_lead=True)
    assert fw.lead_mask is not None and fw.lead_mask.sum(1).tolist() == [1, 1]
    nobos = CspladeModel(lm, make_tokenizer(bos=False), "causal", chunk_tokens=5)
    assert not nobos.features(nobos.token_lists(["brain cancer"], ""), 64, pool_lead=True).lead_mask.any()
    # an extra pooled position can only raise a max (to float rounding), and it equals the naive max over both
    with torch.no_grad():
        w0, w1 = echo(**f0.inputs()), echo(**f1.inputs())
        logits = echo.causal_lm(input_ids=f1.input_ids, attention_mask=f1.attention_mask, use_cache=False).logits
    assert torch.all(w1 >= w0 - 1e-5) and torch.any(w1 > w0 + 1e-3)
    torch.testing.assert_close(w1, naive_sparse_pooling(logits, f1.pool_mask | f1.lead_mask, echo.allowed),
                               rtol=1e-5, atol=1e-5)
    # the lead position's token (':') is not one of the text's own tokens: no input bonus for it
    bonus = CspladeModel(lm, tokenizer, "echo", chunk_tokens=5, input_bonus=50.0).eval()
    with torch.no_grad():
        wb = bonus(**f1.inputs())
    colon = f1.input_ids[0, f1.lead_mask[0]].item()
    assert wb[0, colon] < 3 and all(wb[0, t] > 3.5 for t in f1.input_ids[0, f1.pool_mask[0]].tolist())  # log1p(50)


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


def test_query_pool_lead_card_setting_moves_queries_only(tiny_checkpoint):
    from csplade_pyserini.encode import encoder_identity
    from csplade_pyserini.encoder import CspladeEncoder, resolve_card
    from csplade_pyserini.modeling.card import CardError, EncoderCard

    card = resolve_card(str(tiny_checkpoint)).with_overrides(query_top_k=1024)  # no cut: compare every term
    plain = CspladeEncoder.load(card, device="cpu")
    lead = CspladeEncoder.load(card.with_overrides(query_pool_lead=True), device="cpu")
    texts = ["brain cancer risk", "mice"]
    assert lead.encode(texts, "passage") == plain.encode(texts, "passage")
    q0, q1 = plain.encode(texts, "query"), lead.encode(texts, "query")
    assert q0 != q1 and all(q1[i].get(t, 0) >= v - 1 for i in range(2) for t, v in q0[i].items())  # a max, raised
    assert card.with_overrides(query_pool_lead=True).passage_side() == card.passage_side()  # searches the same index
    assert encoder_identity(card.with_overrides(query_pool_lead=False)) == encoder_identity(card)
    with pytest.raises(CardError, match="query_pool_lead"):
        EncoderCard(name="x", query_pool_lead="yes")
