"""python -m csplade_pyserini.encode: a JSONL corpus -> Anserini JsonVectorCollection shards.

Same argument groups and flag names as `python -m pyserini.encode`:

    python -m csplade_pyserini.encode \\
      input   --corpus corpus.jsonl --fields title text [--shard-id 0 --shard-num 1] \\
      output  --embeddings runs/vectors \\
      encoder --encoder smollm2-135m-causal-base --batch-size 32 --device auto

Output lines are {"id", "contents", "vector": {term: int}}; index them with `python -m csplade_pyserini.index`
or Anserini's IndexCollection (-collection JsonVectorCollection -impact -pretokenized).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from .cli import UsageError, add_encoder_args, encoder_overrides, parse_grouped, positive_int, run
from .pipeline import PIPELINE_CHOICES


def build_groups() -> dict[str, argparse.ArgumentParser]:
    i = argparse.ArgumentParser(prog="input", add_help=False)
    i.add_argument("--corpus", required=True, help="JSONL file, or a directory of JSONL files (every file is read)")
    i.add_argument("--fields", nargs="+", default=["text"],
                   help="fields joined (in order, with a space) into the text; e.g. title text (default: text). "
                        "Records without them may give 'contents' instead")
    i.add_argument("--docid-field", default=None, help="id field if not id/_id/docid")
    i.add_argument("--delimiter", default="\n", help="delimiter of fields inside 'contents' (default: newline)")
    i.add_argument("--shard-id", type=int, default=0, help="0-based shard to encode (default: 0)")
    i.add_argument("--shard-num", type=positive_int, default=1, help="number of shards (default: 1)")
    o = argparse.ArgumentParser(prog="output", add_help=False)
    o.add_argument("--embeddings", required=True, help="output directory for the JsonVectorCollection shard(s)")
    o.add_argument("--overwrite", action="store_true", help="replace an existing shard file")
    o.add_argument("--resume", action="store_true",
                   help="skip a complete shard (checksum matches its manifest); continue an interrupted one")
    e = add_encoder_args(argparse.ArgumentParser(prog="encoder", add_help=False), "passage")
    e.add_argument("--fields", nargs="+", default=None, help="accepted for Pyserini compatibility (input --fields decides)")
    e.add_argument("--pipeline", choices=PIPELINE_CHOICES, default="auto",
                   help="read and tokenize the next documents and write the last ones in two threads beside the model: "
                        "on, off, or auto (default: on for a GPU, off on a CPU, where the host side is ~0.1%% of the "
                        "time and a thread takes cores from the model); the output is the same")
    return {"input": i, "output": o, "encoder": e}


def encoder_identity(encoder, card_overrides=None, max_length=None) -> str:
    """A checksum of what determines the output: the card's settings (not its scores, description or dtype) and
    the adapter weights. A resumed or skipped shard must come from the same identity."""
    from .encoder import resolve_card
    from .modeling.card import EncoderCard
    from .writer import sha256_file

    card = encoder if isinstance(encoder, EncoderCard) else resolve_card(encoder)
    card = card.with_overrides(**(card_overrides or {}))
    d = {k: v for k, v in card.to_dict().items()
         if k not in ("scores", "description", "dtype", "training", "name", "hybrid")}  # hybrid: a search setting
    for key, default in (("passage_windows", 1), ("query_encoder", "model"), ("query_weights", None),
                         ("query_df_curve", None), ("query_pool_lead", False), ("query_expansion", 0.0)):
        if key in d and d[key] == default:
            d.pop(key)  # the default: identities written before the setting existed stay valid
    h = hashlib.sha256(json.dumps([d, max_length], sort_keys=True, default=str).encode())
    for p in card.adapter_paths():
        f = p / "adapter_model.safetensors"
        if f.exists():
            h.update(sha256_file(f).encode())
    return h.hexdigest()


def encode_corpus(corpus, embeddings, encoder="smollm2-135m-causal-base", fields=("text",), docid_field=None,
                  delimiter="\n", shard_id=0, shard_num=1, batch_size=32, max_length=None, device="auto",
                  fp16=False, overwrite=False, card_overrides=None, quiet=False, resume=False,
                  compile=False, pipeline="auto") -> dict:
    """Encode (one shard of) a corpus; returns the summary counts. Raises on any lost or duplicated document.

    With ``resume``: a finished shard (file + manifest with a matching checksum) is skipped, and an interrupted
    one continues after its last committed batch. ``pipeline`` (auto|on|off): read and tokenize the next documents
    and write the last ones in two threads beside the model (auto: on a GPU, not on a CPU; same output either way).
    """
    from pathlib import Path

    from tqdm import tqdm

    from .corpus import check_jsonl_corpus, field_batches, join_text, passage_texts
    from .encoder import CspladeEncoder
    from .pipeline import InOrder, pipelined_default, prefetch
    from .writer import AtomicJsonlWriter, meta_dir, sha256_file, shard_filename, write_manifest

    if pipeline not in PIPELINE_CHOICES:
        raise UsageError(f"--pipeline must be one of {', '.join(PIPELINE_CHOICES)}, got {pipeline!r}")
    if not 0 <= shard_id < shard_num:
        raise UsageError(f"--shard-id must be in 0..{shard_num - 1}, got {shard_id}")
    fields = list(fields)
    check = check_jsonl_corpus(corpus, fields, docid_field, delimiter, split_contents=True)
    out = Path(embeddings)
    target = out / shard_filename(shard_id, shard_num)
    manifest = meta_dir(out) / (target.name + ".json")
    identity = encoder_identity(encoder, card_overrides, max_length)
    size = check.n_docs // shard_num
    start = shard_id * size
    end = check.n_docs if shard_id == shard_num - 1 else start + size
    n_in = end - start
    ids_sha256 = hashlib.sha256("\n".join(check.ids[start:end]).encode("utf-8")).hexdigest()
    if resume and target.exists() and manifest.exists():
        done = json.loads(manifest.read_text())
        if done.get("encoder_identity", identity) != identity:
            raise UsageError(f"{target} was encoded by a different encoder (card or adapter weights changed); "
                             f"delete {out} (and its .manifest) to encode again")
        same_count = done.get("docs_in", n_in) == n_in  # a manifest from before ids_sha256: the count alone
        same_docs = same_count and done.get("ids_sha256", ids_sha256) == ids_sha256
        if not same_docs and not overwrite:
            what = (f"{done['docs_in']:,} documents; the corpus now gives this shard {n_in:,}" if not same_count
                    else "other document ids than the corpus now has")
            raise UsageError(f"{target} was encoded from {what}: pass --overwrite to encode it again")
        if same_docs and done.get("sha256") == sha256_file(target):
            if not quiet:
                print(f"[encode] {target} is complete ({done['docs_out']:,} docs): skipped", file=sys.stderr)
            return done
    if target.exists() and not overwrite:
        raise UsageError(f"output {target} exists (pass --overwrite to replace it, or --resume to skip it "
                         f"when complete)")
    if shard_num == 1 and out.exists() and any(p != target for p in out.iterdir()):
        raise UsageError(f"output directory {out} exists and is not empty")

    enc = CspladeEncoder.load(encoder, device=device, dtype="float16" if fp16 else None, compile=compile,
                              batch_size=batch_size, quiet=quiet, **(card_overrides or {}))
    card = enc.card
    overlap = pipelined_default(pipeline, enc.model.device)
    if not quiet:
        print(f"[encode] {check.n_docs:,} docs in {len(check.files)} file(s); shard {shard_id}/{shard_num}: "
              f"{n_in:,} docs -> {target}", file=sys.stderr)
        windows = f" x {card.passage_windows} windows" if card.passage_windows > 1 else ""
        print(f"[encode] encoder {card.name} ({card.variant}, max length {max_length or card.passage_max_length}{windows}, "
              f"top-k {card.passage_top_k or 'all'}, scale {card.quantization_scale:g}) on "
              f"{enc.model.device}" + (", host work overlapped (--pipeline)" if overlap else ""), file=sys.stderr)
    t0 = time.time()
    writer = AtomicJsonlWriter(out, shard_id, shard_num)
    if not resume and not overwrite and writer.progress_file.exists():
        raise UsageError(f"an interrupted run of {target.name} left committed documents in {writer.tmp}: pass "
                         f"--resume to continue it or --overwrite to start over")
    n_done = writer.resume_point() if resume else 0
    prior_seconds = writer.resumed_seconds
    if n_done:
        if writer.committed_ids() != check.ids[start:start + n_done]:
            raise UsageError(f"{writer.tmp}: the interrupted shard does not match this corpus; delete it to start over")
        enc.stats.update(writer.resumed_stats)
        if not quiet:
            print(f"[encode] resuming {target.name} after {n_done:,} committed docs", file=sys.stderr)
    bar = tqdm(total=n_in, initial=n_done, unit="doc", desc="encode", disable=quiet, dynamic_ncols=True,
               mininterval=2)

    def prepare(batch):  # host: the documents' text, tokenized and padded on the device (a thread ahead, overlapped)
        texts = batch[fields[-1]] if len(fields) > 1 else batch[fields[0]]
        titles = batch[fields[0]] if len(fields) > 1 else None
        if len(fields) > 2:  # join leading fields as the title
            titles = [join_text(*xs) for xs in zip(*(batch[f] for f in fields[:-1]))]
        return batch, enc.prepare(passage_texts(texts, titles), "passage", max_length=max_length)

    def write(batch, ids_ints, stats):  # host: terms, JSON lines, commit (a thread behind, overlapped)
        batch["vector"] = enc.term_vectors(ids_ints)
        writer.write(batch, fields)
        elapsed = time.time() - t0
        writer.commit(stats, None if prior_seconds is None else prior_seconds + elapsed)
        new_tokens = stats.get("tokens", 0) - writer.resumed_stats.get("tokens", 0)  # this run's, not the resumed
        bar.set_postfix(tok_s=f"{new_tokens / max(elapsed, 1e-9):,.0f}", refresh=False)

    # the encoder sub-batches by length; an interrupted shard resumes after its committed documents
    batches = field_batches(corpus, fields, docid_field, delimiter, batch_size * 8, start + n_done, end)
    with writer, bar, InOrder(overlap) as behind:
        for batch, prepared in prefetch(batches, prepare, overlap):
            ids_ints = enc.run(prepared, progress=bar.update)  # device: forward, top-k, ints
            behind.submit(write, batch, ids_ints, dict(enc.stats))  # the counts as of this batch, committed with it
    # Encoding time over every run of this shard when the interrupted runs recorded theirs; else this run's alone,
    # with the docs it encoded (a progress file from before the time was recorded).
    seconds = round(time.time() - t0 + (prior_seconds or 0.0), 2)  # docs/s below from the seconds recorded
    timed_docs = n_in if prior_seconds is not None else n_in - n_done
    stats = dict(enc.stats)
    stats.pop("texts", None)
    if writer.n_written != n_in:
        raise RuntimeError(f"document count mismatch: {n_in} in, {writer.n_written} written")
    summary = {
        "docs_in": n_in, "ids_sha256": ids_sha256, "docs_out": writer.n_written, "empty_texts": stats.get("empty_texts", 0),
        "empty_vectors": writer.n_placeholder, "truncated": stats.get("truncated", 0),
        "tokens": stats.get("tokens", 0), "seconds": seconds,
        "docs_per_s": round(timed_docs / max(seconds, 1e-9), 2), "timed_docs": timed_docs, "resumed_docs": n_done,
        "pipelined": overlap,
        "shard_id": shard_id, "shard_num": shard_num,
        "encoder": card.to_dict(), "max_length": max_length or card.passage_max_length,
        "encoder_identity": identity, "passage_weighting": card.passage_weighting(),
    }
    summary = json.loads(write_manifest(target, summary).read_text())  # + file name and sha256
    if not quiet:
        print(f"[encode] done: {summary['docs_out']:,} docs out of {n_in:,} in | empty texts {summary['empty_texts']} "
              f"(kept) | empty vectors {summary['empty_vectors']} (indexed with the placeholder term) | truncated "
              f"{summary['truncated']} | {seconds:.1f} s, {summary['docs_per_s']:.1f} docs/s"
              + (f" (resumed after {n_done:,} docs; the time covers {timed_docs:,})" if n_done else ""),
              file=sys.stderr)
    return summary


def _main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_grouped(build_groups(), argv, "python -m csplade_pyserini.encode", __doc__.split("\n\n", 1)[1])
    for g in ("input", "output"):
        if not any(a == g for a in argv):
            raise UsageError(f"the {g!r} group is required (see --help)")
    enc = args.encoder
    return encode_corpus(
        args.input.corpus, args.output.embeddings, enc.encoder, args.input.fields, args.input.docid_field,
        args.input.delimiter.replace("\\n", "\n"), args.input.shard_id, args.input.shard_num, enc.batch_size,
        enc.max_length, enc.device, enc.fp16, args.output.overwrite, encoder_overrides(enc, "passage"),
        resume=args.output.resume, compile=enc.compile, pipeline=enc.pipeline)


def main(argv=None):
    run(_main, argv, "csplade-encode")


if __name__ == "__main__":
    main()
