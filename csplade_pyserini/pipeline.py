"""Host work beside the model: a thread that prepares the next batches and one that writes the last ones.

`encode` runs three stages per batch of documents: read + tokenize + pad (host), the forward pass and top-k
(device), ids to terms + JSON + commit (host). On a GPU the host stages take about as long as the forward of a small
model (eval/bench/host_side.py), so running them serially leaves the GPU idle half the time; on 2 CPU cores they are
~0.1% of the forward and a thread only takes cores from it. `pipelined_default` picks accordingly.

Both helpers keep the order of the stream and raise a worker's exception in the calling thread (its traceback
attached), at the latest when the stream ends.
"""
from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator

PIPELINE_CHOICES = ("auto", "on", "off")


def pipelined_default(choice: str, device) -> bool:
    """--pipeline auto|on|off -> whether to overlap; auto is on for an accelerator and off on a CPU."""
    if choice not in PIPELINE_CHOICES:
        raise ValueError(f"pipeline must be one of {PIPELINE_CHOICES}, got {choice!r}")
    if choice == "auto":
        return getattr(device, "type", str(device)) != "cpu"
    return choice == "on"


_END = object()


def prefetch(items: Iterable, fn: Callable, enabled: bool = True, depth: int = 2) -> Iterator:
    """``fn(item)`` for each item, in order. Enabled, one background thread advances the iterable and runs ``fn``
    up to ``depth`` items ahead of the consumer (the iterable is only ever advanced by that thread, one step at a
    time). A consumer that stops early cancels the steps not yet started."""
    if not enabled:
        yield from map(fn, items)
        return
    it = iter(items)

    def step():
        item = next(it, _END)
        return _END if item is _END else fn(item)

    with ThreadPoolExecutor(1, thread_name_prefix="csplade-prefetch") as pool:
        pending: deque[Future] = deque(pool.submit(step) for _ in range(depth))
        try:
            while True:
                result = pending.popleft().result()
                if result is _END:
                    return
                pending.append(pool.submit(step))
                yield result
        finally:
            for f in pending:
                f.cancel()


class InOrder:
    """Runs submitted jobs one at a time, in submission order: in a background thread when enabled (at most
    ``depth`` waiting; ``submit`` blocks beyond that), else at once in the caller. A job's exception is raised by
    the next ``submit`` or on leaving the ``with`` block, and no later job runs. Leaving it normally waits for every
    job; leaving it on an exception cancels the jobs not started and waits for the running one (so a writer is not
    closed under it)."""

    def __init__(self, enabled: bool = True, depth: int = 2):
        self.depth = depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="csplade-write") if enabled else None
        self.pending: deque[Future] = deque()
        self.failed = False

    def submit(self, fn: Callable, *args) -> None:
        if self.pool is None:
            fn(*args)
            return
        while self.pending and (self.pending[0].done() or len(self.pending) >= self.depth):
            self.pending.popleft().result()  # raises a failed job's exception here
        self.pending.append(self.pool.submit(self._guarded, fn, *args))

    def _guarded(self, fn, *args):
        if self.failed:  # never run a job after a failed one: a writer would commit past a half-written batch
            raise RuntimeError("an earlier job failed")
        try:
            return fn(*args)
        except BaseException:
            self.failed = True
            raise

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.pool is None:
            return False
        try:
            if exc_type is None:
                while self.pending:
                    self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
        return False
