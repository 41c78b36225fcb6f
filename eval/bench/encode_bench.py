"""Passage/query encoding throughput: the naive Hugging Face path vs this project's encoder vs the machine's ceiling.

    python eval/bench/encode_bench.py [--models smollm2 llama-1b-shaped llama-8b-shaped] [--device cpu]

For each model, length and batch size, in one run on one machine:
  naive    model(...).logits (B x L x V), [log_softmax,] then log1p(relu(.)) * mask, max over positions (a
           straightforward HF encoder);
  shipped  CspladeModel: body hidden states, LM head over chunks of pooled positions with a running max of raw logits
           (--heads raw, the paper's head) or of per-position log-probabilities (--heads log_softmax, the shipped
           encoders' calibrated head; a margin of 6 stands in for the term bias, which costs one [B, V] add);
  compiled (--compile) the shipped encoder with its body through torch.compile (compiled outside the clock);
  ceiling  a plain large float32 (or --dtype) matmul measured in the same run (best of 3 bursts, at the start and
           again at the end; utilisation is against the higher), in FLOP/s.
Reports texts/s, tokens/s, peak memory above the loaded model (RSS sampled every 2 ms on CPU; max_memory_allocated
on GPU), and FLOP utilisation: 2 x parameters x tokens (LM head counted once, embeddings not counted) / ceiling.
SmolLM2-135M uses the real weights; the Llama-shaped models are random (config only, vocabulary 128,256) with
--layers body layers. Writes eval/bench/encode_bench.json and a PNG beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path

import torch

SHAPES = {  # name: (hidden, intermediate, heads, kv heads, vocab, layers of the real model)
    "llama-1b-shaped": (2048, 8192, 32, 8, 128256, 16),
    "llama-8b-shaped": (4096, 14336, 32, 8, 128256, 32),
}


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Peak memory above the start, during the with-block."""

    def __init__(self, device):
        self.device, self.peak = device, 0.0

    def __enter__(self):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base, self.stop = rss_mib(), False
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self):
        while not self.stop:
            self.peak = max(self.peak, rss_mib() - self.base)
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.stop = True
            self.thread.join()
            self.peak = max(self.peak, rss_mib() - self.base)


