"""Topics and qrels: files (TSV, TSV.gz, JSONL) or symbolic names resolved offline from the shared data folder."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from .paths import data_dir
from .terms import is_one_token

ANSERINI = "anserini-tools-topics-and-qrels"
BEIR_SHIPPED = ("arguana", "fiqa", "nfcorpus", "scidocs", "scifact", "trec-covid")


class TopicsError(ValueError):
    pass


def _known() -> dict[str, tuple[str, str]]:
    """symbolic name -> (topics file, qrels file), relative to the data folder (Pyserini's names where it has them)."""
    k = {
        "scifact-test": ("scifact/queries.test.tsv", "scifact/qrels.test.txt"),
        "scifact-train": ("scifact/queries.train.tsv", "scifact/qrels.train.txt"),
        "vaswani": ("vaswani/queries.test.tsv", "vaswani/qrels.test.txt"),
        "vaswani-test": ("vaswani/queries.test.tsv", "vaswani/qrels.test.txt"),
        "dl19-passage": (f"{ANSERINI}/topics.dl19-passage.txt", f"{ANSERINI}/qrels.dl19-passage.txt"),
        "dl20": (f"{ANSERINI}/topics.dl20.txt", f"{ANSERINI}/qrels.dl20-passage.txt"),
        "dl20-passage": (f"{ANSERINI}/topics.dl20.txt", f"{ANSERINI}/qrels.dl20-passage.txt"),
    }
    for alias in ("msmarco-passage-dev-subset", "msmarco-passage-dev", "msmarco-passage.dev",
                  "msmarco-v1-passage-dev", "msmarco-v1-passage.dev"):
        k[alias] = (f"{ANSERINI}/topics.msmarco-passage.dev-subset.txt", f"{ANSERINI}/qrels.msmarco-passage.dev-subset.txt")
    for b in BEIR_SHIPPED:
        pair = (f"{ANSERINI}/topics.beir-v1.0.0-{b}.test.tsv.gz", f"{ANSERINI}/qrels.beir-v1.0.0-{b}.test.txt")
        k[f"beir-v1.0.0-{b}-test"] = pair
        k[f"beir-v1.0.0-{b}"] = pair
    return k


KNOWN = _known()


def _resolve(name_or_path: str, which: int, kind: str) -> Path:
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if name_or_path in KNOWN:
        f = data_dir() / KNOWN[name_or_path][which]
        if f.is_file():
            return f
        raise TopicsError(f"{kind} {name_or_path!r} resolves to {f}, which is missing (set CSPLADE_DATA to the "
                          f"folder holding the shared data)")
    raise TopicsError(f"{kind} file not found and not a known name: {name_or_path!r} "
                      f"(known: {', '.join(sorted(KNOWN))})")


def topics_path(name_or_path: str) -> Path:
    return _resolve(name_or_path, 0, "topics")


def qrels_path(name_or_path: str) -> Path:
    return _resolve(name_or_path, 1, "qrels")


def load_topics(name_or_path: str) -> dict[str, str]:
    """qid -> query text, in file order. TSV ('qid<TAB>text', optionally .gz) or JSONL ({id|qid|_id, text|query})."""
    path = topics_path(name_or_path)
    opener = gzip.open if path.suffix == ".gz" else open
    topics: dict[str, str] = {}
    is_jsonl = ".jsonl" in path.suffixes or ".json" in path.suffixes
    with opener(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise TopicsError(f"{where}: invalid UTF-8 at byte {e.start}") from None
            if not line.strip():
                continue
            if is_jsonl:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TopicsError(f"{where}: malformed JSON ({e.msg})") from None
                qid = next((obj[k] for k in ("id", "qid", "_id", "query_id") if k in obj), None)
                text = next((obj[k] for k in ("text", "query", "title", "contents") if k in obj), None)
            else:
                qid, _, text = line.partition("\t")
                if not _:
                    raise TopicsError(f"{where}: expected 'qid<TAB>query text'")
            if qid is None or text is None:
                raise TopicsError(f"{where}: a topic needs an id and a text")
            qid = str(qid).strip()
            if not is_one_token(qid):
                raise TopicsError(f"{where}: query id {qid!r} is empty or holds whitespace (a run line's fields are "
                                  f"split on whitespace)")
            if qid in topics:
                raise TopicsError(f"{where}: duplicate query id {qid!r}")
            topics[qid] = str(text)
    if not topics:
        raise TopicsError(f"{path}: no topics")
    return topics
