"""Inference-free (lexical) queries: the head's own-token weights without a forward pass, card checks, the fit."""
import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import save_file

from csplade_pyserini.modeling.card import CardError, EncoderCard


def _lexical_card(tmp_path, lm, tokenizer, **overrides):
    """A tiny calibrated echo card (log-softmax head, term bias, bonuses) whose queries are lexical."""
    ckpt = tmp_path / "tiny-base"
    if not ckpt.exists():
        lm.save_pretrained(ckpt)
        tokenizer.save_pretrained(ckpt)
    enc_dir = tmp_path / overrides.pop("dirname", "tiny-lexical")
    enc_dir.mkdir(exist_ok=True)
    g = torch.Generator().manual_seed(3)
    save_file({"term_bias": (torch.rand(lm.config.vocab_size, generator=g) * 4 + 1.5).contiguous()},
              str(enc_dir / "term_bias.safetensors"))
    kw = dict(name=enc_dir.name, base_model=str(ckpt), dtype="float32", variant="echo", logit_norm="log_softmax",
              term_bias="term_bias.safetensors", logit_shift=2.0, input_bonus=1.0, tf_bonus=1.5, query_top_k=8,
              passage_top_k=16, query_max_length=14, passage_max_length=24, query_encoder="lexical")
    kw.update(overrides)
    EncoderCard(**kw).save(enc_dir)
    return enc_dir


QUERIES = ["what causes brain cancer ?", "cells cells cells and mice", "the", "radiation radiation of mouse brain"
           " cells in human study results show increase"]


def test_lexical_queries_are_the_head_at_certain_own_tokens(tmp_path, lm, tokenizer):
    """Each own token's weight is what SparsePooling gives it at log-probability 0 (the bonus and tf included);
    nothing else is in the vector; the card's top-k, truncation and scale apply."""
    from csplade_pyserini.encoder import CspladeEncoder
    from csplade_pyserini.modeling.head import SparsePooling
    from csplade_pyserini.sparse import quantize

    enc = CspladeEncoder.load(str(_lexical_card(tmp_path, lm, tokenizer)), device="cpu")
    m = enc.model
    got = enc.encode_ids(QUERIES, "query")
    feats = m.features(m.token_lists(QUERIES, enc.card.query_prefix), enc.card.query_max_length)
    counts = SparsePooling.token_counts(feats.input_ids, feats.pool_mask, m.lm_head.weight.shape[0])
    act = m.pooling.activations(torch.zeros_like(counts), counts)  # every pooled score at its ceiling, 0
    w = torch.log1p(torch.relu(act)) * (counts > 0) * m.allowed
    want = quantize(w, enc.card.quantization_scale, enc.card.query_top_k)
    assert [sorted(zip(*g)) for g in got] == [sorted(zip(*x)) for x in want]
    assert len(got[3][0]) == 8 and feats.n_truncated == 1  # top-k 8 of the long query, cut at 14 tokens
    assert enc.stats["truncated"] == 1 and enc.stats["texts"] == 4
    tf = dict(zip(*got[1]))  # "cells" three times: the tf bonus lifts it above its single-count weight
    cells = tokenizer.convert_tokens_to_ids("cells")
    single = dict(zip(*enc.encode_ids(["cells and mice"], "query")[0]))
    assert tf[cells] > single[cells]


