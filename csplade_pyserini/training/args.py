"""Training arguments (one dataclass; `python -m csplade_pyserini.train --help` shows every default)."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainArguments:
    train_data: str = field(metadata={"help": "contrastive: Tevatron JSONL (query, positive_passages, "
                                              "negative_passages), or MS MARCO's collection.tsv with the "
                                              "msmarco_* arguments; adapt: a corpus JSONL of passages"})
    output_dir: str = field(metadata={"help": "checkpoints, log.jsonl and the exported encoder (output_dir/encoder)"})
    stage: str = field(default="contrastive", metadata={"help": "adapt (CLM + ReLU-CLM) or contrastive (InfoNCE + FLOPS)",
                                                       "choices": ["adapt", "contrastive"]})
    encoder: str = field(default="smollm2-135m-causal-base", metadata={
        "help": "starting encoder card (base model, prefixes, lengths); for contrastive training pass the "
                "adapted encoder (output_dir/encoder of the adapt stage). A card with query_encoder 'lexical' "
                "trains its passages only: its queries stay the card's table vectors (no gradient, no query "
                "FLOPS), and the export keeps that table (doc-only / inference-free training)"})
    variant: str | None = field(default=None, metadata={"help": "override the card's variant: causal, echo or bi"})
    query_max_length: int | None = field(default=None, metadata={"help": "override the card's query_max_length"})
    passage_max_length: int | None = field(default=None, metadata={"help": "override the card's passage_max_length"})
    lowercase: bool | None = field(default=None, metadata={"help": "override the card's lowercase (lowercase texts "
                                                                   "before tokenizing)"})
    logit_shift: float | None = field(default=None, metadata={
        "help": "override the card's logit_shift: subtracted from the logits before relu (SmolLM2's logits sit ~19 "
                "above zero for the whole vocabulary; a shift of ~22-24 makes the untrained head sparse)"})
    logit_norm: str | None = field(default=None, metadata={
        "help": "override the card's logit_norm: none (pool raw LM-head logits, the paper) or log_softmax (pool "
                "per-position log-probabilities; see csplade_pyserini.calibrate)", "choices": [None, "none", "log_softmax"]})
    train_term_bias: bool = field(default=False, metadata={
        "help": "also train the card's per-term bias (term_bias, e.g. from csplade_pyserini.calibrate) in the "
                "contrastive stage; exported as term_bias.safetensors beside the adapters"})
    term_bias_learning_rate: float = field(default=0.0, metadata={
        "help": "learning rate of the term bias (0: the same as learning_rate)"})
    run_name: str | None = field(default=None, metadata={"help": "name of the exported encoder (default: output dir name)"})
    device: str = field(default="auto", metadata={"help": "cpu, cuda or auto"})
    # LoRA
    full_finetune: bool = field(default=False, metadata={"help": "train all weights instead of LoRA"})
    lora_rank: int = field(default=16, metadata={"help": "LoRA rank (paper: 64 at 1B, 16 at 8B)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (2 x rank is the usual choice)"})
    lora_dropout: float = field(default=0.1, metadata={"help": "LoRA dropout"})
    lora_targets: str = field(default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj",
                              metadata={"help": "comma-separated module names LoRA wraps (all attention and MLP projections)"})
    lora_layers: int = field(default=0, metadata={
        "help": "put LoRA on the last N decoder layers only (0 = all). Backward then stops at the first adapted "
                "layer, so training steps get cheaper (on CPU: the way to more steps per hour)"})
    # optimisation
    learning_rate: float = field(default=5e-5, metadata={"help": "peak learning rate (paper: 5e-5 at 1B, 1e-4 at 8B)"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    scheduler: str = field(default="cosine", metadata={"help": "cosine, linear or constant_with_warmup"})
    warmup_ratio: float = field(default=0.05, metadata={"help": "share of steps for LR warm-up (paper: 5%%)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data (ignored when max_steps > 0)"})
    max_steps: int = field(default=0, metadata={"help": "optimizer steps (0: from epochs)"})
    max_seconds: float = field(default=0.0, metadata={
        "help": "stop after this many seconds of training (checked after each optimizer step; 0: no limit) and "
                "export what was reached; the schedule stays the one of the planned steps, and the export's training "
                "record says where it stopped (for a fixed budget, e.g. a GPU lease)"})
    batch_size: int = field(default=8, metadata={"help": "queries (contrastive) or packed rows (adapt) per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping (0: off)"})
    bf16: bool = field(default=False, metadata={"help": "bf16 autocast (fast only on GPUs and CPUs with AVX-512 BF16/AMX)"})
    fsdp: bool = field(default=False, metadata={"help": "with several processes: shard the decoder layers (FSDP2) "
                                                     "instead of replicating them; --resume not supported yet"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations in backward"})
    seed: int = field(default=42, metadata={"help": "seed of data order, negatives sampling and init"})
    # contrastive
    negatives: int = field(default=3, metadata={"help": "hard negatives per query (paper: 15), plus all in-batch passages"})
    temperature: float = field(default=1.0, metadata={"help": "InfoNCE temperature on dot products"})
    q_flops_weight: float = field(default=0.003, metadata={"help": "lambda_Q of FLOPS on queries (paper: 0.003 at 1B)"})
    d_flops_weight: float = field(default=0.003, metadata={"help": "lambda_D of FLOPS on passages (paper: 0.003 at 1B)"})
    flops_warmup_steps: int = field(default=0, metadata={"help": "quadratic warm-up of both lambdas over these steps"})
    msmarco_queries: str | None = field(default=None, metadata={"help": "MS MARCO layout: queries TSV (qid, text)"})
    msmarco_qrels: str | None = field(default=None, metadata={"help": "MS MARCO layout: qrels (qid 0 pid rel)"})
    msmarco_negatives: str | None = field(default=None, metadata={
        "help": "MS MARCO layout: mined negatives, a run file (TREC or MS MARCO) or triples (qid, pos, neg)"})
    msmarco_negatives_format: str = field(default="auto", metadata={
        "help": "auto (TREC run if it has Q0, else triples), trec-run, msmarco-run or triples"})
    # adaptation
    relu_weight: float = field(default=1.0, metadata={"help": "lambda_ReLU of L_ReLU in L_CLM + lambda_ReLU * L_ReLU"})
    seq_len: int = field(default=256, metadata={"help": "packed sequence length for adaptation (paper: 2048)"})
    max_passages: int = field(default=0, metadata={"help": "adapt on at most this many passages (0: all)"})
    # bookkeeping
    logging_steps: int = field(default=10, metadata={"help": "log every N optimizer steps (stdout and log.jsonl)"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N optimizer steps"})
    resume: bool = field(default=False, metadata={"help": "continue from output_dir/checkpoint if present"})

    def __post_init__(self):
        msm = [self.msmarco_queries, self.msmarco_qrels, self.msmarco_negatives]
        if any(msm) and not all(msm):
            raise ValueError("the MS MARCO layout needs msmarco_queries, msmarco_qrels and msmarco_negatives together")
        if self.stage not in ("adapt", "contrastive"):
            raise ValueError(f"stage must be adapt or contrastive, got {self.stage!r}")
        if self.variant not in (None, "causal", "echo", "bi"):
            raise ValueError(f"variant must be causal, echo or bi, got {self.variant!r}")
