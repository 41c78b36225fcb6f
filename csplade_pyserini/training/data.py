"""Training data: Tevatron-layout JSONL for contrastive training, packed passages for the adaptation phase."""
from __future__ import annotations

import json
import random
from pathlib import Path

import torch


class TrainingDataError(ValueError):
    pass


def _passage_text(p: dict) -> str:
    return " ".join(x.strip() for x in (p.get("title") or "", p.get("text") or "") if x and x.strip())


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
            out.append(_passage_text(d) if "text" in d else d.get("contents", ""))
            if limit and len(out) >= limit:
                break
    return [t for t in out if t]
