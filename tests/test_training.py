"""Training on tiny random models (CPU, seconds): objectives, schedule, loss goes down, resume, export."""
import json

import pytest
import torch

from csplade_pyserini.modeling.card import EncoderCard
from csplade_pyserini.training.args import TrainArguments
from csplade_pyserini.training.data import TrainingDataError
from csplade_pyserini.training.losses import (FlopsSchedule, adaptation_loss, contrastive_loss, flops,
                                              sparsity_stats)

TOPICS = [("brain cancer", "microwave radiation causes brain cancer"),
          ("mice genes", "mice genes and human genes"),
          ("protein cells", "the protein of cells"),
          ("phone risk", "phone phones increase risk"),
          ("study results", "study results show decrease"),
          ("gene radiation", "radiation and gene study")]


def test_adaptation_loss_matches_hand_computation():
    logits = torch.tensor([[[2.0, -1.0, 0.5], [0.1, 3.0, -2.0], [1.0, 1.0, 1.0]]])
    ids = torch.tensor([[0, 1, 2]])
    att = torch.ones_like(ids)
    out = adaptation_loss(logits, ids, att, relu_weight=1.0)
    # next-token targets: position 0 -> id 1, position 1 -> id 2
    def ce(row, target):
        return -(row[target] - torch.logsumexp(row, 0))
    clm = (ce(logits[0, 0], 1) + ce(logits[0, 1], 2)) / 2
    r = torch.log1p(torch.relu(logits))
    relu = (ce(r[0, 0], 1) + ce(r[0, 1], 2)) / 2
    torch.testing.assert_close(out["clm"], clm)
    torch.testing.assert_close(out["relu"], relu)
    torch.testing.assert_close(out["loss"], clm + relu)
    att[0, 2] = 0  # a padded next token is not a target
    torch.testing.assert_close(adaptation_loss(logits, ids, att)["clm"], ce(logits[0, 0], 1))


def test_contrastive_parts_and_flops():
    q = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 0.0], [0.5, 0.5, 0.0]])
    out = contrastive_loss(q, d, torch.tensor([0, 1]), 0.5, 0.25)
    scores = q @ d.t()
    rank = torch.nn.functional.cross_entropy(scores, torch.tensor([0, 1]))
    torch.testing.assert_close(out["rank"], rank)
    torch.testing.assert_close(flops(d), ((d.abs().mean(0)) ** 2).sum())
    torch.testing.assert_close(out["loss"], rank + 0.5 * flops(q) + 0.25 * flops(d))
    assert sparsity_stats(torch.tensor([[0.0, 0.0], [1.0, 0.0]])) == {"nnz": 0.5, "dead": 0.5}
    s = FlopsSchedule(0.3, 10)
    assert s(0) == 0 and s(5) == pytest.approx(0.075) and s(10) == s(100) == pytest.approx(0.3)


def _data(tmp_path):
    rows = []
    for i, (q, p) in enumerate(TOPICS):
        negs = [{"docid": f"d{j}", "title": "", "text": TOPICS[j][1]} for j in range(len(TOPICS)) if j != i][:2]
        rows.append({"query_id": str(i), "query": q, "positive_passages": [{"docid": f"d{i}", "title": "", "text": p}],
                     "negative_passages": negs})
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _trainer(tmp_path, ckpt, out="run", **kw):
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.training.trainer import Trainer, build_model

    args = TrainArguments(train_data=str(_data(tmp_path)), output_dir=str(tmp_path / out), device="cpu",
                          batch_size=kw.pop("batch_size", 3), negatives=1, learning_rate=kw.pop("learning_rate", 3e-3),
                          lora_rank=4,
                          lora_alpha=8, lora_dropout=0.0, warmup_ratio=0.0, scheduler="constant_with_warmup",
                          logging_steps=1000, save_steps=0, **kw)
    card = resolve_card(str(ckpt))
    torch.manual_seed(0)
    model, base = build_model(args, card)
    return Trainer(args, card, model, base)


def test_contrastive_loss_goes_down(tmp_path, tiny_checkpoint):
    t = _trainer(tmp_path, tiny_checkpoint, max_steps=30, q_flops_weight=0.0, d_flops_weight=0.0)
    first = [t.train_step()["rank"] for _ in range(4)]
    while t.step < 30:
        last = t.train_step()
    later = [t.train_step()["rank"] for _ in range(4)]
    assert sum(later) / 4 < 0.7 * sum(first) / 4, (first, later)
    assert "nnz_q" in last and "dead_d" in last and last["lr"] > 0


