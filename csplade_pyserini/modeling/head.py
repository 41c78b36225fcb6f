"""The bounded-memory sparse head: ``w[b, v] = log1p(relu(max over pooled positions t of logit[b, t, v]))``
(optionally of per-position log-probabilities, with a per-term bias: see SparsePooling).

``log1p(relu(.))`` is monotone, so the max can be taken over raw logits and the map applied once to a [B, V]
tensor. The LM head runs over chunks of pooled token positions (padding, special and unpooled tokens are never
projected), so at most ``chunk_size x V`` logits exist at a time instead of ``B x L x V``. The backward pass
recomputes each chunk's logits and routes the gradient to the arg-max position of every (b, v): training holds
no logits for autograd either. Used by inference, training and the tests alike.
"""
from __future__ import annotations

import warnings

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


def _log_probs(raw, softcap):
    """Per-position log-probabilities log_softmax(softcap(raw)), at least in float32."""
    z = raw.float() if raw.dtype in (torch.float16, torch.bfloat16) else raw
    if softcap:
        z = torch.tanh(z / softcap) * softcap
    return z - torch.logsumexp(z, -1, keepdim=True)


def _chunk_scores(x, weight, bias, dtype, normalize: bool, softcap):
    """The pooled quantity of a chunk of positions: raw logits, or (``normalize``) per-position log-probabilities
    log_softmax(softcap(logits)), at least in float32. Returns (scores, raw logits)."""
    raw = _linear(x, weight, bias, dtype)
    return (_log_probs(raw, softcap) if normalize else raw), raw


# Rows of a chunk normalised at a time in the forward pass: the chunk's matmul stays large (its weight is read once
# per chunk), while each float32 [rows x V] block of the log-softmax stays near the core's cache (16 x 49,152 x 4 B
# = 3 MiB) instead of streaming chunk x V floats through memory five times.
NORM_ROWS = 16

# Devices where the forward pass reduces a whole chunk into its rows at once (index_reduce_ amax) instead of walking
# each chunk's runs of rows from Python: on a GPU the walk costs a host sync per chunk and several small kernels per
# run, which for a small model outweighs the matmuls. Its chunks are larger (a [2048 x 128,256] float32 block is
# 1 GiB). Same result: a max is exact, and each position's log-softmax is its own row's either way.
VECTORIZED_DEVICES = {"cuda"}
VECTORIZED_CHUNK_TOKENS = 2048


def _reduce_chunks(out, hidden, weight, bias, rows, chunk, dtype, normalize, softcap) -> None:
    """The forward's max on a VECTORIZED_DEVICES device: each chunk's scores reduced into their rows at once."""
    with warnings.catch_warnings():  # "index_reduce() is in beta" (torch 2.13), once per process
        warnings.filterwarnings("ignore", message=r"index_reduce\(\) is in beta", category=UserWarning)
        for s in range(0, hidden.shape[0], chunk):  # no host sync, a few kernels per chunk
            e = min(s + chunk, hidden.shape[0])
            scores, _ = _chunk_scores(hidden[s:e], weight, bias, dtype, normalize, softcap)
            out.index_reduce_(0, rows[s:e], scores.to(out.dtype), "amax")


def _walk_rows(out, hidden, weight, bias, rows, chunk, dtype, normalize, softcap) -> None:
    """The forward's max elsewhere: each chunk's runs of rows walked from Python, log-softmax in cache-sized blocks."""
    for s in range(0, hidden.shape[0], chunk):
        e = min(s + chunk, hidden.shape[0])
        raw = _linear(hidden[s:e], weight, bias, dtype)
        for r, a, b in _row_segments(rows, s, e):
            if not normalize:
                torch.maximum(out[r], raw[a - s:b - s].amax(0), out=out[r])
                continue
            for u in range(a, b, NORM_ROWS):  # the same float32 math row by row, in cache-sized blocks
                block = _log_probs(raw[u - s:min(u + NORM_ROWS, b) - s], softcap)
                torch.maximum(out[r], block.amax(0), out=out[r])


