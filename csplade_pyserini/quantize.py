"""Encoder precisions: float dtypes and weight (or weight + activation) quantization of the decoder body.

    python -m csplade_pyserini.quantize --list
    python -m csplade_pyserini.quantize --encoder NAME --precision torchao-int8-weight-only "some query text"

Only the decoder's linear layers are quantized. The LM head (the sparse head's vocabulary projection, tied to the
embeddings in SmolLM2) keeps the run dtype and the max over positions is taken on its logits before
``log1p(relu(. - logit_shift))`` runs in float32, so quantization changes what the body computes, never the
pooling's arithmetic (no overflow of the max, no flush of small weights by a low-precision log1p).

Every precision is built from libraries that install from PyPI here (torch, torchao, bitsandbytes). One that cannot
run on the chosen device raises ``PrecisionUnavailable`` with the library's own error, so a study reports it
instead of faking it.
"""
from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from .cli import UsageError, positive_int, run

# name -> (short description, run dtype of the unquantized parts)
PRECISIONS = {
    "fp32": ("float32 weights and compute", "float32"),
    "bf16": ("bfloat16 weights and compute (fast only with AVX-512 BF16/AMX or a GPU)", "bfloat16"),
    "fp16": ("float16 weights and compute (GPU)", "float16"),
    "torch-int8-dynamic": ("PyTorch dynamic quantization: int8 weights, int8 activations quantized per batch "
                           "(CPU only)", "float32"),
    "torchao-int8-weight-only": ("torchao Int8WeightOnlyConfig: int8 weights, float activations", "float32"),
    "torchao-int8-dynamic": ("torchao Int8DynamicActivationInt8WeightConfig: int8 weights and activations",
                             "float32"),
    "torchao-int4-weight-only": ("torchao Int4WeightOnlyConfig(group_size=128): int4 weights, bf16 activations",
                                 "bfloat16"),
    "bnb-int8": ("bitsandbytes Linear8bitLt (LLM.int8()): int8 weights with outlier columns in float", "float32"),
    "bnb-nf4": ("bitsandbytes Linear4bit NF4: 4-bit weights, float32 compute", "float32"),
}


class PrecisionUnavailable(RuntimeError):
    """The precision's backend cannot run here (missing library, kernel or device); the message says why."""


def check_precision(name: str) -> str:
    if name not in PRECISIONS:
        raise UsageError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    return name


def run_dtype(name: str) -> str:
    return PRECISIONS[check_precision(name)][1]


def body_linears(model) -> list[tuple[nn.Module, str, nn.Linear]]:
    """(parent, attribute, linear) for every nn.Linear of the decoder body; the LM head is excluded."""
    head = model.lm_head
    out = []
    for parent in model.decoder.modules():
        for attr, child in parent.named_children():
            if isinstance(child, nn.Linear) and child is not head:
                out.append((parent, attr, child))
    return out


