"""python -m csplade_pyserini.explain: show what a text expands to, as the index would store it.

    python -m csplade_pyserini.explain --encoder smollm2-135m-causal-base --side query "what causes cancer?"
"""
from __future__ import annotations

import argparse

from .cli import add_encoder_args, positive_int, run


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.explain", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="+", help="the text(s) to explain")
    p.add_argument("--side", choices=["query", "passage"], default="query", help="encode as a query or a passage")
    p.add_argument("--top", type=positive_int, default=30, help="terms to print (default: 30)")
    p.add_argument("--index", default=None,
                   help="queries of a lexical card with a df curve: weigh tokens by this Lucene index's document "
                        "frequencies, as search does (default: the card's reference corpus)")
    add_encoder_args(p, "query")
    return p


def _main(argv=None):
    from .encoder import CspladeEncoder, load_query_encoder

    args = build_parser().parse_args(argv)
    overrides = {f"{args.side}_top_k": args.top_k, "quantization_scale": args.quantization_scale,
                 "query_encoder": args.query_encoder, "query_expansion": args.query_expansion}
    if args.max_length:
        overrides[f"{args.side}_max_length"] = args.max_length
    load = load_query_encoder if args.side == "query" else CspladeEncoder.load  # lexical queries: no model
    enc = load(args.encoder, device=args.device, dtype="float16" if args.fp16 else None, **overrides)
    if args.index and args.side == "query":  # both query encoders take an index (a no-op without a df curve)
        from .cli import check_index

        enc.use_index(check_index(args.index, "--index"))
    for text in args.text:
        rows, n = enc.explain(text, args.side, args.top)
        print(f"\n{args.side}: {text!r}  ({n} terms; encoder {enc.card.name}, scale {enc.card.quantization_scale:g})")
        print(f"{'rank':>4}  {'term':<24} {'id':>7} {'int':>6} {'weight':>8}")
        for rank, (term, idx, q, w) in enumerate(rows, 1):
            print(f"{rank:>4}  {term:<24} {idx:>7} {q:>6} {w:>8.4f}")


def main(argv=None):
    run(_main, argv, "csplade-explain")


if __name__ == "__main__":
    main()
