"""lstmkit.nn layers with every cell and option: the layer with hand-written BPTT against the
same layer running the reference through autograd, and lengths against separate runs."""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmkit.nn as lnn
from lstmkit import ops
from lstmkit.ops import reference

I, H, T, B = 3, 4, 5, 3
LENGTHS = torch.tensor([5, 2, 3])


# ops.lstm / ops.gru on the reference; reversed_input and out as ops defines them: run on x.flip(0),
# y flipped back; y copied into out and returned as y.
def reference_lstm(x, h0, c0, weights, *, cell, reversed_input=False, out=None, **options):
    if reversed_input:
        y, state = reference.lstm(x.flip(0), h0, c0, weights, cell, **options)
        y = y.flip(0)
    else:
        y, state = reference.lstm(x, h0, c0, weights, cell, **options)
    return (y if out is None else out.copy_(y)), state


def reference_gru(x, h0, weights, reversed_input=False, out=None, **options):
    if reversed_input:
        y, h = reference.gru_from_weights(x.flip(0), h0, weights, **options)
        y = y.flip(0)
    else:
        y, h = reference.gru_from_weights(x, h0, weights, **options)
    return (y if out is None else out.copy_(y)), h


def build(mode, cell, **kwargs):
    torch.manual_seed(0)
    if mode == "GRU":
        return lnn.GRU(I, H, **kwargs).double()
    return lnn.LSTM(I, H, cell=cell, **kwargs).double()


def run_and_grad(layer, x, lengths, seed=42):
    torch.manual_seed(seed)           # the same dropout / zoneout draws in both runs
    y, state = layer(x, lengths=lengths)
    state = state if isinstance(state, tuple) else (state,)
    loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum()
    loss = loss + sum((s * 0.3).sum() for s in state)
    grads = torch.autograd.grad(loss, [x] + list(layer.parameters()))
    return [y, *state], grads


CONFIGS = [c for c in itertools.product(
    [("LSTM", c) for c in ops.CELLS] + [("GRU", None)],
    [0, 2],                       # proj_size
    [False, True],                # bidirectional
    [1, 2],                       # num_layers
    [None, LENGTHS],
    [dict(), dict(recurrent_dropout=0.3), dict(zoneout=(0.2, 0.1)), dict(dropout=0.4, recurrent_dropout=0.2, zoneout=0.15)],
) if not (c[0][0] == "GRU" and c[1])]   # torch.nn.GRU has no proj_size


