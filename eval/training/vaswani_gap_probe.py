"""Probe (session 21): where do the default's inference-free queries lose to BM25 on Vaswani, and does matching
Porter-stem variants of query tokens close it?

Everything scores in memory: queries encoded by a lexical card against documents as smollm2-135m-echo-corpusfit
encoded them (the vectors its regressions wrote under runs/reproduce/). SciFact numbers are on the held-out third of
train-fit that fit_query_weights keeps out (seed 13), on the rest ("fit", trained on) and on the 100 dev queries
(runs/data, `python eval/training/make_dev_split.py --out runs/data`); Vaswani-3000's test queries (zero-shot, the df
curve read from that index) are a report only: choose on held-out SciFact.

    python eval/training/vaswani_gap_probe.py bm25      # BM25 in Python on Vaswani-3000: Porter stems vs none
    python eval/training/vaswani_gap_probe.py probe     # query/document variants of the default (table below)
    python eval/training/vaswani_gap_probe.py refit     # fit_query_weights df + per-term with stem-collapsed docs

Variants (`probe`):
  expand a     each query token's Porter-stem variants (whole-word tokens: Ġ + >= 3 letters, stemmed by Lucene's
               analyzer as BM25's index is) added with a x its weight
  collapse     both sides on stem groups: a query token scores max over its group's document weights
  first f      the passage's first text token given weight >= f (echo pools no position that predicts it)
  own f        every own token of the passage (first 255) given weight >= f
  own-only     documents cut to their own tokens (no expansion)
  idf          query tokens weighted by log(1 + (N - df + .5) / (df + .5)) of the document's own tokens
"""
import argparse, json, math
from collections import Counter, defaultdict
from pathlib import Path

import torch

from csplade_pyserini.calibrate import holdout_split, ndcg_at_k, read_qrels
from csplade_pyserini.encoder import resolve_card
from csplade_pyserini.modeling.lexical import LexicalQueryEncoder
from csplade_pyserini.modeling.model import token_lists
from csplade_pyserini.paths import data_dir
from csplade_pyserini.topics import load_topics
import csplade_pyserini.fit_query_weights as F

CARD = "smollm2-135m-echo-corpusfit-lexqdf"
SCIFACT = "runs/reproduce/scifact-full-smollm2-135m-echo-corpusfit"
VASWANI = "runs/reproduce/vaswani-3000-smollm2-135m-echo-corpusfit"
STEMS = Path("runs/probe/stems.json")
KEEP = 255  # passage_max_length 256 less the BOS


def lucene(stemmer):
    from csplade_pyserini.jvm import bootstrap
    bootstrap()
    from pyserini.analysis import Analyzer, get_lucene_analyzer
    return Analyzer(get_lucene_analyzer(stemmer=stemmer, stopwords=True))


def stems(tokenizer) -> dict[int, str]:
    """token id -> Porter stem, for whole-word tokens (cached in runs/probe/)."""
    import re
    if not STEMS.exists():
        an = lucene("porter")
        out = {}
        for t, i in tokenizer.get_vocab().items():
            if t.startswith("Ġ") and re.fullmatch(r"[a-z]{3,}", t[1:]):
                s = an.analyze(t[1:])
                if len(s) == 1:
                    out[i] = s[0]
        STEMS.parent.mkdir(parents=True, exist_ok=True)
        STEMS.write_text(json.dumps(out))
    return {int(k): v for k, v in json.loads(STEMS.read_text()).items()}


def groups(stem):
    g = defaultdict(list)
    for i, s in stem.items():
        g[s].append(i)
    return {i: g[s] for i, s in stem.items()}


def texts_of(files):
    return [" ".join(p.strip() for p in json.loads(line)["contents"].split("\n") if p.strip())
            for f in files for line in open(f) if line.strip()]


