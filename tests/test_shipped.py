"""Shipped encoders (offline load, stored top terms, size, names), the default encoder, results pages."""
import json

import pytest

from csplade_pyserini.modeling.card import EncoderCard
from csplade_pyserini.paths import encoders_dir

ENCODERS = sorted(p.parent.name for p in encoders_dir().glob("*/card.json"))


def test_every_shipped_encoder_is_small_named_safely_and_has_expected_terms():
    from csplade_pyserini.ship import MAX_MB, dir_mb

    assert ENCODERS, "no encoders shipped"
    for name in ENCODERS:
        d = encoders_dir() / name
        card = EncoderCard.load(d)
        assert card.name == name
        assert "splade" not in name.lower(), f"{name}: Pyserini would route it to its BERT SPLADE encoder"
        assert dir_mb(d) <= MAX_MB, f"{name}: {dir_mb(d):.1f} MB"
        assert (d / "expected.json").exists(), f"{name}: run python -m csplade_pyserini.ship {d} --expected-only"
        for p in card.adapter_paths():
            assert (p / "adapter_model.safetensors").exists() and p.resolve().is_relative_to(d.resolve())
        if card.adapter_paths():
            assert card.base_sha256, name
        if card.adapter_paths() or card.term_bias:
            assert card.training and card.training.get("stages"), name
            assert all(s.get("command", "").startswith(("python -m csplade_pyserini.train",
                                                        "python -m csplade_pyserini.calibrate",
                                                        "python -m csplade_pyserini.mine_negatives",
                                                        "python -m csplade_pyserini.fit_query_weights",
                                                        "python -m csplade_pyserini.ship",
                                                        "python eval/training/make_title_pairs.py"))
                       for s in card.training["stages"]), name
        if card.term_bias:
            assert card.term_bias_path().resolve().is_relative_to(d.resolve()) and card.load_term_bias() is not None
        if card.query_weights:
            assert card.query_weights_path().resolve().is_relative_to(d.resolve()) and card.query_encoder == "lexical"


@pytest.mark.parametrize("name", ENCODERS)
def test_shipped_encoder_loads_offline_and_gives_its_stored_terms(name, monkeypatch):
    """Regression test against silent changes (tokenizer, weights, adapters, pooling, quantization)."""
    from csplade_pyserini.encoder import CspladeEncoder

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    expected = json.loads((encoders_dir() / name / "expected.json").read_text())
    # the precision the terms were recorded in (float32: bf16 kernels round differently from CPU to CPU)
    enc = CspladeEncoder.load(name, device="cpu", dtype=expected["dtype"])
    for t in expected["texts"]:
        got = enc.encode([t["text"]], side=t["side"])[0]
        want = dict(t["top"])
        missing = [term for term, _ in t["top"][:10] if term not in got]
        assert not missing, f"{name} {t['side']}: top terms {missing} are gone"
        off = {term: (got.get(term, 0), w) for term, w in want.items() if abs(got.get(term, 0) - w) > 2}
        assert not off, f"{name} {t['side']}: weights moved by more than 2/scale: {off}"
        assert abs(len(got) - t["terms"]) <= max(2, 0.01 * t["terms"])


def test_default_encoder_is_the_best_scored(tmp_path, monkeypatch):
    """The highest mean over the shipped collections, among the cards scored on the most of them, inference-free
    cards first."""
    from csplade_pyserini.encoder import BASE_ENCODER, default_encoder

    monkeypatch.setenv("CSPLADE_ENCODERS", str(tmp_path))
    assert default_encoder() == BASE_ENCODER  # nothing shipped
    for name, score in [("enc-a", 0.31), ("enc-b", 0.52), ("enc-c", None)]:
        EncoderCard(name=name, scores={"scifact": {"ndcg@10": score}} if score is not None else {}).save(tmp_path / name)
    assert default_encoder() == "enc-b"
    # scored on both shipped collections beats scored on one; among those, the higher mean wins
    for name, sf, vw in [("enc-d", 0.50, 0.30), ("enc-e", 0.49, 0.40), ("enc-f", 0.60, None)]:
        scores = {"scifact": {"ndcg@10": sf}} | ({"vaswani": {"ndcg@10": vw}} if vw is not None else {})
        EncoderCard(name=name, scores=scores).save(tmp_path / name)
    assert default_encoder() == "enc-e"
    # an inference-free card (no model call per query) comes before higher-scored ones whose queries run the model
    both = {"scifact": {"ndcg@10": 0.45}, "vaswani": {"ndcg@10": 0.30}}
    EncoderCard(name="enc-g", query_encoder="lexical", scores=both).save(tmp_path / "enc-g")
    assert default_encoder() == "enc-g"
    EncoderCard(name="enc-h", query_encoder="lexical", query_expansion=1.0,
                scores={k: {"ndcg@10": 0.9} for k in both}).save(tmp_path / "enc-h")
    assert default_encoder() == "enc-g"  # expansions run the model
    EncoderCard(name="enc-i", query_encoder="lexical", scores={k: {"ndcg@10": 0.5} for k in both}).save(tmp_path / "enc-i")
    assert default_encoder() == "enc-i"


