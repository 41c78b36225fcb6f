"""Run fusion (python -m csplade_pyserini.fuse): RRF and min-max interpolation, input checks, the CLI."""
from __future__ import annotations

import pytest

from csplade_pyserini.cli import UsageError
from csplade_pyserini.fuse import fuse, interpolation, main, read_run, rrf


def write(path, rows):
    path.write_text("".join(f"{q} Q0 {d} {i} {s} t\n" for i, (q, d, s) in enumerate(rows, 1)))
    return path


A = {"q1": [("d1", 30.0), ("d2", 20.0), ("d3", 10.0)]}
B = {"q1": [("d3", 9.0), ("d4", 8.0), ("d1", 1.0)]}


def test_rrf_sums_reciprocal_ranks():
    out = rrf([A, B], rrf_k=60)["q1"]
    got = dict(out)
    assert got["d1"] == pytest.approx(1 / 61 + 1 / 63)
    assert got["d3"] == pytest.approx(1 / 63 + 1 / 61)
    assert got["d2"] == pytest.approx(1 / 62) and got["d4"] == pytest.approx(1 / 62)
    # d1 and d3 tie, d2 and d4 tie: docid breaks ties, so the order is fixed
    assert [d for d, _ in out] == ["d1", "d3", "d2", "d4"]


def test_interpolation_min_max_scales_each_run():
    # A: d1 1.0, d2 0.5, d3 0.0; B: d3 1.0, d4 0.875, d1 0.0
    out = dict(interpolation([A, B], [0.5, 0.5])["q1"])
    assert out == pytest.approx({"d1": 0.5, "d2": 0.25, "d3": 0.5, "d4": 0.4375})
    only_b = interpolation([A, B], [0.0, 1.0])["q1"]
    assert [d for d, _ in only_b][:2] == ["d3", "d4"]
    # raw scores would let A's larger numbers win; scaled, a heavier weight on B puts d3 first
    assert interpolation([A, B], [0.3, 0.7])["q1"][0][0] == "d3"


def test_depth_and_hits_cut_and_missing_queries_kept():
    c = {"q2": [("x", 1.0)]}
    out = fuse([A, B, c], "rrf", depth=1, hits=2)
    assert dict(out["q1"]) == pytest.approx({"d1": 1 / 61, "d3": 1 / 61})
    assert out["q2"] == [("x", pytest.approx(1 / 61))]


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(UsageError, match="at least two runs"):
        fuse([A])
    with pytest.raises(UsageError, match="2 runs but 1 weights"):
        fuse([A, B], "interpolation", [1.0])
    with pytest.raises(UsageError, match="not all 0"):
        fuse([A, B], "interpolation", [0.0, 0.0])
    with pytest.raises(UsageError, match="unknown fusion method"):
        fuse([A, B], "max")
    bad = tmp_path / "bad.txt"
    bad.write_text("q1 Q0 d1 1 2.0 t\nq1 Q0 d2 2\n")
    with pytest.raises(UsageError, match=r"bad.txt:2: expected"):
        read_run(bad)
    bad.write_text("q1 Q0 d1 1 high t\n")
    with pytest.raises(UsageError, match=r"bad.txt:1: score 'high'"):
        read_run(bad)
    with pytest.raises(UsageError, match="run file not found"):
        read_run(tmp_path / "none.txt")


def test_read_run_resorts_and_keeps_best_duplicate(tmp_path):
    p = write(tmp_path / "r.txt", [("q1", "d2", 1.0), ("q1", "d1", 5.0), ("q1", "d2", 7.0)])
    assert read_run(p) == {"q1": [("d2", 7.0), ("d1", 5.0)]}


def test_cli_writes_a_trec_run(tmp_path, capsys):
    a = write(tmp_path / "a.txt", [(q, d, s) for q, hits in A.items() for d, s in hits])
    b = write(tmp_path / "b.txt", [(q, d, s) for q, hits in B.items() for d, s in hits])
    out = tmp_path / "fused.txt"
    main(["--runs", str(a), str(b), "--method", "interpolation", "--weights", "0.3", "0.7", "--output", str(out)])
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [x[2] for x in lines] == ["d3", "d4", "d1", "d2"]
    assert [x[3] for x in lines] == ["1", "2", "3", "4"] and lines[0][5] == "csplade-fused"
    with pytest.raises(SystemExit) as e:
        main(["--runs", str(a), str(b), "--weights", "1", "1", "--output", str(out)])
    assert e.value.code == 2 and "--method interpolation only" in capsys.readouterr().err
