"""lstmkit.nn against torch.nn with the same weights: outputs, final states and every gradient
within 1e-5 in float32, over a grid of layer configurations and input forms."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit.nn as lnn

I, H, T, B = 4, 5, 6, 3
TOL = dict(atol=1e-5, rtol=0)
LENGTHS = torch.tensor([6, 2, 4])


def make_pair(mode: str, **kwargs):
    """A torch layer and an lstmkit layer built from the same seed: identical weights."""
    torch.manual_seed(7)
    theirs = getattr(torch.nn, mode)(I, H, **kwargs)
    torch.manual_seed(7)
    ours = getattr(lnn, mode)(I, H, **kwargs)
    return theirs, ours


def make_input(form: str, batch_first: bool, g):
    x = torch.randn(T, B, I, generator=g)
    if form == "unbatched":
        return x[:, 0].clone().requires_grad_()
    if batch_first:
        x = x.transpose(0, 1).contiguous()
    x.requires_grad_()
    if form == "packed":
        return pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
    return x


def make_hx(mode: str, form: str, num_layers: int, directions: int, proj: int, g):
    LD = num_layers * directions
    shape = (LD,) if form == "unbatched" else (LD, B)
    h = torch.randn(*shape, proj or H, generator=g, requires_grad=True)
    if mode == "GRU":
        return h
    return (h, torch.randn(*shape, H, generator=g, requires_grad=True))


def flat(out):
    """(output, state) -> list of tensors, a PackedSequence reduced to its data."""
    output, state = out
    if isinstance(output, PackedSequence):
        output = output.data
    return [output] + (list(state) if isinstance(state, tuple) else [state])


GRID = [
    (mode, layers, bidi, bf, proj, form, with_hx)
    for mode, layers, bidi, bf, proj, form, with_hx in itertools.product(
        ["LSTM", "GRU"], [1, 2, 3], [False, True], [False, True], [0, 3], ["padded", "packed", "unbatched"],
        [False, True])
    if not (mode == "GRU" and proj)
]


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("mode,layers,bidi,batch_first,proj,form,with_hx", GRID)
def test_layer_matches_torch(mode, layers, bidi, batch_first, proj, form, with_hx, gen):
    kwargs = dict(num_layers=layers, bidirectional=bidi, batch_first=batch_first)
    if mode == "LSTM":
        kwargs["proj_size"] = proj
    theirs, ours = make_pair(mode, **kwargs)
    for (n1, p1), (n2, p2) in zip(theirs.named_parameters(), ours.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2), "seeded initialisation must equal torch's"

    x = make_input(form, batch_first, gen)
    hx = make_hx(mode, form, layers, 2 if bidi else 1, proj, gen) if with_hx else None
    out_t, out_o = flat(theirs(x, hx)), flat(ours(x, hx))
    for a, b in zip(out_o, out_t):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL)

    cot = [torch.randn(v.shape, generator=gen) for v in out_t]
    leaves = [x.data if isinstance(x, PackedSequence) else x]
    if hx is not None:
        leaves += list(hx) if isinstance(hx, tuple) else [hx]
    grads_t = torch.autograd.grad(sum((v * c).sum() for v, c in zip(out_t, cot)), leaves + list(theirs.parameters()))
    grads_o = torch.autograd.grad(sum((v * c).sum() for v, c in zip(out_o, cot)), leaves + list(ours.parameters()))
    for a, b in zip(grads_o, grads_t):
        torch.testing.assert_close(a, b, **TOL)


def test_packed_output_keeps_the_input_layout(gen):
    theirs, ours = make_pair("LSTM", bidirectional=True)
    packed = pack_padded_sequence(torch.randn(T, B, I, generator=gen), LENGTHS, enforce_sorted=False)
    out_t, _ = theirs(packed)
    out_o, _ = ours(packed)
    assert torch.equal(out_o.batch_sizes, out_t.batch_sizes)
    assert torch.equal(out_o.sorted_indices, out_t.sorted_indices)
    assert torch.equal(out_o.unsorted_indices, out_t.unsorted_indices)


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell"])
@pytest.mark.parametrize("batched", [True, False])
def test_cell_matches_torch(mode, batched, gen):
    torch.manual_seed(3)
    theirs = getattr(torch.nn, mode)(I, H)
    torch.manual_seed(3)
    ours = getattr(lnn, mode)(I, H)
    for (n1, p1), (n2, p2) in zip(theirs.named_parameters(), ours.named_parameters()):
        assert n1 == n2 and torch.equal(p1, p2)
    x = torch.randn(B, I, generator=gen) if batched else torch.randn(I, generator=gen)
    shape = (B, H) if batched else (H,)
    hx = torch.randn(shape, generator=gen) if mode == "GRUCell" else (torch.randn(shape, generator=gen),
                                                                       torch.randn(shape, generator=gen))
    for state in (None, hx):
        out_t, out_o = theirs(x, state), ours(x, state)
        out_t = out_t if isinstance(out_t, tuple) else (out_t,)
        out_o = out_o if isinstance(out_o, tuple) else (out_o,)
        for a, b in zip(out_o, out_t):
            torch.testing.assert_close(a, b, **TOL)
        loss_t = sum(v.sum() for v in out_t)
        loss_o = sum(v.sum() for v in out_o)
        for a, b in zip(torch.autograd.grad(loss_o, list(ours.parameters())),
                        torch.autograd.grad(loss_t, list(theirs.parameters()))):
            torch.testing.assert_close(a, b, **TOL)


@pytest.mark.filterwarnings("ignore:LSTM with projections")
@pytest.mark.parametrize("mode,kwargs", [
    ("LSTM", dict(num_layers=2, bidirectional=True, proj_size=2, batch_first=True)),
    ("LSTM", dict(bias=False)),
    ("GRU", dict(num_layers=2, bidirectional=True)),
])
def test_from_torch_and_to_torch_change_no_output(mode, kwargs, gen):
    torch.manual_seed(11)
    theirs = getattr(torch.nn, mode)(I, H, **kwargs)
    ours = getattr(lnn, mode).from_torch(theirs)
    back = ours.to_torch()
    assert type(back) is type(theirs)
    for (n1, p1), (n2, p2), (n3, p3) in zip(theirs.named_parameters(), ours.named_parameters(),
                                            back.named_parameters()):
        assert n1 == n2 == n3 and torch.equal(p1, p2) and torch.equal(p1, p3)
    x = torch.randn(B, T, I, generator=gen) if kwargs.get("batch_first") else torch.randn(T, B, I, generator=gen)
    for a, b, c in zip(flat(theirs(x)), flat(ours(x)), flat(back(x))):
        assert torch.equal(a, c)                 # the round trip is exact
        torch.testing.assert_close(b, a, **TOL)  # lstmkit's own run agrees with torch


@pytest.mark.parametrize("mode", ["LSTMCell", "GRUCell"])
def test_cells_convert(mode, gen):
    theirs = getattr(torch.nn, mode)(I, H)
    ours = getattr(lnn, mode).from_torch(theirs)
    back = ours.to_torch()
    for p1, p2 in zip(theirs.parameters(), back.parameters()):
        assert torch.equal(p1, p2)
    x = torch.randn(B, I, generator=gen)
    a, b = theirs(x), ours(x)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        torch.testing.assert_close(v, u, **TOL)


def test_variants_refuse_to_convert_to_torch():
    with pytest.raises(ValueError, match="peephole"):
        lnn.LSTM(I, H, cell="peephole").to_torch()
    with pytest.raises(ValueError, match="relu"):
        lnn.GRU(I, H, activation="relu").to_torch()
    with pytest.raises(TypeError, match="torch.nn.LSTM"):
        lnn.LSTM.from_torch(torch.nn.GRU(I, H))


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_float64_and_eval_match_torch(mode, gen):
    theirs, ours = make_pair(mode, num_layers=2, dropout=0.5, bidirectional=True)
    theirs, ours = theirs.double().eval(), ours.double().eval()
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        for a, b in zip(flat(ours(x)), flat(theirs(x))):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
