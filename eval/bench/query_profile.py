"""Where a single query's encoding time goes on this CPU, and the floor the weights' memory traffic sets.

    python eval/bench/query_profile.py [--encoder NAME] [--queries 60] [--output eval/bench/query_profile.json]

One query at a time (SciFact test), as `search` encodes them: p50 of the whole encode, of tokenization + the decoder
body alone, and (torch.profiler, over the same queries) the share of the matmuls and of the sparse head. Beside it,
measured in the same run: the bytes of weights one forward pass reads (every decoder matrix plus the LM head), this
machine's memory read bandwidth (sum over a 1 GiB tensor, best of 5) and the matmul rate at the query's shape, so
that `weight bytes / bandwidth` and `2 x matrix parameters x tokens / that rate` are the two floors no kernel at
this precision goes below (a 135M model in bf16 reads ~270 MB per query: the matrices do not fit in cache). Prints a table, writes JSON.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def p50(f, items):
    ts = []
    for x in items:
        t = time.perf_counter()
        f(x)
        ts.append(time.perf_counter() - t)
    return 1000 * sorted(ts)[len(ts) // 2]


def read_bandwidth_gbs(n_bytes: int = 1 << 30, repeats: int = 5) -> float:
    import torch

    x = torch.ones(n_bytes // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - t)
    return n_bytes / best / 1e9


def main():
    import torch
    from torch.profiler import ProfilerActivity, profile

    from csplade_pyserini.encoder import DEFAULT_ENCODER, CspladeEncoder
    from csplade_pyserini.reproduce import machine_summary
    from csplade_pyserini.topics import load_topics

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--encoder", default=DEFAULT_ENCODER)
    p.add_argument("--topics", default="scifact-test")
    p.add_argument("--queries", type=int, default=60)
    p.add_argument("--output", default=str(Path(__file__).with_suffix(".json")))
    a = p.parse_args()
    enc = CspladeEncoder.load(a.encoder, device="cpu")
    m = enc.model
    qs = list(load_topics(a.topics).values())[: a.queries]
    prefix, max_len, _ = enc.settings("query")
    for q in qs[:5]:
        enc.encode([q], "query")  # warm-up
    feats = [m.features(m.token_lists([q], prefix), max_len) for q in qs]
    tokens = sorted(int(f.input_ids.shape[1]) for f in feats)[len(feats) // 2]

    def body(f):
        with torch.inference_mode():
            m.hidden_states(f.input_ids, f.attention_mask)

    t_encode = p50(lambda q: enc.encode([q], "query"), qs)
    t_body = p50(body, feats)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for q in qs[: min(20, len(qs))]:
            enc.encode([q], "query")
    ops = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(ops.values()) or 1.0
    head_total = next((e.cpu_time_total for e in prof.key_averages() if e.key == "ChunkedMaxLogits"), 0.0)
    mm_share = sum(v for k, v in ops.items() if k in ("aten::mm", "aten::addmm", "aten::bmm")) / total
    head_share = head_total / total
    dtype = next(m.parameters()).dtype
    lm = m.causal_lm
    head_w = m.lm_head.weight
    matrices = [p for n, p in lm.named_parameters() if p.dim() == 2 and "embed_tokens" not in n]
    if not any(p is head_w for p in matrices):  # tied head: the embedding matrix is read once, by the head
        matrices.append(head_w)
    weight_bytes = sum(p.numel() * p.element_size() for p in matrices)
    bw = read_bandwidth_gbs()
    floor_ms = weight_bytes / bw / 1e6
    hidden = lm.config.hidden_size
    x, w = torch.randn(tokens, hidden, dtype=dtype), torch.randn(lm.config.intermediate_size, hidden, dtype=dtype)
    flops = 2 * tokens * hidden * lm.config.intermediate_size
    t_mm = p50(lambda _: torch.nn.functional.linear(x, w), range(200)) / 1000  # cached weights: compute only
    matrix_params = sum(p.numel() for p in matrices)
    compute_floor_ms = 2 * matrix_params * tokens / (flops / t_mm) * 1000  # every matrix x every token, cached rate
    res = {"encoder": enc.card.name, "variant": enc.card.variant, "dtype": str(dtype).replace("torch.", ""),
           "threads": torch.get_num_threads(), "queries": len(qs), "tokens_p50": tokens,
           "encode_p50_ms": round(t_encode, 2), "body_p50_ms": round(t_body, 2),
           "profile_mm_share": round(mm_share, 3), "profile_head_share": round(head_share, 3),
           "weight_mb": round(weight_bytes / 1e6, 1), "read_bandwidth_gbs": round(bw, 2),
           "weight_stream_floor_ms": round(floor_ms, 2), "mm_gflops_cached_at_query_shape": round(flops / t_mm / 1e9, 1),
           "matmul_compute_floor_ms": round(compute_floor_ms, 2),
           "machine": machine_summary(), "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    rows = [("encode p50 (ms)", res["encode_p50_ms"]), ("decoder body p50 (ms)", res["body_p50_ms"]),
            ("matmul share of profile", res["profile_mm_share"]), ("sparse head share of profile", res["profile_head_share"]),
            ("weights read per query (MB)", res["weight_mb"]), ("read bandwidth (GB/s)", res["read_bandwidth_gbs"]),
            ("weight-stream floor (ms)", res["weight_stream_floor_ms"]),
            (f"matmul GFLOP/s at {tokens} tokens, cached", res["mm_gflops_cached_at_query_shape"]),
            ("matmul compute floor at that rate (ms)", res["matmul_compute_floor_ms"])]
    print(f"{enc.card.name} ({enc.card.variant}, {res['dtype']}, {res['threads']} threads, {tokens} tokens p50) "
          f"on {res['machine']}")
    for k, v in rows:
        print(f"  {k:<40} {v}")
    Path(a.output).write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {a.output}")


if __name__ == "__main__":
    main()