def test_demo_and_clis_use_the_default_encoder():
    from csplade_pyserini import demo, encoder, search
    from csplade_pyserini.encode import build_groups

    assert encoder.DEFAULT_ENCODER == encoder.default_encoder()
    assert demo.build_parser().get_default("encoder") == encoder.DEFAULT_ENCODER
    assert search.build_parser().get_default("encoder") == encoder.DEFAULT_ENCODER
    assert build_groups()["encoder"].get_default("encoder") == encoder.DEFAULT_ENCODER
    assert encoder.resolve_card(None).name == encoder.DEFAULT_ENCODER


def test_ship_refuses_names_pyserini_would_misroute(tmp_path):
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.ship import ship

    with pytest.raises(UsageError, match="splade"):
        ship(str(tmp_path), "my-csplade-encoder", dest_root=tmp_path)


def test_shipping_a_calibrated_card_keeps_its_grid():
    """The results page draws each calibrated encoder's margin x bonus grid from its shipped card."""
    from csplade_pyserini.ship import training_stages

    grid = [{"margin": 5.0, "bonus": 4.0, "ndcg@10": 0.77, "terms_per_query": 270.0, "terms_per_passage": 254.0}]
    card = EncoderCard(name="x", base_model="smollm2-135m-instruct", variant="echo",
                       training={"stage": "calibrate", "command": "python -m csplade_pyserini.calibrate ...",
                                 "margin": 5.0, "input_bonus": 4.0, "grid": grid, "previous": None})
    (stage,) = training_stages(card)
    assert stage["grid"] == grid and stage["margin"] == 5.0 and "previous" not in stage


def test_prune_vectors_and_avg_terms(tmp_path):
    from csplade_pyserini.reproduce import avg_terms, prune_vectors

    src = tmp_path / "v"
    src.mkdir()
    (src / "embeddings.jsonl").write_text(
        json.dumps({"id": "a", "contents": "", "vector": {"x": 5, "y": 9, "z": 1, "w": 9}}) + "\n"
        + json.dumps({"id": "b", "contents": "", "vector": {"q": 3}}) + "\n")
    prune_vectors(src, tmp_path / "p", 2)
    rows = [json.loads(line) for line in open(tmp_path / "p" / "embeddings.jsonl")]
    assert rows[0]["vector"] == {"w": 9, "y": 9} and rows[1]["vector"] == {"q": 3}
    assert avg_terms(src) == 2.5 and avg_terms(tmp_path / "p") == 1.5

    # with a manifest (our encode's), the pruned shard gets one: its counts and the encoder, so the index records it
    meta = tmp_path / "v.manifest"
    meta.mkdir()
    (meta / "embeddings.jsonl.json").write_text(json.dumps({
        "docs_out": 2, "shard_num": 1, "encoder": {"name": "e", "passage_top_k": 256},
        "passage_weighting": {"variant": "echo"}}))
    prune_vectors(src, tmp_path / "p2", 2)
    from csplade_pyserini.index import check_shards, shard_encoder

    pruned = json.loads((tmp_path / "p2.manifest" / "embeddings.jsonl.json").read_text())
    assert pruned["docs_out"] == 2 and pruned["top_k"] == 2 and pruned["encoder"]["passage_top_k"] == 2
    assert check_shards(tmp_path / "p2") == 2
    assert shard_encoder(tmp_path / "p2") == {"encoder": "e", "passage_weighting": {"variant": "echo"}}


