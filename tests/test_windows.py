"""Long passages in windows (card key passage_windows): each window is encoded as its own row and the rows of a
text are max-pooled into one vector, with the tf bonus counted over the whole text."""
import pytest
import torch

from csplade_pyserini.modeling.card import CardError, EncoderCard
from csplade_pyserini.modeling.model import CspladeModel

WORDS = "microwave radiation causes brain cancer in mice and human cells study results show risk of phones".split()


def _model(lm, tok, variant, **head):
    return CspladeModel(lm, tok, variant, chunk_tokens=7, **head).eval()


def _weights(model, token_lists, max_length, windows=1):
    f = model.features(token_lists, max_length, windows)
    with torch.no_grad():
        return model(**f.inputs()), f


@pytest.mark.parametrize("variant", ["causal", "echo", "bi"])
def test_windows_are_the_max_of_each_window_encoded_alone(lm, tokenizer, variant):
    # (the plain head; with an input / tf bonus a word's bonus belongs to the whole text, not to one window: below)
    model = _model(lm, tokenizer, variant)
    long = " ".join(WORDS * 2)  # 32 tokens: windows of 9 text tokens (max_length 10, BOS included)
    (ids, flags), = model.token_lists([long], "")
    short = model.token_lists(["brain cancer"], "")[0]
    w, f = _weights(model, [short, (ids, flags), short], 10, windows=3)
    assert f.input_ids.shape[0] == 1 + 3 + 1 and f.groups.tolist() == [0, 1, 1, 1, 2] and f.n_texts == 3
    assert f.n_truncated == 1  # 32 tokens > 3 x 9: the rest past the third window is cut, and counted
    parts = [(ids[s:s + 9], flags[s:s + 9]) for s in (0, 9, 18)]
    alone, _ = _weights(model, parts, 10)
    torch.testing.assert_close(w[1], alone.amax(0), rtol=1e-5, atol=1e-5)
    single, _ = _weights(model, [short], 10)
    torch.testing.assert_close(w[0], single[0], rtol=1e-5, atol=1e-5)  # a short text is one window, as before
    torch.testing.assert_close(w[2], single[0], rtol=1e-5, atol=1e-5)


def test_one_window_is_the_plain_truncating_encoder(lm, tokenizer):
    model = _model(lm, tokenizer, "echo")
    toks = model.token_lists([" ".join(WORDS * 2), "cells"], "passage : ")
    f1, f = model.features(toks, 12), model.features(toks, 12, windows=1)
    assert f.groups is None and torch.equal(f.input_ids, f1.input_ids) and f.n_truncated == 1


def test_tf_bonus_counts_the_whole_text_across_windows(lm, tokenizer):
    # "cells" 6 times, 3 per window: with windows its tf bonus is log 6, not log 3
    model = _model(lm, tokenizer, "causal", tf_bonus=5.0, logit_shift=1000.0, input_bonus=1050.0)
    text = " ".join(["cells", "brain", "cells", "mice", "cells", "risk"] * 2)
    toks = model.token_lists([text], "")
    w, f = _weights(model, toks, 7, windows=2)
    assert f.n_truncated == 0 and f.input_ids.shape[0] == 2
    cells = tokenizer.convert_tokens_to_ids("cells")
    mice = tokenizer.convert_tokens_to_ids("mice")
    # the huge shift keeps only the text's own tokens; for them w = log1p(max logit + 50 + tf_bonus * log n)
    gap = torch.expm1(w[0, cells]) - torch.expm1(w[0, mice])
    with torch.no_grad():
        hidden = model.hidden_states(f.input_ids, f.attention_mask)
        m = model.pooling.max_logits(hidden, f.pool_mask, model.lm_head, f.groups, f.n_texts)[0]
    expected = (m[cells] - m[mice]) + 5.0 * (torch.log(torch.tensor(6.0)) - torch.log(torch.tensor(2.0)))
    torch.testing.assert_close(gap, expected, rtol=1e-4, atol=1e-3)