class ChunkedMaxLogits(torch.autograd.Function):
    """max over the tokens of each row of ``hidden @ weight.T + bias`` (or, with ``normalize``, of its per-position
    log-softmax), computed chunk by chunk.

    hidden [T, H] (pooled token states, sorted by row), rows [T] (row id of each token), weight [V, H],
    bias [V] or None. Returns [n_rows, V]; a row without tokens is -inf. With ``normalize`` the output is at least
    float32 and ``softcap`` (Gemma 2's final soft-capping) is applied before the softmax, as the model itself does.
    """

    @staticmethod
    def forward(ctx, hidden, weight, bias, rows, n_rows: int, chunk: int, normalize: bool = False, softcap=None):
        dtype = _compute_dtype(hidden)
        low = dtype in (torch.float16, torch.bfloat16)
        out = hidden.new_full((n_rows, weight.shape[0]), float("-inf"),
                              dtype=torch.float32 if normalize and low else dtype)
        if hidden.device.type in VECTORIZED_DEVICES:
            chunk = max(chunk, VECTORIZED_CHUNK_TOKENS)
            _reduce_chunks(out, hidden, weight, bias, rows, chunk, dtype, normalize, softcap)
        else:
            _walk_rows(out, hidden, weight, bias, rows, chunk, dtype, normalize, softcap)
        ctx.save_for_backward(hidden, weight, bias, rows, out)
        ctx.chunk, ctx.dtype, ctx.normalize, ctx.softcap = chunk, dtype, normalize, softcap
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
            scores, raw = _chunk_scores(hidden[s:e], weight, bias, ctx.dtype, ctx.normalize, ctx.softcap)
            g = torch.where(scores == out[r], grad_out[r], torch.zeros((), dtype=grad_out.dtype, device=grad_out.device))
            if ctx.normalize:  # d log_softmax(z)_t / d z_v = [t = v] - p_v, then through the soft-cap
                g = g.to(scores.dtype)
                g = g - scores.exp() * g.sum(-1, keepdim=True)
                if ctx.softcap:
                    g = g * (1 - torch.tanh(raw.float() / ctx.softcap).pow(2))
            if grad_h is not None:
                grad_h[s:e] = (g.to(ctx.dtype) @ weight.to(ctx.dtype)).to(grad_h.dtype)
            if grad_w is not None:
                grad_w += (g.t().to(ctx.dtype) @ hidden[s:e].to(ctx.dtype)).to(grad_w.dtype)
            if grad_b is not None:
                grad_b += g.sum(0).to(grad_b.dtype)
        return grad_h, grad_w, grad_b, None, None, None, None, None


LOGIT_NORMS = ("none", "log_softmax")


def own_token_bonus(counts: torch.Tensor, input_bonus: float, tf_bonus: float) -> torch.Tensor:
    """[B, V] float: what the head adds to the activation of the text's own tokens, ``input_bonus + tf_bonus *
    log n`` where the id occurs n > 0 times at the text's pooled positions, 0 elsewhere. ``counts`` is
    ``SparsePooling.token_counts`` (a 0/1 presence mask gives the tf-less bonus). calibrate uses it too, so its
    in-memory weights are the head's."""
    n = counts.float()
    out = torch.zeros_like(n)
    if input_bonus:
        out = out + input_bonus * (n > 0).float()
    if tf_bonus:
        out = out + tf_bonus * torch.log(n.clamp(min=1.0))
    return out


