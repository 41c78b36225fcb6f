"""The threads beside the model in `encode` (csplade_pyserini/pipeline.py): order, errors, and the same shard."""
import json
import threading
import time

import pytest

from csplade_pyserini.pipeline import InOrder, pipelined_default, prefetch


def test_pipelined_default():
    assert pipelined_default("auto", "cpu") is False and pipelined_default("auto", "cuda:0") is True
    assert pipelined_default("on", "cpu") is True and pipelined_default("off", "cuda") is False
    with pytest.raises(ValueError, match="pipeline must be one of"):
        pipelined_default("yes", "cpu")


@pytest.mark.parametrize("enabled", [False, True])
def test_prefetch_keeps_order_and_runs_ahead_in_one_thread(enabled):
    threads, seen = set(), []

    def items():
        for i in range(7):
            seen.append(i)
            yield i

    def fn(i):
        threads.add(threading.get_ident())
        time.sleep(0.01 * (i % 3))  # uneven work must not reorder
        return i * i

    got = []
    for r in prefetch(items(), fn, enabled, depth=2):
        if enabled and r == 0:
            time.sleep(0.1)
            assert len(seen) >= 2  # the thread read ahead while the consumer worked
        got.append(r)
    assert got == [i * i for i in range(7)]
    assert (threading.get_ident() in threads) is not enabled and len(threads) == 1


def test_prefetch_raises_the_workers_error_in_order_and_stops_early():
    def fn(i):
        if i == 3:
            raise ValueError("record 3 is bad")
        return i

    got = []
    with pytest.raises(ValueError, match="record 3 is bad"):
        for r in prefetch(range(10), fn, True):
            got.append(r)
    assert got == [0, 1, 2]

    calls = []
    gen = prefetch(range(100), lambda i: calls.append(i) or i, True, depth=2)
    assert next(gen) == 0
    gen.close()  # a consumer that stops: the steps not started are cancelled
    assert len(calls) <= 4


@pytest.mark.parametrize("enabled", [False, True])
def test_in_order_runs_jobs_in_order_and_nothing_after_a_failure(enabled):
    done = []

    def job(i):
        time.sleep(0.005 * ((7 - i) % 3))
        if i == 4:
            raise KeyboardInterrupt  # as a kill inside the writer
        done.append(i)

    with pytest.raises(KeyboardInterrupt):
        with InOrder(enabled, depth=2) as q:
            for i in range(10):
                q.submit(job, i)
    assert done == [0, 1, 2, 3]

    done.clear()
    with InOrder(enabled) as q:
        for i in range(4):
            q.submit(job, i)
    assert done == [0, 1, 2, 3]  # leaving the block waits for every job


def test_pipelined_encode_writes_the_same_shard(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encode import encode_corpus

    docs = [{"id": f"d{i}", "title": "t" * (i % 2), "text": "cells cancer mice study " * (i % 7)} for i in range(37)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    runs = {p: encode_corpus(corpus, tmp_path / p, str(tiny_checkpoint), ("title", "text"), batch_size=2,
                             device="cpu", quiet=True, pipeline=p) for p in ("off", "on")}
    assert (tmp_path / "on" / "embeddings.jsonl").read_bytes() == (tmp_path / "off" / "embeddings.jsonl").read_bytes()
    assert runs["on"]["pipelined"] is True and runs["off"]["pipelined"] is False
    keys = ("docs_out", "empty_texts", "empty_vectors", "truncated", "tokens", "sha256")
    assert {k: runs["on"][k] for k in keys} == {k: runs["off"][k] for k in keys}
    assert runs["on"]["docs_out"] == 37 and runs["on"]["empty_texts"] >= 3  # the 3 with neither title nor text


def test_encode_rejects_an_unknown_pipeline(tmp_path, tiny_checkpoint):
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.encode import encode_corpus

    with pytest.raises(UsageError, match="--pipeline must be one of auto, on, off"):
        encode_corpus(tmp_path / "none.jsonl", tmp_path / "v", str(tiny_checkpoint), pipeline="yes")
