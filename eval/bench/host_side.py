"""Where passage encoding spends its time outside the model, and whether preparing the next texts in a thread pays.

    python eval/bench/host_side.py [--device cpu|cuda] [--encoder NAME] [--corpus JSONL] [--docs 1024]
                                   [--output eval/bench/host_side.json]

The encode path of `python -m csplade_pyserini.encode`, taken apart on real passages (SciFact by default: title +
text, as `encode` joins them), in one run on one machine:
  tokenize   the tokenizer and the pool flags of every text (CspladeModel.token_lists)
  features   padding, the echo copy, masks, and the copy to the device, per batch (CspladeModel.features)
  forward    the model on those batches: body, LM head, pooling (synchronised on a GPU)
  quantize   top-k, round to ints, the copy back, id lists (sparse.quantize)
  terms+json ids to index terms and the JSONL line (what the writer adds)
Then the whole path end to end, twice, with the same outputs:
  serial     CspladeEncoder.encode_ids over calls of --call-size texts (encode reads batch size x 8 texts a call)
  overlap    the same calls, but a thread tokenizes and builds the features of the next call while this one runs
             its forward and quantization (a simple producer/consumer; outputs compared to serial, id for id)
Prints a table and writes JSON: ms per text for each part, texts/s end to end, and the host side's share. Where
the host side is a few percent of the forward (these 2 CPU cores: tokenization 0.8%, session 27), overlapping it
cannot pay; on a GPU, where a small model's forward takes a few ms per batch, it may.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def load_texts(corpus: Path, n: int) -> tuple[list[str], list[str]]:
    """(ids, texts): the corpus's first n passages (title + text), repeated if it has fewer."""
    from csplade_pyserini.corpus import passage_texts

    ids, titles, bodies = [], [], []
    with open(corpus, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                d = json.loads(line)
                ids.append(str(d.get("id", d.get("_id", len(ids)))))
                titles.append(d.get("title", ""))
                bodies.append(d.get("text", d.get("contents", "")))
    if not ids:
        raise SystemExit(f"{corpus}: no passages")
    texts = passage_texts(bodies, titles)
    reps = -(-n // len(texts))
    return (ids * reps)[:n], (texts * reps)[:n]


def main(argv=None):
    from csplade_pyserini.encoder import CspladeEncoder, length_batches
    from csplade_pyserini.modeling.backbone import machine_summary
    from csplade_pyserini.paths import data_dir
    from csplade_pyserini.sparse import quantize

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--encoder", default="smollm2-135m-echo-corpusfit", help="a passage encoder (default: the default's)")
    p.add_argument("--corpus", default=None, help="JSONL passages (default: the shipped SciFact corpus)")
    p.add_argument("--docs", type=int, default=1024, help="passages encoded per measurement (default: 1024)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32, encode's)")
    p.add_argument("--call-size", type=int, default=256, help="texts per encode call (default: 256 = 32 x 8)")
    p.add_argument("--output", default=str(ROOT / "eval" / "bench" / "host_side.json"))
    a = p.parse_args(argv)
    corpus = Path(a.corpus) if a.corpus else data_dir() / "scifact" / "corpus.jsonl"
    ids, texts = load_texts(corpus, a.docs)
    load = open("/proc/loadavg").read().split()[:3] if os.path.exists("/proc/loadavg") else []
    enc = CspladeEncoder.load(a.encoder, device=a.device, batch_size=a.batch_size)
    m, dev = enc.model, enc.model.device
    prefix, max_length, top_k = enc.settings("passage")
    windows, scale = enc.windows("passage"), float(enc.card.quantization_scale)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    n = len(texts)
    calls = [texts[s:s + a.call_size] for s in range(0, n, a.call_size)]

    def timed(fn):
        sync()
        t = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - t

    def prepare(chunk):
        toks = m.token_lists(chunk, prefix)
        return [(idx, m.features([toks[i] for i in idx], max_length, windows).to(dev))
                for idx in length_batches(toks, a.batch_size)]

    def run_call(prepared, size):
        out = [None] * size
        for idx, f in prepared:
            for i, v in zip(idx, quantize(m(**f.inputs()), scale, top_k)):
                out[i] = v
        return out

    def overlapped():
        out = []
        with ThreadPoolExecutor(1) as pool:
            nxt = pool.submit(prepare, calls[0])
            for c, chunk in enumerate(calls):
                prepared = nxt.result()
                if c + 1 < len(calls):
                    nxt = pool.submit(prepare, calls[c + 1])  # tokenized while this call runs
                out += run_call(prepared, len(chunk))
        return out

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
        serial, t_serial = timed(lambda: [v for chunk in calls for v in enc.encode_ids(chunk, "passage")])
        over, t_over = timed(overlapped)
    same = over == serial
    parts = {"tokenize": t_tok, "features": t_feat, "forward": t_fwd, "quantize": t_q, "terms+json": t_json}
    host = t_tok + t_feat + t_q + t_json
    result = {
        "machine": machine_summary(dev), "device": str(dev), "encoder": a.encoder, "corpus": str(corpus),
        "texts": n, "batch_size": a.batch_size, "call_size": a.call_size, "dtype": str(next(m.parameters()).dtype),
        "loadavg_at_start": load,
        "ms_per_text": {k: round(1e3 * v / n, 4) for k, v in parts.items()},
        "host_share_of_serial_parts": round(host / (host + t_fwd), 4),
        "texts_s": {"serial": round(n / t_serial, 2), "overlap": round(n / t_over, 2)},
        "overlap_speedup": round(t_serial / t_over, 3),
        "outputs_identical": same,
        "command": "python eval/bench/host_side.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(f"{result['machine']}, {result['device']}, {result['dtype']}, {n} passages of {corpus.name}, "
          f"batch {a.batch_size}, {a.call_size} per call")
    print(f"{'part':<12} {'ms/text':>9} {'share':>7}")
    for k, v in parts.items():
        print(f"{k:<12} {1e3 * v / n:>9.3f} {v / (host + t_fwd):>7.1%}")
    print(f"end to end: serial {n / t_serial:.1f} texts/s, overlap {n / t_over:.1f} texts/s "
          f"({t_serial / t_over:.2f}x), outputs identical: {same}")
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_text(json.dumps(result, indent=1) + "\n")
    if not same:
        raise SystemExit("the overlapped path gave other vectors than encode_ids")
    return result


if __name__ == "__main__":
    main()