def test_lexical_query_encoder_loads_no_model_and_passages_are_unchanged(tmp_path, lm, tokenizer, monkeypatch):
    import csplade_pyserini.modeling.backbone as backbone
    from csplade_pyserini.encoder import CspladeEncoder, load_query_encoder
    from csplade_pyserini.modeling.lexical import LexicalQueryEncoder

    card_dir = _lexical_card(tmp_path, lm, tokenizer)
    full = CspladeEncoder.load(str(card_dir), device="cpu")
    model_q = CspladeEncoder.load(str(card_dir), device="cpu", query_encoder="model")
    passages = ["microwave radiation causes brain cancer", "cells and mice"]
    assert full.encode(passages, "passage") == model_q.encode(passages, "passage")
    assert full.encode(QUERIES, "query") != model_q.encode(QUERIES, "query")  # the model adds expansions

    def no_model(*a, **k):
        raise AssertionError("a lexical query encoder must not load the LM")

    monkeypatch.setattr(backbone, "load_causal_lm", no_model)
    import csplade_pyserini.encoder as encoder_mod

    monkeypatch.setattr(encoder_mod, "load_causal_lm", no_model)
    lex = load_query_encoder(str(card_dir), device="cpu", batch_size=4)
    assert isinstance(lex, LexicalQueryEncoder)
    assert lex.encode(QUERIES, "query") == full.encode(QUERIES, "query")
    rows, n = lex.explain(QUERIES[0])
    assert n == len(full.encode([QUERIES[0]], "query")[0]) and rows[0][2] == max(lex.encode([QUERIES[0]])[0].values())
    with pytest.raises(ValueError, match="queries only"):
        lex.encode(passages, "passage")


def test_query_expansion_adds_the_model_terms_to_the_lexical_query(tmp_path, lm, tokenizer):
    """query_expansion > 0: the own tokens keep the lexical weights, every other model term joins scaled so the
    expansions weigh share x |lexical|_1 / |model|_1; load_query_encoder then loads the model; passages unchanged;
    0 (or a fit's card) turns it off; the card rejects a negative share."""
    from csplade_pyserini.encoder import CspladeEncoder, load_query_encoder
    from csplade_pyserini.modeling.lexical import LexicalQueryEncoder, expand

    card_dir = _lexical_card(tmp_path, lm, tokenizer, query_expansion=0.5, query_top_k=1024)
    enc = load_query_encoder(str(card_dir), device="cpu")
    assert isinstance(enc, CspladeEncoder)  # the expansions need the model
    lexical = CspladeEncoder.load(str(card_dir), device="cpu", query_expansion=0.0)
    model = CspladeEncoder.load(str(card_dir), device="cpu", query_encoder="model")
    got, own, mod = (e.encode_ids(QUERIES, "query") for e in (enc, lexical, model))
    scale = enc.card.quantization_scale
    for g, o, m, text in zip(got, own, mod, QUERIES):
        g, o, m = dict(zip(*g)), dict(zip(*o)), dict(zip(*m))
        assert set(m) - set(o), "the tiny model should expand"
        for v, q in o.items():  # own tokens: the lexical weight (floats re-rounded: within one int)
            assert abs(g[v] - q) <= 1
        factor = 0.5 * (sum(o.values()) / scale) / (sum(m.values()) / scale)
        extra = {v: round(factor * q) for v, q in m.items() if v not in o}
        assert all(abs(g.get(v, 0) - q) <= 1 for v, q in extra.items())
        assert set(g) <= set(o) | set(m)
        if not o:  # no own token (e.g. a stop word that weighs nothing): the model's vector
            assert g == m
    assert enc.encode(["cells"], "passage") == lexical.encode(["cells"], "passage")
    assert expand([], ([3, 1], [40, 20]), 1.0, 100.0, 0) == ([3, 1], [40, 20])
    assert expand([(5, 2.0)], ([3, 5], [100, 300]), 1.0, 100.0, 0) == ([5, 3], [200, 50])  # 2/4 x 100
    assert expand([(5, 2.0)], ([3, 5], [100, 300]), 1.0, 100.0, 1) == ([5], [200])  # top-k cuts expansions first
    rows, n = enc.explain(QUERIES[0])
    assert n == len(got[0][0]) and rows[0][2] == max(got[0][1])
    # the CLIs' --query-expansion overrides the card (0: the inference-free queries again)
    from csplade_pyserini import explain, search
    from csplade_pyserini.cli import encoder_overrides

    args = search.build_parser().parse_args(["--index", "i", "--topics", "t", "--output", "o", "--query-expansion", "0"])
    assert encoder_overrides(args, "query")["query_expansion"] == 0.0
    off = load_query_encoder(str(card_dir), **encoder_overrides(args, "query"))
    assert isinstance(off, LexicalQueryEncoder) and off.encode_ids(QUERIES) == own
    explain.main(["--encoder", str(card_dir), "--query-expansion", "0", QUERIES[0]])
    with pytest.raises(CardError, match="need the model"):
        LexicalQueryEncoder.load(EncoderCard.load(card_dir))
    with pytest.raises(CardError, match="query_expansion must be"):
        EncoderCard(name="x", query_encoder="lexical", query_expansion=-1)


