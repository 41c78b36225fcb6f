"""A small, explicit training loop for both CSPLADE stages (adaptation, contrastive), with LoRA (peft).

One optimizer step = `gradient_accumulation_steps` micro-batches. Lambda (FLOPS) and the learning rate are
computed from the optimizer step, so they do not depend on accumulation and restart where they left off on
resume. Checkpoints hold the adapter (safetensors), optimizer/scheduler/RNG state and the step; the data order
is a function of (seed, epoch), so a resumed run continues with exactly the batches it would have seen.

Several processes (`torchrun --nproc_per_node N -m csplade_pyserini.train ...`, NCCL on GPUs, gloo on CPU): each
rank encodes its slice of the global batch; query and passage vectors are all-gathered with the local slice
keeping its gradient, every rank computes the *global* loss (InfoNCE over all queries and all passages, FLOPS on
the global batch) scaled by the world size, and gradients are averaged across ranks. The sum over ranks of the
local-slice gradients is the full gradient, so loss and updates do not depend on the number of processes (tested
with 2 gloo processes against 1). Only rank 0 writes logs, checkpoints and the export.
"""
from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from ..modeling.backbone import load_causal_lm, load_tokenizer, resolve_base, weights_sha256
from ..modeling.card import TERM_BIAS_KEY, EncoderCard
from ..modeling.model import CspladeModel
from .args import TrainArguments
from .data import (TrainingDataError, contrastive_batch, load_msmarco, load_tevatron, pack_passages,
                   read_corpus_texts)
from .losses import FlopsSchedule, adaptation_loss, contrastive_loss, sparsity_stats

TERM_BIAS_FILE = "term_bias.safetensors"


def build_model(args: TrainArguments, card: EncoderCard):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = resolve_base(card.base_ref())
    tok = load_tokenizer(base)
    from ..modeling.backbone import pick_device

    lm = load_causal_lm(base, "float32", pick_device(args.device))
    for adapter in card.adapter_paths():
        lm = PeftModel.from_pretrained(lm, str(adapter)).merge_and_unload()
    if args.gradient_checkpointing:
        lm.gradient_checkpointing_enable()
        lm.config.use_cache = False
    if not args.full_finetune:
        n_layers = lm.config.num_hidden_layers
        if not 0 <= args.lora_layers <= n_layers:
            raise TrainingDataError(f"--lora_layers must be in 0..{n_layers} for this model, got {args.lora_layers}")
        layers = list(range(n_layers - args.lora_layers, n_layers)) if args.lora_layers else None
        cfg = LoraConfig(r=args.lora_rank, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                         target_modules=[t.strip() for t in args.lora_targets.split(",")], bias="none",
                         layers_to_transform=layers)
        lm = get_peft_model(lm, cfg)
        if args.gradient_checkpointing:
            lm.enable_input_require_grads()
    from ..encoder import model_from_card

    model = model_from_card(card, lm, tok)
    if args.train_term_bias:
        if model.pooling.term_bias is None:
            raise TrainingDataError(f"--train_term_bias: encoder {card.name!r} has no term_bias to train (make one "
                                    f"with python -m csplade_pyserini.calibrate)")
        model.pooling.term_bias.requires_grad_(True)
    return model, base