def ceiling(device, dtype, n=4096, reps=5, trials=3) -> float:
    """FLOP/s of a plain n x n matmul: the best of ``trials`` bursts of ``reps`` (a burst slowed by a neighbour or
    a clock change would make every utilisation look better than it is)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(trials):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = max(best, 2 * n ** 3 * reps / (time.perf_counter() - t))
    return best


def load(name: str, device: str, dtype: torch.dtype, layers: int):
    from csplade_pyserini.modeling.model import CspladeModel

    if name == "smollm2":
        from csplade_pyserini.modeling.backbone import load_causal_lm, load_tokenizer, smollm2_checkpoint

        path = smollm2_checkpoint()
        lm = load_causal_lm(path, {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype], device)
        return CspladeModel(lm, load_tokenizer(path), "causal").eval()
    from transformers import LlamaConfig, LlamaForCausalLM

    h, inter, heads, kv, vocab, full_layers = SHAPES[name]
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=h, intermediate_size=inter,
                      num_hidden_layers=full_layers if layers == 0 else layers,
                      num_attention_heads=heads, num_key_value_heads=kv, tie_word_embeddings=False)
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in the run dtype on the device: 8B in bf16 is 16 GB, in float32 32 GB
    try:
        with torch.device(device):
            lm = LlamaForCausalLM(cfg).to(dtype).eval()
    finally:
        torch.set_default_dtype(saved)

    class Tok:  # the random models need no text: a stand-in with no special tokens
        all_special_ids, added_tokens_decoder, bos_token_id, pad_token_id = [], {}, None, 0

        def __len__(self):
            return vocab

        def convert_ids_to_tokens(self, ids):
            return [f"t{i}" for i in ids]

        def __call__(self, text, **kw):
            return {"input_ids": [5]}

    return CspladeModel(lm, Tok(), "causal").eval()


def compute_params(model) -> int:
    body = sum(p.numel() for n, p in model.decoder.named_parameters() if "embed_tokens" not in n)
    return body + model.lm_head.weight.numel()


@torch.inference_mode()
def run_path(model, path, ids, att, pool):
    if path == "naive":
        logits = model.causal_lm(input_ids=ids, attention_mask=att, use_cache=False).logits.float()
        if model.pooling.normalize:
            logits = torch.log_softmax(logits, -1)
        return (torch.log1p(torch.relu(logits - model.pooling.logit_shift)) * pool.unsqueeze(-1)).amax(1)
    compiled = getattr(model, "bench_compiled_body", None)
    model._compiled_body = compiled if path == "compiled" else None
    try:
        return model(ids, att, pool)
    finally:
        model._compiled_body = None


def set_head(model, head: str) -> None:
    model.pooling.logit_norm = head
    model.pooling.logit_shift = -6.0 if head == "log_softmax" else 0.0


def bench(model, path, batch, length, device, reps) -> dict:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, min(len(model.tokenizer), 40000), (batch, length), generator=g).to(device)
    att = torch.ones_like(ids)
    pool = att.bool()
    try:
        run_path(model, path, ids[:1], att[:1], pool[:1])  # warm-up
        if path == "compiled":  # compile for this shape kind before the clock starts
            run_path(model, path, ids, att, pool)
        with PeakMemory(device) as mem:
            t = time.perf_counter()
            for _ in range(reps):
                run_path(model, path, ids, att, pool)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            sec = (time.perf_counter() - t) / reps
    except torch.OutOfMemoryError:
        import gc

        gc.collect()
        torch.cuda.empty_cache()  # the failed pass's blocks, before the next one is measured
        return {"path": path, "batch": batch, "length": length, "oom": True}
    return {"path": path, "batch": batch, "length": length, "seconds": sec, "texts_s": batch / sec,
            "tokens_s": batch * length / sec, "peak_mib": mem.peak}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 2)[2],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["smollm2", "llama-1b-shaped", "llama-8b-shaped"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", default=None, help="float32 or bfloat16 (default: bfloat16 on GPUs and CPUs with fast bf16, else float32)")
    p.add_argument("--layers", type=int, default=None,
                   help="body layers of the Llama-shaped models; 0 = all of the real model's (16 for 1B, 32 for 8B). "
                        "Default: 2 on CPU, 0 on a GPU")
    p.add_argument("--passage-batches", type=int, nargs="+", default=None)
    p.add_argument("--query-batches", type=int, nargs="+", default=None)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--compile", action="store_true",
                   help="also time the shipped encoder with its body torch.compile'd (--compile of the CLIs); "
                        "compilation happens in the warm-up, outside the clock")
    p.add_argument("--heads", nargs="+", default=["log_softmax", "raw"], choices=["log_softmax", "raw"],
                   help="pooled score: per-position log-softmax (shipped encoders) and/or raw logits (the paper)")
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    gpu = a.device.startswith("cuda")
    from csplade_pyserini.modeling.backbone import cpu_has_fast_bf16

    fast_bf16 = gpu or cpu_has_fast_bf16()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype or ("bfloat16" if fast_bf16 else "float32")]
    pb = a.passage_batches or ([32, 64, 128] if gpu else [4, 16])
    qb = a.query_batches or ([128, 512] if gpu else [1, 32])
    load_avg = open("/proc/loadavg").read().split()[:3]
    layers = a.layers if a.layers is not None else (0 if gpu else 2)
    ceil_n = 8192 if gpu else 4096  # a GPU needs a larger product to reach its peak (H100: ~800 TFLOP/s at 8192)
    ceil = ceil_start = ceiling(a.device, dtype, n=ceil_n)
    print(f"device {a.device}, {dtype}, load {' '.join(load_avg)}; matmul ceiling {ceil / 1e9:,.1f} GFLOP/s "
          f"(measured again at the end; utilisation is against the higher of the two)")
    rows = []
    for name in a.models:
        model = load(name, a.device, dtype, layers)
        if a.compile:
            model.compile_body()
            model.bench_compiled_body, model._compiled_body = model._compiled_body, None
        n_params = compute_params(model)
        for length, batches in ((256, pb), (32, qb)):
            for b in batches:
                if not gpu and name != "smollm2" and b * length > 2048:
                    continue  # keep the CPU run short: a few layers of the big shapes at a few thousand tokens
                for head in a.heads:
                    set_head(model, "none" if head == "raw" else head)
                    for path in ("naive", "shipped") + (("compiled",) if a.compile else ()):
                        r = bench(model, path, b, length, a.device, a.reps)
                        r.update(model=name, params=n_params, head=head)
                        if not r.get("oom"):
                            r["flop_util"] = 2 * n_params * r["tokens_s"] / ceil
                        rows.append(r)
                        print(f"{name:<16} {head:<11} {path:<8} L={length:<4} B={b:<4} " + ("OOM" if r.get("oom") else
                              f"{r['texts_s']:9.2f} texts/s {r['tokens_s']:10.1f} tok/s {r['peak_mib']:9.0f} MiB "
                              f"util {r['flop_util']:6.1%}"), flush=True)
        del model
    ceil_end = ceiling(a.device, dtype, n=ceil_n)
    ceil = max(ceil_start, ceil_end)
    for r in rows:
        if not r.get("oom"):
            r["flop_util"] = 2 * r["params"] * r["tokens_s"] / ceil
    print(f"matmul ceiling at the start {ceil_start / 1e9:,.1f}, at the end {ceil_end / 1e9:,.1f} GFLOP/s")
    table = []
    for r in rows:
        if r["path"] in ("shipped", "compiled") and not r.get("oom"):
            n = next((x for x in rows if x["path"] == "naive" and x["model"] == r["model"] and x["batch"] == r["batch"]
                      and x["length"] == r["length"] and x["head"] == r["head"]), None)
            if n and not n.get("oom"):
                table.append((r["model"], r["head"] + (" +compile" if r["path"] == "compiled" else ""),
                              r["length"], r["batch"], r["tokens_s"] / n["tokens_s"],
                              r["peak_mib"], n["peak_mib"], r["flop_util"]))
    print(f"\n{'model':<16} {'head':<20} {'L':>4} {'B':>4} {'speed-up':>9} {'peak MiB':>9} {'naive MiB':>10} {'util':>6}")
    for m, h, L, B, s, pm, nm, u in table:
        print(f"{m:<16} {h:<20} {L:>4} {B:>4} {s:>8.2f}x {pm:>9.0f} {nm:>10.0f} {u:>6.1%}")
    out = {"device": a.device, "dtype": str(dtype), "ceiling_flops": ceil, "ceiling_flops_start": ceil_start,
           "ceiling_flops_end": ceil_end, "ceiling_n": ceil_n, "layers": layers, "load": load_avg,
           "gpu": torch.cuda.get_device_name(a.device) if gpu else None, "threads":
           torch.get_num_threads(), "rows": rows}
    Path(a.output).write_text(json.dumps(out, indent=2) + "\n")
    plot(rows, Path(a.output).with_suffix(".png"))


def plot(rows, png):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in rows})
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.4), squeeze=False)
    for ax, m in zip(axes[0], models):
        for path, style in (("naive", "o--"), ("shipped", "s-"), ("compiled", "^:")):
            for length in (256, 32):
                for head in sorted({r.get("head", "raw") for r in rows}):
                    pts = [(r["batch"], r["tokens_s"]) for r in rows if r["model"] == m and r["path"] == path
                           and r["length"] == length and r.get("head", "raw") == head and not r.get("oom")]
                    if pts:
                        ax.plot(*zip(*sorted(pts)), style, label=f"{path} {head} L={length}")
        ax.set_title(m)
        ax.set_xlabel("batch size")
        ax.set_ylabel("tokens/s")
        ax.set_xscale("log", base=2)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