def test_lexical_card_checks(tmp_path, lm, tokenizer):
    from csplade_pyserini.encoder import load_query_encoder

    with pytest.raises(CardError, match="query_encoder must be one of"):
        EncoderCard(name="x", query_encoder="bm25")
    raw = _lexical_card(tmp_path, lm, tokenizer, dirname="raw", logit_norm="none")
    with pytest.raises(CardError, match="needs a calibrated head"):
        load_query_encoder(str(raw))
    d = _lexical_card(tmp_path, lm, tokenizer, dirname="bad-table", query_weights="qw.safetensors")
    with pytest.raises(CardError, match="cannot read query_weights"):
        load_query_encoder(str(d))
    save_file({"other": torch.zeros(3)}, str(d / "qw.safetensors"))
    with pytest.raises(CardError, match="must hold a 1-d tensor 'query_weights'"):
        load_query_encoder(str(d))
    save_file({"query_weights": torch.zeros(3)}, str(d / "qw.safetensors"))
    with pytest.raises(CardError, match="the query table has 3 rows"):
        load_query_encoder(str(d))
    save_file({"query_weights": torch.full((lm.config.vocab_size,), float("nan"))}, str(d / "qw.safetensors"))
    with pytest.raises(CardError, match="non-finite"):
        load_query_encoder(str(d))
    table = torch.zeros(lm.config.vocab_size)
    brain = tokenizer.convert_tokens_to_ids("brain")
    table[brain] = 2.0
    save_file({"query_weights": table}, str(d / "qw.safetensors"))
    enc = load_query_encoder(str(d))  # a shipped table replaces the derived one: only "brain" has weight > 0
    assert enc.encode(["brain cancer and brain"])[0] == {"brain": round(100 * float(torch.log1p(torch.tensor(
        2.0 + 1.5 * torch.log(torch.tensor(2.0))))))}


def test_passage_side_ignores_the_query_side_but_not_the_files(tmp_path, lm, tokenizer):
    a = EncoderCard.load(_lexical_card(tmp_path, lm, tokenizer, dirname="a"))
    b = EncoderCard.load(_lexical_card(tmp_path, lm, tokenizer, dirname="b", query_encoder="model", query_top_k=3,
                                       query_prefix="q: "))
    assert a.passage_side() == b.passage_side()
    assert a.with_overrides(passage_top_k=5).passage_side() != b.passage_side()
    save_file({"term_bias": torch.zeros(lm.config.vocab_size)}, str(tmp_path / "b" / "term_bias.safetensors"))
    assert a.passage_side() != EncoderCard.load(tmp_path / "b").passage_side()


