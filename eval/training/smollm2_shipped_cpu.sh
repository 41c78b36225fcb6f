#!/usr/bin/env bash
# The shipped SmolLM2-135M encoders' recipe, sized for a 2-core CPU (VARIANT=causal|echo|bi; ~35 min for causal,
# about twice that for echo). Each step resumes from its checkpoints when rerun.
#   1. BM25 hard negatives for SciFact train (809 queries x 30; test queries are never used)
#   2. adaptation (L_CLM + L_ReLU, the paper's first stage) on SciFact corpus passages
#   3. contrastive (InfoNCE, in-batch + 1 BM25 negative, FLOPS) on SciFact train
# logit_shift 25: SmolLM2's max-pooled logits sit ~19 above zero for the whole vocabulary, so log1p(relu(.)) starts
# saturated (49k non-zero terms per text); a shift makes the head sparse from step 0 (~200 terms per query, ~2k
# per passage). With shift 22, lr 3e-4 and FLOPS 3e-4/1e-3 the query side died by step 40 (eval/training/README.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
VARIANT=${VARIANT:-causal}
SHIFT=${SHIFT:-$([ "$VARIANT" = echo ] && echo 27 || echo 25)}  # echo logits sit ~2 higher
OUT=${OUT:-runs/shipped-$VARIANT}
mkdir -p "$OUT"
NEG=runs/scifact-train.bm25.jsonl
[ -f "$NEG" ] || python -m csplade_pyserini.mine_negatives --corpus ../shared/data/scifact/corpus.jsonl \
  --topics scifact-train --qrels scifact-train --output "$NEG" --depth 30
if [ "${ADAPT_STEPS:-60}" -gt 0 ]; then
  python -m csplade_pyserini.train --stage adapt --train_data ../shared/data/scifact/corpus.jsonl --output_dir "$OUT/adapt" \
    --variant "$VARIANT" --logit_shift "$SHIFT" --lowercase true --seq_len 128 --batch_size 2 \
    --max_steps ${ADAPT_STEPS:-60} --learning_rate 3e-4 --warmup_ratio 0.05 --lora_rank 16 --lora_alpha 32 \
    --lora_layers ${LORA_LAYERS:-10} \
    --logging_steps 5 --save_steps 25 --resume
  START="$OUT/adapt/encoder"
else
  START=smollm2-135m-causal-base  # the ablation without the adaptation phase (ADAPT_STEPS=0)
fi
python -m csplade_pyserini.train --stage contrastive --encoder "$START" --train_data "$NEG" \
  --output_dir "$OUT/contrastive" --variant "$VARIANT" --logit_shift "$SHIFT" --lowercase true \
  --batch_size 4 --negatives 1 --max_steps ${STEPS:-200} --learning_rate ${LR:-1e-4} --warmup_ratio 0.05 \
  --lora_rank 16 --lora_alpha 32 --lora_layers ${LORA_LAYERS:-10} --q_flops_weight ${LQ:-1e-6} --d_flops_weight ${LD:-3e-6} \
  --temperature ${TAU:-100} \
  --flops_warmup_steps 50 \
  --query_max_length 32 --passage_max_length 128 --logging_steps 5 --save_steps 20 --resume
