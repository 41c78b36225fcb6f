import pytest
import torch
from torch import nn

from csplade_pyserini.modeling.head import ChunkedMaxLogits, SparsePooling, naive_sparse_pooling


def _inputs(seed=0, b=3, l=7, h=8, v=50, bias=True):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(b, l, h, generator=g, dtype=torch.float64)
    head = nn.Linear(h, v, bias=bias).double()
    with torch.no_grad():
        head.weight.copy_(torch.randn(v, h, generator=g))
        if bias:
            head.bias.copy_(torch.randn(v, generator=g))
    mask = torch.rand(b, l, generator=g) > 0.3
    mask[1] = False  # a row with no pooled token (an empty text)
    mask[2, 0] = True
    return hidden, mask, head


@pytest.mark.parametrize("chunk", [1, 3, 5, 1000])
def test_chunked_head_equals_naive_forward(chunk):
    hidden, mask, head = _inputs()
    got = SparsePooling(chunk)(hidden, mask, head)
    ref = naive_sparse_pooling(head(hidden), mask)
    torch.testing.assert_close(got, ref.to(got.dtype))
    assert torch.all(got[1] == 0), "a row without pooled positions must be all zero"


@pytest.mark.parametrize("chunk", [2, 4, 1000])
def test_chunked_head_equals_naive_gradients(chunk):
    hidden, mask, head = _inputs(seed=1)
    h1 = hidden.clone().requires_grad_(True)
    h2 = hidden.clone().requires_grad_(True)
    head2 = nn.Linear(head.in_features, head.out_features).double()
    head2.load_state_dict(head.state_dict())
    up = torch.randn(hidden.shape[0], head.out_features, dtype=torch.float64)

    (SparsePooling(chunk)(h1, mask, head) * up).sum().backward()
    # naive reference: -inf at unpooled positions then max of raw logits (same function, no B x L x V saving)
    logits = head2(h2).masked_fill(~mask.unsqueeze(-1), float("-inf"))
    (torch.log1p(torch.relu(logits.amax(1))) * up).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad)
    torch.testing.assert_close(head.weight.grad, head2.weight.grad)
    torch.testing.assert_close(head.bias.grad, head2.bias.grad)


def test_chunked_head_gradcheck():
    hidden, mask, head = _inputs(seed=2, b=3, l=4, h=3, v=6)
    mask[1] = True  # gradcheck needs finite outputs everywhere
    flat = mask.reshape(-1)
    rows = torch.arange(3).repeat_interleave(4)[flat]
    tokens = hidden.reshape(12, 3)[flat].clone().requires_grad_(True)
    w = head.weight.detach().clone().requires_grad_(True)
    b = head.bias.detach().clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda t, w_, b_: ChunkedMaxLogits.apply(t, w_, b_, rows, 3, 2),
                             (tokens, w, b))


def test_head_never_materialises_more_than_a_chunk(monkeypatch):
    """Every LM-head matmul sees at most chunk positions, forward and backward: at most chunk x V logits exist."""
    from csplade_pyserini.modeling import head as head_mod

    shapes = []
    real = head_mod._linear

    def spy(x, w, b, dtype):
        out = real(x, w, b, dtype)
        shapes.append(tuple(out.shape))
        return out

    monkeypatch.setattr(head_mod, "_linear", spy)
    hidden, mask, head = _inputs(b=16, l=64, h=8, v=4000, bias=False)
    hidden.requires_grad_(True)
    SparsePooling(32)(hidden, mask, head).sum().backward()
    n_pooled = int(mask.sum())
    assert shapes and max(s[0] for s in shapes) <= 32 and all(s[1] == 4000 for s in shapes)
    assert sum(s[0] for s in shapes) == 2 * n_pooled  # each pooled position: once forward, once recomputed


def test_logit_shift_equals_shifted_naive_and_sparsifies():
    hidden, mask, head = _inputs(seed=3)
    plain = SparsePooling(4)(hidden, mask, head)
    shifted = SparsePooling(4, logit_shift=1.5)(hidden, mask, head)
    ref = naive_sparse_pooling(head(hidden) - 1.5, mask)
    torch.testing.assert_close(shifted, ref.to(shifted.dtype))
    assert (shifted > 0).sum() < (plain > 0).sum()
