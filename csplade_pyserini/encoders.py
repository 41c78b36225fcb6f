"""Pyserini encoder classes for CSPLADE: pass them (objects, not names) to Pyserini's machinery.

    from csplade_pyserini.encoders import CspladeQueryEncoder
    from pyserini.search.lucene import LuceneImpactSearcher
    searcher = LuceneImpactSearcher(index_dir, query_encoder=CspladeQueryEncoder("smollm2-135m-causal-base"), min_idf=-1)

``min_idf=-1`` keeps query terms that occur in every document (Pyserini's default 0 drops them, so scores would
no longer be the model's dot products).
"""
from __future__ import annotations

import json
from pathlib import Path

from . import jvm
from .cli import UsageError

jvm.bootstrap()  # pyserini.encode starts the JVM at import

from pyserini.encode import DocumentEncoder, QueryEncoder  # noqa: E402

from .corpus import passage_texts  # noqa: E402
from .encoder import CspladeEncoder, load_query_encoder  # noqa: E402
from .modeling.card import EncoderCard  # noqa: E402
from .terms import EMPTY_DOC_TERM, is_integral  # noqa: E402


class CspladeDocumentEncoder(DocumentEncoder):
    """Pyserini ``DocumentEncoder``: ``encode(texts, titles=None, max_length=..., fp16=...)`` -> [{term: int}].

    A text that gets no term (empty, or nothing above the cut) gets the placeholder term ``<csplade:empty>`` (weight
    1), as our ``encode`` CLI writes it: Anserini skips a document without terms, so Pyserini's writer would drop it
    from the index. ``stats["empty_vectors"]`` counts them; no query contains the term, so no score changes.
    """

    def __init__(self, model_name: str | EncoderCard | None = None, device: str | None = None,
                 fp16: bool = False, batch_size: int = 32, encoder: CspladeEncoder | None = None,
                 compile: bool = False, **card_overrides):
        self.encoder = encoder or CspladeEncoder.load(model_name, device=device, dtype="float16" if fp16 else None,
                                                      compile=compile,
                                                      batch_size=batch_size, **card_overrides)

    @property
    def stats(self):
        return self.encoder.stats

    def encode(self, texts, titles=None, max_length: int | None = None, fp16: bool = False, progress=None,
               **kwargs):
        out = self.encoder.encode(passage_texts(texts, titles), "passage", max_length=max_length, progress=progress)
        return [vec or {EMPTY_DOC_TERM: 1} for vec in out]


class CspladeQueryEncoder(QueryEncoder):
    """Pyserini ``QueryEncoder``: ``encode(text)`` -> {term: int} (<= 1024 terms); ``encode_batch(texts)``.

    Encoded queries are kept in a cache keyed by text; ``encode_batch`` fills it in batches so a following
    ``LuceneImpactSearcher.batch_search`` finds every query already encoded. ``load_cache``/``save_cache`` read
    and write the JSONL layout of Pyserini's ``CachedDataQueryEncoder`` ({"id", "contents", "vector"}).
    """

    def __init__(self, model_name: str | EncoderCard | None = None, device: str | None = None,
                 fp16: bool = False, batch_size: int = 32, encoder: CspladeEncoder | None = None,
                 encoded_queries: str | None = None, compile: bool = False, **card_overrides):
        self.has_model = False
        self.has_encoded_query = False
        self.cache: dict[str, dict[str, int]] = {}
        self._encoder = encoder
        self._index = None
        self._load_args = dict(encoder=model_name, device=device, dtype="float16" if fp16 else None, compile=compile,
                               batch_size=batch_size, **card_overrides)
        if encoded_queries:
            self.load_cache(encoded_queries)

    @property
    def encoder(self):
        """The query encoder, loaded on first use (a run served entirely from the cache never loads it): a
        CspladeEncoder, or for a ``query_encoder: lexical`` card a LexicalQueryEncoder (tokenizer and table only)."""
        if self._encoder is None:
            self._encoder = load_query_encoder(**self._load_args)
            if self._index is not None:
                self._encoder.use_index(self._index)
        self.has_model = True
        return self._encoder

    def use_index(self, index, check: bool = True) -> None:
        """Encode queries for this index: a lexical query side with a df curve (``query_df_curve``) reads document
        frequencies from it; any other encoder ignores it. Applied when the encoder loads (or now, if loaded).
        With ``check``, an index that records the encoder of its passages (built by our index CLI) must hold
        passages this card weighs alike, else a UsageError names the settings that differ (search's check)."""
        if check:
            from .search import check_index_encoder

            check_index_encoder(index, self._encoder.card if self._encoder is not None else self._load_args["encoder"])
        self._index = str(index)
        if self._encoder is not None and self._encoder.use_index(self._index) and not self.has_encoded_query:
            self.cache.clear()  # queries encoded so far used other document frequencies

    def encode(self, text: str, **kwargs) -> dict[str, int]:
        if text not in self.cache:
            self.cache[text] = self.encoder.encode([text], "query")[0]
        return self.cache[text]

    def encode_batch(self, texts: list[str], progress=None) -> list[dict[str, int]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if missing:
            for t, v in zip(missing, self.encoder.encode(missing, "query", progress=progress)):
                self.cache[t] = v
        return [self.cache[t] for t in texts]

    def load_cache(self, path: str | Path) -> int:
        n = 0
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    vector = obj["vector"]
                    bad = next(((k, v) for k, v in vector.items() if not is_integral(v)), None)
                    if bad:
                        raise ValueError(f"term {bad[0]!r} has weight {bad[1]!r}, not an integer (impact queries take "
                                         f"integer weights: quantize first)")
                    self.cache[obj["contents"]] = {str(k): int(v) for k, v in vector.items()}
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise UsageError(f"{path}:{lineno}: not an encoded query ({e.__class__.__name__}: {e})") from None
                n += 1
        self.has_encoded_query = True
        return n

    def save_cache(self, path: str | Path, topics: dict[str, str]) -> None:
        tmp = Path(str(path) + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for qid, text in topics.items():
                fh.write(json.dumps({"id": qid, "contents": text, "vector": self.cache[text]}, ensure_ascii=False) + "\n")
        tmp.replace(path)


IDENTITY_SUFFIX = ".encoder.json"  # beside an --encoded-queries file: the query encoder that wrote it


def query_identity(card, index=None) -> str:
    """A checksum of what a query's vector depends on: the card's settings and adapters (encode.encoder_identity),
    the contents of its term bias, query table and df reference, and, for a card with a df curve, the index whose
    document frequencies it reads."""
    import hashlib

    from .encode import encoder_identity
    from .writer import sha256_file

    h = hashlib.sha256(encoder_identity(card).encode())
    for path in (card.term_bias_path(), card.query_weights_path(), card.query_df_path()):
        h.update((sha256_file(path) if path is not None and path.is_file() else "-").encode())
    if card.query_df_curve and index is not None:
        h.update(str(Path(index).resolve()).encode())
    return h.hexdigest()


def identity_path(cache) -> Path:
    """Where the record of the query encoder that wrote ``cache`` lives: FILE.encoder.json beside it."""
    return Path(str(cache) + IDENTITY_SUFFIX)


def recorded_query_identity(cache: Path) -> dict | None:
    """What record_query_identity wrote beside ``cache`` ({"identity", "encoder"}), or None (a file from Pyserini
    or from before the record existed: taken as it is)."""
    side = identity_path(cache)
    if not side.exists():
        return None
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError:
        return None


def record_query_identity(cache: Path, identity: str, encoder: str) -> None:
    identity_path(cache).write_text(json.dumps({"identity": identity, "encoder": encoder}) + "\n")
