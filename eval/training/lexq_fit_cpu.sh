#!/usr/bin/env bash
# Fit the inference-free (lexical) query table of an encoder on SciFact train-fit queries, check it on the 100 dev
# queries, then run its test regressions on the source's indexes (documents_from).
#
#   SRC=smollm2-135m-echo-corpusfit NAME=smollm2-135m-echo-corpusfit-lexq-fit [MODE=affine|per-term] [LR=0.02] \
#       bash eval/training/lexq_fit_cpu.sh
#
# 1. the training pool: every passage judged by a SciFact train query (train-fit and dev) + 300 seeded others
# 2. the pool encoded once by SRC's model (the only slow step: ~865 echo passages, ~20 min on 2 AVX2 cores)
# 3. python -m csplade_pyserini.fit_query_weights on the 709 train-fit queries (a held-out third picks the step)
# 4. dev check (100 held-out train queries, never used by the fit) over the pool's impact index: SRC's own queries,
#    the derived lexical table, the fitted one
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${SRC:-smollm2-135m-echo-corpusfit}
NAME=${NAME:-${SRC}-lexq-fit}
W=${W:-runs/lexq}
STEPS=${STEPS:-200}
LR=${LR:-0.02}
MODE=${MODE:-affine}
mkdir -p "$W"
[ -f runs/data/scifact-train-fit.tsv ] || python eval/training/make_dev_split.py --out runs/data
[ -f "$W/train-pool.jsonl" ] || python - "$W/train-pool.jsonl" <<'PY'
import json, random, sys
from csplade_pyserini.paths import data_dir
judged = set()
for f in ("runs/data/scifact-train-fit.qrels", "runs/data/scifact-dev.qrels"):
    for line in open(f):
        p = line.split()
        if len(p) >= 4 and int(p[3]) > 0:
            judged.add(p[2])
docs = [json.loads(l) for l in open(data_dir() / "scifact" / "corpus.jsonl")]
others = sorted(d["id"] for d in docs if d["id"] not in judged)
sample = set(random.Random(13).sample(others, 300))
with open(sys.argv[1], "w") as fh:
    for d in docs:
        if d["id"] in judged or d["id"] in sample:
            fh.write(json.dumps(d) + "\n")
PY
[ -d "$W/pool-vectors" ] || python -m csplade_pyserini.encode input --corpus "$W/train-pool.jsonl" --fields title text \
  output --embeddings "$W/pool-vectors" encoder --encoder "$SRC" --batch-size 16
[ -d "$W/pool-index" ] || python -m csplade_pyserini.index --input "$W/pool-vectors" --index "$W/pool-index"
python -m csplade_pyserini.fit_query_weights --encoder "$SRC" --vectors "$W/pool-vectors" \
  --topics runs/data/scifact-train-fit.tsv --qrels runs/data/scifact-train-fit.qrels \
  --mode "$MODE" --steps "$STEPS" --lr "$LR" --output "$W/$NAME" --overwrite
for q in model lexical; do
  python -m csplade_pyserini.search --index "$W/pool-index" --topics runs/data/scifact-dev.tsv --encoder "$SRC" \
    --query-encoder $q --output "$W/dev.$q.txt"
done
python -m csplade_pyserini.search --index "$W/pool-index" --topics runs/data/scifact-dev.tsv --encoder "$W/$NAME" \
  --output "$W/dev.fitted.txt"
python -m csplade_pyserini.eval --qrels runs/data/scifact-dev.qrels --run "$W/dev.model.txt" "$W/dev.lexical.txt" \
  "$W/dev.fitted.txt" | tee "$W/dev.txt"
python -m csplade_pyserini.eval --qrels runs/data/scifact-dev.qrels --run "$W/dev.lexical.txt" "$W/dev.fitted.txt" \
  --compare | tee -a "$W/dev.txt"