class Trainer:
    def __init__(self, args: TrainArguments, card: EncoderCard, model: CspladeModel, base_dir: Path):
        self.args, self.card, self.model, self.base_dir = args, card, model, base_dir
        self.out = Path(args.output_dir)
        dist = torch.distributed
        self.world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        self.rank = dist.get_rank() if self.world > 1 else 0
        self.fsdp = bool(args.fsdp and self.world > 1)
        if self.fsdp:
            shard_decoder_layers(model)
        # after sharding: fully_shard replaces the layers' parameters, and the optimizer must hold the new ones
        self.params = [p for p in model.parameters() if p.requires_grad]
        bias = model.pooling.term_bias
        groups = [{"params": [p for p in self.params if p is not bias]}]
        if bias is not None and bias.requires_grad:
            groups.append({"params": [bias], "lr": args.term_bias_learning_rate or args.learning_rate,
                           "weight_decay": 0.0})
        self.opt = torch.optim.AdamW(groups, lr=args.learning_rate, weight_decay=args.weight_decay)
        self.step = 0
        self.stopped_at_time = False  # --max_seconds ended the loop before total_steps
        self.flops_schedule = FlopsSchedule(1.0, args.flops_warmup_steps)  # warm-up factor in [0, 1]
        if args.stage == "adapt":
            texts = read_corpus_texts(args.train_data, args.max_passages)
            self.rows = pack_passages(texts, model.tokenizer, args.seq_len)
        elif args.msmarco_queries:
            self.rows = load_msmarco(args.train_data, args.msmarco_queries, args.msmarco_qrels, args.msmarco_negatives,
                                     negatives_format=args.msmarco_negatives_format)
        else:
            self.rows = load_tevatron(args.train_data, min_negatives=1 if args.negatives else 0)
        self.lexical = self._lexical_queries() if args.stage == "contrastive" else None
        self.global_batch = args.batch_size * self.world
        self.micro_per_epoch = len(self.rows) // self.global_batch  # equal slices on every rank: drop the tail
        if self.micro_per_epoch == 0:
            raise TrainingDataError(f"{args.train_data}: {len(self.rows)} training examples, fewer than one batch of "
                                    f"{self.global_batch} (--batch_size {args.batch_size} x {self.world} process(es)); "
                                    f"give more examples or a smaller --batch_size")
        steps_per_epoch = max(1, self.micro_per_epoch // args.gradient_accumulation_steps)
        self.total_steps = args.max_steps or int(args.epochs * steps_per_epoch)
        from transformers import get_scheduler

        self.sched = get_scheduler(args.scheduler, self.opt, num_warmup_steps=int(args.warmup_ratio * self.total_steps),
                                   num_training_steps=self.total_steps)

    # -- data order ---------------------------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The data order of an epoch, a function of (seed, epoch); computed once per epoch."""
        if getattr(self, "_order", (None,))[0] != epoch:
            gen = torch.Generator().manual_seed(self.args.seed + epoch)
            self._order = (epoch, torch.randperm(len(self.rows), generator=gen))
        return self._order[1]

    def micro_batch(self, k: int):
        """The k-th micro-batch of the run (deterministic in seed and k)."""
        epoch, i = divmod(k, self.micro_per_epoch)
        perm = self.epoch_order(epoch)
        bs = self.args.batch_size
        start = i * self.global_batch + self.rank * bs
        idx = perm[start:start + bs].tolist()
        if self.args.stage == "adapt":
            return self.rows[idx]
        rngs = [random.Random((self.args.seed * 1_000_003 + k) * 1_000_003 + start + j) for j in range(len(idx))]
        return contrastive_batch([self.rows[j] for j in idx], self.args.negatives, rngs)

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """All ranks' tensors concatenated in rank order; the local slice keeps its autograd graph."""
        if self.world == 1:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world)]
        torch.distributed.all_gather(parts, t.detach().contiguous())
        parts[self.rank] = t
        return torch.cat(parts)

    def _lexical_queries(self):
        """A ``query_encoder: lexical`` card keeps its queries fixed in training: each query is the card's table
        vector (modeling/lexical.py; its df curve reads the card's reference corpus), with no gradient, and only
        the passage side learns to match it (doc-only training, as inference-free sparse encoders are trained)."""
        card = self.card
        if card.query_encoder != "lexical":
            return None
        if card.query_expansion:
            raise TrainingDataError(f"encoder {card.name!r}: query_expansion {card.query_expansion} runs the model "
                                    f"on queries; doc-only training keeps the lexical table alone (start from a "
                                    f"card with query_expansion 0)")
        from ..modeling.lexical import LexicalQueries

        return LexicalQueries.for_model(card, self.model)

    def lexical_vectors(self, texts) -> torch.Tensor:
        """[B, vocab] float query vectors from the lexical table (the weights before quantization)."""
        vocab = self.model.allowed.shape[0]
        out = torch.zeros(len(texts), vocab)
        for i, pairs in enumerate(self.lexical.vectors(list(texts))):
            for v, w in pairs:
                out[i, v] = w
        return out.to(self.model.device)

    # -- losses -------------------------------------------------------------------------------------------
    def encode(self, texts, side):
        prefix = self.card.query_prefix if side == "query" else self.card.passage_prefix
        max_len = self.card.query_max_length if side == "query" else self.card.passage_max_length
        f = self.model.features(self.model.token_lists(texts, prefix), max_len).to(self.model.device)
        return self.model(f.input_ids, f.attention_mask, f.pool_mask)

    def micro_loss(self, batch) -> dict:
        a = self.args
        if a.stage == "adapt":
            ids = batch.to(self.model.device)
            att = torch.ones_like(ids)
            logits = self.model.causal_lm(input_ids=ids, attention_mask=att, use_cache=False).logits
            return adaptation_loss(logits, ids, att, a.relu_weight, self.model.pooling)  # equal packed rows: the mean of rank means
        queries, passages, pos = batch
        q_local = self.lexical_vectors(queries) if self.lexical is not None else self.encode(queries, "query")
        d_local = self.encode(passages, "passage")
        pos = pos.to(q_local.device) + self.rank * d_local.shape[0]
        q, d, pos = self.gather(q_local), self.gather(d_local), self.gather(pos)
        factor = self.flops_schedule(self.step)
        lq = 0.0 if self.lexical is not None else factor * a.q_flops_weight  # fixed lexical queries: no FLOPS
        ld = factor * a.d_flops_weight
        out = contrastive_loss(q, d, pos, lq, ld, a.temperature)
        out["loss"] = out["loss"] * self.world  # gradients are averaged over ranks: see the module docstring
        sq, sd = sparsity_stats(q.detach()), sparsity_stats(d.detach())
        out.update(lambda_q=lq, lambda_d=ld, nnz_q=sq["nnz"], nnz_d=sd["nnz"], dead_q=sq["dead"], dead_d=sd["dead"])
        return out

    def train_step(self) -> dict:
        a = self.args
        self.model.train()
        agg: dict[str, float] = {}
        ctx = torch.autocast("cpu" if self.model.device.type == "cpu" else "cuda", dtype=torch.bfloat16,
                             enabled=a.bf16)
        for m in range(a.gradient_accumulation_steps):
            with ctx:
                parts = self.micro_loss(self.micro_batch(self.step * a.gradient_accumulation_steps + m))
            (parts["loss"] / a.gradient_accumulation_steps).backward()
            if a.stage == "contrastive":
                parts["loss"] = parts["loss"].detach() / self.world
            for k, v in parts.items():
                agg[k] = agg.get(k, 0.0) + float(v.detach() if torch.is_tensor(v) else v) / a.gradient_accumulation_steps
        if self.world > 1:  # FSDP-sharded (DTensor) grads are already reduce-scattered and averaged
            for p in self.params:
                if p.grad is not None and not hasattr(p.grad, "to_local"):
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= self.world
        if a.max_grad_norm:
            clip_grad_norm(self.params, a.max_grad_norm, self.world)
        self.opt.step()
        self.sched.step()
        self.opt.zero_grad(set_to_none=True)
        self.step += 1
        agg["lr"] = self.sched.get_last_lr()[0]
        return agg

    # -- checkpoints --------------------------------------------------------------------------------------
    def trained_state(self) -> dict:
        """Trainable weights as full tensors (a collective under FSDP: every rank must call it)."""
        if self.args.full_finetune:
            sd = self.model.lm.state_dict()
        else:
            from peft import get_peft_model_state_dict

            sd = get_peft_model_state_dict(self.model.lm)
        return {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().cpu().contiguous()
                for k, v in sd.items()}

    def write_weights(self, directory: Path, sd: dict) -> None:
        """An adapter directory (adapter_config.json + adapter_model.safetensors) or, for full fine-tuning, a HF
        checkpoint; safetensors only."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        if self.args.full_finetune:
            self.model.lm.save_pretrained(str(directory), state_dict=sd, safe_serialization=True)
            self.model.tokenizer.save_pretrained(str(directory))
            return
        save_file(sd, str(directory / "adapter_model.safetensors"))
        self.model.lm.peft_config["default"].save_pretrained(str(directory))

    def write_term_bias(self, directory: Path) -> str | None:
        """The (trained or inherited) per-term bias as directory/term_bias.safetensors; its file name, or None."""
        bias = self.model.pooling.term_bias
        if bias is None:
            return None
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        save_file({TERM_BIAS_KEY: bias.detach().float().cpu().contiguous()}, str(directory / TERM_BIAS_FILE))
        return TERM_BIAS_FILE

    def write_query_side(self, directory: Path) -> dict:
        """Card fields of a lexical query side, its files copied into ``directory``: the table the passages were
        trained against (written out when the card derives it from the term bias, which training moves) and the df
        curve's reference frequencies. Empty for a model query side."""
        if self.lexical is None:
            return {}
        import shutil

        from safetensors.torch import save_file

        from ..modeling.card import QUERY_WEIGHTS_KEY
        from ..modeling.lexical import query_table

        directory.mkdir(parents=True, exist_ok=True)
        save_file({QUERY_WEIGHTS_KEY: query_table(self.card).float().contiguous()},
                  str(directory / "query_weights.safetensors"))
        fields = {"query_weights": "query_weights.safetensors"}
        curve = self.card.query_df_curve
        if curve and curve.get("reference_df"):
            shutil.copy2(self.card.query_df_path(), directory / "query_df.safetensors")
            fields["query_df_curve"] = {**curve, "reference_df": "query_df.safetensors"}
        return fields

    def save_checkpoint(self):
        import shutil

        sd = self.trained_state()
        if self.rank != 0:
            return
        ck, tmp = self.out / "checkpoint", self.out / "checkpoint.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.write_weights(tmp / "adapter", sd)
        self.write_term_bias(tmp)
        if not self.fsdp:  # FSDP checkpoints hold the weights only: the sharded optimizer state is not saved yet
            torch.save({"step": self.step, "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                        "torch_rng": torch.get_rng_state()}, tmp / "state.pt")
        if ck.exists():
            shutil.rmtree(ck)
        tmp.rename(ck)

    def load_checkpoint(self) -> bool:
        if self.fsdp:
            raise ValueError("--resume is not supported with --fsdp yet (the sharded optimizer state is not saved)")
        ck = self.out / "checkpoint"
        if not (ck / "state.pt").exists():
            return False
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        if self.args.full_finetune:
            self.model.lm.load_state_dict(load_file(str(ck / "adapter" / "model.safetensors")), strict=False)
        else:
            set_peft_model_state_dict(self.model.lm, load_file(str(ck / "adapter" / "adapter_model.safetensors")))
        bias = self.model.pooling.term_bias
        if bias is not None and bias.requires_grad:
            with torch.no_grad():
                bias.copy_(load_file(str(ck / TERM_BIAS_FILE))[TERM_BIAS_KEY])
        state = torch.load(ck / "state.pt", weights_only=True)  # our own resume state: tensors and numbers only
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = state["step"]
        return True

    def time_up(self, t0: float) -> bool:
        """Whether --max_seconds has passed; with several processes rank 0's clock decides for all."""
        if not self.args.max_seconds:
            return False
        dist = torch.distributed
        up = torch.tensor([float(time.time() - t0 >= self.args.max_seconds)])
        if self.world > 1:
            if dist.get_backend() == "nccl":
                up = up.to(self.model.device)
            dist.broadcast(up, 0)
        return bool(up.item())

    def training_record(self) -> dict:
        """This stage's record; the starting encoder's own record nests under "previous" (adapt -> contrastive)."""
        from ..mine_negatives import read_provenance

        rec = {"stage": self.args.stage, "steps": self.step, "args": asdict(self.args)}
        if self.stopped_at_time:
            rec["stopped_at_max_seconds"] = {"planned_steps": self.total_steps}
        mined = read_provenance(self.args.train_data)  # negatives mined by mine_negatives: how
        if mined:
            rec["mined"] = mined
        if self.card.training:
            rec["previous"] = self.card.training
        return rec

    def export(self) -> Path | None:
        """The trained encoder: adapter (safetensors) + card, loadable by the encode/search CLIs by path.
        Every rank calls it (gathering sharded weights); rank 0 writes, and no rank returns before it has written
        (a rank that leaves early and tears its gloo connections down can fail the others)."""
        sd = self.trained_state()
        enc_dir = self._write_export(sd) if self.rank == 0 else None
        if self.world > 1:
            torch.distributed.barrier()
        return enc_dir

    def _write_export(self, sd: dict) -> Path:
        enc_dir = self.out / "encoder"
        if self.args.full_finetune:  # a full checkpoint inside the encoder directory becomes its base model
            self.write_weights(enc_dir / "model", sd)
            card = EncoderCard(**{**self.card.to_dict(), "name": self.args.run_name or self.out.name,
                                  "base_model": "model", "adapter": None, "base_sha256": None,
                                  "term_bias": self.write_term_bias(enc_dir),
                                  **self.write_query_side(enc_dir),
                                  "training": self.training_record(), "hybrid": None})
            card.save(enc_dir)
            return enc_dir
        name = f"stage{len(self.card.adapter_paths()) + 1}"
        self.write_weights(enc_dir / name, sd)
        adapters = [str(p.resolve()) for p in self.card.adapter_paths()]
        if adapters:  # copy earlier stages next to the new one so the encoder directory stands alone
            import shutil

            for i, p in enumerate(adapters):
                dst = enc_dir / f"stage{i + 1}"
                if not dst.exists():
                    shutil.copytree(p, dst)
        chain = [f"stage{i + 1}" for i in range(len(adapters))] + [name]
        card = EncoderCard(**{**self.card.to_dict(), "name": self.args.run_name or self.out.name,
                              "adapter": chain if len(chain) > 1 else chain[0],
                              "term_bias": self.write_term_bias(enc_dir),
                              **self.write_query_side(enc_dir),
                              "base_sha256": weights_sha256(self.base_dir),
                              "training": self.training_record(), "hybrid": None})  # tuned per encoder
        card.save(enc_dir)
        return enc_dir

    # -- loop ---------------------------------------------------------------------------------------------
    def train(self, log=print) -> dict:
        a = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        if a.resume and self.load_checkpoint():
            log(f"[train] resumed at step {self.step}")
        logf = open(self.out / "log.jsonl", "a", encoding="utf-8") if self.rank == 0 else None
        t0, last = time.time(), {}
        while self.step < self.total_steps:
            if self.step and self.time_up(t0):
                self.stopped_at_time = True
                if logf is not None and last and last.get("step") != self.step:  # the last step's numbers
                    last.update(step=self.step, seconds=round(time.time() - t0, 2))
                    logf.write(json.dumps(last) + "\n")
                log(f"[train] --max_seconds {a.max_seconds:g} reached at step {self.step} of {self.total_steps}")
                break
            last = self.train_step()
            if logf is not None and (self.step % a.logging_steps == 0 or self.step == self.total_steps):
                last.update(step=self.step, seconds=round(time.time() - t0, 2))
                logf.write(json.dumps(last) + "\n")
                logf.flush()
                log("[train] " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in last.items()))
            if a.save_steps and self.step % a.save_steps == 0:
                self.save_checkpoint()
        if logf is not None:
            logf.close()
        self.save_checkpoint()
        return last


def shard_decoder_layers(model: CspladeModel) -> None:
    """FSDP2: shard each decoder layer across ranks. Embeddings, final norm and the LM head stay whole on every rank
    (the sparse head reads ``lm_head.weight`` directly; under LoRA they are frozen)."""
    from torch.distributed.fsdp import fully_shard

    layers = getattr(model.decoder, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model.decoder).__name__} has no .layers to shard with FSDP")
    for layer in layers:
        fully_shard(layer)