def test_fit_table_learns_what_the_start_gets_wrong():
    """Token 0 is over-weighted at the start, so every query ranks the passage holding it first; the judged passage
    holds token 1. The fit must turn that around on queries it did not train on, and keep its best step."""
    from csplade_pyserini.calibrate import ndcg_at_k
    from csplade_pyserini.fit_query_weights import fit_table

    n_q = 9
    counts = torch.tensor([[1.0, 1.0]] * n_q)
    docs = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # passage "neg" holds token 0, "pos" token 1
    positives = torch.tensor([[False, True]] * n_q)
    qids, dids = [f"q{i}" for i in range(n_q)], ["neg", "pos"]
    qrels = {q: {"pos": 1} for q in qids}

    def score(sc, rows):
        return ndcg_at_k(sc[rows], [qids[i] for i in rows], dids, qrels)

    table, rec = fit_table(counts, torch.tensor([3.0, 0.5]), docs, positives, 0.0, steps=60, lr=0.1,
                           score=score, log=lambda *a: None, mode="per-term")
    assert rec["start_held_out_ndcg@10"] < 0.7 and rec["held_out_ndcg@10"] == 1.0 and rec["best_step"] > 0
    assert rec["holdout_queries"] == 3 and rec["fit_queries"] == 6 and rec["mode"] == "per-term"
    assert table[1] - table[0] > 0  # the judged passage's token now outweighs the other
    # affine keeps the tokens' order, so it cannot do that; its offset can cut a token the relu then drops: token 0
    # (a common word, low table value) is heavy in the unjudged passage, token 1 light in the judged one
    docs2 = torch.tensor([[5.0, 0.0], [0.0, 1.0]])
    table, rec = fit_table(counts, torch.tensor([1.0, 3.0]), docs2, positives, 0.0, steps=80, lr=0.1,
                           score=score, log=lambda *a: None, mode="affine")
    assert rec["start_held_out_ndcg@10"] < 0.7 and rec["held_out_ndcg@10"] == 1.0 and rec["mode"] == "affine"
    w = torch.log1p(torch.relu(table))
    assert w[1] * 1.0 > w[0] * 5.0 and table[0] < 1.0  # token 0 pushed towards the relu's cut
    with pytest.raises(Exception, match="mode must be one of"):
        fit_table(counts, torch.tensor([1.0, 3.0]), docs2, positives, 0.0, steps=1, score=score, mode="mlp")


