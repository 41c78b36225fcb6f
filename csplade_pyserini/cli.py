"""Shared command-line plumbing: grouped arguments (Pyserini's `input ... output ... encoder ...` style),
encoder flags, and turning expected errors into one clear line instead of a traceback."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UsageError(ValueError):
    """Bad input the user can fix (exists, missing, malformed). Printed as one line, exit code 2."""


def expected_errors() -> tuple:
    from .corpus import CorpusError
    from .encoder import EncoderNotFoundError
    from .jvm import JavaNotFoundError
    from .modeling.backbone import BaseModelError
    from .modeling.card import CardError
    from .topics import TopicsError
    from .training.data import TrainingDataError
    from .collection_specs import SpecError

    return (UsageError, TrainingDataError, SpecError, CorpusError, EncoderNotFoundError, JavaNotFoundError, BaseModelError, CardError,
            TopicsError, FileNotFoundError, FileExistsError)


def run(main_fn, argv=None, prog: str = "csplade"):
    """Call main_fn(argv); expected errors become `prog: error: ...` on stderr and exit status 2."""
    try:
        return main_fn(argv)
    except expected_errors() as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def parse_grouped(groups: dict[str, argparse.ArgumentParser], argv: list[str], prog: str, epilog: str):
    """Split argv at group names (`input --corpus X output --embeddings Y encoder --encoder Z`), as
    `python -m pyserini.encode` does, and parse each part with its own parser."""
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: {prog} " + " ".join(f"{g} [{g} options]" for g in groups) + "\n\n" + epilog)
        for name, p in groups.items():
            print(f"\n{name}:")
            print("\n".join("  " + line for line in p.format_help().splitlines()[2:]))
        raise SystemExit(0)
    parts: dict[str, list[str]] = {}
    current = None
    for a in argv:
        if a in groups:
            current = a
            parts.setdefault(a, [])
        elif current is None:
            raise UsageError(f"argument {a!r} comes before any group; expected one of {list(groups)} first")
        else:
            parts[current].append(a)
    ns = argparse.Namespace()
    for name, p in groups.items():
        try:
            setattr(ns, name, p.parse_args(parts.get(name, [])))
        except SystemExit as e:
            if e.code:
                raise UsageError(f"bad arguments in group {name!r} (see `{prog} --help`)") from None
            raise
    return ns


def int_at_least(low: int):
    """argparse type: an integer >= ``low`` (a batch size or length of 0 would fail deep inside, or mean the
    default; a negative count would be taken as a slice)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value
    parse.__name__ = f"integer >= {low}"  # what argparse names in its own messages
    return parse


positive_int = int_at_least(1)


def add_encoder_args(p: argparse.ArgumentParser, side: str = "passage"):
    from .encoder import DEFAULT_ENCODER

    p.add_argument("--encoder", default=DEFAULT_ENCODER,
                   help=f"encoder name under encoders/, a directory with card.json, or a HF checkpoint "
                        f"(default: {DEFAULT_ENCODER})")
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (default: 32)")
    p.add_argument("--max-length", type=positive_int, default=None,
                   help=f"max tokens per {side} (default: the card's {side}_max_length)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (GPU if present; default: auto)")
    p.add_argument("--fp16", action="store_true", help="float16 weights (GPU); the default is the card's dtype")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model body (first batches slow while it compiles, then faster; "
                        "worth it for many small batches, e.g. single queries)")
    p.add_argument("--top-k", type=int, default=None, help=f"override the card's {side}_top_k (terms kept per text)")
    p.add_argument("--quantization-scale", type=float, default=None,
                   help="override the card's quantization_scale (index int = round(weight x scale))")
    if side == "query":
        p.add_argument("--query-encoder", choices=["model", "lexical"], default=None,
                       help="override the card's query_encoder: 'lexical' encodes queries without the model, from "
                            "their own tokens and a per-term table (the card's query_weights, or derived from a "
                            "calibrated head), at a tokenizer's cost; 'model' runs the LM as for passages")
        p.add_argument("--query-expansion", type=float, default=None, metavar="SHARE",
                       help="override the card's query_expansion (lexical queries): > 0 also runs the model and "
                            "adds its expansion terms at SHARE x the lexical weights' total over the model "
                            "vector's; 0 = none, inference-free")
    if side == "passage":
        p.add_argument("--windows", type=int, default=None,
                       help="encode a passage longer than the max length in up to this many consecutive windows of "
                            "that length, max-pooled into one vector (override the card's passage_windows; 1 = cut)")
    return p


def encoder_overrides(args, side: str) -> dict:
    out = {f"{side}_top_k": args.top_k, "quantization_scale": args.quantization_scale}
    if side == "passage":
        out["passage_windows"] = getattr(args, "windows", None)
    else:
        out["query_encoder"] = getattr(args, "query_encoder", None)
        out["query_expansion"] = getattr(args, "query_expansion", None)
    return out


def check_index(path: str | Path, what: str = "index") -> Path:
    """A Lucene index directory (one with a segments_N file), or a UsageError naming the path: a Java stack trace
    from deep inside Lucene otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"{what} {path}: no such index directory")
    if not any(path.glob("segments_*")):
        raise UsageError(f"{what} {path} is not a Lucene index (no segments_N file in it; build one with "
                         f"python -m csplade_pyserini.index)")
    return path


def ensure_empty_dir(path: str | Path, what: str, overwrite: bool = False):
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} exists and is not a directory")
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise UsageError(f"{what} {path} exists and is not empty (pass --overwrite to replace it)")
        import shutil

        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
