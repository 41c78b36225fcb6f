"""Shared fixtures: a tiny word-level tokenizer and tiny random Llama models built from a config (offline)."""
from __future__ import annotations

import copy

import pytest
import torch

WORDS = ("the a cell cells cancer brain phone phones causes cause radiation microwave protein gene genes "
         "mouse mice human study results show increase decrease risk of in and to is are with for by "
         "query passage : ? . , what does do not").split()


def make_tokenizer(bos: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>", "<extra_special>"]
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=["<extra_special>"])
    fast.padding_side = "right"
    return fast


def make_lm(vocab_size: int, seed: int = 0, tie: bool = False):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():  # larger logits than the default init, so ReLU keeps a good share of them
        model.lm_head.weight.normal_(0, 0.5)
    return model


@pytest.fixture(scope="session")
def tokenizer_session():
    return make_tokenizer()


@pytest.fixture()
def tokenizer(tokenizer_session):
    return copy.deepcopy(tokenizer_session)


@pytest.fixture(scope="session")
def lm_session(tokenizer_session):
    return make_lm(len(tokenizer_session))


@pytest.fixture()
def lm(lm_session):
    return copy.deepcopy(lm_session)


@pytest.fixture()
def tiny_checkpoint(tmp_path, lm, tokenizer):
    """A tiny random model saved as a HF checkpoint with an encoder card (for CLI-level tests)."""
    from csplade_pyserini.modeling.card import EncoderCard

    ckpt = tmp_path / "tiny-base"
    lm.save_pretrained(ckpt)
    tokenizer.save_pretrained(ckpt)
    enc_dir = tmp_path / "tiny-encoder"
    EncoderCard(name="tiny-encoder", base_model=str(ckpt), dtype="float32", passage_top_k=16, query_top_k=8,
                passage_max_length=24, query_max_length=12).save(enc_dir)
    return enc_dir