def _result(name, encoder, role, ndcg, index_bytes, sweep=(), card=None):
    return {"name": name, "kind": "shipped", "role": role, "setup": "toy", "collection": "scifact", "encoder": encoder,
            "description": "toy setup", "tolerance": 0.005, "pass": True, "rows": [],
            "metrics": {"test": {"ndcg@10": ndcg, "mrr@10": ndcg, "r@100": 0.9, "map": ndcg}}, "docs": 10,
            "queries": {"test": 3}, "index_bytes": index_bytes, "terms_per_doc": 12.0, "terms_per_query": {"test": 4.0},
            "docs_per_s": 1.5, "encoder_card": card or {}, "sweep": list(sweep), "seconds": 1.0,
            "date": "2026-11-25T00:00:00", "machine": "test", "command": "x"}


def test_results_page_tables_plot_and_json(tmp_path):
    from csplade_pyserini.results import write_results

    res, regs = tmp_path / "results", tmp_path / "regs"
    res.mkdir(), regs.mkdir()
    card = {"name": "enc-a", "variant": "echo", "training": {"stages": [
        {"stage": "adapt", "steps": 5, "command": "python -m csplade_pyserini.train --stage adapt"},
        {"stage": "mine", "command": "python -m csplade_pyserini.mine_negatives --index x"},
        {"stage": "contrastive", "steps": 7, "command": "python -m csplade_pyserini.train --stage contrastive"}]}}
    sweep = [{"top_k": 8, "index_bytes": 1000, "terms_per_doc": 8.0, "test": {"ndcg@10": 0.25, "r@100": 0.8}}]
    cal = {"name": "enc-c", "variant": "causal", "training": {
        "stage": "calibrate", "passages": 40, "margin": 3.0, "input_bonus": 2.0, "tuned_on": "fit.tsv",
        "command": "python -m csplade_pyserini.calibrate --variant causal",
        "grid": [{"margin": m, "bonus": b, "ndcg@10": 0.1 * m + 0.01 * b, "terms_per_query": 9.0,
                  "terms_per_passage": 20.0} for m in (2.0, 3.0) for b in (0.0, 2.0)]}}
    for r in (_result("toy-bm25", "bm25", "baseline", 0.5, 3000),
              _result("toy-a", "enc-a", "shipped", 0.6, 2000, sweep, card),
              _result("toy-c", "enc-c", "shipped", 0.55, 2000, (), cal)):
        (res / f"{r['name']}.json").write_text(json.dumps(r))
    page = write_results(res, regs, tmp_path).read_text()
    assert "| `enc-c` | shipped | causal | calibrate (40 passages, margin 3, bonus 2) | 0.5500" in page
    assert "python -m csplade_pyserini.calibrate --variant causal" in page
    assert "Chosen: margin 3, bonus 2." in page and "| 3 | 0.3000 (9) | 0.3200 (9) |" in page
    assert "### toy" in page and "| `enc-a` | shipped | echo | adapt 5 + mined negatives + contrastive 7 | 0.6000" in page
    assert "python -m csplade_pyserini.mine_negatives --index x" in page
    assert "| `bm25` | baseline |" in page and "| 8 | 0.2500 | 0.8000 |" in page
    assert "python -m csplade_pyserini.train --stage contrastive" in page
    assert (tmp_path / "results_ndcg_vs_index.png").stat().st_size > 1000
    assert len(json.loads((tmp_path / "results.json").read_text())["runs"]) == 3


def test_a_hybrid_rows_index_size_is_its_parts_current_sizes(tmp_path):
    """A hybrid searches its parts' indexes: after a part is re-run with a leaner index, the hybrid's row (and the
    plot and results.json) show the new sum, not the one recorded when the hybrid ran."""
    from csplade_pyserini.results import load_results, write_results

    res, regs = tmp_path / "results", tmp_path / "regs"
    res.mkdir(), regs.mkdir()
    hyb = _result("toy-hyb", "rrf: enc-a + bm25", "hybrid", 0.7, 9000)
    hyb["fusion"] = {"method": "rrf", "parts": [{"name": "toy-a", "index_bytes": 2000},
                                                {"name": "toy-bm25", "index_bytes": 7000}]}
    for r in (_result("toy-bm25", "bm25", "baseline", 0.5, 3000), _result("toy-a", "enc-a", "shipped", 0.6, 2000),
              hyb):
        (res / f"{r['name']}.json").write_text(json.dumps(r))
    got = {r["name"]: r["index_bytes"] for r in load_results(res)}
    assert got == {"toy-bm25": 3000, "toy-a": 2000, "toy-hyb": 5000}
    (res / "toy-bm25.json").unlink()  # a part without results: the recorded sum stays
    assert {r["name"]: r["index_bytes"] for r in load_results(res)}["toy-hyb"] == 9000
    (res / "toy-bm25.json").write_text(json.dumps(_result("toy-bm25", "bm25", "baseline", 0.5, 3000)))
    page = write_results(res, regs, tmp_path).read_text()
    assert f"| {5000 / 2**20:.2f} |" in page.split("`rrf: enc-a + bm25`")[1].splitlines()[0]


