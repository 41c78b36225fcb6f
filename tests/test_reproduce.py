"""Collection specs and regression YAMLs load; the reproduce runner runs end to end and can fail."""
import json

import pytest
import yaml

from csplade_pyserini.collection_specs import CollectionSpec, SpecError, convert_beir_qrels, list_specs
from csplade_pyserini.paths import REPO_DIR, data_dir
from csplade_pyserini.reproduce import load_regression

REGRESSIONS = sorted((REPO_DIR / "eval" / "regressions").glob("*.yaml"))


@pytest.mark.parametrize("path", list_specs(), ids=lambda p: p.stem)
def test_every_collection_spec_loads(path):
    spec = CollectionSpec.load(str(path))
    assert spec.name == path.stem and spec.fields()


@pytest.mark.parametrize("path", REGRESSIONS, ids=lambda p: p.stem)
def test_every_regression_loads(path):
    reg = load_regression(path)
    assert reg["name"] == path.stem
    assert reg["kind"] == "paper" or reg["encoder"]


def test_paper_regressions_cover_the_tables():
    paper = [load_regression(p) for p in REGRESSIONS if p.name.startswith("paper-")]
    assert len(paper) == 6 * 14
    bi8 = load_regression(REPO_DIR / "eval" / "regressions" / "paper-llama3.1-8b-bi-msmarco.yaml")
    assert bi8["evaluations"]["dev"]["mrr@10"] == pytest.approx(0.413)
    assert bi8["evaluations"]["dl20"]["ndcg@10"] == pytest.approx(0.728)


def test_bad_yaml_and_bad_values_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nkind: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+: invalid YAML"):
        load_regression(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "kind": "shipped", "collection": "scifact",
                                   "evaluations": {"test": {"ndcg@100": 0.5}}}))
    with pytest.raises(SpecError, match="unknown metric 'ndcg@100'"):
        load_regression(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "kind": "shipped", "collection": "scifact",
                                   "evaluations": {"dev": {"ndcg@10": 0.5}}}))
    with pytest.raises(SpecError, match="topic set 'dev' is not in collection 'scifact'"):
        load_regression(bad)
    for key, value in (("tolerance", -1), ("cross_dtype_tolerance", "wide")):  # -1 was taken as the default band
        bad.write_text(yaml.safe_dump({"name": "x", "kind": "shipped", "collection": "scifact", key: value,
                                       "evaluations": {"test": {"ndcg@10": 0.5}}}))
        with pytest.raises(SpecError, match=rf"{key} must be a number in \[0, 1\), got {value!r}"):
            load_regression(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "kind": "shipped", "collection": "nope", "evaluations": {}}))
    with pytest.raises(SpecError, match="file not found"):
        load_regression(bad)
    bad.write_text(yaml.safe_dump({"name": "x", "kind": "shipped", "collection": "scifact", "expected": 1,
                                   "evaluations": {}}))
    with pytest.raises(SpecError, match=r"unknown key\(s\) \['expected'\]"):
        load_regression(bad)


def test_user_collection_needs_corpus_dir():
    spec = CollectionSpec.load("msmarco-passage")
    with pytest.raises(SpecError, match="pass --corpus-dir"):
        spec.corpus_path(None)


def test_beir_qrels_conversion(tmp_path):
    src = tmp_path / "test.tsv"
    src.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\n")
    assert convert_beir_qrels(src, tmp_path / "q.txt") == 2
    assert (tmp_path / "q.txt").read_text() == "q1 0 d1 1\nq1 0 d2 0\n"