def test_fewer_examples_than_a_batch_is_a_clear_error(tmp_path, tiny_checkpoint):
    n = sum(1 for _ in open(_data(tmp_path)))
    with pytest.raises(TrainingDataError, match=rf"train.jsonl: {n} training examples, fewer than one batch of "
                                                rf"{n + 1} \(--batch_size {n + 1} x 1 process"):
        _trainer(tmp_path, tiny_checkpoint, max_steps=1, batch_size=n + 1)


def test_larger_flops_lambda_gives_fewer_non_zeros(tmp_path, tiny_checkpoint):
    nnz = {}
    for lam in (0.0, 3.0):
        t = _trainer(tmp_path, tiny_checkpoint, out=f"lam{lam}", max_steps=25, q_flops_weight=lam, d_flops_weight=lam)
        for _ in range(25):
            parts = t.train_step()
        nnz[lam] = parts["nnz_d"]
    assert nnz[3.0] < 0.8 * nnz[0.0], nnz


def test_resume_continues_exactly(tmp_path, tiny_checkpoint):
    straight = _trainer(tmp_path, tiny_checkpoint, out="a", max_steps=4)
    losses = [straight.train_step()["loss"] for _ in range(4)]
    first = _trainer(tmp_path, tiny_checkpoint, out="b", max_steps=4)
    first.train_step(), first.train_step()
    first.save_checkpoint()
    resumed = _trainer(tmp_path, tiny_checkpoint, out="b", max_steps=4)
    assert resumed.load_checkpoint() and resumed.step == 2
    again = [resumed.train_step()["loss"] for _ in range(2)]
    assert again == pytest.approx(losses[2:], rel=1e-6, abs=1e-7)


