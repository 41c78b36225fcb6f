"""python -m csplade_pyserini.ship: turn a trained encoder (output_dir/encoder) into a shipped one, encoders/NAME/.

    python -m csplade_pyserini.ship runs/my-run/encoder --name smollm2-135m-causal-scifact \\
        --description "SmolLM2-135M, causal, adapted + contrastive on SciFact train"

What it does: copies the card, the adapter chain (adaptation stage, contrastive stage) and the term bias (from
calibrate) into encoders/NAME/,
stores the LoRA weights in float16 (half the bytes; the merged model runs in the card's dtype), records every
training stage's command (followed back through each stage's starting encoder), checks the size limit, then
loads both encoders and compares them on fixed texts: the shipped one must keep the trained one's top terms. The
shipped encoder's outputs on those texts are written to expected.json; the tests check them on every run, so a
silent change of tokenizer, weights or pooling shows up as a failing test.
"""
from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import fields
from pathlib import Path

from .cli import UsageError, run
from .modeling.card import CardError, EncoderCard
from .paths import encoders_dir

MAX_MB = 25.0
EXPECTED_FILE = "expected.json"
# Fixed texts for the regression check: a SciFact-like claim, a passage, and a Vaswani-like query.
CHECK_TEXTS = [
    ("query", "0-dimensional biomaterials show inductive properties."),
    ("query", "measurement of dielectric constant of liquids by the use of microwave techniques"),
    ("passage", "Alterations of the architecture of cerebral white matter in the developing human brain can "
                "affect cortical development and result in functional disabilities. A line scan diffusion-weighted "
                "magnetic resonance imaging (MRI) sequence with diffusion tensor analysis was applied to measure "
                "the apparent diffusion coefficient."),
]
FORBIDDEN_IN_NAME = "splade"  # Pyserini routes any encoder name containing it to its own BERT SPLADE class


def training_command(args: dict) -> str:
    """The `python -m csplade_pyserini.train` command line that reproduces a stage (non-default arguments only)."""
    from .training.args import TrainArguments

    defaults = {f.name: f.default for f in fields(TrainArguments)}
    parts = ["python -m csplade_pyserini.train"]
    for k, v in args.items():
        if k in defaults and v == defaults[k] and k not in ("stage", "encoder"):
            continue
        if v is None or v is False:
            continue
        parts.append(f"--{k} true" if v is True else f"--{k} {v}")
    return " ".join(parts)


def training_stages(card: EncoderCard) -> list[dict]:
    """Every stage that produced this encoder, oldest first, followed through each stage's starting encoder."""
    from .encoder import EncoderNotFoundError, resolve_card
    from .mine_negatives import read_provenance

    stages, seen = [], set()
    t = card.training
    while t:
        if "stages" in t:  # an already shipped card
            return t["stages"] + stages[::-1]
        args = t.get("args") or {}
        if t.get("command"):  # a stage that recorded its own command line (calibrate)
            stages.append({k: v for k, v in t.items() if k != "previous"})  # the grid too: results.md draws it
        else:
            stages.append({"stage": t.get("stage"), "steps": t.get("steps"), "command": training_command(args)})
            mined = t.get("mined") or read_provenance(args.get("train_data"))
            if mined:  # the command that mined its training negatives goes just before it (and what that read)
                stages.append({k: v for k, v in mined.items() if k != "inputs"})
                stages.extend(reversed(mined.get("inputs") or []))
        if t.get("previous"):
            t = t["previous"]
            continue
        start = args.get("encoder")  # cards exported before "previous" was recorded: follow the starting encoder
        if not start or start in seen:
            break
        seen.add(start)
        try:
            t = resolve_card(start).training
        except (CardError, EncoderNotFoundError):
            stages.append({"stage": "unknown", "note": f"starting encoder {start!r} is not available here"})
            break
    return stages[::-1]


