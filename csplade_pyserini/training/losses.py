"""CSPLADE's training objectives, each returning named parts so every term gets logged.

* contrastive: InfoNCE over dot products of sparse vectors, each query against its positive, its hard negatives
  and every other passage of the batch (in-batch negatives); plus FLOPS regularisation on queries and passages
  with a quadratic warm-up of lambda (as in SPLADE), computed from the trainer's optimizer step.
* adaptation: L = L_CLM + lambda_relu * L_ReLU, both next-token cross-entropies from one forward pass, L_ReLU on
  log(1 + relu(logits)) (no max-pooling).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def flops(reps: torch.Tensor) -> torch.Tensor:
    """FLOPS regulariser: sum over the vocabulary of the squared mean absolute weight over the batch."""
    return reps.abs().mean(0).pow(2).sum()


@dataclass
class FlopsSchedule:
    """lambda(step) = max_lambda * min(1, step / warmup_steps)^2 (quadratic warm-up, SPLADE)."""

    max_lambda: float
    warmup_steps: int = 0

    def __call__(self, step: int) -> float:
        if self.warmup_steps <= 0:
            return self.max_lambda
        return self.max_lambda * min(1.0, step / self.warmup_steps) ** 2


def info_nce(q: torch.Tensor, d: torch.Tensor, positive_index: torch.Tensor, temperature: float = 1.0):
    """Cross-entropy of each query's positive among all passages of the batch. q [Bq, V], d [Bd, V]."""
    scores = q @ d.t() / temperature
    return F.cross_entropy(scores, positive_index), scores


def contrastive_loss(q, d, positive_index, q_lambda: float, d_lambda: float, temperature: float = 1.0) -> dict:
    rank, scores = info_nce(q, d, positive_index, temperature)
    fq, fd = flops(q), flops(d)
    loss = rank + q_lambda * fq + d_lambda * fd
    return {"loss": loss, "rank": rank.detach(), "flops_q": fq.detach(), "flops_d": fd.detach(),
            "accuracy": (scores.argmax(1) == positive_index).float().mean().detach()}


def adaptation_loss(logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    relu_weight: float = 1.0, pooling=0.0) -> dict:
    """L_CLM + relu_weight * L_ReLU on next-token prediction (positions whose next token is padding are skipped).
    L_ReLU scores with the encoder's own term weights at each position: log1p(relu(s + term_bias - logit_shift)),
    s the logit or its log-softmax, as ``pooling`` (a SparsePooling, or just a logit shift) computes them."""
    shift = logits[:, :-1].float()
    if isinstance(pooling, (int, float)):
        pre = shift - pooling
    else:
        pre = pooling.activations(torch.log_softmax(shift, -1) if pooling.normalize else shift)
    labels = input_ids[:, 1:].masked_fill(attention_mask[:, 1:] == 0, -100)
    flat_labels = labels.reshape(-1)
    clm = F.cross_entropy(shift.reshape(-1, shift.shape[-1]), flat_labels, ignore_index=-100)
    relu = F.cross_entropy(torch.log1p(torch.relu(pre)).reshape(-1, shift.shape[-1]), flat_labels, ignore_index=-100)
    return {"loss": clm + relu_weight * relu, "clm": clm.detach(), "relu": relu.detach()}


def sparsity_stats(reps: torch.Tensor) -> dict:
    nnz = (reps > 0).sum(1).float()
    return {"nnz": nnz.mean().item(), "dead": (nnz == 0).float().mean().item()}