def clip_grad_norm(params, max_norm: float, world: int) -> float:
    """Gradient clipping over a mix of sharded (DTensor) and whole gradients; the same scale on every rank."""
    sharded, whole = torch.zeros(()), torch.zeros(())
    for p in params:
        if p.grad is None:
            continue
        if hasattr(p.grad, "to_local"):
            sharded += p.grad.to_local().float().pow(2).sum().cpu()
        else:
            whole += p.grad.float().pow(2).sum().cpu()
    if world > 1 and any(hasattr(p.grad, "to_local") for p in params if p.grad is not None):
        torch.distributed.all_reduce(sharded)
    total = float((sharded + whole).sqrt())
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)
    return total


def init_distributed(args: TrainArguments) -> None:
    """Join the process group torchrun describes (WORLD_SIZE > 1): NCCL with one GPU per rank, else gloo."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return
    cuda = torch.cuda.is_available() and args.device != "cpu"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    torch.distributed.init_process_group("nccl" if cuda else "gloo")


def run_training(args: TrainArguments) -> Path | None:
    from ..encoder import resolve_card

    for flag in ("train_data", "msmarco_queries", "msmarco_qrels", "msmarco_negatives"):
        path = getattr(args, flag)
        if path and not Path(path).exists():  # before the model loads, and naming the flag
            raise TrainingDataError(f"--{flag} {path}: no such file")
    init_distributed(args)
    card = resolve_card(args.encoder)
    card = card.with_overrides(variant=args.variant, logit_shift=args.logit_shift, lowercase=args.lowercase,
                               logit_norm=args.logit_norm,
                               query_max_length=args.query_max_length,
                               passage_max_length=args.passage_max_length)
    torch.manual_seed(args.seed)
    model, base = build_model(args, card)
    trainer = Trainer(args, card, model, base)
    print(f"[train] stage {args.stage}: {len(trainer.rows)} examples, {trainer.total_steps} steps, "
          f"{sum(p.numel() for p in trainer.params):,} trainable parameters", file=sys.stderr)
    trainer.train(lambda s: print(s, file=sys.stderr))
    return trainer.export()
