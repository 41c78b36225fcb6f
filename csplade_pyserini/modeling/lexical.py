"""Inference-free queries: a query's vector from its own tokens and a per-term table, with no model call.

    w[v] = log1p(relu(query_weights[v] + tf_bonus * log n [+ curve(df[v])]))   for each id v the query has n > 0 times

Passages are still encoded by the model (with its expansions); only the query side changes, so a query costs a
tokenizer call and a table lookup instead of a forward pass — the latency of a lexical search (BM25) rather than
of a neural encoder. This is the "inference-free" / doc-only setup of learned sparse retrieval (SPLADE-doc,
OpenSearch's inference-free sparse encoders), on a CSPLADE index.

The table defaults to what the calibrated head itself gives a query token it is sure of: with
``logit_norm: log_softmax`` the head's activation of an own token v is ``max_t log p_t(v) + term_bias[v] -
logit_shift + input_bonus + tf_bonus * log n``; with the log-probability at its ceiling 0 (the echo variant's second
copy predicts every word of the text almost surely) that is ``term_bias[v] + input_bonus - logit_shift``
(``derived_query_weights``). A card may instead ship a fitted table (``query_weights``, see
csplade_pyserini.fit_query_weights). The query's tokens are the ones the model would pool: the same prefix,
lowercasing, truncation and BOS handling (modeling/model.token_lists).

A card with ``query_expansion`` > 0 is no longer inference-free: the model also encodes the query, and the terms
it adds beyond the query's own tokens join the lexical vector (``expand``), the own tokens keeping the table's
weights. It searches the same index; a query costs a model call again.

A card with ``query_df_curve`` also moves each token by its document frequency df[v] in the index searched: a
curve over x = log(1 + df) / log(1 + documents), linear between evenly spaced points (``df_offset``), fitted once
(``fit_query_weights --mode df``) and applied to any corpus, as BM25's IDF is. ``search`` reads df from the Lucene
index (``use_doc_freq(LuceneDocFreq(index))``); without an index the card's reference corpus (the one it was
fitted on) gives df.
"""
from __future__ import annotations

from collections import Counter

import torch

from .card import CardError, EncoderCard
from .model import as_texts, bos_token_id, token_lists


def df_position(df: float, n_docs: int, knots: int) -> tuple[int, float]:
    """(lower knot, weight of the upper one) of x = log(1 + df) / log(1 + n_docs), clamped to [0, 1], on ``knots``
    evenly spaced points."""
    import math

    x = min(max(math.log1p(df) / math.log1p(max(n_docs, 1)), 0.0), 1.0) * (knots - 1)
    lo = min(int(x), knots - 2)
    return lo, x - lo


def df_offset(values: list[float], df: float, n_docs: int) -> float:
    """The curve's offset for a token of document frequency ``df`` in a corpus of ``n_docs`` documents."""
    lo, frac = df_position(df, n_docs, len(values))
    return values[lo] * (1.0 - frac) + values[lo + 1] * frac


def df_basis(df: torch.Tensor, n_docs: int, knots: int) -> torch.Tensor:
    """[T, knots] hat-function basis of the same positions: ``df_basis(df, n, K) @ values`` is ``df_offset`` of
    every token at once (the form fit_query_weights trains)."""
    if knots < 2:
        raise ValueError(f"a df curve needs at least 2 knots, got {knots}")
    x = (torch.log1p(df.double()) / torch.log1p(torch.tensor(float(max(n_docs, 1)), dtype=torch.float64)))
    pos = x.clamp(0.0, 1.0) * (knots - 1)
    lo = pos.floor().long().clamp(max=knots - 2)
    frac = pos - lo
    basis = torch.zeros(df.shape[0], knots, dtype=torch.float64)
    basis.scatter_(1, lo[:, None], (1 - frac)[:, None])
    basis.scatter_add_(1, (lo + 1)[:, None], frac[:, None])
    return basis.float()


class TableDocFreq:
    """Document frequency per token id from a [vocab] tensor (a card's reference corpus, or counted vectors)."""

    def __init__(self, df: torch.Tensor, n_docs: int, source: str):
        self.df = df.tolist()
        self.n_docs = int(n_docs)
        self.source = source

    def __call__(self, token_id: int) -> int:
        return int(self.df[token_id]) if 0 <= token_id < len(self.df) else 0


def derived_query_weights(card: EncoderCard, term_bias: torch.Tensor | None) -> torch.Tensor:
    """The head's activation of an own query token at log-probability 0: term_bias + input_bonus - logit_shift."""
    where = f"encoder card {card.path or card.name!r}"
    if card.logit_norm != "log_softmax" or term_bias is None:
        raise CardError(f"{where}: query_encoder 'lexical' without query_weights needs a calibrated head "
                        f"(logit_norm 'log_softmax' and a term_bias) to derive the per-term table from; "
                        f"ship a fitted table (python -m csplade_pyserini.fit_query_weights) instead")
    return term_bias.float() + card.input_bonus - card.logit_shift