@pytest.mark.slow
def test_reproduce_runner_fails_then_passes(tmp_path, monkeypatch):
    import shutil

    import csplade_pyserini.paths as paths
    from csplade_pyserini.modeling.card import EncoderCard
    from csplade_pyserini.reproduce import main

    if not (data_dir() / "vaswani").exists():
        pytest.skip("shared data not found")
    reg = yaml.safe_load((REPO_DIR / "eval/regressions/vaswani-mini-smollm2-135m-causal-base.yaml").read_text())
    reg.update(name="tiny", subset={"max_docs": 40, "seed": 1, "max_queries": 2}, score_key="tinykey",
               evaluations={"test": {"ndcg@10": 0.9, "r@100": 0.9}})  # wrong on purpose
    # card scores are written on --accept only: a copy of the card stands in for the shipped one
    cards = tmp_path / "encoders"
    shutil.copytree(paths.encoders_dir() / reg["encoder"], cards / reg["encoder"])
    monkeypatch.setattr(paths, "encoders_dir", lambda: cards)

    def card_scores():
        return EncoderCard.load(cards / reg["encoder"]).scores.get("tinykey")

    (tmp_path / "regs").mkdir()
    path = tmp_path / "regs" / "tiny.yaml"
    path.write_text(yaml.safe_dump(reg))
    argv = [str(path), "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results"), "--threads", "2"]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 1
    res = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert res["pass"] is False and res["docs"] == 40 and len(res["rows"]) == 2
    # the dtype the passages were encoded in is recorded (not only the CPU's instruction set)
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.modeling.backbone import resolve_dtype

    want_dtype = resolve_dtype(resolve_card(reg["encoder"]).dtype, "cpu")
    assert res["dtype"] == want_dtype and res["machine"].endswith(", " + want_dtype)
    page = (tmp_path / "results.md").read_text()
    assert "`tiny`" in page and "FAIL" in page
    # the measured values as expected: passes, reusing the finished shard, index and query cache
    reg["evaluations"] = {"test": {r["metric"]: r["measured"] for r in res["rows"]}}
    path.write_text(yaml.safe_dump(reg))
    main(argv)
    res2 = json.loads((tmp_path / "results" / "tiny.json").read_text())
    assert res2["pass"] is True and res2["seconds"] < res["seconds"]
    assert card_scores() is None  # a failing and a passing check run leave the card alone
    # --accept writes the measured values into the YAML (comments kept), then plain runs pass again
    reg["evaluations"] = {"test": {"ndcg@10": 0.123}}
    path.write_text("# a comment that must survive\n" + yaml.safe_dump(reg))
    main(argv + ["--accept"])
    text = path.read_text()
    acc = yaml.safe_load(text)
    want = {r["metric"]: r["measured"] for r in res2["rows"]}["ndcg@10"]
    assert text.startswith("# a comment") and acc["evaluations"] == {"test": {"ndcg@10": want}}
    assert acc["measured_on"] and acc["measured_on"].endswith(want_dtype) and acc["name"] == "tiny"
    assert card_scores()["ndcg@10"] == want and card_scores()["setup"] == reg.get("setup", "tiny")
    main(argv)


def test_cross_dtype_runs_get_the_wider_tolerance():
    from csplade_pyserini.reproduce import measured_dtype, regression_tolerance

    old = {"tolerance": 0.005, "measured_on": "2026-12-02, x86_64 2 cores (AMD EPYC, AVX2)"}  # float32 implied
    bf16 = {"tolerance": 0.005, "measured_on": "2026-12-03, x86_64 2 cores (Intel(R) Xeon(R) Processor, AMX), bfloat16"}
    assert measured_dtype(old) == "float32" and measured_dtype(bf16) == "bfloat16"
    assert measured_dtype({"measured_on": "..., float16"}) == "float16"
    assert regression_tolerance(old, "float32")[0] == 0.005
    assert regression_tolerance(bf16, "bfloat16")[0] == 0.005
    tol, why = regression_tolerance(old, "bfloat16")
    assert tol == 0.01 and "float32" in why and "bfloat16" in why
    assert regression_tolerance(dict(old, cross_dtype_tolerance=0.02), "bfloat16")[0] == 0.02
    assert regression_tolerance(dict(old, tolerance=0.03), "bfloat16")[0] == 0.03  # never narrower
    assert regression_tolerance(old, None)[0] == 0.005  # BM25: no encoder dtype


def _fusion_reg(**fusion):
    return {"name": "hyb", "kind": "shipped", "role": "hybrid", "collection": "vaswani", "encoder": "fusion",
            "fusion": fusion, "evaluations": {"test": {"ndcg@10": 0.5}}}