def _copy_adapter_fp16(src: Path, dst: Path) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    dst.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src / "adapter_config.json", dst / "adapter_config.json")
    sd = load_file(str(src / "adapter_model.safetensors"))
    for k, v in sd.items():
        if v.is_floating_point() and v.abs().max() > torch.finfo(torch.float16).max:
            raise UsageError(f"{src}: tensor {k} does not fit in float16; ship it with --keep-dtype")
    save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
              str(dst / "adapter_model.safetensors"), metadata={"format": "pt"})


def dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def expected_outputs(encoder, top: int = 20) -> list[dict]:
    out = []
    for side, text in CHECK_TEXTS:
        vec = encoder.encode([text], side=side)[0]
        terms = sorted(vec.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        out.append({"side": side, "text": text, "terms": len(vec), "top": [[t, w] for t, w in terms]})
    return out


def compare_outputs(a: list[dict], b: list[dict], top: int = 10, tol: int = 2) -> float:
    """Share of a's top-`top` terms that b keeps (in its stored top terms) with an int weight within `tol`
    (1.0 = the same terms; near-ties may swap order without counting as a change)."""
    ok = n = 0
    for x, y in zip(a, b):
        got = dict(y["top"])
        for term, w in x["top"][:top]:
            ok += abs(got.get(term, -10**9) - w) <= tol
            n += 1
    return ok / max(n, 1)


def write_expected(encoder_dir: str | Path, log=print) -> Path:
    """(Re)write encoder_dir/expected.json: the encoder's top terms on CHECK_TEXTS, on CPU in float32 (bf16
    kernels round differently from one CPU to another; the tests load the encoder in the recorded dtype)."""
    from .encoder import CspladeEncoder

    enc = CspladeEncoder.load(str(encoder_dir), device="cpu", dtype="float32")
    out = Path(encoder_dir) / EXPECTED_FILE
    out.write_text(json.dumps({"device": "cpu", "dtype": enc.card.dtype, "texts": expected_outputs(enc)}, indent=1,
                              ensure_ascii=False) + "\n")
    log(f"[ship] wrote {out}")
    return out


def parse_card_overrides(items: list[str] | None) -> dict:
    """["passage_max_length=256", ...] -> {"passage_max_length": 256}, typed like the card's fields."""
    types = {f.name: f.type for f in fields(EncoderCard)}
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or key not in types or key in ("name", "adapter", "training", "scores", "path", "base_sha256"):
            raise UsageError(f"--card {item!r}: expected KEY=VALUE with KEY a card setting "
                             f"(e.g. passage_max_length, passage_top_k, query_top_k, quantization_scale)")
        t = str(types[key])
        try:
            out[key] = (int(value) if t.startswith("int") else float(value) if t.startswith("float")
                        else value.lower() in ("1", "true", "yes") if t.startswith("bool") else value)
        except ValueError:
            raise UsageError(f"--card {item!r}: {value!r} is not a valid {t}") from None
    return out


def ship(source: str, name: str, description: str | None = None, keep_dtype: bool = False, overwrite: bool = False,
         max_mb: float = MAX_MB, dest_root: Path | None = None, check: bool = True, log=print,
         card_overrides: dict | None = None) -> Path:
    from .encoder import CspladeEncoder, resolve_card

    if FORBIDDEN_IN_NAME in name.lower():
        raise UsageError(f"encoder name {name!r} contains {FORBIDDEN_IN_NAME!r}: Pyserini's CLIs would route it to "
                         f"their BERT SPLADE encoder; pick another name")
    card = resolve_card(source)
    if not card.adapter_paths() and not card.term_bias:
        raise UsageError(f"{source}: the card has neither adapters nor a term bias to ship (full fine-tunes are too "
                         f"large to ship here)")
    dest = Path(dest_root or encoders_dir()) / name
    if dest.exists():
        if not overwrite:
            raise UsageError(f"{dest} exists (pass --overwrite to replace it)")
        shutil.rmtree(dest)
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    chain = []
    for i, src in enumerate(card.adapter_paths()):
        dst = tmp / f"stage{i + 1}"
        if keep_dtype:
            shutil.copytree(src, dst)
        else:
            _copy_adapter_fp16(src, dst)
        chain.append(dst.name)
    bias = None
    if card.term_bias:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(card.term_bias_path(), tmp / "term_bias.safetensors")
        bias = "term_bias.safetensors"
    query_weights = None
    if card.query_weights:  # a fitted lexical query table (python -m csplade_pyserini.fit_query_weights)
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(card.query_weights_path(), tmp / "query_weights.safetensors")
        query_weights = "query_weights.safetensors"
    df_curve = card.query_df_curve
    if df_curve and df_curve.get("reference_df"):  # the df of the corpus a df curve was fitted on
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copy2(card.query_df_path(), tmp / "query_df.safetensors")
        df_curve = {**df_curve, "reference_df": "query_df.safetensors"}
    training = {"stages": training_stages(card)}
    adapter = (chain if len(chain) > 1 else chain[0]) if chain else None
    shipped = EncoderCard(**{**card.to_dict(), "name": name, "adapter": adapter, "term_bias": bias,
                             "query_weights": query_weights, "query_df_curve": df_curve,
                             "description": description or card.description, "training": training, "scores": {},
                             **(card_overrides or {})})
    shipped.save(tmp)
    size = dir_mb(tmp)
    if size > max_mb:
        shutil.rmtree(tmp)
        raise UsageError(f"{name}: {size:.1f} MB is over the {max_mb:g} MB limit (lower the LoRA rank)")
    if check:
        shipped_enc = CspladeEncoder.load(str(tmp), device="cpu", dtype="float32")
        got = expected_outputs(shipped_enc)
        ref = expected_outputs(CspladeEncoder.load(source, device="cpu", dtype="float32", **(card_overrides or {})))
        overlap = compare_outputs(ref, got)
        log(f"[ship] top-10 terms kept (weight within 2) on {len(got)} texts: {overlap:.3f}")
        if overlap < 0.9:
            shutil.rmtree(tmp)
            raise UsageError(f"{name}: float16 adapters changed the top terms (overlap {overlap:.2f}); "
                             f"ship with --keep-dtype")
        (tmp / EXPECTED_FILE).write_text(json.dumps({"device": "cpu", "dtype": shipped_enc.card.dtype,
                                                     "texts": got}, indent=1, ensure_ascii=False) + "\n")
    tmp.rename(dest)
    log(f"[ship] {dest}: {dir_mb(dest):.1f} MB, adapters {chain}")
    return dest


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.ship", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", help="a trained encoder directory (with card.json), e.g. runs/NAME/encoder")
    p.add_argument("--name", default=None, help="the shipped encoder's name (must not contain 'splade')")
    p.add_argument("--expected-only", action="store_true",
                   help=f"only (re)write SOURCE/{EXPECTED_FILE}, the top terms the tests check (e.g. for the base)")
    p.add_argument("--description", default=None, help="one paragraph for the card")
    p.add_argument("--keep-dtype", action="store_true", help="keep the adapter weights' dtype (default: float16)")
    p.add_argument("--max-mb", type=float, default=MAX_MB, help=f"size limit per encoder (default: {MAX_MB:g})")
    p.add_argument("--overwrite", action="store_true", help="replace encoders/NAME if it exists")
    p.add_argument("--card", nargs="*", default=None, metavar="KEY=VALUE",
                   help="card settings for the shipped encoder, e.g. passage_max_length=256 (trained at 128, "
                        "encode longer passages)")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    if a.expected_only:
        write_expected(a.source)
        return
    if not a.name:
        raise UsageError("--name is required (or --expected-only)")
    ship(a.source, a.name, a.description, a.keep_dtype, a.overwrite, a.max_mb,
         card_overrides=parse_card_overrides(a.card))


def main(argv=None):
    run(_main, argv, "csplade-ship")


if __name__ == "__main__":
    main()
