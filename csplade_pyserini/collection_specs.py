"""Collection specs (collections/<name>.yaml): where a corpus comes from, its format, how title and text are
combined, and its topic sets (topics + qrels). Plus the converters to the encoder's JSONL input and subsets.

    name: scifact
    source: shipped            # shipped: under the shared data folder; user: under --corpus-dir (never downloaded)
    corpus: {path: scifact/corpus.jsonl, format: beir, fields: [title, text], docs: 5183}
    topic_sets:
      test: {topics: scifact-test, qrels: scifact-test}    # symbolic names, or {path, format} under the corpus dir

Formats: beir (JSONL with _id/id, title, text), jsonl (id + fields or contents), msmarco-tsv (pid<TAB>text, no
header); qrels: trec (qid 0 docid rel) or beir-tsv (query-id<TAB>corpus-id<TAB>score, one header line).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .corpus import doc_id
from .paths import REPO_DIR, data_dir

CORPUS_FORMATS = ("beir", "jsonl", "msmarco-tsv")
QRELS_FORMATS = ("trec", "beir-tsv")


class SpecError(ValueError):
    pass


def collections_dir() -> Path:
    return REPO_DIR / "collections"


def load_yaml(path) -> dict:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"file not found: {path}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: invalid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    return data


def _check_keys(d: dict, allowed: set, required: set, where: str):
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(d))
    if missing:
        raise SpecError(f"{where}: missing key(s) {missing}")


@dataclass
class CollectionSpec:
    name: str
    source: str
    corpus: dict
    topic_sets: dict
    description: str = ""
    path: str | None = field(default=None, compare=False)

    @classmethod
    def load(cls, name_or_path: str) -> "CollectionSpec":
        p = Path(name_or_path)
        if not p.suffix:
            p = collections_dir() / f"{name_or_path}.yaml"
        d = load_yaml(p)
        where = str(p)
        _check_keys(d, {"name", "source", "corpus", "topic_sets", "description"},
                    {"name", "source", "corpus", "topic_sets"}, where)
        if d["source"] not in ("shipped", "user"):
            raise SpecError(f"{where}: source must be shipped or user, got {d['source']!r}")
        c = d["corpus"]
        _check_keys(c, {"path", "format", "fields", "docs", "note"}, {"path", "format"}, f"{where}: corpus")
        if c["format"] not in CORPUS_FORMATS:
            raise SpecError(f"{where}: corpus format must be one of {CORPUS_FORMATS}, got {c['format']!r}")
        if not d["topic_sets"]:
            raise SpecError(f"{where}: no topic_sets")
        for ts, v in d["topic_sets"].items():
            _check_keys(v, {"topics", "qrels"}, {"topics", "qrels"}, f"{where}: topic set {ts!r}")
            for k in ("topics", "qrels"):
                if isinstance(v[k], dict):
                    _check_keys(v[k], {"path", "format"}, {"path"}, f"{where}: {ts}.{k}")
                    fmt = v[k].get("format", "trec" if k == "qrels" else "tsv")
                    if k == "qrels" and fmt not in QRELS_FORMATS:
                        raise SpecError(f"{where}: {ts}.qrels format must be one of {QRELS_FORMATS}")
        return cls(**d, path=str(p))

    def base_dir(self, corpus_dir: str | None) -> Path:
        if self.source == "shipped":
            return data_dir()
        if not corpus_dir:
            raise SpecError(f"collection {self.name!r} is not shipped: pass --corpus-dir (the folder holding "
                            f"{self.corpus['path']}); nothing is downloaded")
        return Path(corpus_dir)

    def corpus_path(self, corpus_dir: str | None = None) -> Path:
        p = self.base_dir(corpus_dir) / self.corpus["path"]
        if not p.exists():
            raise SpecError(f"collection {self.name!r}: corpus not found at {p}")
        return p

    def fields(self) -> list[str]:
        return list(self.corpus.get("fields") or ["text"])

    def topics_and_qrels(self, topic_set: str, corpus_dir: str | None, work: Path) -> tuple[str, Path]:
        """(topics name or path, TREC qrels path), converting BEIR qrels into the work directory."""
        from .topics import qrels_path

        if topic_set not in self.topic_sets:
            raise SpecError(f"collection {self.name!r} has no topic set {topic_set!r} ({list(self.topic_sets)})")
        ts = self.topic_sets[topic_set]
        topics = ts["topics"]
        if isinstance(topics, dict):
            topics = str(self.base_dir(corpus_dir) / topics["path"])
        q = ts["qrels"]
        if not isinstance(q, dict):
            return topics, qrels_path(q)
        src = self.base_dir(corpus_dir) / q["path"]
        if q.get("format", "trec") == "trec":
            return topics, src
        out = work / f"qrels.{topic_set}.txt"
        convert_beir_qrels(src, out)
        return topics, out


def list_specs() -> list[Path]:
    return sorted(collections_dir().glob("*.yaml"))


def convert_beir_qrels(src: Path, out: Path) -> int:
    n = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(src, encoding="utf-8") as fh, open(out, "w", encoding="utf-8") as w:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if lineno == 1 and not parts[-1].lstrip("-").isdigit():
                continue  # header
            if len(parts) != 3:
                raise SpecError(f"{src}:{lineno}: expected query-id<TAB>corpus-id<TAB>score")
            w.write(f"{parts[0]} 0 {parts[1]} {parts[2]}\n")
            n += 1
    return n


def convert_corpus(spec: CollectionSpec, src: Path, out: Path) -> Path:
    """The encoder's input for a corpus: BEIR/JSONL files are used as they are; MS MARCO TSV becomes JSONL."""
    if spec.corpus["format"] in ("beir", "jsonl"):
        return src
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(src, encoding="utf-8") as fh, open(tmp, "w", encoding="utf-8") as w:
        for lineno, line in enumerate(fh, 1):
            pid, sep, text = line.rstrip("\n").partition("\t")
            if not sep:
                raise SpecError(f"{src}:{lineno}: expected 'pid<TAB>passage'")
            w.write(json.dumps({"id": pid, "text": text}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    return out


def subset_corpus(corpus: Path, qrels: Path, max_docs: int, seed: int, out: Path, qids=None) -> tuple[int, int, int]:
    """All judged docs (of qids, or of every query) + a seeded sample of the rest, max_docs in all (0 = all).

    Returns (docs written, judged docs among them, docs in the corpus)."""
    judged = set()
    for line in open(qrels, encoding="utf-8"):
        parts = line.split()
        if parts and (qids is None or parts[0] in qids):
            judged.add(parts[2])
    lines = [line for line in open(corpus, encoding="utf-8") if line.strip()]
    ids = [str(doc_id(json.loads(line), None)) for line in lines]
    n_total = len(lines)
    if max_docs and max_docs < n_total:
        keep_j = [i for i, d in enumerate(ids) if d in judged]
        rest = [i for i, d in enumerate(ids) if d not in judged]
        n_more = max(0, max_docs - len(keep_j))
        keep = sorted(keep_j + random.Random(seed).sample(rest, min(n_more, len(rest))))
        lines, ids = [lines[i] for i in keep], [ids[i] for i in keep]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines), encoding="utf-8")
    return len(lines), sum(1 for d in ids if d in judged), n_total
