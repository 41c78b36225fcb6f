"""Per-query scores and the paired comparison of two runs (eval --compare), on hand-made runs and qrels."""
import pytest

from csplade_pyserini.cli import UsageError
from csplade_pyserini.eval import _main, compare_runs, evaluate, paired_comparison, per_query


def _write(tmp_path):
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\nq2 0 d2 1\nq3 0 d3 1\nq4 0 d4 1\n")
    # A finds q1's document at rank 1 and q2's at rank 3; B finds q1 and q2 at rank 1; neither searches q4
    (tmp_path / "a.txt").write_text("q1 Q0 d1 1 3.0 a\nq1 Q0 d9 2 2.0 a\nq2 Q0 d8 1 3.0 a\nq2 Q0 d7 2 2.0 a\n"
                                    "q2 Q0 d2 3 1.0 a\nq3 Q0 d3 1 1.0 a\n")
    (tmp_path / "b.txt").write_text("q1 Q0 d1 1 3.0 b\nq2 Q0 d2 1 3.0 b\nq3 Q0 d9 1 1.0 b\nq3 Q0 d3 2 0.5 b\n")
    return tmp_path / "qrels.txt", tmp_path / "a.txt", tmp_path / "b.txt"


def test_per_query_mean_equals_trec_eval_all(tmp_path):
    qrels, a, b = _write(tmp_path)
    for run in (a, b):
        for metric in ("ndcg@10", "mrr@10", "map"):
            pq = per_query(run, qrels, metric)
            assert set(pq) == {"q1", "q2", "q3", "q4"} and pq["q4"] == 0.0  # missing query counts as 0, as -c does
            assert sum(pq.values()) / len(pq) == pytest.approx(evaluate(run, qrels, [metric])[metric], abs=1e-4)
    assert per_query(b, qrels, "mrr@10") == pytest.approx({"q1": 1.0, "q2": 1.0, "q3": 0.5, "q4": 0.0}, abs=1e-4)
    assert per_query(a, qrels, "mrr@10") == pytest.approx({"q1": 1.0, "q2": 1 / 3, "q3": 1.0, "q4": 0.0}, abs=1e-4)  # trec_eval prints 4 decimals


def test_grouped_trec_eval_calls_give_each_metrics_own_value(tmp_path):
    """evaluate puts every metric without -M in one trec_eval call and MRR@10 in its own: the values equal one call
    per metric (where -M 10 would have cut R@100 and MAP too)."""
    from csplade_pyserini.eval import DEFAULT_METRICS, _checked, _trec_eval, metric_groups

    assert metric_groups(DEFAULT_METRICS) == [["ndcg@10", "r@100", "r@1000", "map"], ["mrr@10"]]
    assert metric_groups(["mrr@10"]) == [["mrr@10"]] and metric_groups(["map"]) == [["map"]]
    # trec_eval keeps only the last -m of a measure: recall cutoffs go into one -m
    from csplade_pyserini.eval import _merged_flags

    assert _merged_flags(["-m", "ndcg_cut.10", "-m", "recall.100", "-m", "recall.1000", "-m", "map"]) == [
        "-m", "ndcg_cut.10", "-m", "recall.100,1000", "-m", "map"]
    qrels, a, b = _write(tmp_path)
    for run in (a, b):
        q, r = _checked(run, qrels, DEFAULT_METRICS)
        one_by_one = {m: _trec_eval(r, q, m)[m]["all"] for m in DEFAULT_METRICS}
        assert evaluate(run, qrels) == one_by_one
        assert list(evaluate(run, qrels, ["map", "mrr@10", "ndcg@10"])) == ["map", "mrr@10", "ndcg@10"]
    # per-query values too: grouped calls give each metric's own (-q), as one call per metric would
    from csplade_pyserini.eval import per_query_and_means

    grouped = per_query_and_means(a, qrels, DEFAULT_METRICS)
    for m in DEFAULT_METRICS:
        q, r = _checked(a, qrels, [m])
        alone = _trec_eval(r, q, m, per_query=True)[m]
        assert grouped[m][1] == alone["all"] and all(grouped[m][0][k] == alone.get(k, 0.0) for k in grouped[m][0])
    # A's q2 document is at rank 3: MRR@10 1/3 there, while -M 10 does not matter for these short runs
    assert evaluate(a, qrels)["mrr@10"] == pytest.approx((1 + 1 / 3 + 1) / 4, abs=1e-4)


def test_compare_counts_wins_ties_losses(tmp_path):
    qrels, a, b = _write(tmp_path)
    c = compare_runs(a, b, qrels, ["mrr@10"], samples=2000)["mrr@10"]
    assert (c["wins"], c["ties"], c["losses"], c["queries"]) == (1, 2, 1, 4)
    assert c["diff"] == pytest.approx((2 / 3 - 0.5) / 4, abs=1e-4)
    assert c["ci95"][0] <= c["diff"] <= c["ci95"][1]
    assert 0.3 < c["p_randomization"] <= 1.0  # 4 queries, one win and one loss: nowhere near significant
    same = compare_runs(a, a, qrels, ["ndcg@10"], samples=500)["ndcg@10"]
    assert same["diff"] == 0.0 and same["p_randomization"] == 1.0 and same["ties"] == 4


def test_paired_comparison_detects_a_consistent_gain():
    a = {f"q{i}": 0.5 for i in range(60)}
    b = {q: v + 0.05 + 0.01 * (i % 3) for i, (q, v) in enumerate(a.items())}
    c = paired_comparison(a, b, samples=2000)
    assert c["wins"] == 60 and c["p_randomization"] < 0.001 and c["ci95"][0] > 0
    # seeded: the same call gives the same numbers
    assert paired_comparison(a, b, samples=2000) == c


def test_compare_cli_errors(tmp_path):
    qrels, a, b = _write(tmp_path)
    with pytest.raises(UsageError, match="exactly two runs"):
        _main(["--qrels", str(qrels), "--run", str(a), "--compare"])
    with pytest.raises(UsageError, match="share no judged query"):
        paired_comparison({"x": 1.0}, {"y": 1.0})
    out = _main(["--qrels", str(qrels), "--run", str(a), str(b), "--compare", "--metrics", "mrr@10",
                 "--samples", "200"])
    assert out["comparison"]["mrr@10"]["wins"] == 1
