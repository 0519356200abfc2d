"""The hand-written BPTT (ops.lstm / ops.gru) against autograd through the reference equations,
float64, for every cell, option and length pattern; and torch.autograd.gradcheck on it."""

from __future__ import annotations

import itertools

import pytest
import torch

from lstmkit import ops
from lstmkit.ops import reference

from factories import random_gru_weights, random_lstm_weights

T, B, I, H = 5, 3, 4, 6
TOL = 1e-8
ACTIVATION_PAIRS = [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "sigmoid"), ("sigmoid", "tanh")]
OPTIONS = ["plain", "lengths", "full_lengths", "recurrent_dropout", "zoneout_train", "zoneout_eval", "all"]


def make_options(option: str, P: int, hidden: int, dtype, g) -> dict:
    """The keyword options of one grid point; masks drawn from the test's seeded generator."""
    kw = {}
    if option in ("lengths", "all"):
        kw["lengths"] = torch.tensor([T, 2, 1])
    if option == "full_lengths":
        kw["lengths"] = torch.tensor([T, T, T])
    if option in ("recurrent_dropout", "all"):
        kw["recurrent_mask"] = (torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7
    if option in ("zoneout_train", "all"):
        kw["zoneout_h"] = (torch.rand(T, B, P, generator=g) < 0.3).to(dtype)
        kw["zoneout_c"] = (torch.rand(T, B, hidden, generator=g) < 0.3).to(dtype)
    if option == "zoneout_eval":
        kw["zoneout_h"] = torch.full((T, B, P), 0.25, dtype=dtype)
        kw["zoneout_c"] = torch.full((T, B, hidden), 0.1, dtype=dtype)
    return kw


def max_abs_diff(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def grads_of(outputs, cotangents, inputs):
    loss = sum((o * c).sum() for o, c in zip(outputs, cotangents))
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("cell,proj,option,acts", list(itertools.product(ops.CELLS, [0, 3], OPTIONS, ACTIVATION_PAIRS)))
def test_lstm_bptt_matches_autograd_through_reference(cell, proj, option, acts, gen):
    dtype = torch.float64
    P = proj or H
    w = random_lstm_weights(cell, I, H, proj, generator=gen)
    x = torch.randn(T, B, I, dtype=dtype, generator=gen, requires_grad=True)
    h0 = torch.randn(B, P, dtype=dtype, generator=gen, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, generator=gen, requires_grad=True)
    kw = dict(activation=acts[0], recurrent_activation=acts[1], **make_options(option, P, H, dtype, gen))

    y_ref, (h_ref, c_ref) = reference.lstm(x, h0, c0, w, cell, **kw)
    y, (h, c) = ops.lstm(x, h0, c0, w, cell=cell, **kw)
    assert max_abs_diff((y, h, c), (y_ref, h_ref, c_ref)) < TOL

    inputs = [x, h0, c0] + [t for t in w if t is not None]
    cot = [torch.randn(v.shape, dtype=dtype, generator=gen) for v in (y, h, c)]
    g_ref = grads_of((y_ref, h_ref, c_ref), cot, inputs)
    g = grads_of((y, h, c), cot, inputs)
    assert max_abs_diff(g, g_ref) < TOL


@pytest.mark.parametrize("cell", ops.CELLS)
def test_lstm_without_bias(cell, gen):
    w = random_lstm_weights(cell, I, H, bias=False, generator=gen)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen, requires_grad=True)
    h0 = torch.zeros(B, H, dtype=torch.float64)
    c0 = torch.zeros(B, H, dtype=torch.float64)
    y_ref, _ = reference.lstm(x, h0, c0, w, cell)
    y, _ = ops.lstm(x, h0, c0, w, cell=cell)
    inputs = [x] + [t for t in w if t is not None]
    assert max_abs_diff(torch.autograd.grad(y.sum(), inputs), torch.autograd.grad(y_ref.sum(), inputs)) < TOL


@pytest.mark.parametrize("option,acts", list(itertools.product(OPTIONS, ACTIVATION_PAIRS)))
def test_gru_bptt_matches_autograd_through_reference(option, acts, gen):
    dtype = torch.float64
    w = random_gru_weights(I, H, generator=gen)
    x = torch.randn(T, B, I, dtype=dtype, generator=gen, requires_grad=True)
    h0 = torch.randn(B, H, dtype=dtype, generator=gen, requires_grad=True)
    kw = make_options(option, H, H, dtype, gen)
    kw.pop("zoneout_c", None)
    kw.update(activation=acts[0], recurrent_activation=acts[1])

    y_ref, h_ref = reference.gru_from_weights(x, h0, w, **kw)
    y, h = ops.gru(x, h0, w, **kw)
    assert max_abs_diff((y, h), (y_ref, h_ref)) < TOL

    inputs = [x, h0, *w]
    cot = [torch.randn(v.shape, dtype=dtype, generator=gen) for v in (y, h)]
    assert max_abs_diff(grads_of((y, h), cot, inputs), grads_of((y_ref, h_ref), cot, inputs)) < TOL


# gradcheck: finite differences, so smooth activations only (relu and hard_sigmoid have kinks).
@pytest.mark.parametrize("cell,proj,option", list(itertools.product(ops.CELLS, [0, 2], ["plain", "all", "zoneout_eval"])))
def test_lstm_gradcheck(cell, proj, option, gen):
    Ts, Bs, Is, Hs = 3, 2, 2, 3
    P = proj or Hs
    w = random_lstm_weights(cell, Is, Hs, proj, generator=gen)
    x = torch.randn(Ts, Bs, Is, dtype=torch.float64, generator=gen, requires_grad=True)
    h0 = torch.randn(Bs, P, dtype=torch.float64, generator=gen, requires_grad=True)
    c0 = torch.randn(Bs, Hs, dtype=torch.float64, generator=gen, requires_grad=True)
    kw = {}
    if option == "all":
        kw = dict(lengths=torch.tensor([3, 1]),
                  recurrent_mask=(torch.rand(Bs, P, generator=gen) > 0.3).double() / 0.7,
                  zoneout_h=(torch.rand(Ts, Bs, P, generator=gen) < 0.3).double(),
                  zoneout_c=(torch.rand(Ts, Bs, Hs, generator=gen) < 0.3).double())
    elif option == "zoneout_eval":
        kw = dict(zoneout_h=torch.full((Ts, Bs, P), 0.2, dtype=torch.float64),
                  zoneout_c=torch.full((Ts, Bs, Hs), 0.3, dtype=torch.float64))
    present = [t for t in w if t is not None]
    fields = [k for k, t in zip(ops.LSTMWeights._fields, w) if t is not None]

    def run(x, h0, c0, *params):
        weights = ops.LSTMWeights(**dict(zip(fields, params)))
        y, (h, c) = ops.lstm(x, h0, c0, weights, cell=cell, **kw)
        return y, h, c

    assert torch.autograd.gradcheck(run, (x, h0, c0, *present), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("option", ["plain", "all"])
def test_gru_gradcheck(option, gen):
    Ts, Bs, Is, Hs = 3, 2, 2, 3
    w = random_gru_weights(Is, Hs, generator=gen)
    x = torch.randn(Ts, Bs, Is, dtype=torch.float64, generator=gen, requires_grad=True)
    h0 = torch.randn(Bs, Hs, dtype=torch.float64, generator=gen, requires_grad=True)
    kw = {}
    if option == "all":
        kw = dict(lengths=torch.tensor([3, 2]),
                  recurrent_mask=(torch.rand(Bs, Hs, generator=gen) > 0.3).double() / 0.7,
                  zoneout_h=(torch.rand(Ts, Bs, Hs, generator=gen) < 0.3).double())

    def run(x, h0, *params):
        return ops.gru(x, h0, ops.GRUWeights(*params), **kw)

    assert torch.autograd.gradcheck(run, (x, h0, *w), eps=1e-6, atol=1e-6)


def test_inference_path_equals_training_path(gen):
    """Under no_grad the op stores nothing and takes lstm_forward(store=False); same numbers."""
    w = random_lstm_weights("peephole", I, H, 3, generator=gen)
    x = torch.randn(T, B, I, dtype=torch.float64, generator=gen)
    h0, c0 = torch.zeros(B, 3, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
    y_train, _ = ops.lstm(x, h0, c0, w, cell="peephole", lengths=torch.tensor([5, 3, 2]))
    assert y_train.requires_grad
    with torch.no_grad():
        y_infer, _ = ops.lstm(x, h0, c0, w, cell="peephole", lengths=torch.tensor([5, 3, 2]))
    assert not y_infer.requires_grad
    assert torch.equal(y_train.detach(), y_infer)


@pytest.mark.parametrize("dx_in_place", [False, True])
def test_batch_chunks_join_into_one_backward_result(dx_in_place, gen):
    """join_chunks, after a backward that ran the batch in chunks: dx and the states' gradients
    are the chunks' rows in order (dx as the loops wrote it in place, where they did), and each
    weight's gradient is the chunks' sum; absent gradients stay absent."""
    from lstmkit.ops.bptt_util import join_chunks
    T, I, H, rows = 3, 4, 5, (2, 3)
    dx = torch.randn(T, sum(rows), I, generator=gen, dtype=torch.float64)
    dh0 = torch.randn(sum(rows), H, generator=gen, dtype=torch.float64)
    w = [torch.randn(H, I, generator=gen, dtype=torch.float64) for _ in rows]
    expected_w = w[0] + w[1]
    parts = [(dx[:, b0:b0 + n], dh0[b0:b0 + n], dict(w=w[c], b=None))
             for c, (b0, n) in enumerate(((0, rows[0]), (rows[0], rows[1])))]
    joined_dx, joined_dh0, grads = join_chunks(parts, (1, -2), dx if dx_in_place else None)
    assert (joined_dx is dx) == dx_in_place
    torch.testing.assert_close(joined_dx, dx, rtol=0, atol=0)
    torch.testing.assert_close(joined_dh0, dh0, rtol=0, atol=0)
    torch.testing.assert_close(grads["w"], expected_w, rtol=0, atol=0)
    assert grads["b"] is None
