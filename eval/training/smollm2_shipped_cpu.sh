#!/usr/bin/env bash
# The shipped SmolLM2-135M encoders' recipe, sized for a 2-core CPU (VARIANT=causal|echo|bi). Every step skips
# or resumes finished work when rerun. Test queries are never used: model choices are made on a 100-query dev
# split of SciFact *train*.
#   1. dev split of SciFact train (709 fit / 100 dev queries) and BM25 hard negatives for the fit queries (30 each)
#   2. [ADAPT_STEPS > 0: the paper's adaptation phase, L_CLM + L_ReLU on corpus passages, LoRA]
#   3. calibrate: pool per-position log-probabilities, term bias = minus the mean pooled score over a sample of
#      the shipped corpora's passages (SciFact + Vaswani, unlabeled), margin tuned on 300 fit queries
#   4. contrastive: InfoNCE (in-batch + 1 BM25 negative) + light FLOPS, LoRA on the last 10 layers and the term
#      bias trained together, passages 128 tokens in training, 3 epochs over the 709 fit queries (TRAIN_DATA
#      overrides the data: 2,000 added title->abstract pairs did not help on dev, eval/training/README.md)
# OUT/contrastive/encoder is the trained encoder; ship_all_cpu.sh ships and evaluates it.
set -euo pipefail
cd "$(dirname "$0")/../.."
VARIANT=${VARIANT:-echo}
OUT=${OUT:-runs/shipped-$VARIANT}
PLEN=${PLEN:-256}  # passage length at encoding time (the calibration's statistics use it too)
DATA=runs/data
mkdir -p "$OUT" "$DATA"
[ -f "$DATA/scifact-dev.tsv" ] || python eval/training/make_dev_split.py --out "$DATA"
NEG=$DATA/scifact-train-fit.bm25.jsonl
[ -f "$NEG" ] || python -m csplade_pyserini.mine_negatives --corpus ../shared/data/scifact/corpus.jsonl \
  --topics "$DATA/scifact-train-fit.tsv" --qrels "$DATA/scifact-train-fit.qrels" --output "$NEG" --depth 30
[ "${1:-}" = --data-only ] && exit 0
TRAIN_DATA=${TRAIN_DATA:-$NEG}  # e.g. the mix with title->abstract pairs (eval/training/make_title_pairs.py)
START=smollm2-135m-causal-base
if [ "${ADAPT_STEPS:-0}" -gt 0 ]; then
  [ -f "$OUT/adapt/encoder/card.json" ] || python -m csplade_pyserini.train --stage adapt \
    --train_data ../shared/data/scifact/corpus.jsonl --output_dir "$OUT/adapt" --variant "$VARIANT" --lowercase true \
    --seq_len 256 --batch_size 8 --max_steps "$ADAPT_STEPS" --learning_rate 1e-4 --lora_layers 10 --bf16 true \
    --logging_steps 5 --save_steps 25 --resume true
  START=$OUT/adapt/encoder
fi
[ -f "$OUT/calibrated/card.json" ] || python -m csplade_pyserini.calibrate --encoder "$START" --variant "$VARIANT" \
  --corpus ../shared/data/scifact/corpus.jsonl ../shared/data/vaswani/corpus.jsonl --passages ${CAL_PASSAGES:-2000} \
  --tune-topics "$DATA/scifact-train-fit.tsv" --tune-qrels "$DATA/scifact-train-fit.qrels" --max-tune-queries 300 \
  --card lowercase=true passage_max_length=$PLEN --output "$OUT/calibrated"
[ -f "$OUT/contrastive/encoder/card.json" ] || python -m csplade_pyserini.train --stage contrastive \
  --encoder "$OUT/calibrated" --train_data "$TRAIN_DATA" --output_dir "$OUT/contrastive" \
  --query_max_length 32 --passage_max_length 128 --lora_layers 10 --learning_rate ${LR:-2e-4} --epochs ${EPOCHS:-3} \
  --batch_size 8 --negatives 1 --temperature 1 --q_flops_weight 1e-4 --d_flops_weight 1e-4 --flops_warmup_steps 50 \
  --train_term_bias true --term_bias_learning_rate 0.02 --bf16 true --logging_steps 5 --save_steps 25 --resume true
