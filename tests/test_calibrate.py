"""calibrate: log-softmax head + per-term bias from corpus statistics, margin tuned on training queries."""
import json

import pytest
import torch

from tests.test_training import TOPICS


def _corpus(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "title": "", "text": p}) + "\n"
                              for i, (_, p) in enumerate(TOPICS)))
    topics = tmp_path / "topics.tsv"
    topics.write_text("".join(f"q{i}\t{q}\n" for i, (q, _) in enumerate(TOPICS)))
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("".join(f"q{i} 0 d{i} 1\n" for i in range(len(TOPICS))))
    return corpus, topics, qrels


def test_calibrate_writes_an_encoder_with_the_corpus_mean_as_bias(tmp_path, tiny_checkpoint):
    from csplade_pyserini.calibrate import calibrate, own_counts, pooled_scores
    from csplade_pyserini.encoder import CspladeEncoder

    corpus, topics, qrels = _corpus(tmp_path)
    out = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "cal"), variant="echo", passages=100,
                    margins=(0.5, 1.0, 2.0), bonuses=(0.0, 1.0), tf_bonuses=(0.0,), tune_topics=str(topics),
                    tune_qrels=str(qrels),
                    device="cpu", log=lambda s: None)
    card = json.loads((out / "card.json").read_text())
    assert card["logit_norm"] == "log_softmax" and card["variant"] == "echo"
    assert card["term_bias"] == "term_bias.safetensors" and card["training"]["stage"] == "calibrate"
    grid = card["training"]["grid"]
    assert [(g["margin"], g["bonus"]) for g in grid] == [(m, b) for m in (0.5, 1.0, 2.0) for b in (0.0, 1.0)]
    best = max(g["ndcg@10"] for g in grid)
    assert card["logit_shift"] == max(g["margin"] for g in grid if g["ndcg@10"] >= best - 0.01)
    at = {g["bonus"]: g["ndcg@10"] for g in grid if g["margin"] == card["logit_shift"]}
    assert at[card["input_bonus"]] == max(at.values())
    assert card["training"]["input_bonus"] == card["input_bonus"]


    enc = CspladeEncoder.load(str(out), device="cpu")
    # the bias is minus the mean pooled log-probability over the corpus (every passage: the sample is all of it)
    plain = CspladeEncoder.load(str(out), device="cpu", term_bias="", logit_shift=0.0)  # "": no bias
    z = pooled_scores(plain, [p for _, p in TOPICS], "passage", 4, "test")
    own = own_counts(plain, [p for _, p in TOPICS], "passage")
    toks = plain.model.token_lists([TOPICS[0][1]], plain.card.passage_prefix)[0]
    assert set(own[0].nonzero().flatten().tolist()) == {i for i, f in zip(*toks) if f}
    allowed = enc.model.allowed.bool()
    torch.testing.assert_close(enc.model.pooling.term_bias[allowed], -z.mean(0)[allowed], rtol=1e-5, atol=1e-5)
    assert z.max() <= 0, "log-probabilities"
    vec = enc.encode(["brain cancer"], side="query")[0]
    assert vec and all(isinstance(v, int) and v > 0 for v in vec.values())


def test_pick_margin_prefers_sparse_then_best_bonus():
    from csplade_pyserini.calibrate import pick_margin

    grid = [{"margin": 2.0, "bonus": 0.0, "ndcg@10": 0.50}, {"margin": 2.0, "bonus": 2.0, "ndcg@10": 0.60},
            {"margin": 4.0, "bonus": 0.0, "ndcg@10": 0.40}, {"margin": 4.0, "bonus": 2.0, "ndcg@10": 0.595},
            {"margin": 4.0, "bonus": 3.0, "ndcg@10": 0.595}, {"margin": 6.0, "bonus": 2.0, "ndcg@10": 0.30}]
    assert pick_margin(grid, 0.01) == (4.0, 2.0, 0.0)  # within 0.01 of 0.60 at margin 4; the smaller bonus on a tie
    assert pick_margin(grid, 0.0) == (2.0, 2.0, 0.0)
    tf = [{"margin": 2.0, "bonus": 1.0, "tf_bonus": 3.0, "ndcg@10": 0.7}, {"margin": 2.0, "bonus": 1.0, "tf_bonus": 0.0,
                                                                          "ndcg@10": 0.6},
          {"margin": 2.0, "bonus": 2.0, "tf_bonus": 6.0, "ndcg@10": 0.7}]
    assert pick_margin(tf, 0.01) == (2.0, 1.0, 3.0)  # best cell; a tie goes to the smaller bonus
    assert pick_margin([{"margin": 3.0, "ndcg@10": 0.1}], 0.01) == (3.0, 0.0, 0.0)  # grids written before the bonus


