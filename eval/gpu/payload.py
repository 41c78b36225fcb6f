"""What each GPU call sends, against the 64 MiB a call may carry; --slim makes the checkout small enough.

    python eval/gpu/payload.py            # sizes of the checkout and of the two calls (eval/gpu/README.md)
    python eval/gpu/payload.py --slim     # delete the tracked LoRA adapters from the working tree (not from git)
    python eval/gpu/payload.py --restore  # git checkout them back

Each call to the GPU machine sends the working tree (tracked files and untracked files git does not ignore) plus its
carried paths, 64 MiB at most. One half of the base model is 46.9 MiB and the kit 0.8 MiB, so the checkout must stay
under ~12 MiB beside the study's files; the shipped encoders' adapters (3.1 MiB each) make it ~40 MiB. Nothing the
GPU calls run needs them (the benchmarks use the base model, the study an encoder without an adapter), so --slim
deletes them from the working tree only; git still has them, and --restore (git checkout) brings them back.
Exit status 1 when a call would be over the limit.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 64 * 2**20
CALLS = {"call 1 (random)": [".device/part1", ".device/kit"],
         "call 2 (model)": [".device/part2", ".device/kit", ".device/whl", ".device/qstudy"],
         "call 3 (train)": [".device/kit", ".device/train"]}
SLIM = "encoders/*/stage*/adapter_model.safetensors"


def git(*args) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def tree_bytes() -> int:
    names = git("ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    return sum((ROOT / n).stat().st_size for n in set(names) if n and (ROOT / n).is_file())


def path_bytes(p: str) -> int:
    p = ROOT / p
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else (p.stat().st_size if p.exists() else 0)


def main(argv: list[str]) -> int:
    if "--restore" in argv:
        git("checkout", "--", "encoders")
        print("restored: git checkout -- encoders")
        return 0
    if "--slim" in argv:
        dirty = git("status", "--porcelain", "--", "encoders").strip()
        if dirty:
            print(f"encoders/ has uncommitted changes; commit them first:\n{dirty}", file=sys.stderr)
            return 1
        files = sorted(ROOT.glob(SLIM))
        for f in files:
            f.unlink()
        print(f"deleted {len(files)} adapter files from the working tree ({SLIM}); "
              f"`python eval/gpu/payload.py --restore` brings them back")
    tree = tree_bytes()
    print(f"checkout that travels: {tree / 2**20:.1f} MiB")
    over = False
    for call, paths in CALLS.items():
        sizes = {p: path_bytes(p) for p in paths}
        total = tree + sum(sizes.values())
        over |= total > LIMIT
        missing = [p for p, n in sizes.items() if not n]
        print(f"{call}: {total / 2**20:.1f} MiB of 64 ("
              + ", ".join(f"{p} {n / 2**20:.1f}" for p, n in sizes.items()) + ")"
              + (" OVER THE LIMIT" if total > LIMIT else "")
              + (f"; missing: {', '.join(missing)} (eval/gpu/prepare.sh)" if missing else ""))
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