def apply_precision(model, name: str) -> dict:
    """Quantize ``model`` (a CspladeModel already in ``run_dtype(name)``) in place; returns a summary."""
    check_precision(name)
    linears = body_linears(model)
    device = model.device
    if name in ("fp32", "bf16", "fp16"):
        return {"precision": name, "quantized_linears": 0}
    n_quantized = len(linears)
    try:
        if name == "torch-int8-dynamic":
            if device.type != "cpu":
                raise PrecisionUnavailable("PyTorch dynamic quantization runs on CPU only")
            from torch.ao.quantization import quantize_dynamic

            for parent, attr, lin in linears:
                setattr(parent, attr, quantize_dynamic(nn.Sequential(lin), {nn.Linear}, dtype=torch.qint8)[0])
        elif name.startswith("torchao-"):
            try:
                from torchao.quantization import (Int4WeightOnlyConfig, Int8DynamicActivationInt8WeightConfig,
                                                  Int8WeightOnlyConfig, quantize_)
            except ImportError as e:
                raise PrecisionUnavailable(f"torchao is not installed ({e}); pip install torchao") from None
            cfg = {"torchao-int8-weight-only": lambda: Int8WeightOnlyConfig(),
                   "torchao-int8-dynamic": lambda: Int8DynamicActivationInt8WeightConfig(),
                   "torchao-int4-weight-only": lambda: Int4WeightOnlyConfig(group_size=128)}[name]()
            ids = {id(lin) for _, _, lin in linears}
            quantize_(model.decoder, cfg, filter_fn=lambda m, fqn: id(m) in ids)
            done = sum(type(lin.weight) not in (torch.Tensor, nn.Parameter) for _, _, lin in linears)
            if not done:
                raise PrecisionUnavailable(f"{name}: torchao left every layer unquantized (unsupported shapes)")
            n_quantized = done
        elif name.startswith("bnb-"):
            try:
                import bitsandbytes as bnb
            except ImportError as e:
                raise PrecisionUnavailable(f"bitsandbytes is not installed ({e}); pip install bitsandbytes") from None
            for parent, attr, lin in linears:
                if name == "bnb-int8":
                    new = bnb.nn.Linear8bitLt(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                              has_fp16_weights=False, threshold=6.0)
                    new.load_state_dict(lin.state_dict())
                else:
                    new = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                            compute_dtype=torch.float32, quant_type="nf4")
                    new.weight = bnb.nn.Params4bit(lin.weight.data.float(), requires_grad=False, quant_type="nf4")
                    if lin.bias is not None:
                        new.bias = nn.Parameter(lin.bias.data.float(), requires_grad=False)
                setattr(parent, attr, new.to(device))
        # one forward proves the kernels exist on this device (torchao/bnb fail lazily)
        ids = torch.tensor([[1, 2, 3]], device=device)
        with torch.inference_mode():
            model.hidden_states(ids, torch.ones_like(ids))
    except PrecisionUnavailable:
        raise
    except Exception as e:  # the backend's own error, kept verbatim
        raise PrecisionUnavailable(f"{name} on {device}: {e.__class__.__name__}: {str(e).splitlines()[0][:300]}") \
            from None
    return {"precision": name, "quantized_linears": n_quantized}


def model_bytes(model) -> int:
    """Bytes held by the model's parameters and buffers (quantized tensors counted at their packed size)."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) in seen:
            continue
        seen.add(id(t))
        total += _tensor_bytes(t)
    for m in model.modules():  # PyTorch dynamic quantization keeps packed weights outside parameters
        packed = getattr(m, "_packed_params", None)
        if packed is not None and hasattr(packed, "_weight_bias"):
            w, b = packed._weight_bias()
            total += w.numel() * w.element_size() + (b.numel() * b.element_size() if b is not None else 0)
    return total


def _tensor_bytes(t) -> int:
    inner = getattr(t, "__tensor_flatten__", None)
    if inner is not None and type(t) is not torch.Tensor and type(t) is not nn.Parameter:
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, n)) for n in names)
    return t.numel() * t.element_size()


def build_parser():
    p = argparse.ArgumentParser(prog="python -m csplade_pyserini.quantize", description=__doc__.split("\n\n")[0],
                                epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("text", nargs="*", help="texts to encode as queries with the chosen precision")
    p.add_argument("--list", action="store_true", help="list the precisions and exit")
    p.add_argument("--encoder", default=None, help="encoder name or path (default: the default encoder)")
    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS), metavar="PRECISION",
                   help=f"one of: {', '.join(PRECISIONS)} (default: fp32)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto")
    p.add_argument("--top", type=positive_int, default=15, help="terms to print per text (default: 15)")
    return p


def _main(argv=None):
    a = build_parser().parse_args(argv)
    if a.list or not a.text:
        for k, (desc, dt) in PRECISIONS.items():
            print(f"{k:<26} {desc}")
        return
    from .encoder import CspladeEncoder

    try:
        enc = CspladeEncoder.load(a.encoder, device=a.device, precision=a.precision)
    except PrecisionUnavailable as e:
        raise UsageError(str(e)) from None
    print(f"# {enc.card.name}, {a.precision}: model {model_bytes(enc.model) / 2**20:.1f} MiB", file=sys.stderr)
    for text, vec in zip(a.text, enc.encode(a.text, "query")):
        top = sorted(vec.items(), key=lambda kv: -kv[1])[:a.top]
        print(f"{text}\t" + " ".join(f"{t}:{w}" for t, w in top))


def main(argv=None):
    run(_main, argv, "csplade-quantize")


if __name__ == "__main__":
    main()