def _assert_export_encodes_like_trainer(enc_dir, trainer):
    """The exported encoder, loaded by path, gives the trainer's query vector."""
    from csplade_pyserini.encoder import CspladeEncoder

    enc = CspladeEncoder.load(str(enc_dir), device="cpu")
    trainer.model.eval()
    with torch.no_grad():
        want = trainer.encode(["brain cancer"], "query")
    f = enc.model.features(enc.model.token_lists(["brain cancer"], enc.card.query_prefix), enc.card.query_max_length)
    with torch.no_grad():
        got = enc.model(f.input_ids, f.attention_mask, f.pool_mask)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_adapt_stage_runs_and_export_round_trip(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encoder import resolve_card
    from csplade_pyserini.training.trainer import Trainer, build_model

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": "", "text": p * 3}) + "\n" for i, (_, p) in enumerate(TOPICS)))
    args = TrainArguments(train_data=str(corpus), output_dir=str(tmp_path / "adapt"), stage="adapt", device="cpu",
                          batch_size=2, seq_len=8, max_steps=3, lora_rank=4, logging_steps=1, save_steps=0)
    card = resolve_card(str(tiny_checkpoint))
    model, base = build_model(args, card)
    t = Trainer(args, card, model, base)
    t.train(log=lambda s: None)
    log = [json.loads(line) for line in open(tmp_path / "adapt" / "log.jsonl")]
    assert [r["step"] for r in log] == [1, 2, 3] and {"clm", "relu", "loss", "lr"} <= set(log[0])
    enc_dir = t.export()
    assert (enc_dir / "stage1" / "adapter_model.safetensors").exists()
    assert not list(enc_dir.rglob("*.bin")) and not list(enc_dir.rglob("*.pt"))
    # contrastive from the adapted encoder, then the exported encoder loads by path and encodes like the trainer
    t2 = _trainer(tmp_path, enc_dir, out="contrastive", max_steps=2)
    t2.train(log=lambda s: None)
    final = t2.export()
    card2 = json.loads((final / "card.json").read_text())
    assert card2["adapter"] == ["stage1", "stage2"] and len(card2["base_sha256"]) == 64
    _assert_export_encodes_like_trainer(final, t2)
    # shipping it: float16 adapters, every stage's command, stored expected terms, the size limit
    from safetensors.torch import load_file

    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.ship import ship

    shipped = ship(str(final), "tiny-shipped", description="toy", dest_root=tmp_path / "encoders", log=lambda s: None)
    card3 = json.loads((shipped / "card.json").read_text())
    assert [s["stage"] for s in card3["training"]["stages"]] == ["adapt", "contrastive"]
    assert "--stage adapt" in card3["training"]["stages"][0]["command"] and card3["description"] == "toy"
    import shlex

    from transformers import HfArgumentParser

    for stage in card3["training"]["stages"]:  # each recorded command parses back to the stage's arguments
        parsed, = HfArgumentParser(TrainArguments).parse_args_into_dataclasses(shlex.split(stage["command"])[3:])
        assert parsed.stage == stage["stage"]
    weights = load_file(str(shipped / "stage2" / "adapter_model.safetensors"))
    assert weights and all(v.dtype == torch.float16 for v in weights.values())
    assert json.loads((shipped / "expected.json").read_text())["texts"]
    with pytest.raises(UsageError, match="over the"):
        ship(str(final), "tiny-2", dest_root=tmp_path / "encoders", max_mb=1e-4, check=False, log=lambda s: None)


def test_adapter_on_wrong_base_fails_clearly(tmp_path, tiny_checkpoint):
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.modeling.backbone import BaseModelError

    t = _trainer(tmp_path, tiny_checkpoint, out="w", max_steps=1)
    t.train(log=lambda s: None)
    enc_dir = t.export()
    card = json.loads((enc_dir / "card.json").read_text())
    card["base_sha256"] = "0" * 64
    (enc_dir / "card.json").write_text(json.dumps(card))
    with pytest.raises(BaseModelError, match="does not belong to this base model"):
        CspladeEncoder.load(str(enc_dir), device="cpu")


def test_mine_negatives_with_bm25(tmp_path):
    from csplade_pyserini.mine_negatives import mine

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "title": "", "text": p}) + "\n" for i, (_, p) in enumerate(TOPICS)))
    (tmp_path / "q.tsv").write_text("q1\tbrain cancer radiation\nq2\tgenes of mice\nq3\tno judgments\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d0 1\nq2 0 d1 1\nq2 0 d5 0\n")
    info = mine(corpus, str(tmp_path / "q.tsv"), str(tmp_path / "qrels.txt"), tmp_path / "train.jsonl", depth=3,
                threads=1)
    rows = [json.loads(line) for line in open(tmp_path / "train.jsonl")]
    assert info["queries"] == 2 and [r["query_id"] for r in rows] == ["q1", "q2"]
    assert not (tmp_path / "train.jsonl.mined.json").exists()  # only the CLI records its command
    assert rows[0]["positive_passages"][0]["docid"] == "d0"
    for r in rows:
        pos = {p["docid"] for p in r["positive_passages"]}
        negs = [p["docid"] for p in r["negative_passages"]]
        assert negs and len(negs) <= 3 and not pos & set(negs)
    # d5 (judged 0) may be a negative of q2; d5 mentions 'gene', so BM25 ranks it first among non-positives
    assert rows[1]["negative_passages"][0]["docid"] == "d5"
    assert info["skipped_unjudged"] == 1 and info["positives_not_in_corpus"] == 0  # q3: counted, not written
    # a query whose only positive is not in the corpus is skipped and counted (it was written with no positive)
    (tmp_path / "qrels.txt").write_text("q1 0 d0 1\nq2 0 d99 1\n")
    info = mine(corpus, str(tmp_path / "q.tsv"), str(tmp_path / "qrels.txt"), tmp_path / "train2.jsonl", depth=3,
                threads=1)
    assert [json.loads(line)["query_id"] for line in open(tmp_path / "train2.jsonl")] == ["q1"]
    assert (info["queries"], info["skipped_unjudged"], info["skipped_positives_not_in_corpus"],
            info["positives_not_in_corpus"]) == (1, 1, 1, 1)


def test_mined_negatives_record_their_command_into_the_shipped_stages(tmp_path):
    import shlex

    from csplade_pyserini.encoder import EncoderCard
    from csplade_pyserini.mine_negatives import _main, build_parser, read_provenance
    from csplade_pyserini.ship import training_stages

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": f"d{i}", "title": "", "text": p}) + "\n" for i, (_, p) in enumerate(TOPICS)))
    (tmp_path / "q.tsv").write_text("q1\tbrain cancer radiation\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d0 1\n")
    out = tmp_path / "train.jsonl"
    argv = ["--corpus", str(corpus), "--topics", str(tmp_path / "q.tsv"), "--qrels", str(tmp_path / "qrels.txt"),
            "--output", str(out), "--depth", "2", "--threads", "1"]
    _main(argv)
    rec = read_provenance(out)
    assert rec["stage"] == "mine" and rec["queries"] == 1 and rec["depth"] == 2 and "BM25" in rec["source"]
    assert build_parser().parse_args(shlex.split(rec["command"])[3:]).output == str(out)  # the command reruns it
    # a stage trained on the file lists the mining just before itself, whether it recorded it or not
    train = {"stage": "contrastive", "steps": 3, "args": {"stage": "contrastive", "train_data": str(out)}}
    for training in (train, {**train, "mined": rec}):
        stages = training_stages(EncoderCard(name="x", training=training))
        assert [s["stage"] for s in stages] == ["mine", "contrastive"] and stages[0]["command"] == rec["command"]
    mix = {**rec, "command": "python eval/training/make_title_pairs.py --mix-with x", "inputs": [rec]}
    stages = training_stages(EncoderCard(name="x", training={**train, "mined": mix}))  # a mix lists what it read
    assert [s["command"] for s in stages[:2]] == [rec["command"], mix["command"]] and "inputs" not in stages[1]
    out.with_name("train.jsonl.mined.json").unlink()
    assert [s["stage"] for s in training_stages(EncoderCard(name="x", training=train))] == ["contrastive"]


