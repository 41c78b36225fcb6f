"""python -m csplade_pyserini.train: CSPLADE's two training stages with LoRA.

    # 1. adaptation phase on unlabeled passages (L_CLM + L_ReLU)
    python -m csplade_pyserini.train --stage adapt --train_data corpus.jsonl --output_dir runs/adapt --max_steps 200
    # 2. contrastive phase from the adapted encoder (InfoNCE + FLOPS), any variant
    python -m csplade_pyserini.train --stage contrastive --encoder runs/adapt/encoder --variant echo \\
        --train_data train.tevatron.jsonl --output_dir runs/echo

Each run exports output_dir/encoder (card.json + adapters in safetensors), which --encoder of the encode/search
CLIs loads by path. Arguments can also come from a YAML or JSON file: python -m csplade_pyserini.train args.yaml
"""
from __future__ import annotations

import sys

from .cli import run


def parse(argv):
    from transformers import HfArgumentParser

    from .training.args import TrainArguments

    p = HfArgumentParser(TrainArguments, prog="python -m csplade_pyserini.train", description=__doc__.split("\n\n")[0],
                         epilog=__doc__.split("\n\n", 1)[1])
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return p.parse_yaml_file(argv[0])[0]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return p.parse_json_file(argv[0])[0]
    return p.parse_args_into_dataclasses(argv)[0]


def _main(argv=None):
    from .training.trainer import run_training

    args = parse(sys.argv[1:] if argv is None else argv)
    out = run_training(args)
    print(f"[train] encoder exported to {out}", file=sys.stderr)
    return out


def main(argv=None):
    run(_main, argv, "csplade-train")


if __name__ == "__main__":
    main()
