"""Unpack what eval/gpu/prepare.sh packed for the GPU training call (.device/train) into a work folder.

    python3 eval/gpu/unpack_train.py .device/train WORK [--head N]

Files ending in .xz are decompressed (Python's lzma: the GPU machine needs nothing else), the rest copied; corpora
land in WORK/scifact/corpus.jsonl and WORK/vaswani/corpus.jsonl. --head N keeps the first N training queries (a dry
run on a CPU).
"""
from __future__ import annotations

import argparse
import lzma
import shutil
from pathlib import Path

PLACES = {"scifact-corpus.jsonl": "scifact/corpus.jsonl", "vaswani-corpus.jsonl": "vaswani/corpus.jsonl"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("src")
    p.add_argument("work")
    p.add_argument("--head", type=int, default=0, help="keep the first N training queries (0: all)")
    a = p.parse_args(argv)
    src, work = Path(a.src), Path(a.work)
    for f in sorted(src.iterdir()):
        name = f.name[:-3] if f.suffix == ".xz" else f.name
        dest = work / PLACES.get(name, name)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with (lzma.open(f, "rt", encoding="utf-8") if f.suffix == ".xz" else open(f, encoding="utf-8")) as fin, \
                open(dest, "w", encoding="utf-8") as fout:
            if a.head and name.endswith(".jsonl") and name not in PLACES:
                for i, line in enumerate(fin):
                    if i >= a.head:
                        break
                    fout.write(line)
            else:
                shutil.copyfileobj(fin, fout)
        print(f"[unpack] {f.name} -> {dest}")


if __name__ == "__main__":
    main()
