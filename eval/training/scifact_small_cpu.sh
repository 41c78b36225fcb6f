#!/usr/bin/env bash
# A small real CSPLADE training run with SmolLM2-135M on 2 CPU cores (about 30 minutes): BM25 negatives for
# SciFact train, a short adaptation phase on SciFact passages, then contrastive training from the adapted
# checkpoint and, for the ablation, from the plain base. Logs land in runs/scifact-small/*/log.jsonl.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-runs/scifact-small}
STEPS=${STEPS:-60}
mkdir -p "$OUT"
[ -f "$OUT/train.bm25.jsonl" ] || python -m csplade_pyserini.mine_negatives --corpus ../shared/data/scifact/corpus.jsonl \
  --topics scifact-train --qrels scifact-train --output "$OUT/train.bm25.jsonl" --depth 30
python -m csplade_pyserini.train --stage adapt --train_data ../shared/data/scifact/corpus.jsonl --output_dir "$OUT/adapt" \
  --seq_len 128 --batch_size 2 --max_steps 40 --learning_rate 1e-4 --warmup_ratio 0.1 --max_passages 400 \
  --lora_rank 16 --lora_alpha 32 --logging_steps 1 --save_steps 20 --resume
COMMON=(--stage contrastive --train_data "$OUT/train.bm25.jsonl" --batch_size 4 --negatives 1 --max_steps "$STEPS"
  --learning_rate 1e-4 --lora_rank 16 --lora_alpha 32 --q_flops_weight 0.003 --d_flops_weight 0.003
  --flops_warmup_steps 30 --query_max_length 32 --passage_max_length 128 --logging_steps 1 --save_steps 20 --resume)
python -m csplade_pyserini.train "${COMMON[@]}" --encoder "$OUT/adapt/encoder" --output_dir "$OUT/contrastive-adapted"
python -m csplade_pyserini.train "${COMMON[@]}" --encoder smollm2-135m-causal-base --output_dir "$OUT/contrastive-no-adapt"
