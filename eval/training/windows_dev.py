"""Dev check of long passages scored per window (the segment approach of Pyserini's MS MARCO document runs), in
memory: each passage split into up to W windows of the card's passage length (``CspladeModel.features(...,
windows=W)``), each window its own vector, and a passage scored by its first window, the max over its windows
(MaxP), their sum or their mean.

    python eval/training/windows_dev.py ENCODER W [--json out.jsonl]

The same dev split and pool as dev_eval.py (100 held-out SciFact train queries, 600 passages, seed 13; make it with
eval/training/make_dev_split.py --out runs/data). The other way, one vector max-pooled over all windows:
dev_eval.py --passage-windows.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_eval import cut_top_k, dev_pool, float_weights, recall_at  # noqa: E402
from csplade_pyserini.calibrate import ndcg_at_k  # noqa: E402
from csplade_pyserini.encoder import CspladeEncoder, length_batches  # noqa: E402
from csplade_pyserini.paths import data_dir  # noqa: E402


@torch.inference_mode()
def window_weights(enc, texts, windows, batch_size=16):
    """Per-window float weights [rows, V] (each window cut to the card's passage top-k) and each row's text index."""
    m = enc.model
    prefix, max_length, top_k = enc.settings("passage")
    toks = m.token_lists(texts, prefix)
    weights, owners = [], []
    for idx in length_batches(toks, batch_size):
        f = m.features([toks[i] for i in idx], max_length, windows).to(m.device)
        # without groups the model returns one vector per window row
        weights.append(cut_top_k(m(f.input_ids, f.attention_mask, f.pool_mask).float().cpu(), top_k))
        groups = f.groups.tolist() if f.groups is not None else range(len(idx))
        owners.extend(idx[g] for g in groups)
    return torch.cat(weights), torch.tensor(owners)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("encoder")
    ap.add_argument("windows", type=int)
    ap.add_argument("--topics", default="runs/data/scifact-dev.tsv")
    ap.add_argument("--qrels", default="runs/data/scifact-dev.qrels")
    ap.add_argument("--corpus", default=str(data_dir() / "scifact" / "corpus.jsonl"))
    ap.add_argument("--pool", type=int, default=600)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", default=None, help="append the rows to this JSONL file")
    a = ap.parse_args()
    topics, qrels, qids, docs, dids = dev_pool(a.topics, a.qrels, a.corpus, a.pool, a.seed)
    enc = CspladeEncoder.load(a.encoder)
    t0 = time.time()
    wq = float_weights(enc, [topics[q] for q in qids], "query")
    ws, owner = window_weights(enc, [docs[d] for d in dids], a.windows)
    print(f"{len(dids)} passages -> {len(owner)} windows", flush=True)
    sc = wq @ ws.T  # [queries, windows]
    n_q, n_d = len(qids), len(dids)
    index = owner.expand(n_q, -1)
    total = torch.zeros(n_q, n_d).index_add(1, owner, sc)
    # a text's windows are consecutive rows in window order: its first row is its first window
    first = torch.full((n_d,), len(owner)).scatter_reduce(0, owner, torch.arange(len(owner)), "amin")
    scorings = [("first window", sc[:, first]),
                ("maxp", torch.full((n_q, n_d), float("-inf")).scatter_reduce(1, index, sc, "amax")),
                ("sum", total),
                ("mean", total / torch.bincount(owner, minlength=n_d).float())]
    for label, scores in scorings:
        row = {"encoder": a.encoder, "windows": a.windows, "scoring": label,
               "ndcg@10": round(ndcg_at_k(scores, qids, dids, qrels), 4),
               "r@100": round(recall_at(scores, qids, dids, qrels), 4), "passages": n_d, "rows": len(owner),
               "seconds": round(time.time() - t0, 1)}
        print(json.dumps(row), flush=True)
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
