"""python -m csplade_pyserini.fit_query_weights: fit an inference-free (lexical) query side to an encoded corpus.

    python -m csplade_pyserini.fit_query_weights --encoder smollm2-135m-echo-corpusfit \\
        --vectors runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit/vectors \\
        --topics runs/data/scifact-train-fit.tsv --qrels runs/data/scifact-train-fit.qrels \\
        --output runs/lexq/echo-corpusfit-lexq

A ``query_encoder: lexical`` card encodes a query without the model: each of its own tokens v (n times) weighs
``log1p(relu(table[v] + tf_bonus * log n))`` (modeling/lexical.py). This command learns that table from training
queries and the passages as the card's model encoded them (the JSONL vectors ``encode`` or ``reproduce`` wrote; the
passages are never re-encoded): InfoNCE of each query over every passage of the corpus (its judged passages
positive, all others negative, a learned temperature), full batch, Adam, from the starting table (the card's own,
or the one derived from its head). ``--mode affine`` (the default) learns a scale and an offset of the whole table
(two numbers, so every token moves, seen in training or not); ``--mode per-term`` learns an offset per token of the
training queries, with an L2 pull back to the start (``--l2``); ``--mode df`` learns a curve over the token's document
frequency in the corpus (``--knots`` numbers, an IDF-like correction of every token). The curve is stored apart from
the table (``query_df_curve``): ``search`` applies it with the document frequencies of the index it searches, so it
carries to a corpus without training queries; the fitting corpus's frequencies ship as the reference used where no
index is given. A per-term fit from a card with a curve learns its offsets on top of it (and keeps the curve). A seeded ``--holdout`` share of the queries, and their judged passages, stay out of the
loss; the table kept is the one of the evaluation step with the best held-out nDCG@10 (step 0, the starting table,
included), so the fit can only keep or improve what it started from on queries it did not train on. Seconds per
step on a CPU. The output directory is a complete encoder (the source's card with ``query_encoder: lexical`` and
``query_weights``, its term bias and adapters): its passages are the source's, so it searches the source's index.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from .cli import UsageError, ensure_empty_dir, int_at_least, positive_int, run

QUERY_WEIGHTS_FILE = "query_weights.safetensors"
QUERY_DF_FILE = "query_df.safetensors"
FITTED = {"affine": "(a scale and an offset of the whole table)", "per-term": "(an offset per token)",
          "df": "(an offset by the token's document frequency in the index searched)"}


def vector_files(paths: list[str]) -> list[Path]:
    """JSONL vector files: each path a file, or a directory whose *.jsonl (and *.jsonl.gz) files are read, sorted."""
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted([*p.glob("*.jsonl"), *p.glob("*.jsonl.gz")])
            if not found:
                raise UsageError(f"--vectors {p}: no *.jsonl files in it")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"--vectors {p}: no such file or directory")
    return out


def read_vectors(files: list[Path], term_to_col: dict[str, int], scale: float, df=None):
    """(docids, dense [N, len(term_to_col)] float32 of weight = int / scale over the columns wanted). A record that is
    not a JsonVectorCollection document is a UsageError naming the file and line. ``df``, a Counter, gets every
    term's document frequency (all terms, not only the wanted columns)."""
    import gzip

    dids, rows = [], []
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    did, vec = str(obj["id"]), obj["vector"]
                    row = {term_to_col[t]: float(w) / scale for t, w in vec.items() if t in term_to_col}
                    if df is not None:
                        df.update(t for t, w in vec.items() if w > 0)
                except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
                    raise UsageError(f"{f}:{lineno}: not a JsonVectorCollection document with 'id' and a 'vector' of "
                                     f"term -> weight ({e.__class__.__name__}: {e})") from None
                dids.append(did)
                rows.append(row)
    if len(set(dids)) != len(dids):
        raise UsageError(f"--vectors: {len(dids) - len(set(dids))} duplicate document ids across {len(files)} file(s)")
    dense = torch.zeros(len(rows), len(term_to_col))
    for i, row in enumerate(rows):
        if row:
            dense[i, list(row)] = torch.tensor(list(row.values()))
    return dids, dense


def query_counts(queries, texts: list[str]) -> tuple[list[dict[int, int]], int]:
    """Each query's pooled token ids with their counts, as the lexical encoder sees them (prefix, lowercasing,
    truncation); also how many were truncated."""
    from collections import Counter

    from .modeling.model import token_lists

    c = queries.card
    keep = c.query_max_length - queries.n_bos
    out, n_trunc = [], 0
    for ids, flags in token_lists(queries.tokenizer, texts, c.query_prefix, c.lowercase, queries.special_ids):
        n_trunc += len(ids) > keep
        counts = Counter(i for i, f in zip(ids[:keep], flags[:keep]) if f and queries.allowed[i])
        out.append(dict(counts))
    return out, n_trunc