def query_table(card: EncoderCard) -> torch.Tensor:
    """The card's lexical query table [vocab]: its query_weights file, or derived from its head."""
    table = card.load_query_weights()
    return table if table is not None else derived_query_weights(card, card.load_term_bias())


def expand(own: list[tuple[int, float]], model: tuple[list[int], list[int]], share: float, scale: float,
           top_k: int) -> tuple[list[int], list[int]]:
    """A lexical query plus the model's expansions (a card's ``query_expansion``), as (token ids, ints).

    ``own``: the lexical query's (id, float weight); ``model``: the model-encoded query's (ids, ints). Each model
    term the lexical query lacks joins with its model weight times ``share * |own|_1 / |model|_1``, so the
    expansions weigh ``share`` of the lexical query's total over the model's whole vector (its own-token terms
    included); the query's own tokens keep the table's weights. Ints are round(weight x scale), ints <= 0 dropped,
    cut to ``top_k`` (0 = all). A query with no own token weighing > 0 is the model's vector."""
    ids, ints = model
    if not own:
        return list(ids), list(ints)
    total_own = sum(w for _, w in own)
    total_model = sum(ints) / scale
    weights = dict(own)
    if total_model > 0:
        factor = share * total_own / total_model
        for v, q in zip(ids, ints):
            if v not in weights:
                weights[v] = factor * q / scale
    ranked = sorted(weights.items(), key=lambda x: (-x[1], x[0]))
    pairs = [(v, int(round(w * scale))) for v, w in (ranked[:top_k] if top_k else ranked)]
    pairs = [(v, q) for v, q in pairs if q > 0]
    return [v for v, _ in pairs], [q for _, q in pairs]


class LexicalQueries:
    """Tokenizer + per-term table -> query vectors, as the model path's ``encode_ids`` returns them: per text
    (token ids, ints), largest weight first, after the card's query top-k and quantization scale."""

    def __init__(self, card: EncoderCard, tokenizer, table: torch.Tensor, terms, special_ids):
        self.card = card
        self.tokenizer = tokenizer
        self.table = table.float().tolist()  # python floats: a query touches ~10-30 entries
        self.tf_bonus = float(card.tf_bonus)
        self.terms = terms
        self.special_ids = set(special_ids)
        allowed = terms.allowed_mask()
        if allowed.shape[0] != len(self.table):
            raise CardError(f"encoder card {card.path or card.name!r}: the query table has {len(self.table)} rows, "
                            f"the model's vocabulary {allowed.shape[0]}")
        self.allowed = allowed.tolist()
        self.n_bos = 1 if bos_token_id(tokenizer) is not None else 0
        curve = card.query_df_curve
        self.df_curve = [float(x) for x in curve["values"]] if curve else None
        self.doc_freq = None  # token id -> df, with .n_docs and .source: use_doc_freq
        if curve and curve.get("reference_df"):
            self.doc_freq = TableDocFreq(card.load_query_df(), curve["reference_documents"],
                                         f"the card's reference corpus ({curve['reference_documents']:,} documents)")

    @classmethod
    def for_model(cls, card: EncoderCard, model) -> "LexicalQueries":
        """The card's lexical query side beside a loaded CspladeModel (its tokenizer, term map and special ids):
        what CspladeEncoder encodes queries with, and what doc-only training holds its queries to."""
        return cls(card, model.tokenizer, query_table(card), model.terms, model.special_ids)

    def use_doc_freq(self, doc_freq) -> None:
        """Take document frequencies from ``doc_freq`` (token id -> df, with ``n_docs``), e.g. the index searched."""
        self.doc_freq = doc_freq

    def use_index(self, index) -> bool:
        """With a df curve: take document frequencies from the Lucene index at ``index`` (the one searched).
        Returns whether the card has a curve (without one, the index changes nothing and is not opened)."""
        if self.df_curve is None:
            return False
        from ..docfreq import LuceneDocFreq

        self.use_doc_freq(LuceneDocFreq(index, self.terms))
        return True

    def weights(self, counts: Counter) -> list[tuple[int, float]]:
        """(id, float weight) of a query's own pooled tokens with their counts; weights <= 0 dropped."""
        import math

        out = []
        for v, n in counts.items():
            if not (0 <= v < len(self.table)) or not self.allowed[v]:
                continue
            a = self.table[v] + (self.tf_bonus * math.log(n) if n > 1 else 0.0)
            if self.df_curve is not None:
                a += df_offset(self.df_curve, self.doc_freq(v), self.doc_freq.n_docs)
            if a > 0:
                out.append((v, math.log1p(a)))
        return out

    def vectors(self, texts: list[str], max_length: int | None = None, stats: Counter | None = None):
        """Per text: [(id, float weight)], largest first, cut to the card's query top-k."""
        c = self.card
        keep = (max_length or c.query_max_length) - self.n_bos
        if keep < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        top_k = int(c.query_top_k)
        if self.df_curve is not None and self.doc_freq is None:
            raise CardError(f"encoder card {c.path or c.name!r}: its query_df_curve needs the document frequencies "
                            f"of the corpus searched, and the card has no reference_df: give it the index "
                            f"(search --index does; in Python: encoder.use_index(index_dir))")
        out = []
        for ids, flags in token_lists(self.tokenizer, list(texts), c.query_prefix, c.lowercase, self.special_ids):
            if stats is not None:
                stats["truncated"] += len(ids) > keep
                stats["tokens"] += min(len(ids), keep) + self.n_bos
            pooled = Counter(i for i, f in zip(ids[:keep], flags[:keep]) if f)
            if stats is not None and not pooled:
                stats["empty_texts"] += 1
            w = sorted(self.weights(pooled), key=lambda x: (-x[1], x[0]))
            out.append(w[:top_k] if top_k else w)
        return out

    def explain(self, text: str, top: int = 30):
        """(term, token id, int weight, float weight) for the query's top terms, and how many terms it has."""
        (w,) = self.vectors([text])
        scale = float(self.card.quantization_scale)
        rows = [(self.terms.term(v), v, int(round(x * scale)), x) for v, x in w]
        rows = [r for r in rows if r[2] > 0]
        return rows[:top], len(rows)

    def encode_ids(self, texts: list[str], max_length: int | None = None, stats: Counter | None = None,
                   progress=None):
        """Per text: (token ids, ints) with int = round(weight x scale), ints <= 0 dropped (sparse.quantize's rule).
        ``stats`` gets the encoder's counts (texts, truncated, tokens, empty texts and vectors)."""
        scale = float(self.card.quantization_scale)
        out = []
        for w in self.vectors(texts, max_length, stats):
            pairs = [(v, int(round(x * scale))) for v, x in w]  # round half to even, as torch.round
            pairs = [(v, q) for v, q in pairs if q > 0]
            out.append(([v for v, _ in pairs], [q for _, q in pairs]))
        if stats is not None:
            stats["texts"] += len(out)
            stats["empty_vectors"] += sum(1 for ids, _ in out if not ids)
        if progress is not None:
            progress(len(out))
        return out


