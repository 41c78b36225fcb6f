"""CspladeEncoder: an encoder card made runnable (tokenize -> model -> top-k -> ints -> terms).

This is the one place that builds models from cards; the Pyserini encoder classes, the CLIs, the demo and the
tests all go through it.
"""
from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .modeling.backbone import (BaseModelError, load_causal_lm, load_tokenizer, pick_device, resolve_base,
                                resolve_dtype, weights_sha256)
from .modeling.card import CARD_FILE, CardError, EncoderCard
from .modeling.head import DEFAULT_CHUNK_TOKENS
from .modeling.model import CspladeModel, as_texts
from .paths import encoders_dir
from .sparse import quantize

BASE_ENCODER = "smollm2-135m-causal-base"
# The score that ranks shipped encoders (written into each card by a passing regression with `score_key`).
# the default encoder is ranked on these card scores: nDCG@10 on each shipped test collection (SciFact in-domain,
# Vaswani zero-shot), averaged, among the encoders scored on the most of them
PRIMARY_SCORES = (("scifact", "ndcg@10"), ("vaswani", "ndcg@10"))
SIDES = ("query", "passage")


class EncoderNotFoundError(ValueError):
    pass


def available_encoders() -> list[str]:
    d = encoders_dir()
    return sorted(p.parent.name for p in d.glob(f"*/{CARD_FILE}")) if d.exists() else []


def shipped_cards():
    """(name, card) for every encoders/*/card.json that loads (a broken card is skipped, as resolve_card would
    report it when named)."""
    for name in available_encoders():
        try:
            yield name, EncoderCard.load(encoders_dir() / name)
        except CardError:
            continue


def default_score(card: EncoderCard) -> tuple[int, bool, float]:
    """(how many PRIMARY_SCORES the card has, whether its queries need no model call, their mean): the default
    encoder is the highest."""
    got = [(card.scores.get(key) or {}).get(metric) for key, metric in PRIMARY_SCORES]
    got = [v for v in got if isinstance(v, (int, float))]
    return (len(got), not card.queries_need_model(), sum(got) / len(got)) if got else (0, False, float("-inf"))


def default_encoder() -> str:
    """The best shipped encoder: the highest mean nDCG@10 over the shipped test collections (PRIMARY_SCORES) among
    encoders/*/card.json, preferring those measured on more of them (the base if none has a score). One collection
    alone would pick an encoder for a lead within the regressions' tolerance on SciFact that loses far more zero-shot.
    Among those measured on as many, one whose queries need no model call (inference-free) comes first: the
    default serves single queries on a CPU (a tokenizer call instead of a forward pass: ~14 ms instead of ~270 ms
    end to end on 2 AVX2 cores), so a card that runs the model per query is picked only when no inference-free
    card is scored; ``--encoder`` names it."""
    best, best_score = BASE_ENCODER, (0, False, float("-inf"))
    for name, card in shipped_cards():
        score = default_score(card)
        if score[0] and score > best_score:
            best, best_score = name, score
    return best


DEFAULT_ENCODER = default_encoder()


def resolve_card(name_or_path: str | None) -> EncoderCard:
    """An encoder card from a name under encoders/, a directory holding card.json, or a plain HF checkpoint."""
    name_or_path = name_or_path or DEFAULT_ENCODER
    p = Path(name_or_path).expanduser()
    if (p / CARD_FILE).exists() or (p.is_file() and p.name == CARD_FILE):
        return EncoderCard.load(p)
    named = encoders_dir() / name_or_path / CARD_FILE
    if named.exists():
        return EncoderCard.load(named)
    if (p / "config.json").exists():
        return EncoderCard(name=p.name, base_model=str(p))
    raise EncoderNotFoundError(
        f"unknown encoder {name_or_path!r}: not a name under {encoders_dir()} "
        f"(available: {', '.join(available_encoders()) or 'none'}), nor a directory with {CARD_FILE} or config.json")


@dataclass
class Prepared:
    """Texts of one side made ready for the model (CspladeEncoder.prepare): batches of (text indices, Features on
    the device), and the counts they add to the encoder's stats once run."""
    side: str
    n: int
    batches: list
    counts: Counter = field(default_factory=Counter)


def length_batches(token_lists, batch_size: int) -> list[list[int]]:
    """Batches of text indices, longest first, so each batch holds texts of similar length (little padding)."""
    order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i][0]), reverse=True)
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