MODES = ("affine", "per-term", "df")


def fit_table(counts: torch.Tensor, init: torch.Tensor, docs: torch.Tensor, positives: torch.Tensor, tf_bonus: float,
              steps: int, lr: float = 0.05, l2: float = 1e-3, holdout: float = 1 / 3, seed: int = 13,
              eval_every: int = 5, score=None, log=print, mode: str = "affine", basis: torch.Tensor | None = None):
    """Fit the query-token table on [Q, T] own-token counts against [N, T] passage weights (T = the training
    queries' tokens), positives [Q, N] bool. Returns (fitted [T] table, record of the curve). Same protocol as
    calibrate.fit_term_bias: multi-positive InfoNCE over all passages with a learned temperature, held-out queries
    and their judged passages out of the loss, the best held-out step kept (step 0 included).

    ``mode`` "affine" learns two numbers, table = e^s * init + c (a scale and an offset of the whole table: they
    move every token, seen in training or not); "per-term" learns one offset per token (L2-pulled to 0 by ``l2``:
    a token seen in a few training queries only learns from those); "df" learns a curve over the tokens' corpus
    document frequency, table = init + basis @ values (``basis`` [T, K] from df_basis; K numbers, L2-pulled to 0:
    every token of a given frequency moves alike, seen in training or not)."""
    if mode not in MODES:
        raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "df" and (basis is None or basis.shape[0] != init.shape[0]):
        raise UsageError("mode 'df' needs a [T, K] basis over the table's tokens (df_basis)")
    from .calibrate import holdout_split, multi_positive_infonce

    n = counts.shape[0]
    held, fit = holdout_split(n, holdout, seed)
    if not fit or not held:
        raise UsageError(f"fitting needs at least 2 training queries with judged passages in the corpus, got {n}")
    own = counts > 0
    tf = torch.where(own, tf_bonus * torch.log(counts.clamp(min=1.0)), torch.zeros(()))
    if mode == "df" and basis.shape[1] < 2:
        raise UsageError(f"--knots must be at least 2, got {basis.shape[1]}")
    shape = init.shape if mode == "per-term" else (2,) if mode == "affine" else (basis.shape[1],)
    delta = torch.zeros(shape, requires_grad=True)
    log_temp = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([delta, log_temp], lr=lr)

    def table_of(d):
        if mode == "df":
            return init + basis @ d
        return init + d if mode == "per-term" else init * d[0].exp() + d[1]
    pos = positives[fit]
    keep = ~(positives[held].any(0) & ~pos.any(0))  # held-out judged passages are no negatives

    def vectors(table, rows=None):
        o, t = (own, tf) if rows is None else (own[rows], tf[rows])
        return torch.log1p(torch.relu(table + t)) * o

    curve, best = [], (None, None, delta.detach().clone())  # (held-out score, step, the parameters then)
    t0 = time.time()
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                sc = vectors(table_of(delta)) @ docs.T
                held_score, fit_score = score(sc, held), score(sc, fit)
            curve.append({"step": step, "held_out_ndcg@10": round(held_score, 4), "fit_ndcg@10": round(fit_score, 4)})
            log(f"[fit_query_weights] step {step}: nDCG@10 {held_score:.4f} held out ({len(held)} queries), "
                f"{fit_score:.4f} fit ({len(fit)}); {time.time() - t0:.0f} s")
            if best[0] is None or held_score > best[0] + 1e-12:
                best = (held_score, step, delta.detach().clone())
        if step == steps:
            break
        sc = (vectors(table_of(delta), fit) @ docs.T) * log_temp.exp()
        loss = multi_positive_infonce(sc, pos, keep) + l2 * (delta ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    record = {"mode": mode, "steps": steps, "lr": lr, "l2": l2, "holdout_queries": len(held), "fit_queries": len(fit),
              "fit_passages": int(keep.sum()), "best_step": best[1], "held_out_ndcg@10": round(best[0], 4),
              "start_held_out_ndcg@10": curve[0]["held_out_ndcg@10"], "curve": curve}
    kept = best[2]
    if mode == "df":
        record["df_curve"] = [round(float(v), 4) for v in kept]
    elif mode == "affine":
        record["affine"] = {"scale": round(float(kept[0].exp()), 4), "offset": round(float(kept[1]), 4)}
    return table_of(kept), record


def fit_query_weights(encoder: str, vectors: list[str], topics: str, qrels: str, output: str, steps: int = 200,
                      lr: float = 0.05, l2: float = 1e-3, holdout: float = 1 / 3, seed: int = 13, eval_every: int = 5,
                      overwrite: bool = False, command: str | None = None, log=print, mode: str = "affine",
                      knots: int = 8) -> Path:
    from collections import Counter

    from safetensors.torch import save_file

    from .calibrate import ndcg_at_k, read_qrels
    from .encoder import resolve_card
    from .modeling.card import QUERY_DF_KEY, QUERY_WEIGHTS_KEY
    from .modeling.lexical import LexicalQueryEncoder, df_basis, query_table
    from .topics import load_topics

    out = Path(output)
    ensure_empty_dir(out, "--output", overwrite)  # fails before any work; the encoder lands there at the end
    card = resolve_card(encoder)
    lex_card = card.with_overrides(query_encoder="lexical", query_expansion=0.0)  # the fit is of the table alone
    queries = LexicalQueryEncoder.load(lex_card).queries
    table = query_table(lex_card)
    topic_map = load_topics(topics)
    judged = read_qrels(qrels)
    counts, n_trunc = query_counts(queries, list(topic_map.values()))
    qids = list(topic_map)
    cols = sorted({v for c in counts for v in c})
    col = {v: j for j, v in enumerate(cols)}
    term_to_col = {queries.terms.term(v): j for v, j in col.items()}
    files = vector_files(vectors)
    t0 = time.time()
    df = Counter()
    dids, docs = read_vectors(files, term_to_col, float(card.quantization_scale), df)
    log(f"[fit_query_weights] {len(dids):,} passages from {len(files)} file(s) over {len(cols):,} query tokens "
        f"in {time.time() - t0:.1f} s")
    dcol = {d: j for j, d in enumerate(dids)}
    keep_q = [i for i, q in enumerate(qids) if any(r > 0 and d in dcol for d, r in judged.get(q, {}).items())]
    if len(keep_q) < len(qids):
        log(f"[fit_query_weights] {len(qids) - len(keep_q)} of {len(qids)} queries have no judged passage in the "
            f"vectors: skipped")
    qids = [qids[i] for i in keep_q]
    cnt = torch.zeros(len(qids), len(cols))
    for r, i in enumerate(keep_q):
        for v, n in counts[i].items():
            cnt[r, col[v]] = n
    positives = torch.zeros(len(qids), len(dids), dtype=torch.bool)
    for r, q in enumerate(qids):
        for d, rel in judged.get(q, {}).items():
            if rel > 0 and d in dcol:
                positives[r, dcol[d]] = True

    def score(sc, rows):
        return ndcg_at_k(sc[rows], [qids[i] for i in rows], dids, judged)

    # the corpus's document frequency of every vocabulary token: a df curve (the source's, or the one fitted
    # here) moves each token by it, as the index built from these vectors would when searched
    terms = queries.terms  # special and padded ids are never terms: df 0
    vocab_df = torch.tensor([df.get(terms.get(v), 0) for v in range(table.shape[0])], dtype=torch.float32)
    curve = (card.query_df_curve or {}).get("values")
    if mode == "df" and curve is not None:
        raise UsageError(f"--mode df: {card.name} already has a df curve; fit it from an encoder without one")
    offsets = (df_basis(vocab_df, len(dids), len(curve)) @ torch.tensor(curve, dtype=torch.float32)
               if curve is not None else torch.zeros_like(table))
    basis_all = df_basis(vocab_df, len(dids), knots) if mode == "df" else None
    init = (table + offsets)[cols].clone()
    fitted, record = fit_table(cnt, init, docs, positives, float(card.tf_bonus), steps, lr, l2, holdout, seed,
                               eval_every, score, log, mode, None if basis_all is None else basis_all[cols])
    full = table.clone()  # the stored table never holds the curve: it is added per corpus at query time
    if mode == "df":
        curve = record["df_curve"]
        record.update(knots=knots)
    else:
        full[cols] = fitted - offsets[cols]
    df_curve = None
    if curve is not None:
        df_curve = {"values": [float(x) for x in curve], "reference_df": QUERY_DF_FILE,
                    "reference_documents": len(dids)}
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({QUERY_WEIGHTS_KEY: full.contiguous()}, str(tmp / QUERY_WEIGHTS_FILE))
    if df_curve is not None:
        save_file({QUERY_DF_KEY: vocab_df.contiguous()}, str(tmp / QUERY_DF_FILE))
    files_copied = {}
    if card.term_bias_path() is not None:
        shutil.copy2(card.term_bias_path(), tmp / "term_bias.safetensors")
        files_copied["term_bias"] = "term_bias.safetensors"
    adapters = []
    for i, a in enumerate(card.adapter_paths()):
        shutil.copytree(a, tmp / f"adapter{i + 1}")
        adapters.append(f"adapter{i + 1}")
    if adapters:
        files_copied["adapter"] = adapters if len(adapters) > 1 else adapters[0]
    stage = {"stage": "fit_query_weights", "command": command, "source": card.name, "topics": str(topics),
             "qrels": str(qrels), "queries": len(qids), "truncated_queries": n_trunc, "passages": len(dids),
             "query_tokens": len(cols), **record, "previous": card.training}
    new = card.with_overrides(query_encoder="lexical", query_weights=QUERY_WEIGHTS_FILE, query_df_curve=df_curve,
                              query_expansion=0.0, **files_copied)  # inference-free: expansions were not fitted
    new = type(card)(**{**new.to_dict(), "name": out.name, "training": stage, "scores": {}, "hybrid": None,
                        "description": f"{card.name}'s passages with an inference-free query side: each query token "
                                       f"weighted by a table {FITTED[mode]}, fitted on {len(qids)} training queries "
                                       f"against {len(dids):,} encoded passages (python -m "
                                       f"csplade_pyserini.fit_query_weights --mode {mode}). {card.description}"})
    new.save(tmp)
    (tmp / "fit.json").write_text(json.dumps({k: v for k, v in stage.items() if k != "previous"}, indent=1) + "\n")
    out.rmdir()
    tmp.rename(out)
    log(f"[fit_query_weights] held-out nDCG@10 {record['start_held_out_ndcg@10']:.4f} (start) -> "
        f"{record['held_out_ndcg@10']:.4f} at step {record['best_step']} of {steps}; wrote {out}")
    return out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.fit_query_weights",
                                description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", required=True, help="the encoder whose passages were encoded (name or directory)")
    p.add_argument("--vectors", nargs="+", required=True,
                   help="JsonVectorCollection JSONL file(s) or directories of them: the corpus as this encoder encoded "
                        "it (e.g. runs/reproduce/NAME/vectors)")
    p.add_argument("--topics", required=True, help="training queries (TSV/JSONL or a topic name): never test queries")
    p.add_argument("--qrels", required=True, help="their judgments (TREC qrels)")
    p.add_argument("--output", required=True, help="directory of the new encoder")
    p.add_argument("--mode", choices=MODES, default="affine",
                   help="affine: a scale and an offset of the whole table (2 numbers); per-term: one offset per token "
                        "of the training queries (overfits a few hundred queries: see eval/training/README.md); df: "
                        "an offset that is a curve over the token's document frequency in --vectors (--knots "
                        "numbers, every token moves) (default: affine)")
    p.add_argument("--knots", type=int_at_least(2), default=8,
                   help="--mode df: points of the curve over log document frequency (default: 8)")
    p.add_argument("--steps", type=int_at_least(0), default=200, help="full-batch Adam steps (default: 200)")
    p.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default: 0.05)")
    p.add_argument("--l2", type=float, default=1e-3, help="L2 pull towards the starting table (default: 1e-3)")
    p.add_argument("--holdout", type=float, default=1 / 3,
                   help="share of the queries held out to choose the step (default: 1/3)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--eval-every", type=positive_int, default=5, help="held-out evaluation every N steps (default: 5)")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    if a.steps < 0 or a.eval_every < 1 or not 0 < a.holdout < 1 or a.lr <= 0 or a.l2 < 0 or a.knots < 2:
        raise UsageError("--steps >= 0, --eval-every >= 1, 0 < --holdout < 1, --lr > 0, --l2 >= 0 and --knots >= 2 "
                         "are required")
    argv = sys.argv[1:] if argv is None else argv
    command = "python -m csplade_pyserini.fit_query_weights " + " ".join(shlex.quote(x) for x in argv)
    fit_query_weights(a.encoder, a.vectors, a.topics, a.qrels, a.output, a.steps, a.lr, a.l2, a.holdout, a.seed,
                      a.eval_every, a.overwrite, command, mode=a.mode, knots=a.knots)


def main(argv=None):
    run(_main, argv, "csplade-fit-query-weights")


if __name__ == "__main__":
    main()
