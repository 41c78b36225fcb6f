"""Training data: Tevatron-layout JSONL for contrastive training, packed passages for the adaptation phase."""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch


class TrainingDataError(ValueError):
    pass


def _passage_text(p: dict) -> str:
    from ..corpus import record_text

    return record_text(p)


def load_tevatron(path: str | Path, min_negatives: int = 0) -> list[dict]:
    """Rows {query_id, query, positive_passages: [{docid, title, text}], negative_passages: [...]}."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise TrainingDataError(f"{where}: malformed JSON ({e.msg})") from None
            for key in ("query", "positive_passages"):
                if key not in r:
                    raise TrainingDataError(f"{where}: missing {key!r}")
            if not r["positive_passages"]:
                raise TrainingDataError(f"{where}: no positive passage")
            negs = r.get("negative_passages") or []
            if len(negs) < min_negatives:
                raise TrainingDataError(f"{where}: {len(negs)} negatives, {min_negatives} needed")
            rows.append({"query": r["query"], "positives": [_passage_text(p) for p in r["positive_passages"]],
                         "negatives": [_passage_text(p) for p in negs]})
    if not rows:
        raise TrainingDataError(f"{path}: no training examples")
    return rows


def contrastive_batch(rows: list[dict], n_negatives: int, rngs: list[random.Random]):
    """queries, passages (per query: 1 positive then exactly n negatives), index of each query's positive.

    One RNG per row, so a row's sample depends on the row and step only (not on how a batch is split over ranks).
    """
    queries, passages, pos = [], [], []
    for r, rng in zip(rows, rngs):
        queries.append(r["query"])
        pos.append(len(passages))
        passages.append(rng.choice(r["positives"]))
        negs = r["negatives"]
        if n_negatives:
            if len(negs) >= n_negatives:
                picked = rng.sample(negs, n_negatives)
            elif negs:
                picked = [rng.choice(negs) for _ in range(n_negatives)]
            else:
                raise TrainingDataError(f"query {r['query']!r} has no negative passage")
            passages.extend(picked)
    return queries, passages, torch.tensor(pos, dtype=torch.long)


def pack_passages(texts, tokenizer, seq_len: int) -> torch.Tensor:
    """Token ids of all texts, separated by EOS, cut into rows of seq_len (sequence packing; the tail is dropped)."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for enc in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(enc + [eos])
    n = len(ids) // seq_len
    if n == 0:
        raise TrainingDataError(f"{len(ids)} tokens: not enough for one packed row of {seq_len}")
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


def read_corpus_texts(path: str | Path, limit: int = 0) -> list[str]:
    from ..corpus import check_jsonl_corpus

    check_jsonl_corpus(path, ["title", "text"])
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            out.append(_passage_text(d))
            if limit and len(out) >= limit:
                break
    return [t for t in out if t]


def _tsv(path, n_cols: int, what: str):
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t") if "\t" in line else line.split()
            if len(parts) < n_cols:
                raise TrainingDataError(f"{path}:{lineno}: expected {what}")
            yield parts


NEGATIVES_FORMATS = ("auto", "trec-run", "msmarco-run", "triples")


def load_msmarco(collection: str | Path, queries: str | Path, qrels: str | Path, negatives: str | Path,
                 depth: int = 30, negatives_format: str = "auto") -> list[dict]:
    """MS MARCO layout: collection.tsv (pid<TAB>text), queries.tsv (qid<TAB>text), qrels (qid 0 pid rel) and
    mined negatives: a TREC run ('qid Q0 pid rank score tag'), an MS MARCO run ('qid<TAB>pid<TAB>rank') or triples
    ('qid<TAB>pos_pid<TAB>neg_pid'). 'auto' reads 6 columns with Q0 as a TREC run and 3 columns as triples (an MS
    MARCO run looks the same: name it). Judged positives are never used as negatives."""
    if negatives_format not in NEGATIVES_FORMATS:
        raise TrainingDataError(f"negatives format must be one of {NEGATIVES_FORMATS}, got {negatives_format!r}")
    texts = {p[0]: p[1] for p in _tsv(collection, 2, "pid<TAB>passage")}
    qtext = {p[0]: p[1] for p in _tsv(queries, 2, "qid<TAB>query")}
    pos: dict[str, list[str]] = {}
    for p in _tsv(qrels, 4, "qid 0 pid rel"):
        if int(p[3]) > 0:
            pos.setdefault(p[0], []).append(p[2])
    negs: dict[str, list[str]] = {}
    for p in _tsv(negatives, 3, "a run or triples line"):
        fmt = negatives_format
        if fmt == "auto":
            fmt = "trec-run" if len(p) >= 6 and p[1] == "Q0" else "triples"
        if fmt == "trec-run":
            qid, pid = p[0], p[2]
        elif fmt == "msmarco-run":
            qid, pid = p[0], p[1]
        else:
            qid, pid = p[0], p[2]
        lst = negs.setdefault(qid, [])
        if pid not in pos.get(qid, ()) and pid not in lst and len(lst) < depth:
            lst.append(pid)
    rows = []
    for qid, plist in pos.items():
        if qid not in qtext:
            continue
        missing = [d for d in plist + negs.get(qid, []) if d not in texts]
        if missing:
            raise TrainingDataError(f"query {qid}: passage id(s) {missing[:3]} not in {collection}")
        rows.append({"query": qtext[qid], "positives": [texts[d] for d in plist],
                     "negatives": [texts[d] for d in negs.get(qid, [])]})
    if not rows:
        raise TrainingDataError(f"{qrels}: no query with a positive and a text in {queries}")
    return rows
