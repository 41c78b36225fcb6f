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
    hidden, mask, head = _inputs(seed=2, b=2, l=4, h=3, v=6)
    flat = mask.reshape(-1)
    rows = torch.arange(2).repeat_interleave(4)[flat]
    tokens = hidden.reshape(8, 3)[flat].clone().requires_grad_(True)
    w = head.weight.detach().clone().requires_grad_(True)
    b = head.bias.detach().clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda t, w_, b_: ChunkedMaxLogits.apply(t, w_, b_, rows, 2, 2).clamp_min(-1e3),
                             (tokens, w, b))


def test_head_memory_is_bounded_by_chunk():
    """Only chunk x V logits exist at once: the peak extra allocation does not grow with B x L."""
    import tracemalloc  # noqa: F401  (CPU allocations of torch are not traced; use the profiler's view instead)

    hidden, mask, head = _inputs(b=16, l=64, h=8, v=4000, bias=False)
    mask[:] = True
    with torch.profiler.profile(profile_memory=True, activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        SparsePooling(32)(hidden, mask, head)
    peak_chunked = max(e.cpu_memory_usage for e in prof.key_averages())
    with torch.profiler.profile(profile_memory=True, activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        naive_sparse_pooling(head(hidden), mask)
    peak_naive = max(e.cpu_memory_usage for e in prof.key_averages())
    full = 16 * 64 * 4000 * 8  # B x L x V float64 bytes
    assert peak_naive >= full
    assert peak_chunked < full / 8
