import json

import pytest
import torch

from csplade_pyserini.modeling.card import CardError, EncoderCard
from csplade_pyserini.sparse import quantize
from csplade_pyserini.terms import EMPTY_DOC_TERM, RESERVED_PREFIX, TermMap


def test_quantize_topk_scale_and_zero_drop():
    w = torch.tensor([[0.0, 0.004, 0.006, 1.234, 2.5, 0.3]])
    ids, ints = quantize(w, 100, top_k=0)[0]
    assert ids == [4, 3, 5, 2] and ints == [250, 123, 30, 1]  # 0.004 rounds to 0 and is dropped
    ids, ints = quantize(w, 100, top_k=2)[0]
    assert ids == [4, 3] and ints == [250, 123]
    ids, ints = quantize(w, 10, top_k=0)[0]
    assert ids == [4, 3, 5] and ints == [25, 12, 3]
    assert quantize(torch.zeros(1, 6), 100)[0] == ([], [])


def test_term_map_on_tiny_tokenizer(tokenizer):
    tm = TermMap(tokenizer, vocab_size=len(tokenizer) + 3)  # LM head padded past the tokenizer
    assert tm.id_to_term[:5] == [None] * 5  # all specials, including the additional special token
    assert tm.id_to_term[-3:] == [None] * 3
    allowed = tm.allowed_mask()
    assert allowed.sum() == len(tm) == len(tokenizer) - 5
    for idx, term in enumerate(tm.id_to_term):
        if term is not None:
            assert tm.id(term) == idx and not any(c.isspace() for c in term)


def test_term_map_escapes_whitespace_and_reserved(tokenizer):
    class Tok:  # a tokenizer whose vocabulary has awkward strings
        all_special_ids = [0]
        added_tokens_decoder = {}

        def __len__(self):
            return 5

        def convert_ids_to_tokens(self, ids):
            return ["<pad>", "a b", "", EMPTY_DOC_TERM, "a b"][: len(ids)]

    tm = TermMap(Tok())
    assert tm.id_to_term == [None, f"{RESERVED_PREFIX}id:1>", f"{RESERVED_PREFIX}id:2>", f"{RESERVED_PREFIX}id:3>",
                             f"{RESERVED_PREFIX}id:4>"]
    assert EMPTY_DOC_TERM not in tm.term_to_id


@pytest.mark.slow
def test_term_map_round_trip_on_real_smollm2_tokenizer():
    from csplade_pyserini.modeling.backbone import load_tokenizer, smollm2_checkpoint

    tok = load_tokenizer(smollm2_checkpoint())
    tm = TermMap(tok)
    assert len(tok) == 49152
    assert all(tm.id_to_term[i] is None for i in range(17))  # ids 0-16 are all special in SmolLM2
    assert len(tm) == 49152 - 17
    terms = [t for t in tm.id_to_term if t is not None]
    assert len(set(terms)) == len(terms)
    assert not any(any(c.isspace() for c in t) for t in terms)
    ids = tok(" cell Cell cells", add_special_tokens=False)["input_ids"]
    assert [tm.term(i) for i in ids] == tok.convert_ids_to_tokens(ids) == ["Ġcell", "ĠCell", "Ġcells"]
    assert all(tm.id(tm.term(i)) == i for i in range(17, 49152))
    json.dumps({t: 1 for t in terms})  # every term serialises


def test_card_round_trip_and_errors(tmp_path):
    card = EncoderCard(name="x", variant="echo", passage_top_k=64)
    card.save(tmp_path / "x")
    back = EncoderCard.load(tmp_path / "x")
    assert back.to_dict() == card.to_dict() and back.path.endswith("card.json")
    with pytest.raises(CardError, match="variant"):
        EncoderCard(name="x", variant="bidirectional")
    with pytest.raises(CardError, match="1024"):
        EncoderCard(name="x", query_top_k=2000)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "card.json").write_text(json.dumps({"name": "b", "varient": "bi"}))
    with pytest.raises(CardError, match="unknown key.*varient"):
        EncoderCard.load(tmp_path / "bad")
    (tmp_path / "bad" / "card.json").write_text("{not json")
    with pytest.raises(CardError, match="not valid JSON"):
        EncoderCard.load(tmp_path / "bad")


def test_card_numbers_are_typed_with_clear_errors(tmp_path):
    """A hand-edited card.json: numeric strings are taken, anything else is a CardError naming the key."""
    (tmp_path / "c").mkdir()
    card_file = tmp_path / "c" / "card.json"
    card_file.write_text(json.dumps({"name": "c", "passage_top_k": "128", "query_max_length": 48.0,
                                     "quantization_scale": "50", "tf_bonus": 3}))
    card = EncoderCard.load(tmp_path / "c")
    assert (card.passage_top_k, card.query_max_length, card.quantization_scale, card.tf_bonus) == (128, 48, 50.0, 3.0)
    assert type(card.passage_top_k) is int and type(card.tf_bonus) is float
    for key, value, kind in [("passage_top_k", "abc", "integer"), ("query_top_k", 12.5, "integer"),
                             ("passage_windows", True, "integer"), ("passage_max_length", None, "integer"),
                             ("quantization_scale", "x", "number"), ("logit_shift", [1], "number"),
                             ("input_bonus", False, "number"), ("query_expansion", "lots", "number")]:
        card_file.write_text(json.dumps({"name": "c", key: value}))
        with pytest.raises(CardError, match=rf"card\.json.*{key} must be an? {kind}, got"):
            EncoderCard.load(tmp_path / "c")
    card_file.write_text(json.dumps({"name": "c", "logit_shift": "nan"}))
    with pytest.raises(CardError, match="logit_shift must be a finite number"):
        EncoderCard.load(tmp_path / "c")