def test_calibrate_needs_margin_or_tuning(tmp_path, tiny_checkpoint):
    from csplade_pyserini.calibrate import calibrate
    from csplade_pyserini.cli import UsageError

    corpus, topics, _ = _corpus(tmp_path)
    with pytest.raises(UsageError, match="--margin or --tune-topics"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), log=lambda s: None)
    with pytest.raises(UsageError, match="needs --tune-qrels"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), tune_topics=str(topics), log=lambda s: None)
    with pytest.raises(UsageError, match="--input-bonus goes with --margin"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), tune_topics=str(topics),
                  tune_qrels=str(topics), bonus=1.0, log=lambda s: None)


def test_ndcg_at_k_matches_hand_computation():
    from csplade_pyserini.calibrate import ndcg_at_k

    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    qrels = {"a": {"x": 1, "z": 1}, "b": {"x": 2}}
    got = ndcg_at_k(scores, ["a", "b"], ["x", "y", "z"], qrels, k=10)
    import math
    a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    b = (2 / math.log2(4)) / 2
    assert got == pytest.approx((a + b) / 2)


def test_train_term_bias_export_resume_and_ship(tmp_path, tiny_checkpoint):
    """calibrate -> contrastive training with a trainable term bias -> export -> ship: the bias travels."""
    from csplade_pyserini.calibrate import calibrate
    from csplade_pyserini.encoder import CspladeEncoder, resolve_card
    from csplade_pyserini.modeling.card import EncoderCard
    from csplade_pyserini.ship import ship
    from csplade_pyserini.training.args import TrainArguments
    from csplade_pyserini.training.trainer import Trainer, build_model
    from tests.test_training import _assert_export_encodes_like_trainer, _data

    corpus, _, _ = _corpus(tmp_path)
    cal = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "cal"), margin=0.5, device="cpu",
                    command="python -m csplade_pyserini.calibrate --margin 0.5", log=lambda s: None)

    def trainer(out):
        args = TrainArguments(train_data=str(_data(tmp_path)), output_dir=str(tmp_path / out), encoder=str(cal),
                              device="cpu", batch_size=3, negatives=1, learning_rate=3e-3, lora_rank=4, lora_alpha=8,
                              lora_dropout=0.0, warmup_ratio=0.0, scheduler="constant_with_warmup", max_steps=4,
                              logging_steps=1000, save_steps=0, train_term_bias=True, term_bias_learning_rate=0.05)
        card = resolve_card(args.encoder)
        torch.manual_seed(0)
        model, base = build_model(args, card)
        return Trainer(args, card, model, base)

    t = trainer("run")
    before = t.model.pooling.term_bias.detach().clone()
    assert any(p is t.model.pooling.term_bias for p in t.params)
    losses = [t.train_step()["loss"] for _ in range(4)]
    assert not torch.equal(before, t.model.pooling.term_bias.detach()), "the term bias must be trained"
    enc_dir = t.export()
    card = EncoderCard.load(enc_dir)
    assert card.term_bias == "term_bias.safetensors" and card.logit_norm == "log_softmax"
    torch.testing.assert_close(card.load_term_bias(), t.model.pooling.term_bias.detach().float())
    _assert_export_encodes_like_trainer(enc_dir, t)

    # resume restores the trained bias with the adapter
    r1 = trainer("resume")
    r1.train_step(), r1.train_step()
    r1.save_checkpoint()
    r2 = trainer("resume")
    assert r2.load_checkpoint()
    torch.testing.assert_close(r2.model.pooling.term_bias, r1.model.pooling.term_bias)
    assert [r2.train_step()["loss"] for _ in range(2)] == pytest.approx(losses[2:], rel=1e-5, abs=1e-6)

    shipped = ship(str(enc_dir), "tiny-cal", dest_root=tmp_path / "encoders", log=lambda s: None)
    sc = EncoderCard.load(shipped)
    assert (shipped / "term_bias.safetensors").exists() and sc.term_bias == "term_bias.safetensors"
    stages = sc.training["stages"]
    assert [s["stage"] for s in stages] == ["calibrate", "contrastive"]
    assert stages[0]["command"].startswith("python -m csplade_pyserini.calibrate")
    assert stages[1]["command"].startswith("python -m csplade_pyserini.train")
    a = CspladeEncoder.load(str(shipped), device="cpu").encode(["brain cancer"], side="query")
    b = CspladeEncoder.load(str(enc_dir), device="cpu").encode(["brain cancer"], side="query")
    assert a[0] and set(a[0]) == set(b[0])


