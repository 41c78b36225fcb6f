"""python -m csplade_pyserini.calibrate: give an encoder a log-softmax head and a per-term bias from a corpus.

    python -m csplade_pyserini.calibrate --encoder smollm2-135m-causal-base --variant echo \\
        --corpus ../shared/data/scifact/corpus.jsonl --output runs/echo-calibrated \\
        --tune-topics scifact-train --tune-qrels scifact-train

Unsupervised, minutes on a CPU, no gradient through the model. It encodes a seeded sample of the corpus with the
encoder's model and pools per-position log-probabilities (``logit_norm: log_softmax``) instead of raw logits, takes
each term's mean pooled score over the sample (mu[v]), and writes a new encoder whose weights are

    w[v] = log1p(relu(max over positions of log p(v | position) - mu[v] - margin))

so a term counts only where the text makes it e^margin times more likely than it usually is (``term_bias`` = -mu,
``logit_shift`` = margin; see modeling/head.SparsePooling). The text's own tokens may get a lower cut, margin -
bonus (``input_bonus``), lowered further by tf_bonus * log(n) for a token the text has n times (``tf_bonus``: term
frequency, which max pooling lacks). Margin, bonus and tf bonus are given, or chosen on a grid by nDCG@10 of
training queries (``--tune-topics/--tune-qrels``: never the test split) against the sample plus their judged
passages: the largest margin within ``--tolerance`` of the best (sparser vectors, faster queries), then the best
bonus and tf bonus at that margin. ``--fit-steps N`` then trains the term bias alone, contrastively, on the tuning
queries' pooled scores (exact without a forward pass, because the bias commutes with the max; seconds per step on a
CPU), keeping the step that is best on a held-out third of those queries. The output directory is a complete
encoder (card, term_bias.safetensors, the source's adapters): search with it, train it further (``python -m
csplade_pyserini.train --encoder OUTPUT --train_term_bias true``), or ship it.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from .cli import UsageError, int_at_least, positive_int, run

DEFAULT_MARGINS = (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 12.0, 14.0)
DEFAULT_BONUSES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0)
DEFAULT_TF_BONUSES = (0.0, 3.0, 6.0, 9.0)
CALIBRATION_FILE = "calibration.json"


def ndcg_at_k(scores: torch.Tensor, qids: list[str], dids: list[str], qrels: dict, k: int = 10) -> float:
    """Mean nDCG@k (trec_eval's gain = relevance level) of a [Q, D] score matrix; queries without judged
    passages among dids are skipped. Ties broken by passage order."""
    col = {d: j for j, d in enumerate(dids)}
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices.tolist()
    total, n = 0.0, 0
    for i, q in enumerate(qids):
        rels = {d: r for d, r in qrels.get(q, {}).items() if r > 0}
        if not any(d in col for d in rels):
            continue
        dcg = sum(rels.get(dids[j], 0) / math.log2(rank + 2) for rank, j in enumerate(top[i]))
        ideal = sorted(rels.values(), reverse=True)[:k]
        total += dcg / sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
        n += 1
    return total / max(n, 1)


def read_qrels(path) -> dict:
    out: dict[str, dict[str, int]] = {}
    for line in open(path, encoding="utf-8"):
        parts = line.split()
        if len(parts) >= 4:
            out.setdefault(parts[0], {})[parts[2]] = int(parts[3])
    return out


@torch.inference_mode()
def pooled_scores(encoder, texts: list[str], side: str, batch_size: int, desc: str):
    """[N, V] float32: max over each text's pooled positions of the head's pooled score (no bias, no shift, no
    bonus; the text's own tokens are ``own_counts``)."""
    from tqdm import tqdm

    from .encoder import length_batches

    model = encoder.model
    vocab = model.lm_head.weight.shape[0]
    if not texts:
        return torch.empty(0, vocab)
    prefix, max_length, _ = encoder.settings(side)
    toks = model.token_lists(texts, prefix)
    out = torch.empty(len(texts), vocab)
    with tqdm(total=len(texts), desc=desc, unit="text", file=sys.stderr) as bar:
        for idx in length_batches(toks, batch_size):
            f = model.features([toks[i] for i in idx], max_length).to(model.device)
            h = model.hidden_states(f.input_ids, f.attention_mask)
            out[idx] = model.pooling.max_logits(h, f.pool_mask, model.lm_head).float().cpu()
            bar.update(len(idx))
    return out


def own_counts(encoder, texts: list[str], side: str) -> torch.Tensor:
    """[N, V] uint8: how often each id occurs at the text's pooled positions (saturating at 255), from the
    tokenizer alone (no forward pass, so a score cache serves any bonus), with the same truncation as encoding."""
    from .modeling.head import SparsePooling

    model = encoder.model
    vocab = model.lm_head.weight.shape[0]
    prefix, max_length, _ = encoder.settings(side)
    out = torch.zeros(len(texts), vocab, dtype=torch.uint8)
    toks = model.token_lists(texts, prefix)
    for s in range(0, len(texts), 256):
        f = model.features(toks[s:s + 256], max_length)
        out[s:s + 256] = SparsePooling.token_counts(f.input_ids, f.pool_mask, vocab).clamp(max=255).to(torch.uint8)
    return out


class ScoreCache:
    """Pooled scores kept in one file (``--scores-cache``), so a new margin/bonus grid over the same texts and
    encoder settings costs seconds instead of an encoding pass. Each part is keyed by a hash of the texts, the side
    and the card settings that change pooled scores; a changed part is recomputed and the file rewritten."""

    SETTINGS = ("base_model", "variant", "query_prefix", "passage_prefix", "query_max_length", "passage_max_length",
                "lowercase", "adapter", "base_sha256", "dtype", "logit_norm")

    def __init__(self, path, card):
        self.path = Path(path) if path else None
        self.card = {k: getattr(card, k) for k in self.SETTINGS}
        self.parts = {}
        if self.path is not None and self.path.exists():
            self.parts = torch.load(self.path, weights_only=True)
        self.changed = False

    def get(self, name, encoder, texts, side, batch_size):
        import hashlib

        key = hashlib.sha256(json.dumps([self.card, side, texts], sort_keys=True).encode()).hexdigest()
        hit = self.parts.get(name)
        if hit is not None and hit["key"] == key:
            return hit["scores"]  # (caches written before the tf bonus also hold presence masks: unused)
        scores = pooled_scores(encoder, texts, side, batch_size, f"calibrate: {name}")
        if self.path is not None:
            self.parts[name] = {"key": key, "scores": scores}
            self.changed = True
        return scores

    def save(self):
        if self.path is not None and self.changed:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(self.parts, self.path)


def _top_k(w: torch.Tensor, top_k: int) -> torch.Tensor:
    if top_k and top_k < w.shape[1]:
        v, i = w.topk(top_k, dim=1)
        w = torch.zeros_like(w).scatter_(1, i, v)
    return w


def weights(z: torch.Tensor, mu: torch.Tensor, margin: float, allowed: torch.Tensor, top_k: int,
            own: torch.Tensor | None = None, bonus: float = 0.0, tf_bonus: float = 0.0) -> torch.Tensor:
    """The calibrated head's weights from pooled scores z [N, V]; ``own`` holds the text's own token counts
    (``own_counts``), turned into the head's bonus by modeling/head.own_token_bonus."""
    from .modeling.head import own_token_bonus

    a = z - mu - margin
    if own is not None and (bonus or tf_bonus):
        a = a + own_token_bonus(own, bonus, tf_bonus)
    return _top_k(torch.log1p(torch.relu(a)) * allowed, top_k)


def holdout_split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(held-out rows, fit rows) of n queries: a seeded ``holdout`` share held out, both sorted."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    cut = int(round(n * holdout))
    return sorted(order[:cut]), sorted(order[cut:])


def multi_positive_infonce(scores: torch.Tensor, positives: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Mean over queries of -log(sum of softmax over the kept passages at the judged ones): scores [Q, N] (already
    multiplied by the temperature), positives [Q, N] bool, keep [N] bool (passages that may be negatives)."""
    sc = scores.masked_fill(~keep, float("-inf"))
    return (torch.logsumexp(sc, 1) - torch.logsumexp(sc.masked_fill(~positives, float("-inf")), 1)).mean()


def fit_term_bias(zq, own_q, zd, own_d, positives: torch.Tensor, mu: torch.Tensor, allowed: torch.Tensor,
                  margin: float, bonus: float, tf_bonus: float, steps: int, lr: float = 0.01, l2: float = 1e-3,
                  holdout: float = 1 / 3, seed: int = 13, eval_every: int = 5, score=None, log=print):
    """Contrastive training of the per-term bias alone, on pooled scores (no forward pass): exact, because the
    bias is constant over positions and so commutes with the max. InfoNCE of each query over all passages (its
    judged ones positive, every other passage negative, a learned temperature), Adam on the offset from -mu with an
    L2 pull back to it. A seeded ``holdout`` share of the queries, and their judged passages, are kept out of the
    loss; the offset kept is the
    one of the evaluation step (every ``eval_every``) with the best held-out ``score(wq, wd, rows)`` (step 0, the
    calibrated bias, included). Returns (term bias, a record of the curve)."""
    n = zq.shape[0]
    held, fit = holdout_split(n, holdout, seed)
    if not fit or not held:
        raise UsageError(f"--fit-steps needs at least 2 tuning queries with judged passages, got {n}")
    from .modeling.head import own_token_bonus

    own_act_q = own_token_bonus(own_q, bonus, tf_bonus) - margin
    own_act_d = own_token_bonus(own_d, bonus, tf_bonus) - margin
    base = -mu
    delta = torch.zeros_like(base, requires_grad=True)
    log_temp = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([delta, log_temp], lr=lr)
    pos = positives[fit].bool()
    # the held-out queries' judged passages are left out of the loss (unless a fit query judges them too): as
    # negatives they would teach the bias to bury exactly what the held-out check looks for
    keep = ~(positives[held].bool().any(0) & ~pos.any(0))

    def vectors(b, rows=None):
        q = zq if rows is None else zq[rows]
        aq = own_act_q if rows is None else own_act_q[rows]
        return (torch.log1p(torch.relu(q + b + aq)) * allowed, torch.log1p(torch.relu(zd + b + own_act_d)) * allowed)

    curve, best = [], (None, None, base.clone())
    for step in range(steps + 1):
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                wq, wd = vectors(base + delta)
                held_score, fit_score = score(wq, wd, held), score(wq, wd, fit)
            curve.append({"step": step, "held_out_ndcg@10": round(held_score, 4), "fit_ndcg@10": round(fit_score, 4)})
            log(f"[calibrate] fit step {step}: nDCG@10 {held_score:.4f} held out ({len(held)} queries), "
                f"{fit_score:.4f} fit ({len(fit)})")
            if best[0] is None or held_score > best[0]:
                best = (held_score, step, (base + delta).detach().clone())
        if step == steps:
            break
        wq, wd = vectors(base + delta, fit)
        loss = multi_positive_infonce((wq @ wd.T) * log_temp.exp(), pos, keep) + l2 * (delta ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    record = {"steps": steps, "lr": lr, "l2": l2, "holdout_queries": len(held), "fit_queries": len(fit),
              "fit_passages": int(keep.sum()),
              "best_step": best[1], "held_out_ndcg@10": round(best[0], 4), "curve": curve}
    return best[2], record


def pick_margin(grid: list[dict], tolerance: float) -> tuple[float, float, float]:
    """(margin, bonus, tf bonus): the largest margin (sparsest vectors: fewer query clauses, smaller index) with an
    nDCG@10 within ``tolerance`` of the best on the grid, and at that margin the bonus and tf bonus with the best
    nDCG@10 (on a tie the smaller bonus, then the smaller tf bonus)."""
    best = max(g["ndcg@10"] for g in grid)
    margin = max(g["margin"] for g in grid if g["ndcg@10"] >= best - tolerance)
    at = [g for g in grid if g["margin"] == margin]
    top = max(g["ndcg@10"] for g in at)
    bonus, tf = min((g.get("bonus", 0.0), g.get("tf_bonus", 0.0)) for g in at if g["ndcg@10"] == top)
    return margin, bonus, tf


def calibrate(encoder: str | None, corpus: str, output: str, variant: str | None = None, passages: int = 2000,
              seed: int = 13, margin: float | None = None, margins=DEFAULT_MARGINS, bonus: float | None = None,
              bonuses=DEFAULT_BONUSES, tune_topics: str | None = None,
              tune_qrels: str | None = None, max_tune_queries: int = 0, batch_size: int = 16,
              device: str | None = None, card_overrides: dict | None = None, overwrite: bool = False,
              command: str | None = None, tolerance: float = 0.01, scores_cache: str | None = None,
              log=print, tf_bonus: float | None = None, tf_bonuses=DEFAULT_TF_BONUSES, fit_steps: int = 0,
              fit_lr: float = 0.01, fit_l2: float = 1e-3, tune_passages: int = 0) -> Path:
    from .corpus import check_jsonl_corpus, corpus_files, doc_id, record_text
    from .encoder import CspladeEncoder, resolve_card
    from .modeling.card import TERM_BIAS_KEY, EncoderCard
    from .topics import load_topics, qrels_path

    if (margin is None) == (tune_topics is None):
        raise UsageError("give either --margin or --tune-topics (with --tune-qrels)")
    if tune_topics and bonus is not None:
        raise UsageError("--input-bonus goes with --margin; with --tune-topics the bonus is tuned (--bonuses)")
    if fit_steps < 0:
        raise UsageError(f"--fit-steps must be >= 0 (0: no fit), got {fit_steps}")
    if fit_steps and not tune_topics:
        raise UsageError("--fit-steps trains the term bias on the tuning queries: give --tune-topics/--tune-qrels")
    if tune_topics and tf_bonus is not None:
        raise UsageError("--tf-bonus goes with --margin; with --tune-topics the tf bonus is tuned (--tf-bonuses)")
    if tune_topics and not tune_qrels:
        raise UsageError("--tune-topics needs --tune-qrels")
    if tune_passages and not tune_topics:
        raise UsageError("--tune-passages sets the passages the tuning queries rank: give --tune-topics/--tune-qrels")
    out = Path(output)
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} exists and is not empty (pass --overwrite to replace it)")
        shutil.rmtree(out)
    source = resolve_card(encoder)
    card = source.with_overrides(variant=variant, **(card_overrides or {}))
    card = EncoderCard(**{**card.to_dict(), "logit_norm": "log_softmax", "term_bias": None, "logit_shift": 0.0,
                          "input_bonus": 0.0, "tf_bonus": 0.0},
                       path=source.path)
    enc = CspladeEncoder.load(card, device=device, batch_size=batch_size)
    t0 = time.time()

    corpora = [corpus] if isinstance(corpus, (str, Path)) else list(corpus)
    records, sample = {}, []  # keyed (corpus index, doc id); the sample takes an equal share of each corpus
    for k, c in enumerate(corpora):
        check_jsonl_corpus(c, ["title", "text"])
        keys = []
        for f in corpus_files(c):
            for line in open(f, encoding="utf-8"):
                if line.strip():
                    info = json.loads(line)
                    keys.append((k, str(doc_id(info, None))))
                    records[keys[-1]] = record_text(info)
        share = passages // len(corpora) + (1 if k < passages % len(corpora) else 0)
        sample += [keys[i] for i in sorted(random.Random(seed).sample(range(len(keys)), min(share, len(keys))))]

    tune = None
    if tune_topics:
        topics = load_topics(tune_topics)
        qrels = read_qrels(qrels_path(tune_qrels))
        qids = [q for q in topics if any(r > 0 for r in qrels.get(q, {}).values())]
        if max_tune_queries:
            qids = sorted(random.Random(seed).sample(qids, min(max_tune_queries, len(qids))))
        # tuning ranks the first corpus's share of the sample plus the judged passages (of the first corpus)
        judged = sorted({(0, d) for q in qids for d, r in qrels[q].items() if r > 0 and (0, d) in records}
                        - set(sample))
        if not qids:
            raise UsageError(f"no query of {tune_topics} has a judged passage in {tune_qrels}")
        extra = []
        if tune_passages:  # more of the first corpus's passages as distractors (-1: all of them)
            taken = set(sample) | set(judged)
            rest = [key for key in records if key[0] == 0 and key not in taken]
            have = sum(1 for k, _ in sample if k == 0) + len(judged)
            want = len(rest) if tune_passages < 0 else max(0, tune_passages - have)
            extra = sorted(random.Random(seed + 1).sample(rest, min(want, len(rest))))
        tune = (qids, topics, qrels, judged, extra)

    store = ScoreCache(scores_cache, card)
    z = store.get("passages", enc, [records[key] for key in sample], "passage", batch_size)
    mu = z.mean(0)
    allowed = enc.model.allowed.float().cpu()
    mu = torch.where(allowed.bool(), mu, torch.zeros_like(mu))
    grid = []
    if tune:
        qids, topics, qrels, judged, extra = tune
        zj = store.get("judged passages", enc, [records[key] for key in judged], "passage", batch_size)
        if extra:
            zj = torch.cat([zj, store.get("more tuning passages", enc, [records[key] for key in extra], "passage",
                                          batch_size)])
            judged = judged + extra
        zq = store.get("tuning queries", enc, [topics[q] for q in qids], "query", batch_size)
        first = [i for i, (k, _) in enumerate(sample) if k == 0]
        zd = torch.cat([z[first], zj])
        dids = [sample[i][1] for i in first] + [d for _, d in judged]
        # own-token counts from the tokenizer (seconds), not from the cache
        own_q = own_counts(enc, [topics[q] for q in qids], "query")
        own_d = own_counts(enc, [records[sample[i]] for i in first] + [records[key] for key in judged], "passage")
        for m in margins:
            for b in bonuses:
                for tf in tf_bonuses:
                    wq = weights(zq, mu, m, allowed, card.query_top_k, own_q, b, tf)
                    wd = weights(zd, mu, m, allowed, card.passage_top_k, own_d, b, tf)
                    score = ndcg_at_k(wq @ wd.T, qids, dids, qrels)
                    grid.append({"margin": m, "bonus": b, "tf_bonus": tf, "ndcg@10": round(score, 4),
                                 "terms_per_query": round(float((wq > 0).sum(1).float().mean()), 1),
                                 "terms_per_passage": round(float((wd > 0).sum(1).float().mean()), 1)})
                    log(f"[calibrate] margin {m:g} bonus {b:g} tf bonus {tf:g}: nDCG@10 {score:.4f} on {len(qids)} "
                        f"{tune_topics} queries over {len(dids)} passages; terms/query {grid[-1]['terms_per_query']}"
                        f", terms/passage {grid[-1]['terms_per_passage']}")
        margin, bonus, tf_bonus = pick_margin(grid, tolerance)
    bonus = float(bonus or 0.0)
    tf_bonus = float(tf_bonus or 0.0)
    term_bias, fit = -mu, None
    if fit_steps:
        col = {d: j for j, d in enumerate(dids)}
        positives = torch.zeros(len(qids), len(dids), dtype=torch.bool)
        for i, q in enumerate(qids):
            for d, r in qrels[q].items():
                if r > 0 and d in col:
                    positives[i, col[d]] = True

        def score(wq, wd, rows):
            return ndcg_at_k(_top_k(wq[rows], card.query_top_k) @ _top_k(wd, card.passage_top_k).T,
                             [qids[i] for i in rows], dids, qrels)

        term_bias, fit = fit_term_bias(zq, own_q, zd, own_d, positives, mu, allowed, margin, bonus, tf_bonus,
                                       fit_steps, fit_lr, fit_l2, seed=seed, score=score, log=log)
        term_bias = torch.where(allowed.bool(), term_bias, torch.zeros_like(term_bias))
    store.save()

    from safetensors.torch import save_file

    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    chain = []
    for i, src in enumerate(source.adapter_paths()):
        shutil.copytree(src, tmp / f"stage{i + 1}")
        chain.append(f"stage{i + 1}")
    save_file({TERM_BIAS_KEY: term_bias.contiguous()}, str(tmp / "term_bias.safetensors"))
    record = {"stage": "calibrate", "command": command, "passages": len(sample), "seed": seed,
              "tuning_passages": len(dids) if tune else None,
              "tolerance": tolerance if tune else None,
              "corpora": [str(c) for c in corpora],
              "margin": margin, "input_bonus": bonus, "tf_bonus": tf_bonus, "tuned_on": tune_topics, "grid": grid}
    if fit:
        record["fit_term_bias"] = fit
    if source.training:
        record["previous"] = source.training
    from .modeling.backbone import resolve_base, weights_sha256

    names = ", ".join(Path(str(c)).parent.name or str(c) for c in corpora)
    description = (f"{source.name} ({card.variant}) with a calibrated head: pooled per-position log-probabilities, "
                   f"term bias = minus the mean over {len(sample)} passages of {names}, margin {margin:g}"
                   f"{f', input bonus {bonus:g}' if bonus else ''}{f', tf bonus {tf_bonus:g}' if tf_bonus else ''}"
                   f"{f' (tuned on {tune_topics})' if tune_topics else ''}"
                   + (f"; then the term bias alone trained contrastively on the tuning queries' pooled scores "
                      f"({fit['best_step']} of {fit['steps']} steps, chosen on {fit['holdout_queries']} held-out "
                      f"queries); the model is untouched." if fit else "; no gradient training."))
    new = EncoderCard(**{**card.to_dict(), "name": out.name, "term_bias": "term_bias.safetensors",
                         "base_sha256": source.base_sha256 or weights_sha256(resolve_base(card.base_ref())),
                         "description": description,
                         "logit_shift": float(margin), "input_bonus": bonus, "tf_bonus": tf_bonus, "adapter": (chain if len(chain) > 1 else chain[0]) if chain else None,
                         "training": record, "scores": {}, "hybrid": None})  # fusion weights are tuned per encoder
    new.save(tmp)
    (tmp / CALIBRATION_FILE).write_text(json.dumps({**record, "previous": None, "seconds": round(time.time() - t0, 1),
                                                    "mean_pooled_score": float(mu[allowed.bool()].mean())},
                                                   indent=1) + "\n")
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    log(f"[calibrate] {out}: margin {margin:g}, input bonus {bonus:g}, tf bonus {tf_bonus:g}, bias from {len(sample)} passages, {time.time() - t0:.0f} s")
    return out


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.calibrate", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--encoder", default=None, help="starting encoder (name, directory or checkpoint; default: the "
                                                   "default encoder)")
    p.add_argument("--variant", default=None, choices=["causal", "echo", "bi"], help="override the card's variant")
    p.add_argument("--corpus", required=True, nargs="+",
                   help="corpus JSONL (file or directory) to take the term statistics from; several corpora share "
                        "the sample equally (tuning ranks the first one's passages)")
    p.add_argument("--output", required=True, help="directory of the new encoder")
    p.add_argument("--passages", type=positive_int, default=2000,
                   help="seeded sample size for the term means, over all corpora (default: 2000)")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--margin", type=float, default=None, help="fixed margin (logit_shift) instead of tuning it")
    p.add_argument("--margins", default=",".join(f"{m:g}" for m in DEFAULT_MARGINS),
                   help="margins tried with --tune-topics (comma-separated)")
    p.add_argument("--input-bonus", type=float, default=None,
                   help="fixed input bonus (with --margin; default 0): the text's own tokens are cut at margin - bonus")
    p.add_argument("--bonuses", default=",".join(f"{b:g}" for b in DEFAULT_BONUSES),
                   help="input bonuses tried at every margin with --tune-topics (comma-separated; 0 = the plain head)")
    p.add_argument("--tf-bonus", type=float, default=None,
                   help="fixed tf bonus (with --margin; default 0): + tf_bonus * log(n) for a token the text has n times")
    p.add_argument("--tf-bonuses", default=",".join(f"{b:g}" for b in DEFAULT_TF_BONUSES),
                   help="tf bonuses tried at every margin and bonus with --tune-topics (comma-separated; 0 = count "
                        "each token once)")
    p.add_argument("--fit-steps", type=int_at_least(0), default=0,
                   help="then train the per-term bias contrastively for up to this many full-batch steps on the "
                        "tuning queries' pooled scores (seconds per step; no forward pass), keeping the step that is "
                        "best on a held-out third of them (0: the corpus-mean bias as is)")
    p.add_argument("--fit-lr", type=float, default=0.01, help="Adam learning rate of --fit-steps (default 0.01)")
    p.add_argument("--fit-l2", type=float, default=1e-3,
                   help="L2 pull of the fitted bias back to the corpus-mean one (default 1e-3)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="pick the largest margin within this much nDCG@10 of the best (sparser; default 0.01)")
    p.add_argument("--tune-topics", default=None, help="training topics to choose the margin on (never a test split)")
    p.add_argument("--tune-qrels", default=None, help="their qrels")
    p.add_argument("--tune-passages", default="0", metavar="N|all",
                   help="rank the tuning queries (grid and --fit-steps) against N passages of the first corpus: "
                        "the sample's share, the judged ones, and seeded others to make up N; 'all' for the whole "
                        "corpus, which matches a full-corpus test (default 0: the sample's share and the judged)")
    p.add_argument("--max-tune-queries", type=int_at_least(0), default=0, help="tune on a seeded sample of the queries (0: all)")
    p.add_argument("--scores-cache", default=None, metavar="FILE",
                   help="keep the pooled scores in FILE (.pt) and reuse them when texts and settings match: a new "
                        "--margins/--bonuses grid then takes seconds")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--device", default=None)
    p.add_argument("--card", nargs="*", default=None, metavar="KEY=VALUE",
                   help="card settings of the new encoder, e.g. lowercase=true passage_max_length=256")
    p.add_argument("--overwrite", action="store_true")
    return p


def _main(argv=None):
    from .ship import parse_card_overrides

    args = sys.argv[1:] if argv is None else list(argv)
    a = build_parser().parse_args(args)
    if a.tune_passages == "all":
        tune_passages = -1
    else:
        try:
            tune_passages = int(a.tune_passages)
        except ValueError:
            raise UsageError(f"--tune-passages {a.tune_passages!r}: expected a number or 'all'") from None
        if tune_passages < 0:
            raise UsageError(f"--tune-passages must be >= 0 or 'all', got {tune_passages}")
    grids = {}
    for flag, text in (("--margins", a.margins), ("--bonuses", a.bonuses), ("--tf-bonuses", a.tf_bonuses)):
        try:
            grids[flag] = tuple(float(m) for m in text.split(",") if m.strip())
        except ValueError:
            raise UsageError(f"{flag} {text!r}: expected comma-separated numbers") from None
        if not grids[flag]:
            raise UsageError(f"{flag} is empty")
    calibrate(a.encoder, a.corpus, a.output, a.variant, a.passages, a.seed, a.margin, grids["--margins"],
              a.input_bonus, grids["--bonuses"], a.tune_topics,
              a.tune_qrels, a.max_tune_queries, a.batch_size, a.device, parse_card_overrides(a.card), a.overwrite,
              command=" ".join(["python -m csplade_pyserini.calibrate"] + [shlex.quote(x) for x in args]),
              tolerance=a.tolerance, scores_cache=a.scores_cache, tf_bonus=a.tf_bonus,
              tf_bonuses=grids["--tf-bonuses"], fit_steps=a.fit_steps, fit_lr=a.fit_lr, fit_l2=a.fit_l2,
              tune_passages=tune_passages,
              log=lambda s: print(s, file=sys.stderr))


def main(argv=None):
    run(_main, argv, "csplade-calibrate")


if __name__ == "__main__":
    main()