def test_windows_train_too(lm, tokenizer):
    """Gradients flow through the grouped max (the trainer could use windows as well)."""
    model = _model(lm, tokenizer, "echo")
    f = model.features(model.token_lists([" ".join(WORDS)], ""), 8, windows=3)
    model(**f.inputs()).sum().backward()
    assert model.lm_head.weight.grad is not None and model.lm_head.weight.grad.abs().sum() > 0


def test_card_validates_passage_windows():
    assert EncoderCard(name="x").passage_windows == 1
    with pytest.raises(CardError, match="passage_windows"):
        EncoderCard(name="x", passage_windows=0)


def test_encoder_uses_windows_for_passages_only(tiny_checkpoint):
    from csplade_pyserini.encoder import CspladeEncoder

    text = " ".join(WORDS * 2)  # 32 words + the 2-token prefix: 4 windows of 11 text tokens (BOS included: 12)
    plain = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", dtype="float32", passage_max_length=12)
    wide = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", dtype="float32", passage_max_length=12,
                               passage_windows=4, passage_top_k=0)
    assert wide.windows("passage") == 4 and wide.windows("query") == 1
    a, b = plain.encode([text, "cells"], "passage")[0], wide.encode([text, "cells"], "passage")[0]
    assert set(a) != set(b)  # later windows add terms the first one does not have
    assert wide.stats["windows"] == 4 + 1 and wide.stats["truncated"] == 0 and plain.stats["truncated"] == 1
    assert wide.encode(["cancer risk"], "query") == plain.encode(["cancer risk"], "query")


def test_encoder_identity_keeps_old_identities_and_sees_windows(tiny_checkpoint):
    from csplade_pyserini.encode import encoder_identity
    from csplade_pyserini.encoder import resolve_card

    card = resolve_card(str(tiny_checkpoint))
    assert encoder_identity(card) == encoder_identity(card, {"passage_windows": 1})
    assert encoder_identity(card) != encoder_identity(card, {"passage_windows": 2})


def test_encoder_identity_of_a_shipped_card_is_stable():
    """Vectors encoded before a card setting existed must stay valid (resume, documents_from): a setting at its
    default never enters the identity. Pinned to the identity the default encoder's whole-SciFact vectors were
    written with (session 16); adding a card field without a default entry in encoder_identity breaks this."""
    from csplade_pyserini.encode import encoder_identity

    assert encoder_identity("smollm2-135m-echo-corpusfit") == (
        "1e726633a36c0884071c330135a1a62934cbbd975cee4ecc931d21bd711878ad")


def test_encode_cli_windows_flag(tmp_path, tiny_checkpoint):
    import json

    from csplade_pyserini.encode import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "d1", "text": " ".join(WORDS * 2)}) + "\n"
                      + json.dumps({"id": "d2", "text": "cells"}) + "\n")
    for windows, truncated in (("1", 1), ("3", 0)):
        out = tmp_path / f"vec{windows}"
        main(["input", "--corpus", str(corpus), "output", "--embeddings", str(out), "encoder", "--encoder",
              str(tiny_checkpoint), "--device", "cpu", "--windows", windows])
        manifest = json.loads((tmp_path / f"vec{windows}.manifest" / "embeddings.jsonl.json").read_text())
        assert manifest["docs_in"] == manifest["docs_out"] == 2 and manifest["truncated"] == truncated
        assert manifest["encoder"]["passage_windows"] == int(windows)


def test_regression_encode_section_takes_windows(tmp_path):
    from csplade_pyserini.reproduce import SpecError, load_regression

    base = ("name: x\nkind: shipped\ncollection: scifact\nencoder: smollm2-135m-causal-base\n"
            "evaluations: {test: {ndcg@10: 0.5}}\n")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(base + "encode: {batch_size: 4, windows: 2}\n")
    bad.write_text(base + "encode: {window: 2}\n")
    assert load_regression(good)["encode"]["windows"] == 2
    with pytest.raises(SpecError, match="window"):
        load_regression(bad)
    bad.write_text(base + "encode: {windows: two}\n")
    with pytest.raises(SpecError, match="encode.windows must be a positive int"):
        load_regression(bad)
