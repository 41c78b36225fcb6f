"""csplade_pyserini: CSPLADE learned sparse retrieval with causal LMs, for Pyserini/Anserini.

Importing the package installs logging filters for known-harmless start-up messages of pinned dependencies that
every CLI would otherwise print (Pyserini's encoders import transformers, whose quantizers import torchao):
torchao 0.18 failing to load its CUDA-only kernels (``_C_mxfp8``, ``_C_cutlass_90a``) on a machine without CUDA, and
torch 2.13 warning that torchao registers Enum subclasses as pytree constants. On CPUs with AVX-512 BF16, importing
bitsandbytes (peft does, so every training run) asks the Hugging Face hub for an optional 4-bit CPU kernel; offline
(this project never downloads at run time) that prints two more warnings, which are dropped too: bitsandbytes falls
back to its own kernel. Pyserini's search CLI configures logging, and then torchao's notice that a machine without
Triton lacks its GPU int8 matmul kernels is printed too: dropped (it concerns CUDA only). Every other message of
those loggers, and every message of any other logger, is left alone.
"""
import logging


class _DropKnownNoise(logging.Filter):
    def __init__(self, *needles: str):
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        msg = str(record.msg)
        return not all(n in msg for n in self.needles)


logging.getLogger("torchao").addFilter(_DropKnownNoise("Failed to load", "_C_"))
logging.getLogger("torchao.kernel.intmm").addFilter(_DropKnownNoise("Detected no triton"))
logging.getLogger("torch.utils._pytree").addFilter(_DropKnownNoise("is an Enum subclass and is now natively supported"))
logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(
    _DropKnownNoise("Failed to load CPU gemm_4bit_forward from kernels-community"))
logging.getLogger("kernels._internals.hf_hub").addFilter(
    _DropKnownNoise("Skipping publisher trust check", "Hugging Face Hub is in offline mode"))