class LexicalQueryEncoder:
    """The query side of a ``query_encoder: lexical`` card without the model: ``encode(texts, "query")`` ->
    [{term: int}], as CspladeEncoder's. Loads only the tokenizer (milliseconds per batch, no LM weights)."""

    def __init__(self, card: EncoderCard, queries: LexicalQueries):
        self.card = card
        self.queries = queries
        self.stats: Counter = Counter()
        self.precision: dict = {"precision": "lexical (no model)", "quantized_linears": 0}

    @classmethod
    def load(cls, card: EncoderCard, **_ignored) -> "LexicalQueryEncoder":
        from ..terms import TermMap, special_token_ids
        from .backbone import load_tokenizer, resolve_base

        if card.query_encoder != "lexical":
            raise CardError(f"encoder card {card.path or card.name!r}: query_encoder is {card.query_encoder!r}, "
                            f"not 'lexical'")
        if card.query_expansion:
            raise CardError(f"encoder card {card.path or card.name!r}: query_expansion {card.query_expansion} adds "
                            f"the model's expansion terms, so its queries need the model (CspladeEncoder, or "
                            f"encoder.load_query_encoder, which picks it)")
        table = query_table(card)
        tokenizer = load_tokenizer(resolve_base(card.base_ref()))
        terms = TermMap(tokenizer, vocab_size=table.shape[0])
        return cls(card, LexicalQueries(card, tokenizer, table, terms, special_token_ids(tokenizer)))

    @property
    def terms(self):
        return self.queries.terms

    def use_index(self, index) -> bool:
        """Query weights from the document frequencies of the index searched (cards with a df curve)."""
        return self.queries.use_index(index)

    def encode_ids(self, texts: list[str], side: str = "query", max_length: int | None = None, progress=None,
                   **_ignored):
        if side != "query":
            raise ValueError(f"a lexical query encoder encodes queries only, not {side!r} texts: passages need "
                             f"the model (CspladeEncoder)")
        return self.queries.encode_ids(as_texts(texts), max_length, self.stats, progress)

    def encode(self, texts: list[str], side: str = "query", **kw) -> list[dict[str, int]]:
        terms = self.terms
        return [{terms.term(i): q for i, q in zip(ids, ints)} for ids, ints in self.encode_ids(texts, side, **kw)]

    def explain(self, text: str, side: str = "query", top: int = 30):
        """(term, token id, int weight, float weight) for the query's top terms, as CspladeEncoder.explain."""
        if side != "query":
            raise ValueError("a lexical query encoder explains queries only")
        return self.queries.explain(text, top)
