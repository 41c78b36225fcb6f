"""Where things live: the repository's encoders/, the shared data folder, and the model cache."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def encoders_dir() -> Path:
    return Path(os.environ.get("CSPLADE_ENCODERS", REPO_DIR / "encoders"))


def data_dir() -> Path:
    """Shipped corpora/topics/qrels: $CSPLADE_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("CSPLADE_DATA", REPO_DIR.parent / "shared" / "data"))


def cache_dir() -> Path:
    return Path(os.environ.get("CSPLADE_CACHE", Path.home() / ".cache" / "csplade_pyserini"))
