"""Writing JsonVectorCollection shards atomically, with a manifest of counts and a checksum.

Anserini indexes *every* file under its input directory (any name, hidden sub-directories too), so the
embeddings directory holds finished shards only: temporary files and manifests live in the sibling directory
``<embeddings>.manifest/``.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .terms import EMPTY_DOC_TERM


def meta_dir(embeddings_dir) -> Path:
    return Path(str(embeddings_dir).rstrip("/") + ".manifest")


def shard_filename(shard_id: int, shard_num: int) -> str:
    return "embeddings.jsonl" if shard_num == 1 else f"embeddings-{shard_id:03d}-of-{shard_num:03d}.jsonl"


class AtomicJsonlWriter:
    """Pyserini's JSONL writer (``pyserini.encode.JsonlRepresentationWriter``: the same lines), writing to a
    temporary name renamed into place only when the shard completes. Pyserini is not imported, so encoding runs on a
    machine without Java (a GPU box).

    Documents whose vector is empty get the placeholder term ``<csplade:empty>`` (weight 1): Anserini skips
    documents without terms, and every document in must be a document out. They are counted.
    """

    def __init__(self, dir_path, shard_id: int = 0, shard_num: int = 1):
        self.dir_path = str(dir_path)
        self.file = None
        self.filename = shard_filename(shard_id, shard_num)
        self.final = Path(dir_path) / self.filename
        self.tmp = meta_dir(dir_path) / (self.filename + ".tmp")
        self.progress_file = meta_dir(dir_path) / (self.filename + ".progress.json")
        self.n_written = 0
        self.n_placeholder = 0
        self.resumed_stats: dict = {}
        self.resumed_seconds: float | None = 0.0  # encoding time of the interrupted runs (None: not recorded)

    def resume_point(self) -> int:
        """Documents of an interrupted run already committed (0 if none). The progress file is the commit point:
        lines past it (a batch cut by the kill) are dropped and encoded again."""
        if not (self.tmp.exists() and self.progress_file.exists()):
            return 0
        prog = json.loads(self.progress_file.read_text())
        n = prog["docs"]
        with open(self.tmp, "rb") as fh:
            lines = fh.read().split(b"\n")
        if len(lines) - 1 < n:
            raise RuntimeError(f"{self.tmp}: {len(lines) - 1} complete lines, progress says {n}")
        with open(self.tmp, "wb") as fh:
            fh.write(b"".join(line + b"\n" for line in lines[:n]))
        self.n_written, self.n_placeholder = n, prog["empty_vectors"]
        self.resumed_stats = prog.get("stats", {})
        self.resumed_seconds = prog.get("seconds")  # progress files written before it was recorded lack it
        return n

    def committed_ids(self) -> list[str]:
        with open(self.tmp, encoding="utf-8") as fh:
            return [json.loads(line)["id"] for line in fh]

    def __enter__(self):
        os.makedirs(self.dir_path, exist_ok=True)
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "a" if self.n_written else "w", encoding="utf-8")
        return self

    def commit(self, stats: dict, seconds: float | None = None) -> None:
        """Flush and record how far this shard got (written after the lines, so a kill never loses a batch) and,
        when given, the encoding seconds spent on it so far (all runs together), so a resumed shard reports its
        real docs/s."""
        self.file.flush()
        os.fsync(self.file.fileno())
        tmp = self.progress_file.with_suffix(".tmp")
        prog = {"docs": self.n_written, "empty_vectors": self.n_placeholder, "stats": stats}
        if seconds is not None:
            prog["seconds"] = round(seconds, 3)
        tmp.write_text(json.dumps(prog))
        os.replace(tmp, self.progress_file)

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.final)
            self.progress_file.unlink(missing_ok=True)

    def write(self, batch_info, fields=None):
        for i, vec in enumerate(batch_info["vector"]):  # JsonlRepresentationWriter.write's lines, byte for byte
            if not vec:
                batch_info["vector"][i] = vec = {EMPTY_DOC_TERM: 1}
                self.n_placeholder += 1
            contents = "\n".join([batch_info[key][i] if batch_info[key][i] is not None else "" for key in fields])
            self.file.write(json.dumps({"id": batch_info["id"][i], "contents": contents, "vector": vec}) + "\n")
        self.n_written += len(batch_info["id"])


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(shard: Path, info: dict) -> Path:
    out = meta_dir(shard.parent) / (shard.name + ".json")
    info = dict(info, file=shard.name, sha256=sha256_file(shard))
    out.write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    return out


def avg_terms(path, key: str = "vector") -> float:
    """Average number of terms per record in a JSONL file or a directory of them (vectors or a query cache)."""
    path = Path(path)
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    n = terms = 0
    for f in files:
        for line in open(f, encoding="utf-8"):
            if line.strip():
                terms += len(json.loads(line)[key])
                n += 1
    return terms / max(n, 1)