class SparsePooling(nn.Module):
    """Hidden states + pooling mask -> vocabulary-sized weights, never materialising B x L x V.

    ``w[b, v] = log1p(relu(max_t s[b, t, v] + term_bias[v] - logit_shift + [n > 0] (input_bonus + tf_bonus log n)))``
    where ``s`` is the LM-head logit (``logit_norm="none"``, the paper's head) or the per-position log-probability
    ``log_softmax(logits)`` (``logit_norm="log_softmax"``), and ``n = n[b, v]`` is how often v occurs at the text's
    own pooled positions (0 for an expansion term).

    ``lm_head`` is the model's output projection (``weight`` [V, H], optional ``bias``). ``softcap`` is the final
    logit soft-capping of models that have one (Gemma 2): monotone, so applied after the max for raw logits, and
    before the softmax for log-probabilities. ``allowed`` is a bool [V] mask of ids that may carry weight (special
    tokens and padded rows are zeroed).

    Why the options: a causal LM's softmax ignores any per-position offset of its logits, so their absolute level
    means nothing to it. SmolLM2's max-pooled logits sit ~19 above zero for the whole vocabulary, and the level
    moves from position to position: a copied word can be the arg-max of its position at a logit of 19 while
    unrelated tokens reach 35 elsewhere. ``logit_shift`` moves the relu's cut (a constant offset); ``log_softmax``
    removes the per-position offset, so the max compares probabilities across positions; ``term_bias`` [V] (one
    number per term, e.g. minus the term's mean over a corpus: see csplade_pyserini.calibrate) makes each term
    count only where it is more likely than it usually is, an IDF-like prior. All three are constant over
    positions, so they commute with the max; ``term_bias`` may be trained. ``input_bonus`` lowers the cut for the
    text's own tokens (constant over positions too): a word the text contains needs less evidence than an
    expansion term, as in SPLADE's exact-match-heavy weights; 0 (the default) is the plain head. ``tf_bonus``
    adds a saturating term frequency for those tokens (max pooling alone counts a word once however often the text
    repeats it: BM25's tf is what it lacks); 0 (the default) ignores repeats.
    """

    def __init__(self, chunk_tokens: int = DEFAULT_CHUNK_TOKENS, softcap: float | None = None,
                 logit_shift: float = 0.0, logit_norm: str = "none", term_bias: torch.Tensor | None = None,
                 input_bonus: float = 0.0, tf_bonus: float = 0.0):
        super().__init__()
        self.logit_shift = float(logit_shift)
        self.input_bonus = float(input_bonus)
        self.tf_bonus = float(tf_bonus)
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {chunk_tokens}")
        if logit_norm not in LOGIT_NORMS:
            raise ValueError(f"logit_norm must be one of {LOGIT_NORMS}, got {logit_norm!r}")
        self.chunk_tokens = chunk_tokens
        self.softcap = softcap
        self.logit_norm = logit_norm
        self.term_bias = None if term_bias is None else nn.Parameter(term_bias.detach().float().clone(),
                                                                      requires_grad=False)

    @property
    def normalize(self) -> bool:
        return self.logit_norm == "log_softmax"

    def max_logits(self, hidden: torch.Tensor, pool_mask: torch.Tensor, lm_head: nn.Module,
                   groups: torch.Tensor | None = None, n_groups: int | None = None) -> torch.Tensor:
        """max over pooled positions of the pooled scores (raw logits or log-probabilities), [B, V]; -inf rows
        for texts without a pooled token. Soft-capping of raw logits and the bias/shift are not applied here.
        ``groups`` [B] (non-decreasing) maps rows to texts: the max then runs over each text's rows, [n_groups, V]."""
        b, l, h = hidden.shape
        flat = pool_mask.reshape(-1).bool()
        row_ids = torch.arange(b, device=hidden.device) if groups is None else groups.to(hidden.device)
        rows = row_ids.repeat_interleave(l)[flat]
        tokens = hidden.reshape(b * l, h)[flat]
        return ChunkedMaxLogits.apply(tokens, lm_head.weight, getattr(lm_head, "bias", None), rows,
                                      b if groups is None else n_groups,
                                      self.chunk_tokens, self.normalize, self.softcap if self.normalize else None)

    @property
    def uses_input_ids(self) -> bool:
        return bool(self.input_bonus or self.tf_bonus)

    def activations(self, m: torch.Tensor, counts: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled scores [B, V] -> pre-relu activations: soft-cap (raw logits only), + term_bias, - logit_shift,
        + input_bonus + tf_bonus * log(n) where ``counts`` (a [B, V] count n of each text's own pooled tokens, see
        ``token_counts``; a 0/1 ``presence`` mask gives the tf-less head) is > 0."""
        m = m.float()
        if self.softcap and not self.normalize:
            m = torch.tanh(m / self.softcap) * self.softcap
        if self.term_bias is not None:
            m = m + self.term_bias.to(m.device)
        if self.logit_shift:
            m = m - self.logit_shift
        if counts is not None and self.uses_input_ids:
            m = m + own_token_bonus(counts.to(m.device), self.input_bonus, self.tf_bonus)
        return m

    @staticmethod
    def token_counts(input_ids: torch.Tensor, pool_mask: torch.Tensor, vocab_size: int,
                     groups: torch.Tensor | None = None, n_groups: int | None = None) -> torch.Tensor:
        """[B, V] float: how often each id occurs at the row's pooled positions (echo: its second copy); with
        ``groups``, summed over each text's rows ([n_groups, V])."""
        out = torch.zeros(input_ids.shape[0], vocab_size, device=input_ids.device)
        out = out.scatter_add_(1, input_ids.clamp(0, vocab_size - 1), pool_mask.to(out.dtype))
        if groups is None:
            return out
        return torch.zeros(n_groups, vocab_size, device=out.device).index_add_(0, groups.to(out.device), out)

    @staticmethod
    def presence(input_ids: torch.Tensor, pool_mask: torch.Tensor, vocab_size: int) -> torch.Tensor:
        """[B, V] float: 1 where the id occurs at a pooled position of the row (echo: its second copy)."""
        return (SparsePooling.token_counts(input_ids, pool_mask, vocab_size) > 0).float()

    def forward(self, hidden, pool_mask, lm_head, allowed: torch.Tensor | None = None,
                input_ids: torch.Tensor | None = None, groups: torch.Tensor | None = None,
                n_groups: int | None = None, lead_mask: torch.Tensor | None = None) -> torch.Tensor:
        if groups is not None and n_groups is None:
            raise ValueError("groups need n_groups")
        counts = None
        if self.uses_input_ids:
            if input_ids is None:
                raise ValueError("input_bonus / tf_bonus need the input_ids")
            counts = self.token_counts(input_ids, pool_mask, lm_head.weight.shape[0], groups, n_groups)
        m = self.max_logits(hidden, pool_mask if lead_mask is None else pool_mask | lead_mask.bool(), lm_head, groups,
                            n_groups)  # lead positions join the max; own-token counts stay the text's
        w = torch.log1p(torch.relu(self.activations(m, counts)))
        # -inf rows (no pooled token) -> relu -> 0
        if allowed is not None:
            w = w * allowed.to(w.device, w.dtype)
        return w


def naive_sparse_pooling(logits: torch.Tensor, pool_mask: torch.Tensor, allowed=None, logit_norm: str = "none",
                         term_bias=None, logit_shift: float = 0.0, input_ids=None,
                         input_bonus: float = 0.0, tf_bonus: float = 0.0) -> torch.Tensor:
    """Reference: full B x L x V logits, (log_softmax), + bias - shift (+ bonus for the text's own pooled tokens),
    log1p(relu), masked max. Only for tests and benchmarks."""
    z = logits.float()
    if logit_norm == "log_softmax":
        z = torch.log_softmax(z, -1)
    if term_bias is not None:
        z = z + term_bias
    if input_bonus or tf_bonus:
        b, l, v = z.shape
        count = torch.zeros(b, v)
        for i in range(b):
            for t in range(l):
                if pool_mask[i, t]:
                    count[i, int(input_ids[i, t])] += 1.0
        bonus = torch.where(count > 0, input_bonus + tf_bonus * torch.log(count.clamp(min=1.0)), 0.0)
        z = z + bonus.unsqueeze(1)
    w = torch.log1p(torch.relu(z - logit_shift)) * pool_mask.unsqueeze(-1).float()
    w = w.amax(1)
    if allowed is not None:
        w = w * allowed.to(w.device, w.dtype)
    return w