def test_fit_query_weights_writes_a_complete_lexical_encoder(tmp_path, lm, tokenizer, capsys):
    from csplade_pyserini.encoder import CspladeEncoder, load_query_encoder
    from csplade_pyserini.fit_query_weights import main

    src = _lexical_card(tmp_path, lm, tokenizer, dirname="src", query_encoder="model")
    source = EncoderCard.load(src)
    dataclasses.replace(source, hybrid={"method": "interpolation", "weights": [0.1, 0.9]}).save(src)
    enc = CspladeEncoder.load(str(src), device="cpu")
    texts = {"d1": "microwave radiation causes brain cancer", "d2": "cells and mice", "d3": "protein gene genes",
             "d4": "phone phones radiation", "d5": "human study results"}
    vecs = tmp_path / "vectors"
    vecs.mkdir()
    with open(vecs / "part0.jsonl", "w") as fh:
        for (did, t), v in zip(texts.items(), enc.encode(list(texts.values()), "passage")):
            fh.write(json.dumps({"id": did, "contents": t, "vector": v}) + "\n")
    queries = {"1": "brain cancer", "2": "mice cells", "3": "genes", "4": "phone radiation", "5": "human study",
               "6": "cancer radiation", "7": "unjudged query"}
    (tmp_path / "q.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()))
    rel = {"1": "d1", "2": "d2", "3": "d3", "4": "d4", "5": "d5", "6": "d1"}
    (tmp_path / "q.qrels").write_text("".join(f"{q} 0 {d} 1\n" for q, d in rel.items()))
    out = tmp_path / "fitted"
    argv = ["--encoder", str(src), "--vectors", str(vecs), "--topics", str(tmp_path / "q.tsv"), "--qrels",
            str(tmp_path / "q.qrels"), "--output", str(out), "--steps", "10", "--eval-every", "5", "--mode", "per-term"]
    main(argv)
    card = EncoderCard.load(out)
    assert card.query_encoder == "lexical" and card.query_weights == "query_weights.safetensors"
    assert card.passage_side() == EncoderCard.load(src).passage_side()  # it searches the source's index
    assert card.hybrid is None  # the source's fusion weights were tuned for its own queries, not these
    assert card.load_query_weights().shape == (lm.config.vocab_size,)
    fit = json.loads((out / "fit.json").read_text())
    assert fit["queries"] == 6 and fit["passages"] == 5 and fit["command"].startswith(
        "python -m csplade_pyserini.fit_query_weights --encoder")
    assert card.training["stage"] == "fit_query_weights" and "1 of 7 queries have no judged passage" in capsys.readouterr().out
    assert load_query_encoder(str(out)).encode(["brain cancer"])[0]
    with pytest.raises(SystemExit) as e:  # the output exists now
        main(argv)
    assert e.value.code == 2
    (vecs / "part1.jsonl").write_text('{"id": "d9", "vector": "brain"}\n')
    with pytest.raises(SystemExit):
        main(argv[:-4] + ["--output", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert "part1.jsonl:1: not a JsonVectorCollection document" in err and "Traceback" not in err


def test_df_curve_is_one_function_and_the_card_checks_it(tmp_path, lm, tokenizer):
    """df_offset (per token, at query time) and df_basis @ values (all tokens, in the fit) are the same curve; the
    card rejects malformed curves; a lexical card with a curve weighs a token by table + curve(df)."""
    from csplade_pyserini.encoder import load_query_encoder
    from csplade_pyserini.modeling.lexical import TableDocFreq, df_basis, df_offset

    values = [0.5, 3.0, -1.0, -2.5]
    dfs = [0, 1, 3, 40, 999, 1000, 5000]
    got = df_basis(torch.tensor(dfs), 1000, 4) @ torch.tensor(values)
    want = [df_offset(values, d, 1000) for d in dfs]
    assert got.tolist() == pytest.approx(want, abs=1e-5)
    assert want[0] == 0.5 and want[5] == pytest.approx(-2.5) and want[6] == pytest.approx(-2.5)  # clamped at N
    for bad in ({"values": [1.0]}, {"values": [1.0, float("nan")]}, {"vals": [1.0, 2.0]},
                {"values": [1.0, 2.0], "reference_df": "x.safetensors"},
                {"values": [1.0, 2.0], "reference_df": "x", "reference_documents": 0}):
        with pytest.raises(CardError, match="query_df_curve"):
            EncoderCard(name="x", query_df_curve=bad)
    table = torch.zeros(lm.config.vocab_size)
    brain, cancer = tokenizer.convert_tokens_to_ids("brain"), tokenizer.convert_tokens_to_ids("cancer")
    table[[brain, cancer]] = 2.0
    df = torch.zeros(lm.config.vocab_size)
    df[brain], df[cancer] = 99.0, 1.0  # "brain" is common in the reference corpus (100 docs), "cancer" rare
    d = _lexical_card(tmp_path, lm, tokenizer, dirname="curved", query_weights="qw.safetensors",
                      query_df_curve={"values": [1.0, -1.5], "reference_df": "df.safetensors",
                                      "reference_documents": 100}, tf_bonus=0.0)
    save_file({"query_weights": table}, str(d / "qw.safetensors"))
    save_file({"query_df": df}, str(d / "df.safetensors"))
    enc = load_query_encoder(str(d))

    def want_ints(dfb, dfc, n):
        w = {"brain": 2.0 + df_offset([1.0, -1.5], dfb, n), "cancer": 2.0 + df_offset([1.0, -1.5], dfc, n)}
        return {t: round(100 * float(torch.log1p(torch.tensor(a)))) for t, a in w.items() if a > 0}

    assert enc.encode(["brain cancer"])[0] == want_ints(99, 1, 100)
    assert enc.encode(["brain cancer"])[0]["cancer"] > enc.encode(["brain cancer"])[0]["brain"]
    # another corpus: "brain" rare there, "cancer" in every document -> the order turns around
    enc.queries.use_doc_freq(TableDocFreq(torch.where(df > 50, 1.0, 0.0) + (df == 1.0) * 10, 10, "test"))
    assert enc.encode(["brain cancer"])[0] == want_ints(1, 10, 10)
    assert enc.encode(["brain cancer"])[0]["brain"] > enc.encode(["brain cancer"])[0].get("cancer", 0)
    e = EncoderCard.load(d)
    e.query_df_curve = {"values": [1.0, -1.5]}  # a curve without a reference corpus needs an index
    e.save(d)
    with pytest.raises(CardError, match="needs the document frequencies"):
        load_query_encoder(str(d)).encode(["brain"])


def test_fit_query_weights_df_mode_reads_the_index_searched(tmp_path, lm, tokenizer, capsys):
    """--mode df fits a curve and keeps it apart from the table (with the fitting corpus's df as reference); a
    per-term fit on top stores only its own offsets (its start is exactly the df fit's best); search reads df from
    the Lucene index it searches, so on the fitting corpus's own index it reproduces the reference weights."""
    from csplade_pyserini.encode import encode_corpus
    from csplade_pyserini.fit_query_weights import main
    from csplade_pyserini.index import build_impact_index
    from csplade_pyserini.encoders import CspladeQueryEncoder
    from csplade_pyserini.modeling.lexical import LexicalQueryEncoder, df_offset, query_table
    from csplade_pyserini.search import search_topics

    src = _lexical_card(tmp_path, lm, tokenizer, dirname="src", query_encoder="model")
    docs = [{"id": f"d{i}", "title": "", "text": t} for i, t in enumerate([
        "microwave radiation causes brain cancer", "cells and mice", "protein gene genes", "phone phones radiation",
        "human study results", "brain cells of mice", "cancer study in human cells", "radiation study"])]
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    encode_corpus(tmp_path / "corpus.jsonl", tmp_path / "vec", str(src), device="cpu", quiet=True)
    build_impact_index(tmp_path / "vec", tmp_path / "idx", threads=1, quiet=True)
    queries = {"1": "brain cancer", "2": "mice cells", "3": "genes", "4": "phone radiation", "5": "human study",
               "6": "cancer radiation", "7": "brain cells", "8": "radiation study"}
    (tmp_path / "q.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()))
    rel = {"1": "d0", "2": "d1", "3": "d2", "4": "d3", "5": "d4", "6": "d0", "7": "d5", "8": "d7"}
    (tmp_path / "q.qrels").write_text("".join(f"{q} 0 {d} 1\n" for q, d in rel.items()))
    common = ["--vectors", str(tmp_path / "vec"), "--topics", str(tmp_path / "q.tsv"), "--qrels",
              str(tmp_path / "q.qrels"), "--steps", "10", "--eval-every", "5", "--lr", "0.5"]
    main(["--encoder", str(src), "--output", str(tmp_path / "df"), "--mode", "df", "--knots", "3", *common])
    card = EncoderCard.load(tmp_path / "df")
    curve = card.query_df_curve
    assert len(curve["values"]) == 3 and curve["reference_documents"] == 8
    # the table is the source's: the curve stays apart, added per corpus at query time
    assert torch.equal(card.load_query_weights(), query_table(EncoderCard.load(src).with_overrides(
        query_encoder="lexical")))
    rad = tokenizer.convert_tokens_to_ids("radiation")
    lines = open(tmp_path / "vec" / "embeddings.jsonl").readlines()
    has_rad = [int("radiation" in json.loads(line)["vector"]) for line in lines]
    assert card.load_query_df()[rad] == sum(has_rad) >= 3  # its passages (the random head may add a few more)
    main(["--encoder", str(tmp_path / "df"), "--output", str(tmp_path / "df-pt"), "--mode", "per-term", *common])
    fit_df = json.loads((tmp_path / "df" / "fit.json").read_text())
    fit_pt = json.loads((tmp_path / "df-pt" / "fit.json").read_text())
    assert fit_pt["start_held_out_ndcg@10"] == fit_df["held_out_ndcg@10"]
    assert EncoderCard.load(tmp_path / "df-pt").query_df_curve["values"] == curve["values"]
    with pytest.raises(SystemExit):  # one curve per card
        main(["--encoder", str(tmp_path / "df"), "--output", str(tmp_path / "df2"), "--mode", "df", *common])
    curve["values"] = [1.0, 0.0, -2.0]  # a tiny fit barely moves the curve: give it one that bends
    card.query_df_curve = curve
    card.save(tmp_path / "df")
    enc = LexicalQueryEncoder.load(EncoderCard.load(tmp_path / "df"))
    texts = list(queries.values())
    reference = enc.encode(texts)
    assert enc.use_index(tmp_path / "idx") and enc.queries.doc_freq.n_docs == 8
    assert enc.queries.doc_freq(rad) == sum(has_rad) and enc.encode(texts) == reference  # same corpus, same weights
    # a smaller index of some of the same passages: another df and size, so the weight moves
    small = tmp_path / "vec-small"
    small.mkdir()
    (small / "embeddings.jsonl").write_text(lines[0] + lines[1])
    build_impact_index(small, tmp_path / "idx-small", threads=1, quiet=True)
    qenc = CspladeQueryEncoder(str(tmp_path / "df"))  # search hands it the index it searches
    run = search_topics(tmp_path / "idx-small", {"q": "radiation"}, hits=3, threads=1, quiet=True, query_encoder=qenc)
    assert set(run) == {"q"}
    small_df = qenc.encoder.queries.doc_freq
    assert small_df.source.startswith("index ") and small_df(rad) == sum(has_rad[:2]) and small_df.n_docs == 2
    a = enc.queries.table[rad] + df_offset(curve["values"], sum(has_rad[:2]), 2)
    assert qenc.encoder.queries.weights({rad: 1}) == pytest.approx([(rad, math.log1p(a))] if a > 0 else [])
    assert a != enc.queries.table[rad] + df_offset(curve["values"], sum(has_rad), 8)
    # explain --index shows the weights search would use on that index; a missing index is a usage error
    from csplade_pyserini.explain import main as explain_main

    explain_main(["--encoder", str(tmp_path / "df"), "--index", str(tmp_path / "idx-small"), "radiation"])
    want = round(100 * math.log1p(a)) if a > 0 else None
    out = capsys.readouterr().out
    assert (f" {want} " in out) if want else "(0 terms" in out, out
    with pytest.raises(SystemExit) as e:
        explain_main(["--encoder", str(tmp_path / "df"), "--index", str(tmp_path / "nope"), "radiation"])
    assert e.value.code == 2 and "no such index directory" in capsys.readouterr().err
    (tmp_path / "not-an-index").mkdir()  # a directory without a segments_N file: a clear error, no Java trace
    with pytest.raises(SystemExit) as e:
        explain_main(["--encoder", str(tmp_path / "df"), "--index", str(tmp_path / "not-an-index"), "radiation"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "is not a Lucene index" in err and "Traceback" not in err
    from csplade_pyserini.cli import UsageError

    with pytest.raises(UsageError, match="is not a Lucene index"):
        search_topics(tmp_path / "not-an-index", {"q": "radiation"}, str(tmp_path / "df"), quiet=True)


def test_demo_searches_the_other_query_side(tmp_path, lm, tokenizer):
    from csplade_pyserini.demo import other_query_side

    assert other_query_side(str(_lexical_card(tmp_path, lm, tokenizer, dirname="lex"))) == "model"
    assert other_query_side(str(_lexical_card(tmp_path, lm, tokenizer, dirname="m", query_encoder="model"))) == "lexical"
    raw = _lexical_card(tmp_path, lm, tokenizer, dirname="raw", query_encoder="model", logit_norm="none")
    assert other_query_side(str(raw)) is None  # nothing to derive a table from
    assert other_query_side("smollm2-135m-echo-corpusfit") == "lexical"
    assert other_query_side("smollm2-135m-echo-corpusfit-lexq") == "model"


def test_demo_finds_the_shipped_lexical_cards_of_the_same_passages():
    from csplade_pyserini.demo import lexical_siblings

    # the default's passages: every lexical card built on it searches its index with its own query side
    lex = ["smollm2-135m-echo-corpusfit-lexq", "smollm2-135m-echo-corpusfit-lexqdf",
           "smollm2-135m-echo-corpusfit-lexqdf-expand", "smollm2-135m-echo-corpusfit-lexqfit"]
    assert lexical_siblings("smollm2-135m-echo-corpusfit") == lex
    # same recipe, another term bias: another index, so no lexical card of corpusfit's belongs on it
    assert lexical_siblings("smollm2-135m-echo-fitted") == []
    assert lexical_siblings("smollm2-135m-echo-corpusfit-lexqdf") == [lex[0], lex[2], lex[3]]  # not itself