def test_training_summary_names_each_query_fit_stage():
    """The results tables show how a lexical card's query side was fitted: mode, steps, the step kept."""
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.results import training_summary

    stages = [{"stage": "fit_query_weights", "mode": "df", "steps": 300, "best_step": 130},
              {"stage": "fit_query_weights", "mode": "per-term", "steps": 500, "best_step": 400}]
    assert training_summary({"training": {"stages": stages}}) == (
        "fit_query_weights df (300 steps, step 130) + fit_query_weights per-term (500 steps, step 400)")
    shipped = resolve_card("smollm2-135m-echo-corpusfit-lexqdf").to_dict()
    assert training_summary(shipped).endswith(
        "fit_query_weights df (300 steps, step 130) + fit_query_weights per-term (500 steps, step 400)")


def test_shipped_hybrid_settings_are_their_fusion_grids_choice():
    """A card's `hybrid` is what eval/fusion/tune_fusion.py chose on training queries (--write-card / --record),
    never a hand-set number: the grid it names must be there, be this encoder's, and have chosen the same."""
    from csplade_pyserini.paths import REPO_DIR

    with_hybrid = [n for n in ENCODERS if EncoderCard.load(encoders_dir() / n).hybrid]
    assert "smollm2-135m-echo-corpusfit-lexqdf" in with_hybrid
    for name in with_hybrid:
        h = EncoderCard.load(encoders_dir() / name).hybrid
        grid = json.loads((REPO_DIR / h["chosen_on"]).read_text())
        assert grid["encoder"] == name and grid["chosen_on"] == "tune"
        assert {k: v for k, v in h.items() if k != "chosen_on"} == {
            k: grid["chosen"][k] for k in ("method", "weights", "rrf_k") if k in grid["chosen"]}


def test_hybrid_card_setting_is_checked_and_is_what_search_fuses_by_default(tmp_path):
    from csplade_pyserini.encode import encoder_identity
    from csplade_pyserini.modeling.card import CardError
    from csplade_pyserini.search import _fusion_settings

    card = EncoderCard(name="h", hybrid={"method": "interpolation", "weights": [0.6, 0.4], "chosen_on": "x.json"})
    assert _fusion_settings(card, None, None, None) == ("interpolation", [0.6, 0.4], 60.0, True)
    assert _fusion_settings(card, "interpolation", [0.2, 0.8], None) == ("interpolation", [0.2, 0.8], 60.0, False)
    assert _fusion_settings(card, "rrf", None, None) == ("rrf", None, 60.0, False)  # another method: none of its numbers
    assert _fusion_settings(EncoderCard(name="plain"), None, None, None) == ("rrf", None, 60.0, False)
    rrf = EncoderCard(name="r", hybrid={"method": "rrf", "rrf_k": 20})
    assert _fusion_settings(rrf, None, None, None) == ("rrf", None, 20.0, True)
    # a search-time setting: the encoder's identity (what its vectors are keyed by) does not change
    assert encoder_identity(card) == encoder_identity(EncoderCard(name="h"))
    for bad in ({"method": "interpolation"}, {"method": "interpolation", "weights": [0, 0]},
                {"method": "interpolation", "weights": [1.0, -1.0]}, {"method": "rrf", "weights": [1, 1]},
                {"method": "combsum"}, {"method": "rrf", "k": 3}, [0.6, 0.4]):
        with pytest.raises(CardError, match="hybrid"):
            EncoderCard(name="bad", hybrid=bad)
