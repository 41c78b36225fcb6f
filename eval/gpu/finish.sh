#!/usr/bin/env bash
# Here, after the GPU calls (eval/gpu/README.md): restore the checkout, file what came back, score it.
#   bash eval/gpu/finish.sh [--random DIR] [--model DIR] [--train DIR] [--name NAME]
# DIR: the folder the run tool put that call's $OUT files in (its files_at). NAME (default h100) names the results:
#   --random: eval/bench/encode_bench_NAME_llama.{json,png,txt}
#   --model:  eval/bench/encode_bench_NAME_smollm2.{json,png,txt}, eval/bench/{head_forward,host_side}_NAME.json, the study
#             scored here into eval/quantization/NAME/
#   --train:  eval/gpu/score_trained.py: indexed, searched and evaluated here into eval/training/gpu_NAME.json
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
random="" model="" train="" name=h100
while [ $# -gt 0 ]; do
    case "$1" in
        --random) random=$2; shift 2 ;;
        --model) model=$2; shift 2 ;;
        --train) train=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        *) echo "finish.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
python3 eval/gpu/payload.py --restore
bench() {  # bench MODEL DIR
    if [ -f "$2/encode_bench_gpu_$1.json" ]; then
        cp "$2/encode_bench_gpu_$1.json" "eval/bench/encode_bench_${name}_$1.json"
        if [ -f "$2/encode_bench_gpu_$1.png" ]; then cp "$2/encode_bench_gpu_$1.png" "eval/bench/encode_bench_${name}_$1.png"; fi
        cp "$2/encode_bench_$1.log" "eval/bench/encode_bench_${name}_$1.txt"
        echo "filed eval/bench/encode_bench_${name}_$1.*"
    else
        echo "no encode_bench_gpu_$1.json in $2 (see its encode_bench_$1.log)" >&2
    fi
}
if [ -n "$random" ]; then bench llama "$random"; fi
if [ -n "$model" ]; then
    bench smollm2 "$model"
    for f in head_forward host_side; do
        if [ -f "$model/${f}_gpu.json" ]; then
            cp "$model/${f}_gpu.json" "eval/bench/${f}_$name.json" && echo "filed eval/bench/${f}_$name.json"
        fi
    done
    if [ -f "$model/qstudy.tar.gz" ]; then
        rm -rf .device/qstudy-back && mkdir -p .device/qstudy-back
        tar -C .device/qstudy-back -xzf "$model/qstudy.tar.gz"
        python3 eval/bench/quantization_study.py --phase score --skip-index-side --work .device/qstudy-back/qstudy \
            --output-dir "eval/quantization/$name"
    else
        echo "no qstudy.tar.gz in $model (see its quantization_encode.log)" >&2
    fi
fi
if [ -n "$train" ]; then python3 eval/gpu/score_trained.py "$train" --name "$name"; fi