def test_msmarco_layout(tmp_path):
    from csplade_pyserini.training.data import TrainingDataError, load_msmarco

    (tmp_path / "collection.tsv").write_text("".join(f"{i}\t{p}\n" for i, (_, p) in enumerate(TOPICS)))
    (tmp_path / "queries.tsv").write_text("q0\tbrain cancer\nq1\tmice genes\nq9\tno judgment\n")
    (tmp_path / "qrels.txt").write_text("q0 0 0 1\nq1 0 1 1\n")
    (tmp_path / "run.trec").write_text("q0 Q0 0 1 9.0 bm25\nq0 Q0 3 2 8.0 bm25\nq0 Q0 4 3 7.0 bm25\nq1 Q0 2 1 5.0 bm25\n")
    rows = load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.tsv", tmp_path / "qrels.txt",
                        tmp_path / "run.trec", depth=1)
    assert rows[0] == {"query": "brain cancer", "positives": [TOPICS[0][1]], "negatives": [TOPICS[3][1]]}
    assert rows[1]["negatives"] == [TOPICS[2][1]]
    (tmp_path / "triples.tsv").write_text("q0\t0\t5\nq1\t1\t0\n")
    rows = load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.tsv", tmp_path / "qrels.txt",
                        tmp_path / "triples.tsv")
    assert rows[0]["negatives"] == [TOPICS[5][1]] and rows[1]["negatives"] == [TOPICS[0][1]]
    (tmp_path / "run.msmarco").write_text("q0\t4\t1\nq1\t5\t1\n")
    rows = load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.tsv", tmp_path / "qrels.txt",
                        tmp_path / "run.msmarco", negatives_format="msmarco-run")
    assert rows[0]["negatives"] == [TOPICS[4][1]] and rows[1]["negatives"] == [TOPICS[5][1]]
    (tmp_path / "qrels.txt").write_text("q0 0 77 1\n")
    with pytest.raises(TrainingDataError, match=r"passage id\(s\) \['77'\]"):
        load_msmarco(tmp_path / "collection.tsv", tmp_path / "queries.tsv", tmp_path / "qrels.txt",
                     tmp_path / "triples.tsv")


def test_full_finetune_export_round_trip(tmp_path, tiny_checkpoint):
    t = _trainer(tmp_path, tiny_checkpoint, out="full", max_steps=2, full_finetune=True, learning_rate=1e-3)
    t.train(log=lambda s: None)
    enc_dir = t.export()
    card = json.loads((enc_dir / "card.json").read_text())
    assert card["base_model"] == "model" and card["adapter"] is None
    assert (enc_dir / "model" / "model.safetensors").exists() and not list(enc_dir.rglob("*.bin"))
    _assert_export_encodes_like_trainer(enc_dir, t)


def test_mine_negatives_reads_beir_ids(tmp_path):
    from csplade_pyserini.mine_negatives import mine

    corpus = tmp_path / "corpus.jsonl"  # BEIR corpora name the id '_id'
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": p}) + "\n" for i, (_, p) in enumerate(TOPICS)))
    (tmp_path / "q.tsv").write_text("q1\tbrain cancer radiation\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d0 1\n")
    mine(corpus, str(tmp_path / "q.tsv"), str(tmp_path / "qrels.txt"), tmp_path / "train.jsonl", depth=3, threads=1)
    row = json.loads((tmp_path / "train.jsonl").read_text())
    assert row["positive_passages"][0]["docid"] == "d0" and row["negative_passages"][0]["docid"] == "d5"