class CspladeEncoder:
    """Runs an encoder card. ``encode(texts, side)`` -> list of {term: int}; counts land in ``self.stats``."""

    def __init__(self, card: EncoderCard, model: CspladeModel, batch_size: int = 32):
        self.card = card
        self.model = model
        self.batch_size = batch_size
        self.stats: Counter = Counter()
        self.precision: dict = {"precision": card.dtype, "quantized_linears": 0}
        # query_encoder "lexical": queries never reach the model (modeling/lexical.py); passages do
        self.lexical = None
        if card.query_encoder == "lexical":
            from .modeling.lexical import LexicalQueries

            self.lexical = LexicalQueries.for_model(card, model)

    @classmethod
    def load(cls, encoder: str | EncoderCard | None = None, device: str | None = None, dtype: str | None = None,
             batch_size: int = 32, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, precision: str | None = None,
             compile: bool = False, quiet: bool = False, **card_overrides) -> "CspladeEncoder":
        """``precision`` (see csplade_pyserini.quantize.PRECISIONS) sets the dtype and quantizes the decoder body;
        ``compile`` runs the body through torch.compile (CspladeModel.compile_body: slow first calls, then faster
        single queries; outputs within float rounding of eager, see tests/test_compile.py); ``quiet`` hides the
        weight-loading progress bar."""
        from .quantize import apply_precision, run_dtype as precision_dtype

        card = encoder if isinstance(encoder, EncoderCard) else resolve_card(encoder)
        card = card.with_overrides(dtype=precision_dtype(precision) if precision else dtype, **card_overrides)
        device = pick_device(device)
        run_dtype = card.dtype if precision else resolve_dtype(card.dtype, device)
        if run_dtype != card.dtype:
            print(f"[csplade] {card.dtype} has no fast kernels on this CPU; running in {run_dtype}", file=sys.stderr)
            card = card.with_overrides(dtype=run_dtype)
        base = resolve_base(card.base_ref())
        tokenizer = load_tokenizer(base)
        lm = load_causal_lm(base, card.dtype, device, progress=not quiet)
        if card.adapter_paths() or card.term_bias:
            lm = attach_adapters(lm, card, base)
        model = model_from_card(card, lm, tokenizer, chunk_tokens)
        model = model.to(device).eval()
        enc = cls(card, model, batch_size)
        if precision:
            enc.precision = apply_precision(model, precision)
        if compile:
            model.compile_body()
            enc.precision["compiled"] = True
        return enc

    # -- encoding -------------------------------------------------------------------------------------------
    def use_index(self, index) -> bool:
        """Lexical queries with a df curve: take document frequencies from the index searched (else a no-op)."""
        return self.lexical.use_index(index) if self.lexical is not None else False

    def settings(self, side: str):
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        c = self.card
        if side == "query":
            return c.query_prefix, c.query_max_length, c.query_top_k
        return c.passage_prefix, c.passage_max_length, c.passage_top_k

    def windows(self, side: str) -> int:
        """How many windows of max_length a text of this side is encoded in (the card's passage_windows; queries 1)."""
        return int(self.card.passage_windows) if side == "passage" else 1

    def pool_lead(self, side: str) -> bool:
        """Whether the position predicting the first text token is pooled (the card's query_pool_lead; queries only)."""
        return side == "query" and bool(self.card.query_pool_lead)

    @torch.inference_mode()
    def encode_ids(self, texts: list[str], side: str = "passage", max_length: int | None = None,
                   batch_size: int | None = None, progress=None):
        """Per text: (token ids, ints). Texts are bucketed by length (little padding); order is kept."""
        texts = as_texts(texts)
        if side == "query" and self.lexical is not None:
            if not self.card.query_expansion:
                return self.lexical.encode_ids(texts, max_length, self.stats, progress)
            from .modeling.lexical import expand

            model = self._model_ids(texts, side, max_length, batch_size, progress)  # counts the texts in stats
            own = self.lexical.vectors(texts, max_length)
            return [expand(o, m, self.card.query_expansion, float(self.card.quantization_scale),
                           int(self.card.query_top_k)) for o, m in zip(own, model)]
        return self._model_ids(texts, side, max_length, batch_size, progress)

    def _model_ids(self, texts, side, max_length, batch_size, progress):
        return self.run(self.prepare(texts, side, max_length, batch_size), progress)

    def prepare(self, texts: list[str], side: str = "passage", max_length: int | None = None,
                batch_size: int | None = None) -> Prepared:
        """The host side of a model call, no model involved: tokenize, bucket by length, pad, copy to the device.
        ``encode`` runs it in a thread ahead of the forward passes (csplade_pyserini/pipeline.py)."""
        prefix, default_len, _ = self.settings(side)
        max_length = max_length or default_len
        batch_size = batch_size or self.batch_size
        windows = self.windows(side)
        toks = self.model.token_lists(list(texts), prefix)
        batches, counts = [], Counter()
        for idx in length_batches(toks, batch_size):
            feats = self.model.features([toks[i] for i in idx], max_length, windows,
                                        self.pool_lead(side)).to(self.model.device)
            batches.append((idx, feats))
            counts["texts"] += len(idx)
            if windows > 1:
                counts["windows"] += feats.input_ids.shape[0]
            counts["truncated"] += feats.n_truncated
            counts["empty_texts"] += feats.n_empty
            counts["tokens"] += int(feats.attention_mask.sum())
        return Prepared(side, len(toks), batches, counts)

    @torch.inference_mode()
    def run(self, prepared: Prepared, progress=None) -> list[tuple[list, list]]:
        """The device side: forward, top-k and ints for prepared texts -> per text (token ids, ints), in text order.
        Adds the texts' counts to ``stats`` (only here, so counts committed beside the outputs match them)."""
        _, _, top_k = self.settings(prepared.side)
        out = [None] * prepared.n
        for idx, feats in prepared.batches:
            weights = self.model(**feats.inputs())
            for i, vec in zip(idx, quantize(weights, self.card.quantization_scale, top_k)):
                out[i] = vec
            if progress is not None:
                progress(len(idx))
        self.stats.update(prepared.counts)
        self.stats["empty_vectors"] += sum(1 for ids, _ in out if not ids)
        return out

    def term_vectors(self, ids_ints) -> list[dict[str, int]]:
        """(token ids, ints) per text -> {index term: int} per text."""
        terms = self.model.terms
        return [{terms.term(i): q for i, q in zip(ids, ints)} for ids, ints in ids_ints]

    def encode(self, texts: list[str], side: str = "passage", **kw) -> list[dict[str, int]]:
        return self.term_vectors(self.encode_ids(texts, side, **kw))

    def explain(self, text: str, side: str = "query", top: int = 30):
        """(term, token id, int weight, float weight) for the text's top terms, as the index would store them."""
        prefix, max_length, top_k = self.settings(side)
        if side == "query" and self.lexical is not None:
            if not self.card.query_expansion:
                return self.lexical.explain(text, top)
            ((ids, ints),) = self.encode_ids([text], side)
            scale = float(self.card.quantization_scale)
            return [(self.model.terms.term(i), i, q, q / scale) for i, q in zip(ids[:top], ints[:top])], len(ids)
        feats = self.model.features(self.model.token_lists([text], prefix), max_length,
                                    self.windows(side), self.pool_lead(side)).to(self.model.device)
        with torch.inference_mode():
            w = self.model(**feats.inputs())
        ids, ints = quantize(w, self.card.quantization_scale, top_k)[0]
        return [(self.model.terms.term(i), i, q, float(w[0, i])) for i, q in zip(ids[:top], ints[:top])], len(ids)


