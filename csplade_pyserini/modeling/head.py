"""The bounded-memory sparse head: ``w[b, v] = log1p(relu(max over pooled positions t of logit[b, t, v]))``.

``log1p(relu(.))`` is monotone, so the max can be taken over raw logits and the map applied once to a [B, V]
tensor. The LM head runs over chunks of pooled token positions (padding, special and unpooled tokens are never
projected), so at most ``chunk_size x V`` logits exist at a time instead of ``B x L x V``. The backward pass
recomputes each chunk's logits and routes the gradient to the arg-max position of every (b, v): training holds
no logits for autograd either. Used by inference, training and the tests alike.
"""
from __future__ import annotations

import torch
from torch import nn

DEFAULT_CHUNK_TOKENS = 256


def _row_segments(rows: torch.Tensor, start: int, end: int):
    """Contiguous runs of equal row ids inside rows[start:end] (rows is sorted): yields (row, s, e)."""
    chunk = rows[start:end]
    if chunk.numel() == 0:
        return
    change = torch.nonzero(chunk[1:] != chunk[:-1]).flatten().add_(1).tolist()
    bounds = [0] + change + [chunk.numel()]
    vals = chunk[bounds[:-1]].tolist() if len(bounds) > 2 else [int(chunk[0])]
    for r, s, e in zip(vals, bounds[:-1], bounds[1:]):
        yield r, start + s, start + e


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype autocast would run the LM-head matmul in (recorded so backward recomputes identical logits)."""
    dev = t.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return t.dtype


def _linear(x, weight, bias, dtype):
    with torch.autocast(x.device.type, enabled=False):
        return nn.functional.linear(x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype))


class ChunkedMaxLogits(torch.autograd.Function):
    """max over the tokens of each row of ``hidden @ weight.T + bias``, computed chunk by chunk.

    hidden [T, H] (pooled token states, sorted by row), rows [T] (row id of each token), weight [V, H],
    bias [V] or None. Returns [n_rows, V]; a row without tokens is -inf.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, rows, n_rows: int, chunk: int):
        dtype = _compute_dtype(hidden)
        out = hidden.new_full((n_rows, weight.shape[0]), float("-inf"), dtype=dtype)
        for s in range(0, hidden.shape[0], chunk):
            e = min(s + chunk, hidden.shape[0])
            logits = _linear(hidden[s:e], weight, bias, dtype)
            for r, a, b in _row_segments(rows, s, e):
                torch.maximum(out[r], logits[a - s:b - s].amax(0), out=out[r])
        ctx.save_for_backward(hidden, weight, bias, rows, out)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out):
        hidden, weight, bias, rows, out = ctx.saved_tensors
        grad_h = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight) if ctx.needs_input_grad[1] else None
        grad_b = torch.zeros_like(bias) if bias is not None and ctx.needs_input_grad[2] else None
        for s in range(0, hidden.shape[0], ctx.chunk):
            e = min(s + ctx.chunk, hidden.shape[0])
            r = rows[s:e]
            logits = _linear(hidden[s:e], weight, bias, ctx.dtype)
            g = torch.where(logits == out[r], grad_out[r], torch.zeros((), dtype=grad_out.dtype, device=grad_out.device))
            if grad_h is not None:
                grad_h[s:e] = (g.to(ctx.dtype) @ weight.to(ctx.dtype)).to(grad_h.dtype)
            if grad_w is not None:
                grad_w += (g.t().to(ctx.dtype) @ hidden[s:e].to(ctx.dtype)).to(grad_w.dtype)
            if grad_b is not None:
                grad_b += g.sum(0).to(grad_b.dtype)
        return grad_h, grad_w, grad_b, None, None, None


class SparsePooling(nn.Module):
    """Hidden states + pooling mask -> vocabulary-sized weights, never materialising B x L x V.

    ``lm_head`` is the model's output projection (``weight`` [V, H], optional ``bias``). ``softcap`` is the final
    logit soft-capping of models that have one (Gemma 2): monotone, so applied after the max. ``allowed`` is a
    bool [V] mask of ids that may carry weight (special tokens and padded rows are zeroed). ``logit_shift`` is
    subtracted from the logits before ``relu``: a causal LM's softmax ignores a constant offset, so the level at
    which ``relu`` cuts is arbitrary for it; models whose logits sit far above zero for the whole vocabulary
    (SmolLM2: median max-pooled logit ~19) start sparse with a shift instead of saturated. Monotone, so it
    commutes with the max.
    """

    def __init__(self, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, softcap: float | None = None,
                 logit_shift: float = 0.0):
        super().__init__()
        self.logit_shift = float(logit_shift)
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        self.chunk_tokens = chunk_tokens
        self.softcap = softcap

    def max_logits(self, hidden: torch.Tensor, pool_mask: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
        b, l, h = hidden.shape
        flat = pool_mask.reshape(-1).bool()
        rows = torch.arange(b, device=hidden.device).repeat_interleave(l)[flat]
        tokens = hidden.reshape(b * l, h)[flat]
        return ChunkedMaxLogits.apply(tokens, lm_head.weight, getattr(lm_head, "bias", None), rows, b,
                                      self.chunk_tokens)

    def forward(self, hidden, pool_mask, lm_head, allowed: torch.Tensor | None = None) -> torch.Tensor:
        m = self.max_logits(hidden, pool_mask, lm_head).float()
        if self.softcap:
            m = torch.tanh(m / self.softcap) * self.softcap
        if self.logit_shift:
            m = m - self.logit_shift
        w = torch.log1p(torch.relu(m))  # -inf rows (no pooled token) -> relu -> 0
        if allowed is not None:
            w = w * allowed.to(w.device, w.dtype)
        return w


def naive_sparse_pooling(logits: torch.Tensor, pool_mask: torch.Tensor, allowed=None) -> torch.Tensor:
    """Reference: full B x L x V logits, log1p(relu), masked max. Only for tests and benchmarks."""
    w = torch.log1p(torch.relu(logits.float())) * pool_mask.unsqueeze(-1).float()
    w = w.amax(1)
    if allowed is not None:
        w = w * allowed.to(w.device, w.dtype)
    return w
