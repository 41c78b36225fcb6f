#!/usr/bin/env bash
# Contrastive LoRA training from a shipped calibrated head (VARIANT=causal|echo|bi; START defaults to the variant's
# -fitted card, e.g. START=smollm2-135m-bi-calibrated for bi), sized for 2 CPU cores,
# then the dev check, the ship and the two regressions. Every step skips or resumes finished work when rerun.
#   1. dev split of SciFact train (709 fit / 100 dev queries) and BM25 negatives for the fit queries (30 each)
#   2. train: InfoNCE (in-batch + NEGATIVES BM25 negatives, default 1; batch 8) + light FLOPS, LoRA r16 on the last 10 layers and the
#      term bias, passages 128 tokens in training, EPOCHS (default 2) passes over the 709 fit queries
#   3. dev: in-memory nDCG@10 of the starting head and the trained one on the 100 dev queries (passages 256)
#   4. if it beat the starting head on dev: ship encoders/NAME (passages 256 at encoding time) and run
#      scifact-600 / vaswani-3000 with --accept
# Knobs: START NAME EPOCHS LR BIAS_LR NEGATIVES BF16 SHIP OUT, and TRAIN_DATA (+ NEG_SOURCE and TRAIN_WHAT, the words the
# card's description uses) to train on other negatives, e.g. ones mined with a CSPLADE index (mine_negatives --index).
# Test queries are never used for a choice. Times on 2 Xeon cores: causal ~22 min of training in float32
# (7.4 s/step; the first causal run, BF16=false); the regressions ~4 min for causal on AMX cores (bf16).
set -euo pipefail
cd "$(dirname "$0")/../.."
VARIANT=${VARIANT:-causal}
START=${START:-smollm2-135m-$VARIANT-fitted}
NAME=${NAME:-smollm2-135m-$VARIANT-trained}
EPOCHS=${EPOCHS:-2}
LR=${LR:-2e-4}
BIAS_LR=${BIAS_LR:-0.005}
NEGATIVES=${NEGATIVES:-1}  # hard negatives per query (of the 30 mined), besides the in-batch ones
DATA=runs/data
# the training JSONL: BM25-mined negatives by default; NEG_SOURCE=a CSPLADE model's (see eval/training/README.md)
TRAIN_DATA=${TRAIN_DATA:-$DATA/scifact-train-fit.bm25.jsonl}
NEG_SOURCE=${NEG_SOURCE:-BM25}
TRAIN_WHAT=${TRAIN_WHAT:-709 SciFact train queries}  # what TRAIN_DATA holds, for the card's description
# bf16 autocast where this CPU runs bf16 matmuls faster than float32 (AMX; measured once per CPU), else float32
BF16=${BF16:-$(python -c "from csplade_pyserini.modeling.backbone import cpu_has_fast_bf16; print(str(cpu_has_fast_bf16()).lower())")}
OUT=${OUT:-runs/$NAME}
VARIANT=$VARIANT bash eval/training/smollm2_shipped_cpu.sh --data-only
[ -f "$OUT/encoder/card.json" ] || python -m csplade_pyserini.train --stage contrastive \
  --encoder "$START" --train_data "$TRAIN_DATA" --output_dir "$OUT" --run_name "$NAME" \
  --query_max_length 32 --passage_max_length 128 --lora_layers 10 --learning_rate "$LR" --epochs "$EPOCHS" \
  --batch_size 8 --negatives "$NEGATIVES" --temperature 1 --q_flops_weight 1e-4 --d_flops_weight 1e-4 --flops_warmup_steps 50 \
  --train_term_bias true --term_bias_learning_rate "$BIAS_LR" --bf16 "$BF16" --logging_steps 5 --save_steps 25 \
  --resume true
[ -f "$OUT/dev.jsonl" ] || python eval/training/dev_eval.py "$START" "$OUT/encoder" --topics "$DATA/scifact-dev.tsv" \
  --qrels "$DATA/scifact-dev.qrels" --pool 600 --passage-max-length 256 --json "$OUT/dev.jsonl"
[ "${1:-}" = --no-ship ] && exit 0
# ship only what beat its starting head on dev (SHIP=1 ships regardless, e.g. as an ablation)
if [ "${SHIP:-0}" != 1 ] && ! python -c "import json, sys; r = [json.loads(l) for l in open(sys.argv[1])]
sys.exit(0 if r[-1]['ndcg@10'] > r[-2]['ndcg@10'] else 1)" "$OUT/dev.jsonl"; then
  echo "[train_fitted] $NAME did not beat $START on dev nDCG@10 ($OUT/dev.jsonl): not shipped (SHIP=1 ships it)"
  exit 0
fi
if [ ! -f "encoders/$NAME/card.json" ] || [ "$OUT/encoder/card.json" -nt "encoders/$NAME/card.json" ]; then
  python -m csplade_pyserini.ship "$OUT/encoder" --name "$NAME" --overwrite --card passage_max_length=256 \
    --description "SmolLM2-135M-Instruct, $VARIANT variant, starting from $START: contrastive training on $TRAIN_WHAT (InfoNCE, in-batch + $NEGATIVES $NEG_SOURCE-mined negative(s), batch 8, $EPOCHS epochs, lr $LR cosine, FLOPS 1e-4), LoRA r16 on the last 10 layers + the term bias (lr $BIAS_LR); lowercased, trained on passages of 128 tokens, encodes 256."
fi
for setup in scifact-600 vaswani-3000; do
  reg=eval/regressions/$setup-$NAME.yaml
  [ -f "$reg" ] || sed "s/$START/$NAME/g" "eval/regressions/$setup-$START.yaml" > "$reg"
  python -m csplade_pyserini.reproduce "$reg" --accept
done