@pytest.mark.parametrize("mode_cell,proj,bidi,layers,lengths,regs", CONFIGS)
def test_layer_with_hand_bptt_equals_layer_on_reference(mode_cell, proj, bidi, layers, lengths, regs, monkeypatch):
    mode, cell = mode_cell
    if mode == "GRU" and "zoneout" in regs:
        regs = dict(regs, zoneout=0.2)   # the GRU has one state, so one rate
    extra = dict(proj_size=proj) if mode == "LSTM" else {}
    layer = build(mode, cell, bidirectional=bidi, num_layers=layers, **extra, **regs)
    layer.train()
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    outs, grads = run_and_grad(layer, x, lengths)
    monkeypatch.setattr(ops, "lstm", reference_lstm)
    monkeypatch.setattr(ops, "gru", reference_gru)
    ref_outs, ref_grads = run_and_grad(layer, x, lengths)
    for a, b in zip(outs + list(grads), ref_outs + list(ref_grads)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("mode_cell", [("LSTM", c) for c in ops.CELLS] + [("GRU", None)])
@pytest.mark.parametrize("bidi", [False, True])
def test_lengths_equal_running_each_sequence_alone(mode_cell, bidi):
    """The state stops at each sequence's end and outputs after it are zero; a backward
    direction starts at each sequence's own last step."""
    mode, cell = mode_cell
    kwargs = dict(num_layers=2, bidirectional=bidi, zoneout=0.2, recurrent_dropout=0.3)
    layer = build(mode, cell, proj_size=2, **kwargs) if mode == "LSTM" else build(mode, cell, **kwargs)
    layer.eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        y, state = layer(x, lengths=LENGTHS)
        state = state if isinstance(state, tuple) else (state,)
        for b, n in enumerate(LENGTHS.tolist()):
            y_b, state_b = layer(x[:n, b: b + 1])
            state_b = state_b if isinstance(state_b, tuple) else (state_b,)
            torch.testing.assert_close(y[:n, b: b + 1], y_b, atol=1e-12, rtol=0)
            assert torch.all(y[n:, b] == 0)
            for s, s_b in zip(state, state_b):
                torch.testing.assert_close(s[:, b: b + 1], s_b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode_cell", [("LSTM", c) for c in ops.CELLS] + [("GRU", None)])
@pytest.mark.parametrize("proj", [0, 2])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [None, LENGTHS])
def test_a_bidirectional_layer_without_gradient_equals_one_with_it(mode_cell, proj, layers, lengths):
    """Without gradient the two directions write their halves of each layer's output in place
    (no torch.cat); with gradient they are concatenated. Both give the same outputs and states."""
    mode, cell = mode_cell
    if mode == "GRU" and proj:
        pytest.skip("the GRU has no projection")
    extra = dict(proj_size=proj) if mode == "LSTM" else {}
    layer = build(mode, cell, bidirectional=True, num_layers=layers, **extra).eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        y, state = layer(x, lengths=lengths)
    y_cat, state_cat = layer(x, lengths=lengths)
    assert y_cat.requires_grad and not y.requires_grad
    torch.testing.assert_close(y, y_cat.detach(), atol=1e-12, rtol=0)
    for s, s_cat in zip(state if isinstance(state, tuple) else (state,),
                        state_cat if isinstance(state_cat, tuple) else (state_cat,)):
        torch.testing.assert_close(s, s_cat.detach(), atol=1e-12, rtol=0)


def test_regularisers_act_in_training_only():
    layer = lnn.LSTM(I, H, num_layers=2, dropout=0.5, recurrent_dropout=0.5, zoneout=0.3)
    x = torch.randn(T, B, I)
    layer.train()
    torch.manual_seed(1)
    y1, _ = layer(x)
    torch.manual_seed(2)
    y2, _ = layer(x)
    torch.manual_seed(1)
    y1_again, _ = layer(x)
    assert not torch.allclose(y1, y2), "training draws new masks"
    assert torch.equal(y1, y1_again), "the same seed gives the same run"
    layer.eval()
    with torch.no_grad():
        e1, _ = layer(x)
        e2, _ = layer(x)
    assert torch.equal(e1, e2), "eval is deterministic"


def test_zoneout_at_inference_is_the_expectation():
    """At inference zoneout keeps z of the previous state: h_t = z h_{t-1} + (1 - z) h~_t."""
    torch.manual_seed(0)
    layer = lnn.GRU(I, H, zoneout=0.25).eval()
    plain = lnn.GRU(I, H).eval()
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(1, B, I)
    h0 = torch.randn(1, B, H)
    with torch.no_grad():
        _, h = layer(x, h0)
        _, h_plain = plain(x, h0)
    torch.testing.assert_close(h, 0.25 * h0 + 0.75 * h_plain)


def test_no_grad_and_eval_keep_working():
    layer = lnn.LSTM(I, H, cell="layernorm", bidirectional=True).eval()
    with torch.no_grad():
        y, (h, c) = layer(torch.randn(T, B, I))
    assert y.shape == (T, B, 2 * H) and not y.requires_grad
    assert h.shape == c.shape == (2, B, H)


def test_trace_shapes_follow_the_input_layout():
    layer = lnn.LSTM(I, H, num_layers=2, bidirectional=True, batch_first=True, proj_size=2)
    tr = layer.trace(torch.randn(B, T, I), lengths=LENGTHS)
    assert tr["f"].shape == (4, B, T, H) and tr["h"].shape == (4, B, T, 2)
    assert torch.all(tr["f"][:, 1, 2:] == 0), "zero past each sequence's length"
    gru_tr = lnn.GRU(I, H).trace(torch.randn(T, I))
    assert set(gru_tr) == {"r", "z", "n", "h"} and gru_tr["z"].shape == (1, T, H)


def test_trace_backward_direction_is_in_input_time_order():
    layer = lnn.LSTM(I, H, bidirectional=True).double().eval()
    x = torch.randn(T, 1, I, dtype=torch.float64)
    tr = layer.trace(x)
    with torch.no_grad():
        y, _ = layer(x)
    torch.testing.assert_close(tr["h"][1, :, 0], y[:, 0, H:], atol=1e-12, rtol=0)
