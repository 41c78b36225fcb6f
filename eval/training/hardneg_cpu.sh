#!/usr/bin/env bash
# Contrastive training on negatives mined by a CSPLADE encoder instead of BM25 (the "second round" of SPLADE-style
# training), sized for 2 CPU cores. Rebuilds `smollm2-135m-causal-hardneg` with the defaults:
#   1. the dev split and BM25 data (smollm2_shipped_cpu.sh --data-only, ~20 s)
#   2. MINER's impact index of the whole SciFact corpus: the scifact-full-MINER regression (reproduce; its index is
#      kept in runs/reproduce/scifact-full-MINER/index; ~12 min for a causal encoder on 2 AMX cores in bf16)
#   3. mine_negatives --index: MINER's top 30 non-relevant passages for each of the 709 train-fit queries (~35 s)
#   4. train_fitted_cpu.sh with TRAIN_DATA = those negatives: EPOCHS (default 1) from START (default MINER),
#      the dev check, and only if it beat START on dev, the ship and the scifact-600 / vaswani-3000 regressions
# Knobs: MINER START NAME VARIANT EPOCHS (and every train_fitted_cpu.sh knob). Test queries are never used for a
# choice: the miner sees only train-fit queries, the ship gate only the 100 dev queries (SciFact train).
set -euo pipefail
cd "$(dirname "$0")/../.."
MINER=${MINER:-smollm2-135m-causal-trained-4ep}
VARIANT=${VARIANT:-causal}
START=${START:-$MINER}
NAME=${NAME:-smollm2-135m-$VARIANT-hardneg}
EPOCHS=${EPOCHS:-1}
DATA=runs/data
MINED=$DATA/scifact-train-fit.${MINER#smollm2-135m-}.jsonl
VARIANT=$VARIANT bash eval/training/smollm2_shipped_cpu.sh --data-only
reg=eval/regressions/scifact-full-$MINER.yaml
accept=()
if [ ! -f "$reg" ]; then  # a new whole-corpus regression for the miner, from the causal-trained one's (values measured)
  sed "1i # $MINER over the whole SciFact corpus (5,183 docs), written by eval/training/hardneg_cpu.sh: its index mines the negatives.
/^#/d; s/smollm2-135m-causal-trained/$MINER/g; /^    \(ndcg@10\|mrr@10\|r@100\|map\): /d" \
    eval/regressions/scifact-full-smollm2-135m-causal-trained.yaml > "$reg"
  accept=(--accept)
fi
index=runs/reproduce/scifact-full-$MINER/index
[ -d "$index" ] || python -m csplade_pyserini.reproduce "$reg" "${accept[@]}"
[ -f "$MINED" ] || python -m csplade_pyserini.mine_negatives --corpus ../shared/data/scifact/corpus.jsonl \
  --topics "$DATA/scifact-train-fit.tsv" --qrels "$DATA/scifact-train-fit.qrels" --output "$MINED" --depth 30 \
  --index "$index" --encoder "$MINER"
START=$START NAME=$NAME VARIANT=$VARIANT EPOCHS=$EPOCHS TRAIN_DATA=$MINED NEG_SOURCE=CSPLADE-${MINER#smollm2-135m-} \
  bash eval/training/train_fitted_cpu.sh "$@"
