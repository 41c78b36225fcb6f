"""CspladeModel: a Hugging Face causal LM + the sparse head, in one of three variants.

* ``causal``: the text as is, causal attention.
* ``echo``: the text fed twice; only the second copy's positions are pooled (they have seen the whole text).
* ``bi``: the causal mask removed, so every position attends to the whole text.

Only text tokens are pooled: never padding, special tokens (BOS is an attention sink whose logits would
dominate the max) or the prefix (in a causal model the prefix positions see the same thing in every text and
would put the same terms in every vector). Inputs are right-padded, so a text's vector does not depend on
what else is in its batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..terms import TermMap
from .card import VARIANTS
from .head import DEFAULT_CHUNK_TOKENS, SparsePooling


@dataclass
class Features:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    pool_mask: torch.Tensor
    n_truncated: int
    n_empty: int  # texts without a single pooled token
    # with windows (features(..., windows=W > 1)): the text each row belongs to (non-decreasing) and how many
    # texts there are; None = one row per text
    groups: torch.Tensor | None = None
    n_texts: int | None = None
    # features(..., pool_lead=True): positions pooled for the max besides pool_mask, not counted as own tokens
    lead_mask: torch.Tensor | None = None

    def to(self, device):
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return Features(self.input_ids.to(device), self.attention_mask.to(device), self.pool_mask.to(device),
                        self.n_truncated, self.n_empty, move(self.groups), self.n_texts, move(self.lead_mask))

    def inputs(self) -> dict:
        """The model's keyword arguments: ``model(**features.inputs())``."""
        kw = dict(input_ids=self.input_ids, attention_mask=self.attention_mask, pool_mask=self.pool_mask)
        if self.groups is not None:
            kw.update(groups=self.groups, n_groups=self.n_texts)
        if self.lead_mask is not None:
            kw.update(lead_mask=self.lead_mask)
        return kw


def unwrap_causal_lm(lm):
    """The *ForCausalLM under a peft wrapper (or the model itself)."""
    get = getattr(lm, "get_base_model", None)
    return get() if callable(get) else lm


def make_bidirectional(causal_lm) -> None:
    """Remove the causal mask of this model instance (idempotent; touches no global state).

    transformers builds a bidirectional (padding-only) mask when ``config.is_causal`` is False, and the SDPA /
    flash kernels read each attention module's ``is_causal`` flag when no mask is passed.
    """
    n = 0
    for module in causal_lm.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
            n += 1
    if n == 0:
        raise ValueError(f"{type(causal_lm).__name__}: no attention module with an is_causal flag; "
                         f"the bi variant is not supported for this architecture")
    causal_lm.config.is_causal = False
    for sub in ("text_config", "decoder"):
        if hasattr(causal_lm.config, sub) and getattr(causal_lm.config, sub) is not None:
            setattr(getattr(causal_lm.config, sub), "is_causal", False)


def as_texts(texts) -> list[str]:
    """``texts`` as a list, after checking it holds strings: a single str would otherwise be encoded character by
    character, and a None or number would fail deep inside the tokenizer."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a list of strings, got a single {type(texts).__name__} (wrap it: [text])")
    texts = list(texts)
    bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
    if bad is not None:
        raise TypeError(f"texts[{bad}] is {type(texts[bad]).__name__}, not str: {texts[bad]!r:.60}")
    return texts


def token_lists(tokenizer, texts: list[str], prefix: str, lowercase: bool, special_ids) -> list[tuple[list, list]]:
    """Per text: its token ids and a pool flag per token (True = a text token, not the prefix or a special token),
    untruncated. The text (not the prefix) is lowercased first when ``lowercase``. The model and the lexical query
    encoder (modeling/lexical.py) tokenize with this one function, so both see the same ids."""
    full = [prefix + (t.lower() if lowercase else t) for t in texts]
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for ids, offsets in zip(enc["input_ids"], enc["offset_mapping"]):
        flags = [end > len(prefix) and i not in special_ids for i, (_, end) in zip(ids, offsets)]
        out.append((ids, flags))
    return out


def bos_token_id(tokenizer) -> int | None:
    """The BOS id the model's inputs start with, or None when the tokenizer does not put one first."""
    bos = tokenizer.bos_token_id
    probe = tokenizer("a")["input_ids"]
    return bos if bos is not None and probe and probe[0] == bos else None