class Setup:
    """One query set against one vectors directory: query weights, document weights over the columns needed."""

    def __init__(self, card, topics, qrels, run_dir, index=None, stem=None):
        enc = LexicalQueryEncoder.load(resolve_card(card))
        if index:
            enc.use_index(index)
        t = load_topics(str(topics))
        self.judged = read_qrels(qrels)
        self.qids = list(t)
        self.base = [dict(enc.queries.weights(Counter(c)))
                     for c in F.query_counts(enc.queries, list(t.values()))[0]]
        self.group = groups(stem) if stem else {}
        toks = sorted({u for w in self.base for v in w for u in [v] + self.group.get(v, [])})
        self.col = {v: j for j, v in enumerate(toks)}
        files = F.vector_files([f"{run_dir}/vectors"])
        self.dids, self.docs = F.read_vectors(files, {enc.queries.terms.term(v): j for v, j in self.col.items()}, 100.0)
        self.own = torch.zeros_like(self.docs, dtype=torch.bool)
        self.first = torch.zeros_like(self.own)
        q = enc.queries
        for i, (ids, flags) in enumerate(token_lists(q.tokenizer, texts_of(files), "passage: ", True, q.special_ids)):
            for p, v in enumerate(v for v, f in zip(ids[:KEEP], flags[:KEEP]) if f):
                if v in self.col:
                    self.own[i, self.col[v]] = True
                    self.first[i, self.col[v]] |= p == 0

    def queries(self, expand=0.0):
        Q = torch.zeros(len(self.qids), len(self.col))
        for i, w in enumerate(self.base):
            for v, x in w.items():
                for u in self.group.get(v, []) if expand else []:
                    Q[i, self.col[u]] = max(Q[i, self.col[u]], expand * x)
            for v, x in w.items():
                Q[i, self.col[v]] = max(Q[i, self.col[v]], x)
        return Q

    def collapsed(self):
        """[N, T] documents where token v's column holds the max over v's stem group."""
        d = self.docs.clone()
        for v, j in self.col.items():
            for u in self.group.get(v, []):
                d[:, j] = torch.maximum(d[:, j], self.docs[:, self.col[u]])
        return d

    def ndcg(self, Q, D, rows=None):
        sc = Q @ D.T
        if rows is None:
            return ndcg_at_k(sc, self.qids, self.dids, self.judged)
        return ndcg_at_k(sc[rows], [self.qids[i] for i in rows], self.dids, self.judged)


def sets(card=CARD, stem=None):
    fit = Setup(card, "runs/data/scifact-train-fit.tsv", "runs/data/scifact-train-fit.qrels", SCIFACT, stem=stem)
    dev = Setup(card, "runs/data/scifact-dev.tsv", "runs/data/scifact-dev.qrels", SCIFACT, stem=stem)
    vas = Setup(card, data_dir() / "vaswani/queries.test.tsv", data_dir() / "vaswani/qrels.test.txt", VASWANI,
                index=f"{VASWANI}/index", stem=stem)
    return fit, dev, vas


def row(name, fit, dev, vas, f):
    """f(setup) -> (Q, D). Prints held-out / fit / dev / Vaswani nDCG@10."""
    held, rest = holdout_split(len(fit.qids), 1 / 3, 13)
    Q, D = f(fit)
    out = {"variant": name, "held_out": round(fit.ndcg(Q, D, held), 4), "fit": round(fit.ndcg(Q, D, rest), 4),
           "dev": round(dev.ndcg(*f(dev)), 4), "vaswani": round(vas.ndcg(*f(vas)), 4)}
    print(f"{name:<22} held out {out['held_out']:.4f}  fit {out['fit']:.4f}  dev {out['dev']:.4f}  "
          f"vaswani {out['vaswani']:.4f}", flush=True)
    return out


def probe(args):
    tok = LexicalQueryEncoder.load(resolve_card(CARD)).queries.tokenizer
    fit, dev, vas = sets(stem=stems(tok))
    rows = [row("as shipped", fit, dev, vas, lambda s: (s.queries(), s.docs))]
    for a in (0.25, 0.5, 1.0):
        rows.append(row(f"expand {a}", fit, dev, vas, lambda s, a=a: (s.queries(expand=a), s.docs)))
    rows.append(row("collapse", fit, dev, vas, lambda s: (s.queries(), s.collapsed())))
    for f in (1.0, 2.0):
        rows.append(row(f"first {f}", fit, dev, vas,
                        lambda s, f=f: (s.queries(), torch.where(s.first, s.docs.clamp(min=f), s.docs))))
        rows.append(row(f"own {f}", fit, dev, vas,
                        lambda s, f=f: (s.queries(), torch.where(s.own, s.docs.clamp(min=f), s.docs))))
    rows.append(row("own-only", fit, dev, vas, lambda s: (s.queries(), s.docs * s.own)))

    def idf(s):
        n, df = s.docs.shape[0], s.own.float().sum(0)
        return torch.log(1 + (n - df + 0.5) / (df + 0.5))
    rows.append(row("idf x model docs", fit, dev, vas, lambda s: ((s.queries() > 0) * idf(s), s.docs)))
    rows.append(row("idf x own-only binary", fit, dev, vas, lambda s: ((s.queries() > 0) * idf(s), s.own.float())))
    return rows


