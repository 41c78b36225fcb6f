"""Where passage encoding spends its time outside the model, and whether preparing the next texts in a thread pays.

    python eval/bench/host_side.py [--device cpu|cuda] [--encoder NAME] [--corpus JSONL] [--docs 1024]
                                   [--batch-size 32] [--repeats 1]
                                   [--output eval/bench/host_side.json]

The encode path of `python -m csplade_pyserini.encode`, taken apart on real passages (SciFact by default: title +
text, as `encode` joins them), in one run on one machine:
  tokenize   the tokenizer and the pool flags of every text (CspladeModel.token_lists)
  features   padding, the echo copy, masks, and the copy to the device, per batch (CspladeModel.features)
  forward    the model on those batches: body, LM head, pooling (synchronised on a GPU)
  quantize   top-k, round to ints, the copy back, id lists (sparse.quantize)
  terms+json ids to index terms and the JSONL line (what the writer adds)
Then the whole of `encode` end to end (encode_corpus: read the JSONL, encode, write and commit the shard), on the
same passages written as a JSONL corpus in a temporary directory, --repeats times each way (ABBA order):
  serial     --pipeline off: each batch read, tokenized, run and written in turn
  overlap    --pipeline on: a thread reads and tokenizes the next batches and another writes the last ones while the
             model runs (csplade_pyserini/pipeline.py); every shard must be identical byte for byte
Prints a table and writes JSON: ms per text for each part, texts/s end to end (model load excluded), and the host
side's share. Where the host side is a fraction of a percent of the forward (these 2 CPU cores), overlapping it
cannot pay, which is why `--pipeline auto` is off on a CPU; on a GPU, where a small model's forward takes a few ms
per batch, it is on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load_passages(corpus: Path, n: int) -> list[dict]:
    """The corpus's first n passages as {"id", "title", "text"}, repeated (ids suffixed #1, #2, ...) if it has fewer."""
    docs = []
    with open(corpus, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                docs.append({"id": str(d.get("id", d.get("_id", len(docs)))), "title": d.get("title", ""),
                             "text": d.get("text", d.get("contents", ""))})
    if not docs:
        raise SystemExit(f"{corpus}: no passages")
    return [dict(d, id=d["id"] + (f"#{i // len(docs)}" if i >= len(docs) else "")) for i, d in
            ((i, docs[i % len(docs)]) for i in range(n))]


def main(argv=None):
    from csplade_pyserini.corpus import passage_texts
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.encoder import CspladeEncoder, length_batches
    from csplade_pyserini.modeling.backbone import machine_summary
    from csplade_pyserini.paths import data_dir
    from csplade_pyserini.sparse import quantize

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoder", default="smollm2-135m-echo-corpusfit", help="a passage encoder (default: the default's)")
    p.add_argument("--corpus", default=None, help="JSONL passages (default: the shipped SciFact corpus)")
    p.add_argument("--docs", type=int, default=1024, help="passages encoded per measurement (default: 1024)")
    p.add_argument("--batch-size", type=int, default=32,
                   help="texts per forward pass (default: 32, encode's; encode reads 8 batches a call)")
    p.add_argument("--repeats", type=int, default=1,
                   help="end-to-end pairs, alternating which mode runs first (default: 1: off, then on)")
    p.add_argument("--output", default=str(ROOT / "eval" / "bench" / "host_side.json"))
    a = p.parse_args(argv)
    corpus = Path(a.corpus) if a.corpus else data_dir() / "scifact" / "corpus.jsonl"
    docs = load_passages(corpus, a.docs)
    ids, texts = [d["id"] for d in docs], passage_texts([d["text"] for d in docs], [d["title"] for d in docs])
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    enc = CspladeEncoder.load(a.encoder, device=a.device, batch_size=a.batch_size)
    m, dev = enc.model, enc.model.device
    prefix, max_length, top_k = enc.settings("passage")
    windows, scale = enc.windows("passage"), float(enc.card.quantization_scale)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    n = len(texts)

    def timed(fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t

    def end_to_end(tmp: Path, pipeline: str, rep: int) -> tuple[bytes, float]:
        """The shard `encode --pipeline PIPELINE` writes, and its encoding seconds (model load excluded)."""
        out = tmp / f"vectors-{pipeline}-{rep}"
        summary = encode_corpus(tmp / "corpus.jsonl", out, a.encoder, ("title", "text"), batch_size=a.batch_size,
                                device=a.device, quiet=True, pipeline=pipeline)
        return (out / "embeddings.jsonl").read_bytes(), summary["seconds"]

    with torch.inference_mode():
        enc.encode_ids(texts[:a.batch_size], "passage")  # warm-up (kernels, allocator)
        toks, t_tok = timed(lambda: m.token_lists(texts, prefix))
        batches = length_batches(toks, a.batch_size)
        feats, t_feat = timed(lambda: [m.features([toks[i] for i in idx], max_length, windows).to(dev)
                                       for idx in batches])
        weights, t_fwd = timed(lambda: [m(**f.inputs()) for f in feats])
        ids_ints, t_q = timed(lambda: [v for w in weights for v in quantize(w, scale, top_k)])
        terms, order = m.terms, [i for b in batches for i in b]  # ids_ints is in batch order
        _, t_json = timed(lambda: [json.dumps({"id": ids[i], "contents": texts[i],
                                               "vector": {terms.term(t): q for t, q in zip(*v)}})
                                   for i, v in zip(order, ids_ints)])
        weights = feats = None  # free them before the end-to-end passes
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
        shards, seconds = set(), {"off": [], "on": []}
        for r in range(a.repeats):  # off, on, then on, off, ...: neither mode always runs first
            for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                shard, sec = end_to_end(tmp, mode, r)
                shards.add(shard)
                seconds[mode].append(sec)
    t_serial, t_over = sum(seconds["off"]) / a.repeats, sum(seconds["on"]) / a.repeats
    same = len(shards) == 1
    parts = {"tokenize": t_tok, "features": t_feat, "forward": t_fwd, "quantize": t_q, "terms+json": t_json}
    host = t_tok + t_feat + t_q + t_json
    result = {
        "machine": machine_summary(dev), "device": str(dev), "encoder": a.encoder, "corpus": str(corpus),
        "texts": n, "batch_size": a.batch_size, "dtype": str(next(m.parameters()).dtype),
        "loadavg_at_start": load,
        "ms_per_text": {k: round(1e3 * v / n, 4) for k, v in parts.items()},
        "host_share_of_serial_parts": round(host / (host + t_fwd), 4),
        "texts_s": {"serial": round(n / t_serial, 2), "overlap": round(n / t_over, 2)},  # encode --pipeline off / on
        "end_to_end_seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},  # in the order run
        "overlap_speedup": round(t_serial / t_over, 3),
        "outputs_identical": same,
        "command": "python eval/bench/host_side.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{result['machine']}, {result['device']}, {result['dtype']}, {n} passages of {corpus.name}, "
          f"batch {a.batch_size}")
    print(f"{'part':<12} {'ms/text':>9} {'share':>7}")
    for k, v in parts.items():
        print(f"{k:<12} {1e3 * v / n:>9.3f} {v / (host + t_fwd):>7.1%}")
    print(f"encode end to end: --pipeline off {n / t_serial:.1f} texts/s, on {n / t_over:.1f} texts/s "
          f"({t_serial / t_over:.2f}x), shards identical: {same}")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=1) + "\n")
    if not same:
        raise SystemExit("encode --pipeline on wrote another shard than --pipeline off")
    return result


if __name__ == "__main__":
    main()