class CspladeModel(nn.Module):
    def __init__(self, lm, tokenizer, variant: str = "causal", chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
                 logit_shift: float = 0.0, lowercase: bool = False, logit_norm: str = "none",
                 term_bias: torch.Tensor | None = None, input_bonus: float = 0.0, tf_bonus: float = 0.0):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.lm = lm
        self.tokenizer = tokenizer
        self.variant = variant
        self.lowercase = lowercase  # lowercase texts (not the prefix) before tokenizing, as uncased encoders do
        causal = unwrap_causal_lm(lm)
        head = causal.get_output_embeddings()
        self.terms = TermMap(tokenizer, vocab_size=head.weight.shape[0])
        self.register_buffer("allowed", self.terms.allowed_mask(), persistent=False)
        softcap = getattr(causal.config, "final_logit_softcapping", None)
        if term_bias is not None and term_bias.shape != (head.weight.shape[0],):
            raise ValueError(f"term_bias has shape {tuple(term_bias.shape)}, the LM head has {head.weight.shape[0]} rows")
        self.pooling = SparsePooling(chunk_tokens, softcap=softcap, logit_shift=logit_shift, logit_norm=logit_norm,
                                     term_bias=term_bias, input_bonus=input_bonus, tf_bonus=tf_bonus)
        self.special_ids = self.terms.special_ids
        self.bos_id = bos_token_id(tokenizer)
        if variant == "bi":
            make_bidirectional(causal)
        self._compiled_body = None

    def compile_body(self, freezing: bool = True) -> "CspladeModel":
        """Run the decoder body through ``torch.compile`` (inductor, dynamic shapes) from now on: inference only.

        ``freezing`` folds the weights into the compiled graph as constants, so CPU matmuls use pre-packed weights
        (inductor's global ``freezing`` setting: it applies to every later compile in this process). The first
        call of a new shape kind pays the compilation (tens of seconds on 2 cores); the head stays eager.
        """
        if freezing:
            import torch._inductor.config as inductor_config

            inductor_config.freezing = True
        decoder = self.decoder

        def body(input_ids, attention_mask):
            return decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

        self._compiled_body = torch.compile(body, dynamic=True)
        return self

    # -- pieces -------------------------------------------------------------------------------------------
    @property
    def causal_lm(self):
        return unwrap_causal_lm(self.lm)

    @property
    def decoder(self):
        causal = self.causal_lm
        return getattr(causal, causal.base_model_prefix)

    @property
    def lm_head(self):
        return self.causal_lm.get_output_embeddings()

    @property
    def device(self):
        return self.lm_head.weight.device

    # -- tokenization -------------------------------------------------------------------------------------
    def token_lists(self, texts: list[str], prefix: str = ""):
        """Token ids and a pool flag per token (True = a text token, not prefix or special), untruncated."""
        return token_lists(self.tokenizer, texts, prefix, self.lowercase, self.special_ids)

    def features(self, token_lists, max_length: int, windows: int = 1, pool_lead: bool = False) -> Features:
        """Truncate, add BOS (if the tokenizer uses one), echo, right-pad.

        The pool mask covers the text's own positions. A causal LM's logits at a position predict the *next*
        token, so the position that predicts the first text token (the prefix's last, or BOS) is not among them:
        ``pool_lead`` pools it too (in echo's second copy it has read the whole text; in the causal variant it has
        read only the prefix).

        ``windows`` > 1: a text longer than ``max_length`` becomes up to that many rows, consecutive windows of its
        tokens (each with its own BOS, each echoed on its own), which ``forward`` max-pools back into one vector
        per text (``Features.groups``); only what is past the last window is cut."""
        n_bos = 1 if self.bos_id is not None else 0
        keep = max_length - n_bos
        if keep < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        if windows < 1:
            raise ValueError(f"windows must be >= 1, got {windows}")
        seqs, pools, leads, groups, n_trunc, n_empty = [], [], [], [], 0, 0
        for t, (ids, flags) in enumerate(token_lists):
            if len(ids) > keep * windows:
                n_trunc += 1
                ids, flags = ids[:keep * windows], flags[:keep * windows]
            if not any(flags):
                n_empty += 1
            bos, bos_flag = ([self.bos_id], [False]) if n_bos else ([], [])
            for s in range(0, max(len(ids), 1), keep):  # one window (possibly empty) when windows == 1
                w_ids, w_flags = ids[s:s + keep], flags[s:s + keep]
                if self.variant == "echo":
                    seqs.append(bos + w_ids + w_ids)
                    pools.append(bos_flag + [False] * len(w_ids) + w_flags)
                else:
                    seqs.append(bos + w_ids)
                    pools.append(bos_flag + w_flags)
                if pool_lead:  # the position whose logits predict the first text token (-1: none)
                    leads.append(len(pools[-1]) - len(w_flags) + w_flags.index(True) - 1 if True in w_flags else -1)
                groups.append(t)
        width = max(1, max(len(s) for s in seqs))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        pool = torch.zeros((len(seqs), width), dtype=torch.bool)
        lead_mask = torch.zeros_like(pool) if pool_lead else None
        for i, (s, p) in enumerate(zip(seqs, pools)):
            input_ids[i, :len(s)] = torch.tensor(s, dtype=torch.long)
            attention[i, :len(s)] = 1
            pool[i, :len(p)] = torch.tensor(p, dtype=torch.bool)
            if pool_lead and leads[i] >= 0:
                lead_mask[i, leads[i]] = True
        if windows == 1:
            return Features(input_ids, attention, pool, n_trunc, n_empty, lead_mask=lead_mask)
        return Features(input_ids, attention, pool, n_trunc, n_empty, torch.tensor(groups, dtype=torch.long),
                        len(token_lists), lead_mask)

    # -- forward ------------------------------------------------------------------------------------------
    def hidden_states(self, input_ids, attention_mask):
        if self._compiled_body is not None and not torch.is_grad_enabled():
            return self._compiled_body(input_ids, attention_mask)
        return self.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    def forward(self, input_ids, attention_mask, pool_mask, groups=None, n_groups=None, lead_mask=None) -> torch.Tensor:
        """Float term weights [B, V]: log1p(relu(max over pooled positions of the LM-head logits)). With ``groups``
        (the text of each row, non-decreasing: ``features(..., windows=W)``) the max runs over all rows of a text,
        and the result is [n_groups, V]. ``lead_mask`` positions join the max but are not the text's own tokens."""
        hidden = self.hidden_states(input_ids, attention_mask)
        return self.pooling(hidden, pool_mask, self.lm_head, self.allowed, input_ids, groups, n_groups, lead_mask)
