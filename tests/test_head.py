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
    # the head's weights come out in float32 (SparsePooling.forward), so gradients carry float32 rounding
    tol = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h1.grad, h2.grad, **tol)
    torch.testing.assert_close(head.weight.grad, head2.weight.grad, **tol)
    torch.testing.assert_close(head.bias.grad, head2.bias.grad, **tol)


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


def _naive_normalized(hidden, mask, head, term_bias=None, shift=0.0, softcap=None):
    """Reference for logit_norm='log_softmax': full B x L x V log-probabilities, -inf at unpooled positions, max."""
    z = head(hidden)
    if softcap:
        z = torch.tanh(z / softcap) * softcap
    z = torch.log_softmax(z, -1).masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
    if term_bias is not None:
        z = z + term_bias
    return torch.log1p(torch.relu(z - shift))


@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_log_softmax_head_equals_naive_forward(chunk):
    hidden, mask, head = _inputs(seed=4)
    bias = torch.randn(head.out_features, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    pool = SparsePooling(chunk, logit_norm="log_softmax", term_bias=bias, logit_shift=-3.0)
    got = pool(hidden, mask, head)
    torch.testing.assert_close(got, _naive_normalized(hidden, mask, head, bias, -3.0).to(got.dtype))
    ref = naive_sparse_pooling(head(hidden), mask, logit_norm="log_softmax", term_bias=bias, logit_shift=-3.0)
    torch.testing.assert_close(got, ref.to(got.dtype))
    assert torch.all(got[1] == 0) and (got > 0).any()


@pytest.mark.parametrize("softcap", [None, 2.0])
def test_log_softmax_head_equals_naive_gradients(softcap):
    hidden, mask, head = _inputs(seed=5)
    h1, h2 = hidden.clone().requires_grad_(True), hidden.clone().requires_grad_(True)
    head2 = nn.Linear(head.in_features, head.out_features).double()
    head2.load_state_dict(head.state_dict())
    bias = torch.randn(head.out_features, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    b1, b2 = bias.clone(), bias.clone().requires_grad_(True)
    up = torch.randn(hidden.shape[0], head.out_features, dtype=torch.float64)
    pool = SparsePooling(2, softcap=softcap, logit_norm="log_softmax", term_bias=b1, logit_shift=-4.0)
    pool.term_bias.requires_grad_(True)
    (pool(h1, mask, head) * up).sum().backward()
    (_naive_normalized(h2, mask, head2, b2, -4.0, softcap) * up).sum().backward()
    tol = dict(rtol=1e-5, atol=1e-6)  # float32 weights out of SparsePooling.forward, as above
    torch.testing.assert_close(h1.grad, h2.grad, **tol)
    torch.testing.assert_close(head.weight.grad, head2.weight.grad, **tol)
    torch.testing.assert_close(head.bias.grad, head2.bias.grad, **tol)
    torch.testing.assert_close(pool.term_bias.grad.double(), b2.grad, **tol)


def test_log_softmax_head_gradcheck():
    hidden, mask, head = _inputs(seed=6, b=3, l=4, h=3, v=6)
    mask[1] = True
    flat = mask.reshape(-1)
    rows = torch.arange(3).repeat_interleave(4)[flat]
    tokens = hidden.reshape(12, 3)[flat].clone().requires_grad_(True)
    w = head.weight.detach().clone().requires_grad_(True)
    b = head.bias.detach().clone().requires_grad_(True)
    torch.autograd.gradcheck(lambda t, w_, b_: ChunkedMaxLogits.apply(t, w_, b_, rows, 3, 2, True, 1.5),
                             (tokens, w, b))


def test_log_softmax_is_invariant_to_a_per_position_offset():
    """The reason for the option: adding any constant to one position's logits changes raw pooling, not this."""
    hidden, mask, head = _inputs(seed=7, bias=False)
    offset = torch.zeros(hidden.shape[0], hidden.shape[1], 1, dtype=hidden.dtype)
    offset[0, 2] = 50.0
    logits = head(hidden)
    shifted = naive_sparse_pooling(logits + offset, mask, logit_norm="log_softmax", logit_shift=-5.0)
    plain = naive_sparse_pooling(logits, mask, logit_norm="log_softmax", logit_shift=-5.0)
    torch.testing.assert_close(shifted, plain)
    if mask[0, 2]:
        assert not torch.allclose(naive_sparse_pooling(logits + offset, mask), naive_sparse_pooling(logits, mask))


def test_unknown_logit_norm_is_an_error():
    with pytest.raises(ValueError, match="logit_norm"):
        SparsePooling(4, logit_norm="softmax")


def test_input_bonus_equals_naive_and_only_raises_the_texts_own_tokens():
    hidden, mask, head = _inputs(seed=6)
    ids = torch.randint(0, head.out_features, mask.shape, generator=torch.Generator().manual_seed(2))
    plain = SparsePooling(3, logit_norm="log_softmax", logit_shift=-2.0)(hidden, mask, head)
    pool = SparsePooling(3, logit_norm="log_softmax", logit_shift=-2.0, input_bonus=3.0)
    got = pool(hidden, mask, head, input_ids=ids)
    ref = naive_sparse_pooling(head(hidden), mask, logit_norm="log_softmax", logit_shift=-2.0, input_ids=ids,
                               input_bonus=3.0)
    torch.testing.assert_close(got, ref.to(got.dtype))
    own = SparsePooling.presence(ids, mask, head.out_features).bool()
    for b in range(mask.shape[0]):
        assert set(own[b].nonzero().flatten().tolist()) == set(ids[b][mask[b].bool()].tolist())
    assert torch.equal(got[~own], plain[~own]), "terms the text does not contain are unchanged"
    assert torch.all(got[own] >= plain[own]) and (got[own] > plain[own]).any()
    with pytest.raises(ValueError, match="input_ids"):
        pool(hidden, mask, head)


def test_tf_bonus_equals_naive_and_rewards_repeated_own_tokens():
    hidden, mask, head = _inputs(seed=7)
    ids = torch.randint(0, 6, mask.shape, generator=torch.Generator().manual_seed(3))  # few ids: many repeats
    kw = dict(logit_norm="log_softmax", logit_shift=-2.0, input_bonus=1.5)
    once = SparsePooling(3, **kw)(hidden, mask, head, input_ids=ids)
    pool = SparsePooling(3, tf_bonus=2.0, **kw)
    got = pool(hidden, mask, head, input_ids=ids)
    ref = naive_sparse_pooling(head(hidden), mask, input_ids=ids, tf_bonus=2.0, **kw)
    torch.testing.assert_close(got, ref.to(got.dtype))
    n = SparsePooling.token_counts(ids, mask, head.out_features)
    for b in range(mask.shape[0]):
        for v in range(6):
            assert n[b, v] == int(((ids[b] == v) & mask[b].bool()).sum())
    assert torch.equal(got[n <= 1], once[n <= 1]), "a token seen once (or never) gets no tf bonus"
    assert torch.all(got[n > 1] >= once[n > 1]) and (got[n > 1] > once[n > 1]).any()
    m = pool.max_logits(hidden, mask, head)  # before the relu: exactly + tf_bonus * log(n) for the own tokens
    plain = SparsePooling(3, **kw)
    rows = mask.any(1)  # an empty row stays -inf
    torch.testing.assert_close((pool.activations(m, n) - plain.activations(m, n))[rows],
                               torch.where(n > 0, 2.0 * torch.log(n.clamp(min=1)), 0.0).float()[rows])
    with pytest.raises(ValueError, match="input_ids"):
        SparsePooling(3, tf_bonus=1.0)(hidden, mask, head)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_vectorized_forward_equals_the_segment_walk(monkeypatch, normalize, chunk):
    """The GPU forward (one index_reduce_ per chunk) gives the CPU walk's result exactly, gradients too; forced onto
    the CPU here, with chunk boundaries inside rows and a row without tokens."""
    import csplade_pyserini.modeling.head as head_mod

    hidden, mask, head = _inputs(seed=3, b=4, l=9)
    pooling = SparsePooling(4, logit_norm="log_softmax" if normalize else "none")
    outs = []
    for devices in (set(), {"cpu"}):
        monkeypatch.setattr(head_mod, "VECTORIZED_DEVICES", devices)
        monkeypatch.setattr(head_mod, "VECTORIZED_CHUNK_TOKENS", chunk)
        h = hidden.clone().requires_grad_(True)
        w = pooling(h, mask, head)
        (w * torch.arange(w.numel(), dtype=w.dtype).reshape(w.shape)).sum().backward()
        outs.append((w.detach(), h.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1])
    assert torch.all(outs[1][0][1] == 0)