def test_fusion_regressions_are_checked(tmp_path):
    from csplade_pyserini.reproduce import load_regression

    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(
            {"name": name, "kind": "shipped", "collection": "vaswani", "encoder": "bm25",
             "evaluations": {"test": {"ndcg@10": 0.5}}}))
    path = tmp_path / "hyb.yaml"
    cases = [({"runs": ["a", "nope"], "method": "rrf"}, "'nope' names no regression"),
             ({"runs": ["a"], "method": "rrf"}, "two or more regression names"),
             ({"runs": ["a", "b"], "method": "max"}, "fusion.method must be one of"),
             ({"runs": ["a", "b"], "method": "interpolation", "weights": [1]}, "must be 2 numbers"),
             ({"runs": ["a", "b"], "method": "rrf", "weights": [1, 1]}, "interpolation only"),
             ({"runs": ["a", "b"], "method": "rrf", "alpha": 1}, "alpha")]
    for fusion, msg in cases:
        path.write_text(yaml.safe_dump(_fusion_reg(**fusion)))
        with pytest.raises(SpecError, match=msg):
            load_regression(path)
    path.write_text(yaml.safe_dump({**_fusion_reg(runs=["a", "b"], method="rrf"), "encoder": "bm25"}))
    with pytest.raises(SpecError, match="go together"):
        load_regression(path)
    path.write_text(yaml.safe_dump(_fusion_reg(runs=["a", "b"], method="interpolation", weights=[0.3, 0.7])))
    assert load_regression(path)["fusion"]["weights"] == [0.3, 0.7]


@pytest.mark.slow
def test_fusion_regression_fuses_its_parts_runs(tmp_path):
    from csplade_pyserini.fuse import fuse, read_run
    from csplade_pyserini.reproduce import main

    if not (data_dir() / "vaswani").exists():
        pytest.skip("shared data not found")
    regs = tmp_path / "regs"
    regs.mkdir()
    sub = {"max_docs": 40, "seed": 1, "max_queries": 3}
    base = yaml.safe_load((REPO_DIR / "eval/regressions/vaswani-mini-smollm2-135m-causal-base.yaml").read_text())
    base["setup"] = "tiny"  # the comparison table groups rows by setup
    parts = {"enc": {**base, "name": "enc", "subset": sub}, "lex": {**base, "name": "lex", "encoder": "bm25", "subset": sub}}
    for name, reg in parts.items():
        reg.pop("encode", None) if name == "lex" else None
        reg["evaluations"] = {"test": {"ndcg@10": 0.0}}  # wrong on purpose: a failing part still gets fused
        (regs / f"{name}.yaml").write_text(yaml.safe_dump(reg))
    hyb = {**_fusion_reg(runs=["enc", "lex"], method="interpolation", weights=[0.4, 0.6]), "subset": sub, "setup": "tiny"}
    (regs / "hyb.yaml").write_text(yaml.safe_dump(hyb))
    work, results = tmp_path / "work", tmp_path / "results"
    with pytest.raises(SystemExit):  # 0.5 is not what it measures
        main([str(regs / "hyb.yaml"), "--workdir", str(work / "hyb"), "--results-dir", str(results)])
    res = json.loads((results / "hyb.json").read_text())
    enc, lex = (json.loads((results / f"{n}.json").read_text()) for n in ("enc", "lex"))
    assert (work / "enc" / "run.test.txt").exists() and (work / "lex" / "run.test.txt").exists()
    assert res["role"] == "hybrid" and res["docs"] == enc["docs"] == lex["docs"] and res["queries"] == {"test": 3}
    assert res["index_bytes"] == enc["index_bytes"] + lex["index_bytes"]
    assert res["encoder"] == "interpolation 0.4/0.6: smollm2-135m-causal-base + bm25"
    assert [p["pass"] for p in res["fusion"]["parts"]] == [False, False]
    want = fuse([read_run(work / n / "run.test.txt") for n in ("enc", "lex")], "interpolation", [0.4, 0.6])
    got = read_run(work / "hyb" / "run.test.txt")
    assert [d for d, _ in got[next(iter(got))]] == [d for d, _ in want[next(iter(got))]]
    assert "interpolation 0.4/0.6" in (tmp_path / "results.md").read_text()