def load_query_encoder(encoder: str | EncoderCard | None = None, **kw):
    """What encodes a card's queries: a LexicalQueryEncoder (tokenizer and table only, no LM weights loaded) for a
    ``query_encoder: lexical`` card without ``query_expansion``, else CspladeEncoder.load(encoder, **kw). Card
    overrides in ``kw`` apply first (``query_encoder="lexical"`` turns any calibrated card's queries lexical)."""
    card = encoder if isinstance(encoder, EncoderCard) else resolve_card(encoder)
    load_keys = ("device", "dtype", "batch_size", "chunk_tokens", "precision", "compile")
    overrides = {k: v for k, v in kw.items() if k not in load_keys}
    card = card.with_overrides(**overrides)
    if not card.queries_need_model():  # lexical queries without model expansions: tokenizer and table only
        from .modeling.lexical import LexicalQueryEncoder

        return LexicalQueryEncoder.load(card)
    return CspladeEncoder.load(card, **{k: v for k, v in kw.items() if k in load_keys})


def model_from_card(card: EncoderCard, lm, tokenizer, chunk_tokens: int = DEFAULT_CHUNK_TOKENS) -> CspladeModel:
    """The CspladeModel a card describes, around an already loaded LM (the encoder and the trainer share this)."""
    try:
        return CspladeModel(lm, tokenizer, card.variant, chunk_tokens, card.logit_shift, card.lowercase,
                            card.logit_norm, card.load_term_bias(), card.input_bonus, card.tf_bonus)
    except ValueError as e:
        if isinstance(e, CardError):
            raise
        raise CardError(f"encoder card {card.path or card.name!r}: {e}") from None


def attach_adapters(lm, card: EncoderCard, base: Path):
    """Merge the card's LoRA adapters (safetensors only) into the base, after checking the base's checksum (also for
    a card with only a term bias: it belongs to the base it was computed on)."""
    from peft import PeftModel

    for adapter in card.adapter_paths():
        if not (adapter / "adapter_config.json").exists() or not (adapter / "adapter_model.safetensors").exists():
            raise CardError(f"encoder card {card.path}: {adapter} needs adapter_config.json and "
                            f"adapter_model.safetensors")
    if card.base_sha256:
        got = weights_sha256(base)
        if got != card.base_sha256:
            raise BaseModelError(
                f"encoder {card.name!r} was trained on base weights {card.base_sha256[:12]}…, but {base} has "
                f"{got[:12]}…: its adapter / term bias does not belong to this base model")
    for adapter in card.adapter_paths():
        lm = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload()
    return lm.eval()
