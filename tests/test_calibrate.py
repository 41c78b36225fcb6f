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
    from csplade_pyserini.calibrate import calibrate, pooled_scores
    from csplade_pyserini.encoder import CspladeEncoder

    corpus, topics, qrels = _corpus(tmp_path)
    out = calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "cal"), variant="echo", passages=100,
                    margins=(0.5, 1.0, 2.0), tune_topics=str(topics), tune_qrels=str(qrels), device="cpu",
                    log=lambda s: None)
    card = json.loads((out / "card.json").read_text())
    assert card["logit_norm"] == "log_softmax" and card["variant"] == "echo"
    assert card["term_bias"] == "term_bias.safetensors" and card["training"]["stage"] == "calibrate"
    grid = card["training"]["grid"]
    assert [g["margin"] for g in grid] == [0.5, 1.0, 2.0]
    assert card["logit_shift"] == max(grid, key=lambda g: (g["ndcg@10"], g["margin"]))["margin"]

    enc = CspladeEncoder.load(str(out), device="cpu")
    # the bias is minus the mean pooled log-probability over the corpus (every passage: the sample is all of it)
    plain = CspladeEncoder.load(str(out), device="cpu", term_bias="", logit_shift=0.0)  # "": no bias
    z = pooled_scores(plain, [p for _, p in TOPICS], "passage", 4, "test")
    allowed = enc.model.allowed.bool()
    torch.testing.assert_close(enc.model.pooling.term_bias[allowed], -z.mean(0)[allowed], rtol=1e-5, atol=1e-5)
    assert z.max() <= 0, "log-probabilities"
    vec = enc.encode(["brain cancer"], side="query")[0]
    assert vec and all(isinstance(v, int) and v > 0 for v in vec.values())


def test_calibrate_needs_margin_or_tuning(tmp_path, tiny_checkpoint):
    from csplade_pyserini.calibrate import calibrate
    from csplade_pyserini.cli import UsageError

    corpus, topics, _ = _corpus(tmp_path)
    with pytest.raises(UsageError, match="--margin or --tune-topics"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), log=lambda s: None)
    with pytest.raises(UsageError, match="needs --tune-qrels"):
        calibrate(str(tiny_checkpoint), str(corpus), str(tmp_path / "x"), tune_topics=str(topics), log=lambda s: None)


def test_ndcg_at_k_matches_hand_computation():
    from csplade_pyserini.calibrate import ndcg_at_k

    scores = torch.tensor([[3.0, 2.0, 1.0], [1.0, 2.0, 3.0]])
    qrels = {"a": {"x": 1, "z": 1}, "b": {"x": 2}}
    got = ndcg_at_k(scores, ["a", "b"], ["x", "y", "z"], qrels, k=10)
    import math
    a = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    b = (2 / math.log2(4)) / 2
    assert got == pytest.approx((a + b) / 2)