def test_documents_from_is_checked(tmp_path):
    """`documents_from: NAME` searches NAME's index: same collection and subset, NAME encodes its own documents, and
    (when it runs) the encoder's passage side must be NAME's encoder's."""
    from csplade_pyserini.reproduce import _documents_from, load_regression

    def reg(name, **kw):
        d = {"name": name, "kind": "shipped", "collection": "vaswani", "encoder": "smollm2-135m-echo-corpusfit",
             "subset": {"max_docs": 30, "seed": 1}, "evaluations": {"test": {"ndcg@10": 0.5}}, **kw}
        (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(d))
        return tmp_path / f"{name}.yaml"

    reg("src")
    reg("other-subset", subset={"max_docs": 31, "seed": 1})
    reg("lexical-bm25", encoder="bm25")
    cases = [(dict(documents_from="nope"), "'nope' names no regression"),
             (dict(documents_from="other-subset"), "not on this regression's documents"),
             (dict(documents_from="lexical-bm25"), "must encode its own documents"),
             (dict(documents_from="src", encoder="bm25"), "for an encoder other than bm25"),
             (dict(documents_from=["src"]), "must name a regression")]
    for kw, msg in cases:
        with pytest.raises(SpecError, match=msg):
            load_regression(reg("q", **kw))
    ok = load_regression(reg("q", documents_from="src"))
    assert ok["documents_from"] == "src"
    # echo-fitted's term bias is not corpusfit's: its index would not be corpusfit's (nothing is encoded first)
    bad = load_regression(reg("q2", documents_from="src", encoder="smollm2-135m-echo-fitted"))
    with pytest.raises(SpecError, match=r"differ in \['term_bias'\]"):
        _documents_from(bad, tmp_path / "work", bad["encoder"], None, 1, tmp_path / "results", 1)
    assert not (tmp_path / "work").exists()


def test_segment_section_is_checked(tmp_path):
    from csplade_pyserini.reproduce import load_regression

    base = ("name: x\nkind: shipped\ncollection: scifact\nencoder: smollm2-135m-causal-base\n"
            "evaluations: {test: {ndcg@10: 0.5}}\n")
    path = tmp_path / "r.yaml"
    path.write_text(base + "segment: {words: 150, stride: 75}\n")
    assert load_regression(path)["segment"] == {"words": 150, "stride": 75}
    for seg, msg in (("{words: 150}", "missing key"), ("{words: 10, stride: 20}", "stride in 1..words"),
                     ("{words: 10, stride: 5, overlap: 1}", "unknown key"), ("{words: ten, stride: 5}", "ints")):
        path.write_text(base + f"segment: {seg}\n")
        with pytest.raises(SpecError, match=msg):
            load_regression(path)
    path.write_text(base.replace("smollm2-135m-causal-base", "bm25") + "segment: {words: 150, stride: 75}\n")
    with pytest.raises(SpecError, match="encodes its own documents"):
        load_regression(path)


@pytest.mark.slow
def test_segmented_regression_searches_documents_with_maxp(tmp_path):
    from csplade_pyserini.fuse import read_run
    from csplade_pyserini.reproduce import main

    if not (data_dir() / "vaswani").exists():
        pytest.skip("shared data not found")
    reg = yaml.safe_load((REPO_DIR / "eval/regressions/vaswani-mini-smollm2-135m-causal-base.yaml").read_text())
    reg.update(name="seg", subset={"max_docs": 30, "seed": 1, "max_queries": 2}, segment={"words": 20, "stride": 10},
               evaluations={"test": {"ndcg@10": 0.0}})
    (tmp_path / "regs").mkdir()
    path = tmp_path / "regs" / "seg.yaml"
    path.write_text(yaml.safe_dump(reg))
    with pytest.raises(SystemExit):  # 0.0 is not what it measures
        main([str(path), "--workdir", str(tmp_path / "work"), "--results-dir", str(tmp_path / "results")])
    res = json.loads((tmp_path / "results" / "seg.json").read_text())
    seg = res["segments"]
    segments = [json.loads(line)["id"] for line in open(tmp_path / "work" / "segments.jsonl")]
    docs = {json.loads(line)["id"] for line in open(tmp_path / "work" / "subset.jsonl")}
    assert res["docs"] == seg["docs_in"] == len(docs) and seg["segments_out"] > len(docs) and seg["words"] == 20
    assert len(segments) == seg["segments_out"] and {s.split("#")[0] for s in segments} == docs
    run = read_run(tmp_path / "work" / "run.test.txt")
    for hits in run.values():  # documents, each once: the best of its segments
        ids = [d for d, _ in hits]
        assert ids and len(ids) == len(set(ids)) and set(ids) <= docs