def test_calibrate_on_two_corpora_shares_the_sample(tmp_path, tiny_checkpoint):
    from csplade_pyserini.calibrate import calibrate, pooled_scores
    from csplade_pyserini.encoder import CspladeEncoder

    corpus, _, _ = _corpus(tmp_path)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"id": f"d{i}", "title": "", "text": t}) + "\n"  # same ids: kept apart
                             for i, t in enumerate(["what does the gene do", "mouse and human", "risk of radiation"])))
    out = calibrate(str(tiny_checkpoint), [str(corpus), str(other)], str(tmp_path / "cal2"), passages=5, margin=1.0,
                    device="cpu", log=lambda s: None)
    rec = json.loads((out / "calibration.json").read_text())
    assert rec["passages"] == 5 and len(rec["corpora"]) == 2
    enc = CspladeEncoder.load(str(out), device="cpu", term_bias="", logit_shift=0.0)
    texts = [json.loads(l)["text"] for l in open(corpus)]
    import random
    first = [texts[i] for i in sorted(random.Random(13).sample(range(len(texts)), 3))]
    others = [json.loads(l)["text"] for l in open(other)]
    second = [others[i] for i in sorted(random.Random(13).sample(range(3), 2))]
    z = pooled_scores(enc, first + second, "passage", 4, "test")
    bias = CspladeEncoder.load(str(out), device="cpu").model.pooling.term_bias
    allowed = enc.model.allowed.bool()
    torch.testing.assert_close(bias[allowed], -z.mean(0)[allowed], rtol=1e-5, atol=1e-5)


def test_pick_margin_prefers_sparser_within_tolerance():
    from csplade_pyserini.calibrate import pick_margin

    grid = [{"margin": 4, "ndcg@10": 0.684}, {"margin": 5, "ndcg@10": 0.678}, {"margin": 6, "ndcg@10": 0.676},
            {"margin": 7, "ndcg@10": 0.654}]
    assert [pick_margin(grid, t)[0] for t in (0.01, 0.0, 0.05)] == [6, 4, 7]


def test_card_input_bonus_reaches_the_encoder(tmp_path, tiny_checkpoint):
    """A large bonus puts every pooled token of the text into its vector; 0 is the plain head."""
    from csplade_pyserini.calibrate import calibrate
    from csplade_pyserini.encoder import CspladeEncoder

    corpus, _, _ = _corpus(tmp_path)
    out = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "cal"), variant="echo", passages=100,
                    margin=50.0, device="cpu", log=lambda s: None)  # a margin no term passes on its own
    assert json.loads((out / "card.json").read_text())["input_bonus"] == 0.0
    text = "brain cancer cells"
    assert CspladeEncoder.load(str(out), device="cpu").encode([text], side="query") == [{}]
    enc = CspladeEncoder.load(str(out), device="cpu", input_bonus=100.0)
    ids, flags = enc.model.token_lists([text], enc.card.query_prefix)[0]
    want = {enc.model.terms.term(i) for i, f in zip(ids, flags) if f}
    assert set(enc.encode([text], side="query")[0]) == want


def test_scores_cache_reuses_pooled_scores_for_a_new_grid(tmp_path, tiny_checkpoint, monkeypatch):
    import csplade_pyserini.calibrate as cal

    corpus, topics, qrels = _corpus(tmp_path)
    cache = tmp_path / "scores.pt"
    kw = dict(variant="echo", passages=100, tune_topics=str(topics), tune_qrels=str(qrels), device="cpu",
              scores_cache=str(cache), tf_bonuses=(0.0,), log=lambda s: None)
    a = cal.calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "a"), margins=(0.5, 1.0), bonuses=(0.0,), **kw)
    assert cache.exists()
    calls = []
    real = cal.pooled_scores
    monkeypatch.setattr(cal, "pooled_scores", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    b = cal.calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "b"), margins=(0.5, 1.0, 2.0),
                      bonuses=(0.0, 1.0), **kw)
    assert calls == [], "same texts and settings: nothing re-encoded"
    ga = {(g["margin"], g["bonus"]): g["ndcg@10"] for g in json.loads((a / "card.json").read_text())["training"]["grid"]}
    gb = {(g["margin"], g["bonus"]): g["ndcg@10"] for g in json.loads((b / "card.json").read_text())["training"]["grid"]}
    assert all(gb[k] == v for k, v in ga.items()) and len(gb) == 6
    kw["variant"] = "causal"  # different pooled scores: recomputed
    cal.calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "c"), margins=(1.0,), bonuses=(0.0,), **kw)
    assert len(calls) == 3


