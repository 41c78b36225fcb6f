#!/usr/bin/env bash
# Runs ON the GPU machine, in the repo root of its copy (see eval/gpu/README.md for the calls that send it there):
#   source .device/kit/setup.sh; bash eval/gpu/device.sh random     # call 1 (with .device/part1 and .device/kit)
#   source .device/kit/setup.sh && bash eval/gpu/device.sh model     # call 2 (with part2, kit, whl, qstudy)
#   source .device/kit/setup.sh && bash eval/gpu/device.sh train     # call 3, optional (with kit and train)
# random: #7's encode benchmark of the Llama-1B- and -8B-shaped models (random weights, all their layers, vocabulary
#         128,256) against the naive path and a bf16 matmul ceiling, batches 32/64/128 at L=256 and 128/512 at L=32.
# model:  SmolLM2-135M's encode benchmark (real weights), then #8's study, encoder side (quantization_study.py
#         --phase encode) for every precision, on the setups prepared here; the vectors come back to be scored.
# train:  #5's contrastive training at GPU scale (two configurations, a fixed time each), the dev choice, and the
#         chosen encoder's passages of SciFact and Vaswani; indexed and searched here by finish.sh.
# Every stage has its own time limit and its own files under $OUT, so one failure leaves the others' results.
set -uo pipefail
OUT=${OUT:-/tmp/csplade-out}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
# SIM=1: a dry run on this machine (CPU, tiny sizes, Pyserini and Java hidden as there); its numbers mean nothing.
DEV=cuda PY=(python3) BENCH_SMALL=() STUDY_SMALL=() HEAD_SMALL=() HOST_SMALL=() QWORK=.device/qstudy
if [ "${SIM:-0}" = 1 ]; then
    DEV=cpu PY=(python3 eval/gpu/without_java.py)
    # the study writes into its --work: a dry run works on a copy, so nothing of it can travel in a real call
    QWORK=$(mktemp -d)/qstudy && { [ ! -d .device/qstudy ] || cp -r .device/qstudy "$QWORK"; }
    BENCH_SMALL=(--layers 1 --passage-batches 2 --query-batches 2 --reps 1 --heads raw)
    STUDY_SMALL=(--precisions fp32 bf16)
    HEAD_SMALL=(--texts 2 --length 64 --reps 1)
    HOST_SMALL=(--docs 16 --batch-size 4)
fi
stamp() { echo "[device $(date -u +%H:%M:%S)] $*"; }
stage() {  # stage NAME SECONDS CMD...: run with a limit, log to $OUT/NAME.log (or $OUT/$STAGE_LOG.log), never stop
    local name=$1 secs=$2 rc; shift 2
    local log="$OUT/${STAGE_LOG:-$name}.log"
    stamp "$name: start (limit ${secs} s)" | tee -a "$log"
    timeout "$secs" "$@" > >(tee -a "$log") 2>&1
    rc=$?
    stamp "$name: exit $rc" | tee -a "$log"
}
use_kit_model() {  # the kit's GGUF (setup.sh exports SMOLLM2_DIR), converted once into a cache outside the repo copy
    if [ -n "${SMOLLM2_DIR:-}" ]; then
        export CSPLADE_SMOLLM2_GGUF="$SMOLLM2_DIR/$SMOLLM2_GGUF" CSPLADE_CACHE=${CSPLADE_CACHE:-/root/cache/csplade}
    elif [ "$DEV" = cuda ]; then
        echo "device.sh $1: source .device/kit/setup.sh first (model not ready)" >&2; exit 1
    fi
}
case "${1:-}" in
random)
    [ "$DEV" = cpu ] || nvidia-smi -L
    python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
    stage encode_bench_llama 420 "${PY[@]}" eval/bench/encode_bench.py --device "$DEV" \
        --models llama-1b-shaped llama-8b-shaped --output "$OUT/encode_bench_gpu_llama.json" "${BENCH_SMALL[@]}"
    ;;
