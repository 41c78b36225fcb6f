"""Token id <-> index term: the one rule shared by documents and queries.

Rule (documented in the README):
  * special tokens (the tokenizer's special ids and every added token flagged special) and ids past the
    tokenizer's length (padded LM-head rows) never become terms;
  * otherwise the term is the token's own vocabulary string (e.g. ``Ġcell`` for " cell", byte-level BPE);
  * a string that is empty, holds whitespace (Anserini's pretokenized analyzer splits on it), starts with the
    reserved ``<csplade:`` prefix, or repeats an earlier id's string becomes ``<csplade:id:N>``.
Case is kept: ``cell``, ``Ġcell`` and ``ĠCell`` are different terms, as they are different tokens.
"""
from __future__ import annotations

import math

RESERVED_PREFIX = "<csplade:"
# Term written for a document whose vector is empty: Anserini skips documents without terms, so an empty text
# would silently vanish from the index. No query ever contains this term, so it never changes a score.
EMPTY_DOC_TERM = "<csplade:empty>"


def is_one_token(s: str) -> bool:
    """Non-empty and without whitespace: what a whitespace split keeps whole (Anserini's pretokenized analyzer, the
    fields of a TREC run line). Index terms, document and query ids must be."""
    return bool(s) and not any(c.isspace() for c in s)


def is_integral(w) -> bool:
    """A weight an impact index or query stores as read: an int, or a finite float with an integral value (JSON's
    3.0); not a bool. Anserini truncates anything else."""
    return not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w) and w == int(w)


def special_token_ids(tokenizer) -> set[int]:
    ids = set(tokenizer.all_special_ids)
    for idx, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(idx))
    return ids


class TermMap:
    """Bijection between allowed token ids and whitespace-free index terms."""

    def __init__(self, tokenizer, vocab_size: int | None = None):
        n_tok = len(tokenizer)
        self.vocab_size = max(vocab_size or n_tok, n_tok)
        self.special_ids = special_token_ids(tokenizer)
        tokens = tokenizer.convert_ids_to_tokens(list(range(n_tok)))
        self.id_to_term: list[str | None] = [None] * self.vocab_size
        self.term_to_id: dict[str, int] = {}
        for idx, tok in enumerate(tokens):
            if idx in self.special_ids or tok is None:
                continue
            term = tok
            if (not is_one_token(term) or term.startswith(RESERVED_PREFIX)
                    or term in self.term_to_id):
                term = f"{RESERVED_PREFIX}id:{idx}>"
            self.id_to_term[idx] = term
            self.term_to_id[term] = idx

    def allowed_mask(self):
        """Bool tensor [vocab_size]: ids that may carry weight (not special, inside the tokenizer)."""
        import torch

        return torch.tensor([t is not None for t in self.id_to_term], dtype=torch.bool)

    def get(self, idx: int) -> str | None:
        """The term of ``idx``, or None where it has none (special, or outside the vocabulary)."""
        return self.id_to_term[idx] if 0 <= idx < len(self.id_to_term) else None

    def term(self, idx: int) -> str:
        term = self.id_to_term[idx]
        if term is None:
            raise KeyError(f"token id {idx} has no index term (special or outside the tokenizer)")
        return term

    def id(self, term: str) -> int:
        return self.term_to_id[term]

    def __len__(self) -> int:
        return len(self.term_to_id)
