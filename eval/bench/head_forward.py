"""The sparse head's forward: the CPU's row walk against the GPU's one index_reduce_ per chunk, on one device.

    python eval/bench/head_forward.py [--device cpu] [--texts 16] [--length 256] [--reps 3]

Pooled positions of --texts texts × --length positions (SmolLM2's hidden 576, vocabulary 49,152), random weights;
ChunkedMaxLogits forward with raw logits and with per-position log-softmax, float32 and bf16, each path forced by
setting modeling.head.VECTORIZED_DEVICES. Checks the two outputs are equal, prints ms per forward (mean of --reps
after a warm-up) and writes eval/bench/head_forward.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--texts", type=int, default=16)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--chunk", type=int, default=256, help="chunk of the row walk (the GPU path uses max(chunk, 2048))")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args(argv)
    import csplade_pyserini.modeling.head as head
    from csplade_pyserini.modeling.backbone import machine_summary

    torch.manual_seed(0)
    n, hidden, vocab = a.texts * a.length, 576, 49152
    rows = torch.arange(a.texts, device=a.device).repeat_interleave(a.length)
    load = open("/proc/loadavg").read().split()[:3]
    out = []
    for dtype in (torch.float32, torch.bfloat16):
        h = torch.randn(n, hidden, dtype=dtype, device=a.device)
        w = (torch.randn(vocab, hidden, device=a.device) * 0.05).to(dtype)
        for normalize in (False, True):
            res = {}
            for name, devices in (("row walk", set()), ("index_reduce_", {torch.device(a.device).type})):
                head.VECTORIZED_DEVICES = devices
                head.ChunkedMaxLogits.apply(h[:512], w, None, rows[:512], a.texts, a.chunk, normalize, None)
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                t = time.perf_counter()
                for _ in range(a.reps):
                    o = head.ChunkedMaxLogits.apply(h, w, None, rows, a.texts, a.chunk, normalize, None)
                if a.device.startswith("cuda"):
                    torch.cuda.synchronize()
                res[name] = (o, (time.perf_counter() - t) / a.reps * 1000)
            equal = torch.equal(res["row walk"][0], res["index_reduce_"][0])
            row = {"dtype": str(dtype).replace("torch.", ""), "pooled": "log-softmax" if normalize else "raw",
                   "row_walk_ms": round(res["row walk"][1], 1), "index_reduce_ms": round(res["index_reduce_"][1], 1),
                   "equal": equal}
            out.append(row)
            print(f"{row['dtype']:<9} {row['pooled']:<12} row walk {row['row_walk_ms']:8.1f} ms   "
                  f"index_reduce_ {row['index_reduce_ms']:8.1f} ms   {'equal' if equal else 'DIFFERENT'}", flush=True)
    Path(a.output).write_text(json.dumps({"device": a.device, "machine": machine_summary(a.device), "load": load,
                                          "texts": a.texts, "length": a.length, "chunk": a.chunk, "reps": a.reps,
                                          "rows": out}, indent=1) + "\n")


if __name__ == "__main__":
    main()