def test_tf_bonus_calibrate_weights_equal_the_written_encoder(tmp_path, tiny_checkpoint):
    """The grid's in-memory weights (pooled scores + tokenizer counts) are what the calibrated encoder computes,
    tf bonus included, so the tuned cell is the shipped head; the card carries tf_bonus to the model."""
    import csplade_pyserini.calibrate as cal
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.sparse import quantize
    from safetensors.torch import load_file

    corpus, _, _ = _corpus(tmp_path)
    out = cal.calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "cal"), variant="causal", passages=100,
                        margin=0.5, bonus=1.0, tf_bonus=2.0, device="cpu", log=lambda s: None)
    card = json.loads((out / "card.json").read_text())
    assert card["tf_bonus"] == 2.0 and card["training"]["tf_bonus"] == 2.0
    enc = CspladeEncoder.load(str(out), device="cpu")
    assert enc.model.pooling.tf_bonus == 2.0
    texts = ["the cell cell cell divides", "brain cancer cancer"]
    z = cal.pooled_scores(enc, texts, "passage", 4, "test")  # pooled scores ignore bias/shift/bonus
    mu = -load_file(str(out / "term_bias.safetensors"))["term_bias"]
    n = cal.own_counts(enc, texts, "passage")
    assert n.max() >= 2, "the texts repeat a token"
    allowed = enc.model.allowed.float()
    w = cal.weights(z, mu, 0.5, allowed, enc.card.passage_top_k, n, 1.0, 2.0)
    want = quantize(w, enc.card.quantization_scale, enc.card.passage_top_k)
    got = enc.encode_ids(texts, "passage")
    assert [list(i) for i, _ in got] == [list(i) for i, _ in want]
    assert [list(q) for _, q in got] == [list(q) for _, q in want]
    with pytest.raises(cal.UsageError, match="--tf-bonus goes with --margin"):
        cal.calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), tune_topics="t", tune_qrels="q",
                      tf_bonus=1.0, log=lambda s: None)


def test_fit_steps_train_the_term_bias_on_held_out_choice(tmp_path, tiny_checkpoint):
    """--fit-steps: the bias moves, the kept step is the best held-out one of the recorded curve, the card says so;
    without tuning queries it is a usage error."""
    from safetensors.torch import load_file

    from csplade_pyserini.calibrate import calibrate
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.encoder import CspladeEncoder

    corpus, topics, qrels = _corpus(tmp_path)
    kw = dict(variant="echo", passages=100, margins=(0.5,), bonuses=(1.0,), tf_bonuses=(0.0,),
              tune_topics=str(topics), tune_qrels=str(qrels), device="cpu", log=lambda s: None)
    plain = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "plain"), **kw)
    fitted = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "fit"), fit_steps=10, fit_lr=0.05, **kw)
    fit = json.loads((fitted / "card.json").read_text())["training"]["fit_term_bias"]
    held = [c["held_out_ndcg@10"] for c in fit["curve"]]
    assert [c["step"] for c in fit["curve"]] == [0, 5, 10] and fit["held_out_ndcg@10"] == max(held)
    assert fit["best_step"] == fit["curve"][held.index(max(held))]["step"]
    assert fit["holdout_queries"] + fit["fit_queries"] > 0
    b0 = load_file(str(plain / "term_bias.safetensors"))["term_bias"]
    b1 = load_file(str(fitted / "term_bias.safetensors"))["term_bias"]
    assert torch.equal(b0, b1) == (fit["best_step"] == 0)
    assert "trained contrastively" in json.loads((fitted / "card.json").read_text())["description"]
    assert CspladeEncoder.load(str(fitted), device="cpu").encode(["brain cancer"], side="query")
    with pytest.raises(UsageError, match="--fit-steps"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), margin=1.0, fit_steps=3,
                  log=lambda s: None)
    with pytest.raises(UsageError, match="--fit-steps must be >= 0"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), fit_steps=-3, **kw)


