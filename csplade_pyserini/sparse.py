"""Float term weights -> the ints an Anserini impact index stores. One function for documents and queries."""
from __future__ import annotations

import torch


def quantize(weights: torch.Tensor, scale: float, top_k: int = 0):
    """Per row: keep the top_k largest weights (0 = all), int = round(w * scale), drop ints <= 0.

    Returns a list (one per row) of (token ids, ints) as Python lists, largest weight first.
    """
    w = weights.float()
    if top_k and top_k < w.shape[1]:
        vals, idx = w.topk(top_k, dim=1)
    else:
        vals, idx = w.sort(dim=1, descending=True)
    q = torch.round(vals * scale).to(torch.int64)
    out = []
    for qi, ii in zip(q, idx):
        keep = qi > 0
        out.append((ii[keep].tolist(), qi[keep].tolist()))
    return out
