"""Peak memory of the sparse head, forward + backward: naive (B x L x V logits kept for autograd) vs chunked.

    python eval/bench/head_memory.py [--vocab 128256 --hidden 4096 --batch 4 --length 256 --chunk 256]

Llama-3-8B-shaped head by default (vocabulary 128,256, hidden 4,096, random weights, frozen as under LoRA;
gradients flow to the hidden states). Each variant runs in its own process; peak RSS above the process's
footprint after the inputs exist is reported (CPU), or max_memory_allocated above the inputs (GPU).
Prints a table and writes eval/bench/head_memory.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(a) -> dict:
    import torch
    from torch import nn

    from csplade_pyserini.modeling.head import SparsePooling, naive_sparse_pooling

    torch.manual_seed(0)
    dev = a.device
    head = nn.Linear(a.hidden, a.vocab, bias=False).to(dev)
    head.weight.requires_grad_(False)
    hidden = torch.randn(a.batch, a.length, a.hidden, device=dev, requires_grad=True)
    mask = torch.ones(a.batch, a.length, dtype=torch.bool, device=dev)
    up = torch.randn(a.batch, a.vocab, device=dev)
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    base_rss = current_rss_mib()
    t = time.time()
    if a.variant == "naive":
        w = naive_sparse_pooling(head(hidden), mask)
    else:
        w = SparsePooling(a.chunk)(hidden, mask, head)
    (w * up).sum().backward()
    if dev == "cuda":
        torch.cuda.synchronize()
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = rss_mib() - base_rss
    return {"variant": a.variant, "peak_mib": round(peak, 1), "seconds": round(time.time() - t, 2),
            "grad_norm": float(hidden.grad.norm())}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=128256)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=256)
    p.add_argument("--chunk", type=int, default=256)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", default=None, help=argparse.SUPPRESS)
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    if a.variant:
        print(json.dumps(worker(a)))
        return
    rows = []
    for v in ("naive", "chunked"):
        cmd = [sys.executable, __file__, "--variant", v] + [x for k in ("vocab", "hidden", "batch", "length", "chunk", "device")
                                                           for x in (f"--{k}", str(getattr(a, k)))]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
    logits_mib = a.batch * a.length * a.vocab * 4 / 2**20
    print(f"head V={a.vocab:,} H={a.hidden:,}, B x L = {a.batch} x {a.length}, chunk {a.chunk}, {a.device}, float32; "
          f"one B x L x V fp32 tensor = {logits_mib:,.0f} MiB")
    print(f"{'variant':<8} {'peak MiB':>9} {'seconds':>8} {'|grad|':>10}")
    for r in rows:
        print(f"{r['variant']:<8} {r['peak_mib']:>9,.0f} {r['seconds']:>8.1f} {r['grad_norm']:>10.4f}")
    out = {"config": vars(a) | {"variant": None}, "logits_mib": logits_mib, "rows": rows,
           "load": open("/proc/loadavg").read().split()[:3], "cpu": os.cpu_count()}
    Path(a.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