def bm25(args):
    """BM25 (k1 0.9, b 0.4, Lucene's analyzer with stopwords) in Python over the Vaswani-3000 subset."""
    docs = [json.loads(line) for line in open("runs/reproduce/vaswani-3000-bm25/subset.jsonl")]
    topics = load_topics(str(data_dir() / "vaswani/queries.test.tsv"))
    judged = read_qrels(data_dir() / "vaswani/qrels.test.txt")
    out = []
    for stemmer in ("porter", "none"):
        an = lucene(stemmer)
        D = [Counter(an.analyze(" ".join(x for x in (d.get("title", ""), d.get("text", "")) if x))) for d in docs]
        n, avg = len(D), sum(sum(c.values()) for c in D) / len(D)
        df = Counter(t for c in D for t in c)
        S = torch.zeros(len(topics), n)
        for i, q in enumerate(topics):
            for t in set(an.analyze(topics[q].lower())):
                if t in df:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    for j, c in enumerate(D):
                        if t in c:
                            S[i, j] += idf * c[t] * 1.9 / (c[t] + 0.9 * (0.6 + 0.4 * sum(c.values()) / avg))
        out.append({"stemmer": stemmer, "vaswani": round(ndcg_at_k(S, list(topics), [d["id"] for d in docs], judged), 4)})
        print(f"BM25, stemmer {stemmer}: Vaswani-3000 nDCG@10 {out[-1]['vaswani']:.4f}", flush=True)
    return out


def refit(args):
    """fit_query_weights --mode df then --mode per-term, as the default was fitted, but with every token's document
    weight the max over its stem group (F.read_vectors patched); then the probe's collapse scoring."""
    tok = LexicalQueryEncoder.load(resolve_card(CARD)).queries.tokenizer
    stem = stems(tok)
    vocab = {i: t for t, i in tok.get_vocab().items()}
    by_term = {vocab[v]: [vocab[u] for u in g] for v, g in groups(stem).items()}
    original = F.read_vectors

    def read_vectors(files, term_to_col, scale, df=None):
        ext = {}
        pairs = [(j, ext.setdefault(u, len(ext))) for t, j in term_to_col.items() for u in by_term.get(t, [t])]
        dids, dense = original(files, ext, scale, df)
        out = torch.zeros(dense.shape[0], max(term_to_col.values()) + 1)
        for j, k in pairs:
            out[:, j] = torch.maximum(out[:, j], dense[:, k])
        return dids, out
    F.read_vectors = read_vectors
    common = ["--vectors", f"{SCIFACT}/vectors", "--topics", "runs/data/scifact-train-fit.tsv", "--qrels",
              "runs/data/scifact-train-fit.qrels", "--eval-every", "10", "--lr", "0.05", "--overwrite"]
    F._main(["--mode", "df", "--knots", "8", "--l2", "1e-4", "--steps", "300", "--encoder",
             "smollm2-135m-echo-corpusfit", "--output", "runs/probe/collapse-df8", *common])
    F._main(["--mode", "per-term", "--l2", "1e-5", "--steps", "500", "--encoder", "runs/probe/collapse-df8",
             "--output", "runs/probe/collapse-df8-pt", *common])
    F.read_vectors = original
    out = []
    for card in ("runs/probe/collapse-df8", "runs/probe/collapse-df8-pt"):
        fit, dev, vas = sets(card, stem)
        out.append(row(card, fit, dev, vas, lambda s: (s.queries(), s.collapsed())))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["bm25", "probe", "refit"])
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args()
    rows = {"bm25": bm25, "probe": probe, "refit": refit}[args.what](args)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