def test_fit_term_bias_improves_held_out_queries():
    """Synthetic pooled scores: query i and passage i share term i; one noise term is strong everywhere and scrambles
    the ranking. Fitting the bias on two thirds of the queries (through the shared noise term: the held-out pairs'
    own terms get no gradient) ranks the held-out third better."""
    from csplade_pyserini.calibrate import fit_term_bias, ndcg_at_k

    g = torch.Generator().manual_seed(0)
    n, v = 30, 31
    zq = torch.full((n, v), -5.0)
    zd = torch.full((n, v), -5.0)
    zq[range(n), range(n)] = 1.0
    zd[range(n), range(n)] = 1.0
    zq[:, n] = 3.0 + torch.rand(n, generator=g) * 3
    zd[:, n] = 3.0 + torch.rand(n, generator=g) * 3
    qids, dids = [f"q{i}" for i in range(n)], [f"d{i}" for i in range(n)]
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(n)}
    none = torch.zeros(n, v, dtype=torch.uint8)

    def score(wq, wd, rows):
        return ndcg_at_k(wq[rows] @ wd.T, [qids[i] for i in rows], dids, qrels)

    bias, rec = fit_term_bias(zq, none, zd, none, torch.eye(n, dtype=torch.bool), torch.zeros(v), torch.ones(v),
                              margin=0.0, bonus=0.0, tf_bonus=0.0, steps=80, lr=0.3, l2=0.0, score=score,
                              log=lambda s: None)
    start = rec["curve"][0]["held_out_ndcg@10"]
    assert start < 0.6 and rec["held_out_ndcg@10"] > start + 0.15 and rec["best_step"] > 0
    assert bias[n] != 0 and int((bias[:n] == 0).sum()) == rec["holdout_queries"] == 10, \
        "only the fit pairs' terms and the shared noise term move"
    assert rec["fit_passages"] == 20, "the held-out queries' passages are not negatives of the fit"


def test_tune_passages_ranks_the_tuning_queries_against_more_of_the_corpus(tmp_path, tiny_checkpoint, capsys):
    """--tune-passages: the tuning pool is the sample's share plus the judged passages by default, grows with seeded
    unjudged passages up to N, and is the whole first corpus with 'all' (-1); the term-bias sample is unchanged."""
    from csplade_pyserini.calibrate import calibrate, main
    from safetensors.torch import load_file

    corpus, topics, qrels = _corpus(tmp_path)
    with open(corpus, "a", encoding="utf-8") as f:  # 10 unjudged distractors: 16 passages in all
        for i in range(10):
            f.write(json.dumps({"id": f"x{i}", "title": "", "text": f"unrelated text number {i} about weather"}) + "\n")
    kw = dict(variant="echo", passages=2, margins=(0.5,), bonuses=(1.0,), tf_bonuses=(0.0,), tune_topics=str(topics),
              tune_qrels=str(qrels), device="cpu", log=lambda s: None)
    pools, biases = {}, {}
    for n in (0, 12, -1):
        out = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / f"cal{n}"), tune_passages=n, **kw)
        pools[n] = json.loads((out / "card.json").read_text())["training"]["tuning_passages"]
        biases[n] = load_file(str(out / "term_bias.safetensors"))["term_bias"]
    sample_share_unjudged = pools[0] - len(TOPICS)  # the sample's passages that are not judged ones
    assert 0 <= sample_share_unjudged <= 2
    assert pools[12] == 12 and pools[-1] == 16
    assert torch.equal(biases[0], biases[12]) and torch.equal(biases[0], biases[-1]), "the bias sample is the same"
    with pytest.raises(SystemExit) as e:
        main(["--corpus", str(corpus), "--output", str(tmp_path / "x"), "--tune-topics", str(topics),
              "--tune-qrels", str(qrels), "--tune-passages", "many"])
    assert e.value.code == 2 and "--tune-passages 'many'" in capsys.readouterr().err
    from csplade_pyserini.cli import UsageError
    with pytest.raises(UsageError, match="--tune-passages"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "y"), margin=1.0, tune_passages=-1,
                  log=lambda s: None)
