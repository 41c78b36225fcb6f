"""Reading and checking JSONL corpora before Pyserini's JsonlCollectionIterator loads them.

Pyserini's iterator stops on the first bad line with a bare traceback (or not at all: a duplicate id is
silently indexed twice). :func:`check_jsonl_corpus` reads every line once and raises :class:`CorpusError`
naming the file, line and problem; counts come back for the encode summary.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .terms import is_one_token

ID_KEYS = ("id", "_id", "docid")


class CorpusError(ValueError):
    pass


@dataclass
class CorpusCheck:
    files: list[str]
    n_docs: int = 0
    n_empty: int = 0
    ids: list[str] = field(default_factory=list)


def corpus_files(path: str | Path) -> list[str]:
    """The files Pyserini's iterator reads: the file itself, or every file in the directory."""
    path = Path(path)
    if path.is_file():
        return [str(path)]
    if path.is_dir():
        files = sorted(str(path / f) for f in os.listdir(path) if (path / f).is_file())
        if not files:
            raise CorpusError(f"corpus directory {path} holds no files")
        return files
    raise CorpusError(f"corpus not found: {path}")


def doc_id(info: dict, docid_field: str | None):
    if docid_field:
        return info.get(docid_field)
    for k in ID_KEYS:
        if k in info:
            return info[k]
    return None


def join_text(*parts) -> str:
    """The one rule for combining fields (title and text): stripped, empty parts skipped, joined with a space."""
    return " ".join(p.strip() for p in parts if p and p.strip())


def passage_texts(texts, titles=None) -> list[str]:
    """What the encoder reads of each passage: its title and text joined by :func:`join_text` (``titles`` given),
    else the text ("" for None). Pyserini's DocumentEncoder signature: the encode CLI and CspladeDocumentEncoder."""
    if titles is not None:
        titles, texts = list(titles), list(texts)
        if len(titles) != len(texts):  # zip would drop the passages past the shorter list
            raise ValueError(f"{len(titles)} titles for {len(texts)} texts: give one title per text (or none)")
        return [join_text(ti, te) for ti, te in zip(titles, texts)]
    return [t or "" for t in texts]


def record_text(info: dict, fields=("title", "text")) -> str:
    """A record's text: its fields joined by :func:`join_text`, or its 'contents' when it has none of them."""
    if any(f in info for f in fields):
        return join_text(*(info.get(f) for f in fields))
    return join_text(info.get("contents"))


def check_jsonl_corpus(path, fields=("text",), docid_field=None, delimiter="\n",
                       split_contents: bool = False) -> CorpusCheck:
    """Every record of the corpus checked (see the module's doc); ``split_contents``: a record read from its
    'contents' must also split on ``delimiter`` into ``fields`` (how encode reads it, see :func:`split_fields`)."""
    check = CorpusCheck(files=corpus_files(path))
    seen: dict[str, str] = {}
    for fname in check.files:
        with open(fname, "rb") as fh:
            for lineno, raw in enumerate(fh, 1):
                where = f"{fname}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise CorpusError(f"{where}: invalid UTF-8 at byte {e.start} of the line") from None
                if not line.strip():
                    raise CorpusError(f"{where}: blank line (one JSON object per line expected)")
                try:
                    info = json.loads(line)
                except json.JSONDecodeError as e:
                    raise CorpusError(f"{where}: malformed JSON ({e.msg} at column {e.colno})") from None
                if not isinstance(info, dict):
                    raise CorpusError(f"{where}: expected a JSON object, got {type(info).__name__}")
                _id = doc_id(info, docid_field)
                if _id is None or (isinstance(_id, str) and not _id.strip()):
                    keys = f"'{docid_field}'" if docid_field else " or ".join(f"'{k}'" for k in ID_KEYS)
                    raise CorpusError(f"{where}: missing document id ({keys})")
                if not isinstance(_id, (str, int)):
                    raise CorpusError(f"{where}: document id must be a string or int, got {type(_id).__name__}")
                _id = str(_id)
                if not is_one_token(_id):
                    raise CorpusError(f"{where}: document id {_id!r} contains whitespace (TREC runs split on it)")
                if _id in seen:
                    raise CorpusError(f"{where}: duplicate document id {_id!r} (first at {seen[_id]})")
                seen[_id] = where
                texts = _fields(info, fields, where)
                if split_contents:  # as encode will read it: fails here, before the model loads
                    split_fields(info, fields, delimiter, where)
                if not any(t.strip() for t in texts):
                    check.n_empty += 1
                check.n_docs += 1
                check.ids.append(_id)
    return check


def _fields(info: dict, fields, where: str) -> list[str]:
    if all(f in info for f in fields):
        vals = [info[f] for f in fields]
    elif "contents" in info:
        vals = [info["contents"]]
    else:
        missing = [f for f in fields if f not in info]
        raise CorpusError(f"{where}: missing field(s) {missing} and no 'contents'")
    for f, v in zip(fields, vals):
        if v is not None and not isinstance(v, str):
            raise CorpusError(f"{where}: field {f!r} must be a string, got {type(v).__name__}")
    return [v or "" for v in vals]


def split_fields(info: dict, fields, delimiter: str, where: str) -> list[str | None]:
    """A record's ``fields`` as Pyserini's JsonlCollectionIterator reads them (strict, trailing spaces stripped):
    the fields themselves when the record has all of them (each stripped; empty -> None), else its 'contents' split
    on ``delimiter`` into exactly that many parts (one delimiter too many at the end is dropped)."""
    if all(f in info for f in fields):
        return [info[f].strip() if info[f] else None for f in fields]
    if "contents" not in info:
        raise CorpusError(f"{where}: missing field(s) {[f for f in fields if f not in info]} and no 'contents'")
    contents = info["contents"] or ""
    if contents.count(delimiter) == len(fields) and contents.endswith(delimiter):
        contents = contents[:-len(delimiter)]
    parts = [p.strip(" ") for p in contents.split(delimiter)]
    if len(parts) != len(fields):
        raise CorpusError(f"{where}: 'contents' splits on {delimiter!r} into {len(parts)} part(s), but {len(fields)} "
                          f"field(s) are read ({', '.join(fields)}); pass --fields to match, or another --delimiter")
    return parts


def field_batches(path, fields, docid_field=None, delimiter="\n", batch_size=256, start=0, end=None):
    """Batches {"id": [...], field: [...]} of documents ``start``..``end`` (file order, as ``corpus_files`` lists
    the files): the dicts Pyserini's ``JsonlCollectionIterator`` yields, without Pyserini (so encoding runs on a
    machine without Java). Run ``check_jsonl_corpus`` first: it reports malformed records by line."""
    fields = list(fields)
    batch: dict[str, list] = {"id": [], **{f: [] for f in fields}}
    i = 0
    for fname in corpus_files(path):
        with open(fname, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if end is not None and i >= end:
                    break
                if i >= start:
                    info = json.loads(line)
                    batch["id"].append(str(doc_id(info, docid_field)))
                    for f, v in zip(fields, split_fields(info, fields, delimiter, f"{fname}:{lineno}")):
                        batch[f].append(v)
                    if len(batch["id"]) == batch_size:
                        yield batch
                        batch = {"id": [], **{f: [] for f in fields}}
                i += 1
    if batch["id"]:
        yield batch
