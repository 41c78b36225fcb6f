"""Dev check of long passages scored per window (the segment approach of Pyserini's MS MARCO document runs), in
memory: each passage split into up to W windows of the card's passage length, each window its own vector, and a
passage scored by the first window, the max over its windows (MaxP), their sum or their mean.

    python eval/training/windows_dev.py ENCODER W [--json out.jsonl]

The same dev split and pool as dev_eval.py (100 held-out SciFact train queries, 600 passages, seed 13).
(The other way, one vector max-pooled over all windows: dev_eval.py --passage-windows.)
"""
import json
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dev_eval import cut_top_k, float_weights, recall_at  # noqa: E402
from csplade_pyserini.calibrate import ndcg_at_k, read_qrels
from csplade_pyserini.corpus import doc_id, record_text
from csplade_pyserini.encoder import CspladeEncoder
from csplade_pyserini.paths import data_dir
from csplade_pyserini.topics import load_topics

if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
    sys.exit(__doc__)
name, W = sys.argv[1], int(sys.argv[2])
out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
topics, qrels = load_topics("runs/data/scifact-dev.tsv"), read_qrels("runs/data/scifact-dev.qrels")
qids = [q for q in topics if q in qrels]
docs = {}
for line in open(data_dir() / "scifact" / "corpus.jsonl", encoding="utf-8"):
    d = json.loads(line); docs[str(doc_id(d, None))] = record_text(d)
judged = sorted({d for q in qids for d in qrels[q] if d in docs})
rest = sorted(set(docs) - set(judged))
dids = judged + random.Random(13).sample(rest, max(0, 600 - len(judged)))
enc = CspladeEncoder.load(name)
m = enc.model
prefix, L, top_k = enc.settings("passage")
wq = float_weights(enc, [topics[q] for q in qids], "query")
toks = m.token_lists([docs[d] for d in dids], prefix)
keep = L - (1 if m.bos_id is not None else 0)
# split every passage into windows, as separate texts
segs, owner = [], []
for i, (ids, fl) in enumerate(toks):
    for s in range(0, max(len(ids), 1), keep):
        if s // keep >= W: break
        segs.append((ids[s:s + keep], fl[s:s + keep])); owner.append(i)
print(f"{len(dids)} passages -> {len(segs)} windows", flush=True)
order = sorted(range(len(segs)), key=lambda i: len(segs[i][0]), reverse=True)
ws = torch.zeros(len(segs), m.lm_head.weight.shape[0])
t0 = time.time()
with torch.inference_mode():
    for s in range(0, len(order), 16):
        idx = order[s:s + 16]
        f = m.features([segs[i] for i in idx], L).to(m.device)
        ws[idx] = cut_top_k(m(f.input_ids, f.attention_mask, f.pool_mask).float().cpu(), top_k)
owner = torch.tensor(owner)
sc = wq @ ws.T  # [Q, S]
first = torch.tensor([owner.tolist().index(i) for i in range(len(dids))])
for label, S in [("first window", sc[:, first]),
                 ("maxp", torch.full((len(qids), len(dids)), -1e9).scatter_reduce(1, owner.expand(len(qids), -1), sc, "amax")),
                 ("sum", torch.zeros(len(qids), len(dids)).index_add(1, owner, sc)),
                 ("mean", torch.zeros(len(qids), len(dids)).index_add(1, owner, sc) / torch.bincount(owner).float())]:
    row = {"encoder": name, "windows": W, "scoring": label, "ndcg@10": round(ndcg_at_k(S, qids, dids, qrels), 4),
           "r@100": round(recall_at(S, qids, dids, qrels), 4), "passages": len(dids), "rows": len(segs),
           "seconds": round(time.time() - t0, 1)}
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")