def test_lora_on_last_layers_only(tmp_path, tiny_checkpoint):
    t = _trainer(tmp_path, tiny_checkpoint, out="last", max_steps=2, lora_layers=1)
    names = [n for n, p in t.model.named_parameters() if p.requires_grad]
    n_layers = t.model.causal_lm.config.num_hidden_layers
    assert names and all(f"layers.{n_layers - 1}." in n for n in names), names
    t.train_step()
    with pytest.raises(Exception, match="lora_layers"):
        _trainer(tmp_path, tiny_checkpoint, out="bad", max_steps=1, lora_layers=n_layers + 1)


def test_doc_only_training_against_a_lexical_card(tmp_path, lm, tokenizer):
    """A ``query_encoder: lexical`` card trains its passages only: the queries are the card's table vectors (no
    gradient, no FLOPS), the rank loss falls, and the export keeps the query side it was trained against (the
    table written out, since this one derives from the term bias that training moves) and encodes queries the same."""
    from csplade_pyserini.encoder import CspladeEncoder, resolve_card
    from csplade_pyserini.training.trainer import Trainer, build_model
    from tests.test_lexical import _lexical_card

    card_dir = _lexical_card(tmp_path, lm, tokenizer, query_top_k=8, input_bonus=3.0)  # own tokens active
    args = TrainArguments(train_data=str(_data(tmp_path)), output_dir=str(tmp_path / "lexrun"), device="cpu",
                          encoder=str(card_dir), batch_size=3, negatives=1, learning_rate=1e-2, lora_rank=4,
                          lora_alpha=8, lora_dropout=0.0, warmup_ratio=0.0, scheduler="constant_with_warmup",
                          logging_steps=1000, save_steps=0, max_steps=30, q_flops_weight=5.0, d_flops_weight=0.0,
                          train_term_bias=True)
    card = resolve_card(str(card_dir))
    torch.manual_seed(0)
    model, base = build_model(args, card)
    t = Trainer(args, card, model, base)
    before = CspladeEncoder.load(str(card_dir), device="cpu").encode(["brain cancer", "mice genes"], "query")
    want = t.lexical_vectors(["brain cancer"])
    assert not want.requires_grad and (want > 0).sum() > 0
    first = [t.train_step() for _ in range(4)]
    assert all(p["lambda_q"] == 0.0 for p in first)  # a fixed query side has nothing to sparsify
    while t.step < 30:
        t.train_step()
    later = [t.train_step()["rank"] for _ in range(4)]
    assert sum(later) / 4 < 0.7 * sum(p["rank"] for p in first) / 4, (first, later)
    torch.testing.assert_close(t.lexical_vectors(["brain cancer"]), want)  # the queries never moved
    enc_dir = t.export()
    exported = EncoderCard.load(enc_dir)
    assert exported.query_encoder == "lexical" and (enc_dir / exported.query_weights).is_file()
    assert not torch.equal(exported.load_term_bias(), card.load_term_bias())  # the bias trained ...
    enc = CspladeEncoder.load(str(enc_dir), device="cpu")
    assert enc.encode(["brain cancer", "mice genes"], "query") == before  # ... the queries did not

    bad = resolve_card(str(_lexical_card(tmp_path, lm, tokenizer, dirname="expanding", query_expansion=0.5)))
    args.encoder, args.output_dir = bad.path, str(tmp_path / "bad")
    with pytest.raises(TrainingDataError, match="query_expansion"):
        Trainer(args, bad, build_model(args, bad)[0], base)


def test_max_seconds_stops_training_and_the_export_says_where(tmp_path, tiny_checkpoint):
    """A fixed time budget (a GPU lease): training stops after the step that passes it and still exports."""
    import time

    t = _trainer(tmp_path, tiny_checkpoint, max_steps=100000, max_seconds=0.5)
    start = time.time()
    t.train(log=lambda *a: None)
    assert 1 <= t.step < 100000 and time.time() - start < 30
    enc = t.export()
    record = json.loads((enc / "card.json").read_text())["training"]
    assert record["stopped_at_max_seconds"] == {"planned_steps": 100000} and record["steps"] == t.step
    logged = [json.loads(line) for line in open(tmp_path / "run" / "log.jsonl")]
    assert logged[-1]["step"] == t.step  # the step it stopped at is logged, though not a logging step
    untimed = _trainer(tmp_path, tiny_checkpoint, out="untimed", max_steps=2)
    untimed.train(log=lambda *a: None)
    assert untimed.step == 2 and "stopped_at_max_seconds" not in untimed.training_record()
