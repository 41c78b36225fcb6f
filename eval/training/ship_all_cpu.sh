#!/usr/bin/env bash
# Train, ship and evaluate the shipped SmolLM2-135M encoders on a 2-core CPU, one job at a time. Rerunning skips
# finished work (each stage checks for its output; encoded shards and indexes are reused while the encoder is
# unchanged). ONLY=echo|causal|bi runs one variant. Then `python -m csplade_pyserini.results` has regenerated
# eval/results.md. Times on 2 AVX-512 BF16 cores: echo ~1 h training + ~50 min full-corpus evaluation; causal and
# bi about half of that each.
set -euo pipefail
cd "$(dirname "$0")/../.."
ship_eval() {  # VARIANT DESCRIPTION
  local variant=$1 desc=$2 name=smollm2-135m-$1-scifact
  VARIANT=$variant OUT=runs/shipped-$variant eval/training/smollm2_shipped_cpu.sh
  if [ ! -f "encoders/$name/card.json" ] || [ "runs/shipped-$variant/contrastive/encoder/card.json" -nt "encoders/$name/card.json" ]; then
    python -m csplade_pyserini.ship "runs/shipped-$variant/contrastive/encoder" --name "$name" --overwrite \
      --card passage_max_length=256 --description "$desc"
  fi
  for setup in scifact-full vaswani-full; do
    python -m csplade_pyserini.reproduce "eval/regressions/$setup-$name.yaml" || true
  done
}
COMMON="calibrated head (per-position log-softmax, term bias from 2,000 unlabeled SciFact + Vaswani passages), then contrastive training on 709 SciFact train queries (BM25 negatives, 3 epochs), LoRA r16 on the last 10 layers + the term bias; lowercased, passages 256 tokens."
for v in echo causal bi; do
  if [ -z "${ONLY:-}" ] || [ "$ONLY" = "$v" ]; then
    ship_eval "$v" "SmolLM2-135M-Instruct, $v variant: $COMMON"
  fi
done