model)
    use_kit_model model
    if ls .device/whl/*.whl >/dev/null 2>&1; then  # torchao (and bitsandbytes, if it was carried)
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
            .device/whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
    fi
    stamp "convert the GGUF (once per machine; printed here, not logged: a call returns at most 8 files)"
    timeout 180 "${PY[@]}" -c 'from csplade_pyserini.modeling.backbone import smollm2_checkpoint, weights_sha256
p = smollm2_checkpoint(); print(p, weights_sha256(p))' 2>&1 | grep -v 'it/s]'
    stage head_forward 120 "${PY[@]}" eval/bench/head_forward.py --device "$DEV" "${HEAD_SMALL[@]}" \
        --output "$OUT/head_forward_gpu.json"
    stage encode_bench_smollm2 240 "${PY[@]}" eval/bench/encode_bench.py --device "$DEV" --models smollm2 \
        --output "$OUT/encode_bench_gpu_smollm2.json" "${BENCH_SMALL[@]}"
    if [ -f "$QWORK/scifact.subset.jsonl" ]; then  # #7: the host side of encoding beside the forward; its log joins
        STAGE_LOG=encode_bench_smollm2 stage host_side 120 "${PY[@]}" eval/bench/host_side.py --device "$DEV" \
            --corpus "$QWORK/scifact.subset.jsonl" --repeats 2 --output "$OUT/host_side_gpu.json" "${HOST_SMALL[@]}"
    fi  # the benchmark's (a call returns at most 8 files)
    if [ -f "$QWORK/setups.json" ]; then
        stage quantization_encode 360 "${PY[@]}" eval/bench/quantization_study.py --phase encode --device "$DEV" \
            --work "$QWORK" --encoder "${STUDY_ENCODER:-smollm2-135m-echo-corpusfit}" \
            --max-seconds-per-precision 45 --precisions fp32 bf16 fp16 torchao-int8-weight-only \
            torchao-int8-dynamic torchao-int4-weight-only bnb-int8 bnb-nf4 torch-int8-dynamic "${STUDY_SMALL[@]}"
        tar -C "$(dirname "$QWORK")" -czf "$OUT/qstudy.tar.gz" qstudy && ls -la "$OUT/qstudy.tar.gz"
    else
        stamp "no .device/qstudy/setups.json: the study was not carried (eval/gpu/prepare.sh writes it)"
    fi
    ;;
train)
    # #5 on a GPU: two contrastive runs from the default's passage encoder on SciFact train-fit (709 queries, BM25
    # negatives), each stopped at TRAIN_SECONDS; the 100 dev queries choose between them and their start; the chosen
    # encoder's passages of all of SciFact and Vaswani come back, with both encoders, to be indexed and searched here.
    use_kit_model train
    [ -f .device/train/scifact-train-fit.bm25.jsonl.xz ] || { echo "device.sh train: .device/train was not carried" >&2; exit 1; }
    W=${TRAIN_WORK:-/tmp/csplade-train}; START=${START:-smollm2-135m-echo-corpusfit}
    SECS=${TRAIN_SECONDS:-100} POOL=${DEV_POOL:-1000} HEAD=0 DOCS=0 BATCH=32 NEGS_B=15 DEV_QUERIES=0
    [ "${SIM:-0}" = 1 ] && SECS=${TRAIN_SECONDS:-15} POOL=${DEV_POOL:-40} HEAD=16 DOCS=12 BATCH=4 NEGS_B=1 DEV_QUERIES=8
    rm -rf "$W"; mkdir -p "$W"
    export STAGE_LOG=train  # one log for the call: its files (at most 8 come back) are the results
    "${PY[@]}" eval/gpu/unpack_train.py .device/train "$W" --head "$HEAD" || exit 1
    if [ "$DEV_QUERIES" -gt 0 ]; then head -n "$DEV_QUERIES" "$W/scifact-dev.tsv" > "$W/dev.tsv"
    else cp "$W/scifact-dev.tsv" "$W/dev.tsv"; fi
    for c in scifact vaswani; do  # what is encoded: the whole corpus (SIM: its first DOCS documents)
        if [ "$DOCS" -gt 0 ]; then head -n "$DOCS" "$W/$c/corpus.jsonl" > "$W/$c/encode.jsonl"
        else ln -s corpus.jsonl "$W/$c/encode.jsonl"; fi
    done
    common=(--stage contrastive --encoder "$START" --train_data "$W/scifact-train-fit.bm25.jsonl" --device "$DEV"
            --bf16 true --query_max_length 32 --passage_max_length 128 --temperature 1 --q_flops_weight 1e-4
            --d_flops_weight 1e-4 --flops_warmup_steps 50 --train_term_bias true --logging_steps 10 --save_steps 0
            --max_seconds "$SECS" --scheduler constant_with_warmup)  # a time cap may stop it anywhere
    stage train_a $((SECS + 120)) "${PY[@]}" -m csplade_pyserini.train "${common[@]}" --output_dir "$W/run-a" \
        --run_name gpu-a --lora_rank 16 --lora_alpha 32 --learning_rate 2e-4 --term_bias_learning_rate 0.005 \
        --batch_size "$BATCH" --negatives 7 --epochs 10
    stage train_b $((SECS + 120)) "${PY[@]}" -m csplade_pyserini.train "${common[@]}" --output_dir "$W/run-b" \
        --run_name gpu-b --lora_rank 32 --lora_alpha 64 --lora_layers 15 --learning_rate 3e-4 \
        --term_bias_learning_rate 0.01 --batch_size "$BATCH" --negatives "$NEGS_B" --epochs 20
    encs=("$START"); for r in a b; do [ -f "$W/run-$r/encoder/card.json" ] && encs+=("$W/run-$r/encoder"); done
    stage dev 240 "${PY[@]}" eval/training/dev_eval.py "${encs[@]}" --corpus "$W/scifact/corpus.jsonl" \
        --topics "$W/dev.tsv" --qrels "$W/scifact-dev.qrels" --pool "$POOL" --passage-max-length 256 \
        --json "$OUT/dev.jsonl"
    # the dev choice (the start wins ties); SIM=1 takes the best trained one, so the dry run encodes too
    best=$(python3 -c 'import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rows = [r for r in rows if sys.argv[2] != "1" or r["encoder"] != sys.argv[3]]
print(max(rows, key=lambda r: r["ndcg@10"])["encoder"] if rows else "")' "$OUT/dev.jsonl" "${SIM:-0}" "$START" 2>/dev/null)
    stamp "dev chose: ${best:-nothing (see dev.log)}"
    if [ -n "$best" ] && [ "$best" != "$START" ]; then
        for c in scifact vaswani; do
            stage "encode_$c" 300 "${PY[@]}" -m csplade_pyserini.encode input --corpus "$W/$c/encode.jsonl" \
                --fields title text output --embeddings "$W/vectors/$c" encoder --encoder "$best" \
                --max-length 256 --batch-size 64 --device "$DEV"
            # one file per corpus: whole SciFact is ~9.6 MB gzipped, under the 16 MiB a returned file may be
            tar -C "$W/vectors" -czf "$OUT/vectors_$c.tar.gz" "$c" "$c.manifest" && ls -la "$OUT/vectors_$c.tar.gz"
        done
    fi
    keep=$(cd "$W" && ls -d run-*/log.jsonl 2>/dev/null; [ -n "$best" ] && [ "$best" != "$START" ] && echo "${best#$W/}")
    [ -n "$keep" ] && tar -C "$W" -czf "$OUT/encoders.tar.gz" $keep && ls -la "$OUT/encoders.tar.gz"
    ;;
*)
    echo "usage: bash eval/gpu/device.sh random|model|train" >&2; exit 2 ;;
esac
stamp "done; files under $OUT:"; ls -la "$OUT"
