"""The fused C++ loops (ops/cpu) and the plain-torch loops against the reference equations on
randomised configurations (hypothesis), and the streaming step() against forward()."""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lstmkit.nn as lnn
from lstmkit import ops
from lstmkit.ops import cpu, gru_steps, lstm_steps, reference
from lstmkit.ops.gru_bptt import GRUFunction, gru_backward, gru_forward
from lstmkit.ops.lstm_bptt import LSTMFunction, lstm_backward, lstm_forward

from factories import random_gru_weights, random_lstm_weights

FORCED_PLAIN = os.environ.get("LSTMKIT_BACKEND", "").lower() == "torch"
IMPLEMENTATIONS = {"plain": (lstm_steps, gru_steps), "fused": (cpu.lstm_steps, cpu.gru_steps)}
TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}
# Layer norm's gradients carry 1 / std of its inputs; through it float32 autograd itself strays
# up to 6e-4 (relative) from the float64 answer on these sizes, so its float32 bound is looser.
LAYERNORM_FP32_TOL = dict(atol=1e-5, rtol=1e-4)


def test_the_fused_kernels_build():
    if FORCED_PLAIN:
        pytest.skip("LSTMKIT_BACKEND=torch asks for the plain-torch loops")
    assert cpu.load() is not None, f"the C++ kernels did not build: {cpu.build_error()}"
    assert ops.backend() == "cpu-fused"


def implementations():
    return ["plain"] if FORCED_PLAIN else ["plain", "fused"]


ACTIVATIONS = [("tanh", "sigmoid"), ("relu", "hard_sigmoid"), ("linear", "sigmoid"), ("sigmoid", "tanh")]
# relu and hard_sigmoid have kinks: where the layer norm puts pre-activations within float32's
# rounding of one, two float32 computations may take different sides and their gradients then
# differ by O(1). The layernorm cell meets them in float64 only.
SMOOTH_ACTIVATIONS = [("tanh", "sigmoid"), ("linear", "sigmoid"), ("sigmoid", "tanh")]


@st.composite
def configurations(draw):
    cell = draw(st.sampled_from(list(ops.CELLS) + ["gru"]))
    # A layer norm over one or two units is degenerate (its output is constant or +-1, its
    # gradient noise divided by the spread of its inputs): the layernorm cell gets H >= 3 and
    # no projection below 3 units.
    ln = cell == "layernorm"
    H = draw(st.integers(3 if ln else 1, 6))
    T = draw(st.integers(1, 7))
    B = draw(st.integers(1, 5))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    return dict(
        cell=cell,
        T=T, B=B, I=draw(st.integers(1, 6)), H=H,
        proj=draw(st.sampled_from([0] + list(range(3 if ln else 1, H)))),
        bias=draw(st.booleans()),
        lengths=draw(st.one_of(st.none(), st.lists(st.integers(1, T), min_size=B, max_size=B))),
        recurrent_dropout=draw(st.booleans()),
        zoneout=draw(st.sampled_from([None, "train", "eval"])),
        acts=draw(st.sampled_from(SMOOTH_ACTIVATIONS if ln and dtype == torch.float32 else ACTIVATIONS)),
        dtype=dtype,
        noncontiguous=draw(st.booleans()),
        seed=draw(st.integers(0, 2**31 - 1)),
        impl=draw(st.sampled_from(implementations())),
    )


def as_float64(t):
    return None if t is None else t.detach().double().requires_grad_(t.requires_grad)


def assert_as_exact_as_autograd(got, exact, autograd_same_dtype, dtype, tol):
    """got within the fixed tolerance of the float64 answer, or no further from it than 10 times
    torch autograd's own result in the same dtype. The second clause is for the layer norm:
    over few units it is ill-conditioned (its gradient grows as 1 / spread of its inputs), and
    no float32 computation, autograd's included, stays within 1e-5 of the exact gradient."""
    for a, b, r in zip(got, exact, autograd_same_dtype):
        b = b.to(dtype)
        err = (a - b).abs().max().item() if a.numel() else 0.0
        bound = tol["atol"] + tol["rtol"] * (b.abs().max().item() if b.numel() else 0.0)
        if err > bound:
            autograd_err = (r - b).abs().max().item()
            assert err <= 10 * autograd_err, (
                f"error {err:.3g} against the float64 answer, above both {bound:.3g} and 10 times the error "
                f"of autograd through the reference in {dtype} ({autograd_err:.3g})")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_loops_match_the_reference(cfg):
    """Outputs and every gradient of the hand-written passes, with the fused or the plain
    loops, against autograd through the reference equations run in float64 on the same values
    (the exact answer, to fp32's eyes)."""
    g = torch.Generator().manual_seed(cfg["seed"])
    dtype, T, B, I, H = cfg["dtype"], cfg["T"], cfg["B"], cfg["I"], cfg["H"]
    gru = cfg["cell"] == "gru"
    P = H if gru else (cfg["proj"] or H)
    if gru:
        w = random_gru_weights(I, H, cfg["bias"], dtype, g)
    else:
        w = random_lstm_weights(cfg["cell"], I, H, cfg["proj"], cfg["bias"], dtype, g)
    if cfg["noncontiguous"]:   # x as a transposed view, as batch_first input arrives
        x = torch.randn(B, T, I, dtype=dtype, generator=g).transpose(0, 1).requires_grad_()
    else:
        x = torch.randn(T, B, I, dtype=dtype, generator=g, requires_grad=True)
    h0 = torch.randn(B, P, dtype=dtype, generator=g, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, generator=g, requires_grad=True)
    lengths = None if cfg["lengths"] is None else torch.tensor(cfg["lengths"])
    rmask = (torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7 if cfg["recurrent_dropout"] else None
    zh = zc = None
    if cfg["zoneout"] == "train":
        zh = (torch.rand(T, B, P, generator=g) < 0.3).to(dtype)
        zc = (torch.rand(T, B, H, generator=g) < 0.3).to(dtype)
    elif cfg["zoneout"] == "eval":
        zh = torch.tensor(0.2, dtype=dtype).expand(T, B, P)
        zc = torch.tensor(0.1, dtype=dtype).expand(T, B, H)
    act, ract = cfg["acts"]
    opts = dict(activation=act, recurrent_activation=ract, lengths=lengths, recurrent_mask=rmask, zoneout_h=zh)
    keep_h, keep_c, out_mask = ops.step_masks(T, lengths, zh, zc, x)
    steps = IMPLEMENTATIONS[cfg["impl"]][1 if gru else 0]
    x64, h64, c64 = as_float64(x), as_float64(h0), as_float64(c0)
    w64 = type(w)(*(as_float64(t) for t in w))
    opts64 = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in opts.items()}
    if gru:
        expected = reference.gru_from_weights(x64, h64, w64, **opts64)
        same_dtype = reference.gru_from_weights(x, h0, w, **opts)
        got = GRUFunction.apply(x, h0, rmask, keep_h, out_mask, (act, ract, steps), *w)
        inputs, inputs64 = [x, h0], [x64, h64]
    else:
        expected = reference.lstm(x64, h64, c64, w64, cfg["cell"], zoneout_c=as_float64(zc), **opts64)
        expected = (expected[0], *expected[1])
        same_dtype = reference.lstm(x, h0, c0, w, cfg["cell"], zoneout_c=zc, **opts)
        same_dtype = (same_dtype[0], *same_dtype[1])
        got = LSTMFunction.apply(x, h0, c0, rmask, keep_h, keep_c, out_mask, (cfg["cell"], act, ract, steps), *w)
        inputs, inputs64 = [x, h0, c0], [x64, h64, c64]
    inputs += [t for t in w if t is not None]
    inputs64 += [t for t in w64 if t is not None]
    tol = LAYERNORM_FP32_TOL if cfg["cell"] == "layernorm" and dtype == torch.float32 else TOL[dtype]
    assert_as_exact_as_autograd(got, expected, same_dtype, dtype, tol)
    cot = [torch.randn(v.shape, dtype=torch.float64, generator=g) for v in got]
    loss = lambda outs: sum((v * c.to(v.dtype)).sum() for v, c in zip(outs, cot))  # noqa: E731
    assert_as_exact_as_autograd(torch.autograd.grad(loss(got), inputs),
                                torch.autograd.grad(loss(expected), inputs64),
                                torch.autograd.grad(loss(same_dtype), inputs), dtype, tol)


@pytest.mark.parametrize("impl", implementations())
@pytest.mark.parametrize("cell", list(ops.CELLS) + ["gru"])
def test_inference_loops_store_nothing_and_agree(impl, cell, gen):
    """store=False (the no_grad path) gives the training path's outputs and keeps no activations."""
    w = random_gru_weights(3, 4, generator=gen) if cell == "gru" else random_lstm_weights(cell, 3, 4, 2, generator=gen)
    x = torch.randn(6, 2, 3, dtype=torch.float64, generator=gen)
    xw = torch.randn(6, 2, 12 if cell in ("gru", "cifg") else 16, dtype=torch.float64, generator=gen)
    steps = IMPLEMENTATIONS[impl][1 if cell == "gru" else 0]
    if cell == "gru":
        h0 = torch.zeros(2, 4, dtype=torch.float64)
        stored = steps.forward_steps(xw.clone(), h0, w.w_hh, w.b_hh, None, None, None, "tanh", "sigmoid", True)
        bare = steps.forward_steps(xw.clone(), h0, w.w_hh, w.b_hh, None, None, None, "tanh", "sigmoid", False)
        n_out = 2
    else:
        h0, c0 = torch.zeros(2, 2, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64)
        ln = cell == "layernorm"
        args = (w.w_hh, w.b_ih if ln else None, w.b_hh if ln else None, w.w_hr, w.w_peep, w.ln_gain_ih,
                w.ln_gain_hh, w.ln_gain_c, w.ln_bias_c, None, None, None, None, cell, "tanh", "sigmoid")
        stored = steps.forward_steps(xw.clone(), h0, c0, *args, True)
        bare = steps.forward_steps(xw.clone(), h0, c0, *args, False)
        n_out = 3
    for a, b in zip(stored[:n_out], bare[:n_out]):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)
    assert all(v is None for v in bare[n_out:])
    del x


STEP_CASES = [
    ("LSTM", dict()), ("LSTM", dict(cell="peephole", num_layers=2)), ("LSTM", dict(cell="cifg", proj_size=3)),
    ("LSTM", dict(cell="layernorm", num_layers=3, proj_size=2, activation="relu")),
    ("GRU", dict()), ("GRU", dict(num_layers=2, recurrent_activation="hard_sigmoid")),
    # the streaming kernel for a few rows: unit blocks of one vector (float64 on AVX-512: 8 units, so 70 = 8
    # full blocks and a part), cifg's 3 gates
    ("LSTM", dict(hidden=70)), ("LSTM", dict(cell="cifg", hidden=70)), ("LSTM", dict(cell="peephole", hidden=33)),
    ("LSTM", dict(activation="relu", recurrent_activation="hard_sigmoid", bias=False)),
]


@pytest.mark.parametrize("mode,kwargs", STEP_CASES)
@pytest.mark.parametrize("batch", [1, 3, 4, 5])
def test_step_equals_forward(mode, kwargs, batch):
    torch.manual_seed(0)
    kwargs = dict(kwargs)
    layer = getattr(lnn, mode)(4, kwargs.pop("hidden", 5), **kwargs).double().eval()
    x = torch.randn(7, batch, 4, dtype=torch.float64)
    with torch.no_grad():
        y, final = layer(x)
        state, outs = None, []
        for t in range(7):
            out, state = layer.step(x[t], state)
            outs.append(out)
    torch.testing.assert_close(torch.stack(outs), y, atol=1e-12, rtol=0)
    for a, b in zip(state if isinstance(state, tuple) else (state,), final if isinstance(final, tuple) else (final,)):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "gru"])
@pytest.mark.parametrize("batch", [1, 4])
def test_streaming_kernel_in_float32_matches_the_float64_reference(cell, batch):
    torch.manual_seed(1)
    layer = lnn.GRU(24, 80) if cell == "gru" else lnn.LSTM(24, 80, cell=cell)
    layer.eval()
    x = torch.randn(6, batch, 24)
    with torch.no_grad():
        want, _ = ops_reference_forward(layer.double(), x.double())
        layer.float()
        state, outs = None, []
        for t in range(6):
            out, state = layer.step(x[t], state)
            outs.append(out)
    torch.testing.assert_close(torch.stack(outs).double(), want, atol=1e-5, rtol=0)


def ops_reference_forward(layer, x):
    """The layer's output through the step-by-step reference equations (trace runs them)."""
    traced = layer.trace(x)
    return traced["h"][-1], traced


def test_step_unbatched_batch_first_and_with_gradient():
    torch.manual_seed(0)
    layer = lnn.LSTM(4, 5, num_layers=2, batch_first=True).double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y, (h, c) = layer(x)                         # unbatched [T, I]
    state, outs = None, []
    for t in range(6):                           # training mode, gradient on: the forward() path
        out, state = layer.step(x[t], state)
        outs.append(out)
    torch.testing.assert_close(torch.stack(outs), y, atol=1e-12, rtol=0)
    assert state[0].shape == h.shape == (2, 5)
    g_step = torch.autograd.grad(torch.stack(outs).sum(), x)[0]
    g_full = torch.autograd.grad(layer(x)[0].sum(), x)[0]
    torch.testing.assert_close(g_step, g_full, atol=1e-12, rtol=0)


def _stream(layer, x):
    """The outputs of step() over x [T, B, I], stacked."""
    state, outs = None, []
    for t in range(x.shape[0]):
        out, state = layer.step(x[t], state)
        outs.append(out)
    return torch.stack(outs)


def test_step_sees_every_change_to_the_layer():
    """step() keeps the weights it reads between calls: each way of changing the layer must
    reach it, checked against forward() after each change."""
    import copy
    import pickle

    torch.manual_seed(0)
    layer = lnn.LSTM(4, 6, dropout=0.5, num_layers=2).double().eval()
    x = torch.randn(5, 2, 4, dtype=torch.float64)

    def agrees():
        with torch.no_grad():
            torch.testing.assert_close(_stream(layer, x), layer(x)[0], atol=1e-12, rtol=0)

    agrees()
    with torch.no_grad():
        layer.weight_hh_l0.data = torch.randn(24, 6, dtype=torch.float64)       # .data swap
        agrees()
        layer.weight_ih_l1.mul_(2)                                             # in place
        agrees()
    layer.weight_hh_l1 = torch.nn.Parameter(torch.randn(24, 6, dtype=torch.float64))   # a new Parameter
    agrees()
    layer.load_state_dict({k: v * 0.5 for k, v in layer.state_dict().items()})
    agrees()
    layer.load_state_dict({k: v + 0.1 for k, v in layer.state_dict().items()}, assign=True)
    agrees()
    layer.float().double()                                                       # to(): .data swapped
    agrees()
    torch.__future__.set_overwrite_module_params_on_conversion(True)
    try:
        layer.half().double()                                                    # to(): new Parameters
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(False)
    agrees()
    layer.train()                     # dropout between layers: step() draws masks through forward()
    torch.manual_seed(3)
    with torch.no_grad():
        out, _ = layer.step(x[0])
    torch.manual_seed(3)
    with torch.no_grad():
        want = layer(x[:1])[0][0]
    torch.testing.assert_close(out, want, atol=1e-12, rtol=0)
    layer.eval()
    for twin in (copy.deepcopy(layer), pickle.loads(pickle.dumps(layer))):
        with torch.no_grad():
            torch.testing.assert_close(_stream(twin, x), _stream(layer, x), atol=0, rtol=0)


def test_step_refuses_bidirectional_and_bad_input():
    with pytest.raises(ValueError, match="bidirectional layer needs the whole sequence"):
        lnn.LSTM(4, 5, bidirectional=True).step(torch.randn(2, 4))
    with pytest.raises(ValueError, match=r"\[batch, 4\] or \[4\], got shape \(2, 3\)"):
        lnn.GRU(4, 5).step(torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(1, 2, 5\)"):
        lnn.LSTM(4, 5).step(torch.randn(2, 4), (torch.zeros(1, 3, 5), torch.zeros(1, 2, 5)))


@pytest.mark.parametrize("mode,kwargs", [("LSTM", dict()), ("LSTM", dict(cell="peephole", proj_size=8)),
                                         ("LSTM", dict(cell="layernorm")), ("GRU", dict(num_layers=2))])
@pytest.mark.parametrize("size", [16, 384])
def test_bfloat16_inference_is_close_to_float32(mode, kwargs, size):
    """bf16 inference against the same rounded weights in float32. Small layers (float32 weights up
    to 2 MiB) run in float32 and round their outputs to bf16: within bf16's rounding, 1e-2 over two
    layers. Larger ones run the GEMMs in bf16 with the state in float32: the error of bf16
    products over a few steps, about 1e-2 (bound 3e-2)."""
    import copy
    from unittest import mock

    from lstmkit.ops import dispatch

    torch.manual_seed(0)
    I = 2 * size
    layer16 = getattr(lnn, mode)(I, size, **kwargs).eval().bfloat16()
    layer32 = copy.deepcopy(layer16).float()
    x = torch.randn(5, 3, I).bfloat16()
    with torch.no_grad(), mock.patch.object(dispatch, "_float_but_gemm_weights",
                                            wraps=dispatch._float_but_gemm_weights) as bf16_gemms:
        y16, _ = layer16(x)
        y32, _ = layer32(x.float())
    assert y16.dtype == torch.bfloat16
    assert bf16_gemms.called == (size > 16)          # which path ran
    torch.testing.assert_close(y16.float(), y32, atol=3e-2 if size > 16 else 1e-2, rtol=0)


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", list(ops.CELLS) + ["gru"])
def test_large_batch_gemm_path_matches_plain_loops(cell):
    """At B=64, H=128 the per-step GEMMs are big enough for the fused loops to take oneDNN's
    matmul (or MKL's packed sgemm); outputs and gradients against the plain-torch loops."""
    g = torch.Generator().manual_seed(3)
    T, B, I, H = 3, 64, 96, 128
    if cell == "gru":
        w = random_gru_weights(I, H, True, torch.float32, g)
    else:
        w = random_lstm_weights(cell, I, H, 64 if cell == "vanilla" else 0, True, torch.float32, g)
    w = type(w)(*(None if t is None else (t / 8).detach().requires_grad_() for t in w))   # keep gates unsaturated
    x = torch.randn(T, B, I, generator=g, requires_grad=True)
    results = []
    for impl in ("plain", "fused"):
        steps = IMPLEMENTATIONS[impl][1 if cell == "gru" else 0]
        if cell == "gru":
            out = GRUFunction.apply(x, torch.zeros(B, H), None, None, None, ("tanh", "sigmoid", steps), *w)
        else:
            P = w.w_hr.shape[0] if w.w_hr is not None else H
            out = LSTMFunction.apply(x, torch.zeros(B, P), torch.zeros(B, H), None, None, None, None,
                                     (cell, "tanh", "sigmoid", steps), *w)
        params = [x] + [t for t in w if t is not None]
        results.append((out, torch.autograd.grad(sum(o.square().sum() for o in out), params)))
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)


def test_a_failed_build_falls_back_with_one_warning(monkeypatch, gen):
    """Without a working compiler the op runs the plain-torch loops, after exactly one warning
    that says why; the numbers stay right."""
    def broken_build():
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(cpu, "_build", broken_build)
    monkeypatch.setattr(cpu, "_state", {"tried": False, "module": None, "error": None})
    monkeypatch.delenv("LSTMKIT_BACKEND", raising=False)
    w = random_lstm_weights("peephole", 3, 4, generator=gen)
    x = torch.randn(5, 2, 3, dtype=torch.float64, generator=gen)
    h0, c0 = torch.zeros(2, 4, dtype=torch.float64), torch.zeros(2, 4, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="could not build the fused CPU kernels.*no C\\+\\+ compiler here"):
        y, _ = ops.lstm(x, h0, c0, w, cell="peephole")
    with warnings.catch_warnings():
        warnings.simplefilter("error")           # no second warning
        assert ops.backend() == "torch"
        y_again, _ = ops.lstm(x, h0, c0, w, cell="peephole")
    y_ref, _ = reference.lstm(x, h0, c0, w, "peephole")
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=0)
    torch.testing.assert_close(y_again, y, atol=0, rtol=0)


@pytest.mark.parametrize("kwargs", [dict(), dict(num_layers=2, bidirectional=True), dict(batch_first=True)])
@pytest.mark.parametrize("shape", [(7, 3), (1, 1)])
def test_plain_lstm_inference_through_onednn_matches_the_reference(kwargs, shape, monkeypatch):
    from lstmkit.ops import dispatch

    if not dispatch._onednn_lstm_fits(torch.zeros(1, 1, 1), lnn.LSTM(1, 1).weights(0), "vanilla", "tanh", "sigmoid",
                                      None, None, None, None):
        pytest.skip("oneDNN's LSTM primitive is not available in this torch build")
    calls = []
    real = dispatch._onednn_lstm
    monkeypatch.setattr(dispatch, "_onednn_lstm", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(2)
    layer = lnn.LSTM(6, 9, **kwargs).eval()
    T, B = shape
    x = torch.randn((B, T, 6) if kwargs.get("batch_first") else (T, B, 6))
    with torch.no_grad():
        y, (h, c) = layer(x)
        want = layer.double().trace(x.double())
    assert calls, "the plain float32 LSTM did not take oneDNN's primitive"
    top = -2 if kwargs.get("bidirectional") else -1
    expected = torch.cat([want["h"][k] for k in range(top, 0)], dim=-1) if top == -2 else want["h"][-1]
    torch.testing.assert_close(y.double(), expected, atol=1e-5, rtol=0)
    if T > 1:
        calls.clear()
        lengths = torch.full((B,), T)
        lengths[0] = T - 1
        with torch.no_grad():
            layer.float()(x, lengths=lengths)                    # lengths: lstmkit's own loops
        assert not calls


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("threads", [1, 2, 3, 4])
@pytest.mark.parametrize("cell,H,B,masks,proj", [
    ("vanilla", 70, 13, True, 0), ("peephole", 33, 31, True, 0), ("cifg", 128, 7, False, 0),
    ("vanilla", 128, 7, False, 0), ("layernorm", 70, 13, True, 0), ("layernorm", 128, 7, False, 0),
    ("vanilla", 70, 13, True, 40), ("peephole", 128, 7, False, 50), ("cifg", 128, 19, True, 20),
    ("gru", 70, 13, True, 0), ("gru", 128, 7, False, 0)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_team_loops_match_the_reference_with_several_threads(threads, cell, H, B, masks, proj, dtype):
    """The loops where threads own slices of the units (the GRU, every LSTM cell, and with a
    projection slices of its outputs too; the layer norms reduce across threads) run a team when a step has enough work:
    these sizes do, with hidden sizes that are not whole vector blocks, batches that are not whole
    row blocks, and 1-4 threads (3: uneven slices; 4 with H=33: more threads than unit blocks). Outputs and every gradient against autograd
    through the float64 reference."""
    g = torch.Generator().manual_seed(H + B)
    T, I = 5, 9
    gru = cell == "gru"
    P = proj or H
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(cell, I, H, proj, True, dtype, g)
    w = type(w)(*(None if t is None else (t / 4).detach().requires_grad_() for t in w))
    x = torch.randn(T, B, I, dtype=dtype, generator=g, requires_grad=True)
    h0 = torch.randn(B, P, dtype=dtype, generator=g, requires_grad=True)
    c0 = torch.randn(B, H, dtype=dtype, generator=g, requires_grad=True)
    lengths = rmask = zh = zc = None
    if masks:
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        rmask = (torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7
        zh = (torch.rand(T, B, P, generator=g) < 0.3).to(dtype)
        zc = None if gru else (torch.rand(T, B, H, generator=g) < 0.3).to(dtype)
    keep_h, keep_c, out_mask = ops.step_masks(T, lengths, zh, zc, x)
    state = [h0] if gru else [h0, c0]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if gru:
            got = GRUFunction.apply(x, h0, rmask, keep_h, out_mask, ("tanh", "sigmoid", cpu.gru_steps), *w)
        else:
            got = LSTMFunction.apply(x, h0, c0, rmask, keep_h, keep_c, out_mask,
                                     (cell, "tanh", "sigmoid", cpu.lstm_steps), *w)
            with torch.no_grad():                # inference, which stores nothing: the same numbers
                inferred = lstm_forward(x, h0, c0, w, cell, "tanh", "sigmoid", rmask, keep_h, keep_c, out_mask,
                                        store=False, steps=cpu.lstm_steps)[:3]
            # Inference may split the batch among the threads instead (team.h's batch_chunks):
            # the layer norms' row moments then merge in another order, to the last bits.
            exact = cell != "layernorm"
            tol = dict(atol=0, rtol=0) if exact else TOL[dtype]
            for a, b in zip(inferred, got):
                torch.testing.assert_close(a, b, **tol)
        inputs = [x, *state] + [t for t in w if t is not None]
        cot = [torch.randn(v.shape, dtype=dtype, generator=g) for v in got]
        grads = torch.autograd.grad(sum((v * c).sum() for v, c in zip(got, cot)), inputs)
    finally:
        torch.set_num_threads(before)
    as64 = lambda t: None if t is None else t.detach().double().requires_grad_(t.requires_grad)  # noqa: E731
    x64, h64, c64 = as64(x), as64(h0), as64(c0)
    w64 = type(w)(*(as64(t) for t in w))
    masks64 = dict(lengths=lengths, recurrent_mask=as64(rmask), zoneout_h=as64(zh))
    if gru:
        expected = reference.gru_from_weights(x64, h64, w64, **masks64)
        inputs64 = [x64, h64]
    else:
        y, (h, c) = reference.lstm(x64, h64, c64, w64, cell, zoneout_c=as64(zc), **masks64)
        expected = (y, h, c)
        inputs64 = [x64, h64, c64]
    inputs64 += [t for t in w64 if t is not None]
    expected_grads = torch.autograd.grad(sum((v * c.double()).sum() for v, c in zip(expected, cot)), inputs64)
    tol = LAYERNORM_FP32_TOL if cell == "layernorm" and dtype == torch.float32 else TOL[dtype]
    for a, b in zip(tuple(got) + grads, tuple(expected) + expected_grads):
        torch.testing.assert_close(a, b.to(dtype), **tol)


class _ProjectionFirst:
    """cpu.lstm_steps without forward_input_steps: lstm_forward then projects before the loop."""

    forward_steps = staticmethod(cpu.lstm_steps.forward_steps)


class _GRUProjectionFirst:
    forward_steps = staticmethod(cpu.gru_steps.forward_steps)


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "gru", "projection"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("store", [False, True])
def test_input_projection_inside_the_loop_equals_the_projection_before_it(cell, bias, ragged, store):
    """The team loops that multiply x_t W_ih themselves, on a batch_first view (rows T * I apart)
    and with rows that end early, against the projection as one GEMM before the loop: the same
    outputs, states and saved tensors to rounding (float64). "projection": the cifg cell with
    proj_size."""
    g = torch.Generator().manual_seed(11)
    T, B, I, H = 6, 9, 21, 40
    gru = cell == "gru"
    cell, proj = ("cifg", 24) if cell == "projection" else (cell, 0)
    w = (random_gru_weights(I, H, bias, torch.float64, g) if gru
         else random_lstm_weights(cell, I, H, proj, bias, torch.float64, g))
    x = torch.randn(B, T, I, dtype=torch.float64, generator=g).transpose(0, 1)    # a [T, B, I] view
    h0 = torch.randn(B, proj or H, dtype=torch.float64, generator=g)
    c0 = torch.randn(B, H, dtype=torch.float64, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g) if ragged else None
    keep_h, keep_c, out_mask = ops.step_masks(T, lengths, None, None, x)
    if gru:
        assert cpu.gru_steps.input_fusion_fits(x, h0, w)
        runs = [gru_forward(x, h0, w, "tanh", "sigmoid", None, keep_h, out_mask, store=store, steps=steps)
                for steps in (cpu.gru_steps, _GRUProjectionFirst)]
        runs = [(y, h, None, saved) for y, h, saved in runs]
    else:
        assert cpu.lstm_steps.input_fusion_fits(x, h0, w, cell)
        runs = [lstm_forward(x, h0, c0, w, cell, "tanh", "sigmoid", None, keep_h, keep_c, out_mask, store=store,
                             steps=steps) for steps in (cpu.lstm_steps, _ProjectionFirst)]
    for name, a, b in zip(("y", "h", "c"), runs[0][:3], runs[1][:3]):
        if a is not None:
            torch.testing.assert_close(a, b, atol=1e-12, rtol=0, msg=name)
    if store:
        [ours], [theirs] = runs[0][3], runs[1][3]     # 9 rows: too few to run in chunks
        assert ours.keys() == theirs.keys()
        for name in ours:
            a, b = ours[name], theirs[name]
            assert (a is None) == (b is None), name
            if a is not None:
                torch.testing.assert_close(a, b, atol=1e-12, rtol=0, msg=name)


class _GradientsAfterTheLoop:
    """cpu.lstm_steps without backward_input_steps: lstm_backward then makes dx and the weight
    gradients as GEMMs after the loop."""

    forward_steps = staticmethod(cpu.lstm_steps.forward_steps)
    backward_steps = staticmethod(cpu.lstm_steps.backward_steps)


class _GRUGradientsAfterTheLoop:
    forward_steps = staticmethod(cpu.gru_steps.forward_steps)
    backward_steps = staticmethod(cpu.gru_steps.backward_steps)


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "gru", "projection"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("ragged", [False, True])
@pytest.mark.parametrize("large", [False, True])
def test_gradients_made_inside_the_backward_loop_equal_the_gemms_after_it(cell, threads, ragged, large):
    """While their weight-gradient tiles fit a core's cache, the backward team loops make
    dx_t = d_t W_ih beside dh_{t-1}, and dW_ih and dW_hh (the layernorm loop also the input
    norm's gradient d_t, step by step; the projection's loop dW_hr too, here on the peephole
    cell), and the bias, gain and peephole gradients as column sums: against
    the same backward with those as GEMMs and reductions over all steps after the loop, to
    rounding (float64). The weight gradients are summed 28 steps at a
    time here (256 rows), the first sum over the last 12 steps; x is a batch_first view (read
    step by step) when rows end early, else contiguous. The sizes are not whole vector blocks.
    `large` layers (tiles past 4 MiB a thread) leave all three to the GEMMs."""
    g = torch.Generator().manual_seed(3)
    T, B, I, H = (4, 7, 1800, 264) if large else (40, 9, 21, 72)   # both run a team
    gru = cell == "gru"
    cell, proj = ("peephole", 24) if cell == "projection" else (cell, 0)
    P = proj or H
    dtype = torch.float64
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(cell, I, H, proj, True, dtype, g)
    if proj:                            # smaller, so that the gradients stay O(1) through 40 steps
        w = w._replace(w_hr=w.w_hr.detach() * 0.15)
    x = torch.randn(B, T, I, dtype=dtype, generator=g).transpose(0, 1)    # a [T, B, I] view
    if not ragged:
        x = x.contiguous()
    h0 = torch.randn(B, P, dtype=dtype, generator=g)
    c0 = torch.randn(B, H, dtype=dtype, generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g) if ragged else None
    rmask = (torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7 if ragged else None
    keep_h, keep_c, out_mask = ops.step_masks(T, lengths, None, None, x)
    dy = torch.randn(T, B, P, dtype=dtype, generator=g)
    dh, dc = torch.randn(B, P, dtype=dtype, generator=g), torch.randn(B, H, dtype=dtype, generator=g)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if gru:
            _, _, saved = gru_forward(x, h0, w, "tanh", "sigmoid", rmask, keep_h, out_mask)
            [s] = saved                     # 9 rows: too few to run in chunks
            made = cpu.gru_steps.backward_input_steps(dy, dh, s["gates"], s["gh_n"], s["h_prev"], w.w_hh, rmask,
                                                      keep_h, out_mask, "tanh", "sigmoid", x, w.w_ih, s["h_in"])
            made, sums = made[3:6], made[6:]
            assert [v is not None for v in sums] == [not large] * 2   # the biases' gradients
            runs = [gru_backward(dy, dh, x, w, saved, "tanh", "sigmoid", rmask, keep_h, out_mask, steps=steps)
                    for steps in (cpu.gru_steps, _GRUGradientsAfterTheLoop)]
            runs = [(dx, grads) for dx, _, grads in runs]
        else:
            *_, saved = lstm_forward(x, h0, c0, w, cell, "tanh", "sigmoid", rmask, keep_h, keep_c, out_mask)
            [s] = saved
            made = cpu.lstm_steps.backward_input_steps(
                dy, dh, dc, s["gates"], s["c_prev"], s["c_new"], s["phic"], s["x_hat"], s["x_rstd"], s["h_hat"],
                s["h_rstd"], s["c_hat"], s["c_rstd"], w.w_hh, w.w_hr, w.w_peep, w.ln_gain_ih, w.ln_gain_hh,
                w.ln_gain_c, rmask, keep_h, keep_c, out_mask, cell, "tanh", "sigmoid", x, w.w_ih, s["h_in"],
                s["h_core"])
            made, dw_hr, sums = made[7:10], made[10], made[11:]
            assert (dw_hr is not None) == (proj and not large)
            # the loops also sum the bias (and gain or peephole) gradients where they make the weights'
            ln, peep = cell == "layernorm", cell == "peephole"
            assert [v is not None for v in sums] == [not large and c for c in (True, ln, ln, ln, ln, peep)]
            runs = [lstm_backward(dy, dh, dc, x, w, saved, cell, "tanh", "sigmoid", rmask, keep_h, keep_c,
                                  out_mask, steps=steps) for steps in (cpu.lstm_steps, _GradientsAfterTheLoop)]
            runs = [(dx, grads) for dx, _, _, grads in runs]
    finally:
        torch.set_num_threads(before)
    assert [m is not None for m in made] == [not large] * 3    # whether the loop made them
    torch.testing.assert_close(runs[0][0], runs[1][0], atol=1e-12, rtol=1e-12, msg="dx")
    assert runs[0][1].keys() == runs[1][1].keys()
    for name in runs[0][1]:            # sums of 360 rows, summed in another order: relative rounding
        if runs[0][1][name] is not None:
            torch.testing.assert_close(runs[0][1][name], runs[1][1][name], atol=1e-12, rtol=1e-12, msg=name)


@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "gru", "projection"])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_reading_the_input_backward_equals_running_on_the_flipped_input(cell, threads, large, grad):
    """ops.lstm / ops.gru with reversed_input (how a bidirectional layer's reverse direction runs
    without lengths: the fused loops read x and write y from the last step, the backward reads
    dy and writes dx there) against the same op on x.flip(0), its y flipped back: outputs, final
    states and every gradient, to rounding (float64), on a batch_first view, with recurrent
    dropout and zoneout masks. `large` layers leave dx and the weight gradients to the GEMMs
    after the loop; the projection cell takes the projection before the loop (flipped copies)."""
    g = torch.Generator().manual_seed(7)
    T, B, I, H = (5, 7, 1800, 264) if large else (40, 9, 21, 72)
    gru = cell == "gru"
    dtype = torch.float64
    lstm_cell, proj = ("vanilla", 24) if cell == "projection" else (cell, 0)
    P = proj or H
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(lstm_cell, I, H, proj, True, dtype, g)
    w = type(w)(*(None if t is None else t.requires_grad_(grad) for t in w))
    x = torch.randn(B, T, I, dtype=dtype, generator=g).transpose(0, 1).requires_grad_(grad)
    h0 = torch.randn(B, P, dtype=dtype, generator=g, requires_grad=grad)
    c0 = torch.randn(B, H, dtype=dtype, generator=g, requires_grad=grad)
    masks = dict(recurrent_mask=(torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7,
                 zoneout_h=(torch.rand(T, B, P, generator=g) < 0.3).to(dtype))
    if not gru:
        masks["zoneout_c"] = (torch.rand(T, B, H, generator=g) < 0.3).to(dtype)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        runs = []
        for reversed_input in (True, False):
            seq = x if reversed_input else x.flip(0)
            with torch.set_grad_enabled(grad):
                if gru:
                    y, h = ops.gru(seq, h0, w, reversed_input=reversed_input, **masks)
                    out = [y, h]
                else:
                    y, (h, c) = ops.lstm(seq, h0, c0, w, cell=lstm_cell, reversed_input=reversed_input, **masks)
                    out = [y, h, c]
                if not reversed_input:
                    out[0] = out[0].flip(0)           # y in x's order, as reversed_input gives it
            if grad:
                inputs = [x, h0] + ([] if gru else [c0]) + [t for t in w if t is not None]
                cot = [torch.randn(v.shape, dtype=dtype, generator=torch.Generator().manual_seed(1)) for v in out]
                out += torch.autograd.grad(sum((v * k).sum() for v, k in zip(out, cot)), inputs)
            runs.append(out)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "gru", "projection"])
@pytest.mark.parametrize("order", ["forward", "reversed", "lengths"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("grad", [False, True])
def test_writing_into_out_equals_a_fresh_output(cell, order, dtype, grad):
    """ops.lstm / ops.gru with out = one half of a [T, B, 2P] buffer (how a bidirectional layer
    takes its outputs without torch.cat): y is that half, equal to the op's own output, and the
    other half is left alone; with gradient every gradient equals too. float32 vanilla inference
    runs oneDNN's primitive and the projection cell a GEMM before the loop (both copy into out);
    the other cells' fused loops write into it."""
    g = torch.Generator().manual_seed(3)
    T, B, I, H = 9, 5, 6, 40
    gru = cell == "gru"
    lstm_cell, proj = ("vanilla", 24) if cell == "projection" else (cell, 0)
    P = proj or H
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(lstm_cell, I, H, proj, True, dtype, g)
    w = type(w)(*(None if t is None else t.requires_grad_(grad) for t in w))
    x = torch.randn(T, B, I, dtype=dtype, generator=g, requires_grad=grad)
    h0 = torch.randn(B, P, dtype=dtype, generator=g)
    c0 = torch.randn(B, H, dtype=dtype, generator=g)
    options = dict(lengths=torch.tensor([9, 3, 7, 1, 9])) if order == "lengths" else \
        dict(reversed_input=order == "reversed")

    def run(out):
        with torch.set_grad_enabled(grad):
            if gru:
                return ops.gru(x, h0, w, out=out, **options)[0]
            return ops.lstm(x, h0, c0, w, cell=lstm_cell, out=out, **options)[0]

    buffer = torch.full((T, B, 2 * P), float("nan"), dtype=dtype)
    y = run(buffer[..., P:])
    fresh = run(None)
    if not grad:
        assert y.data_ptr() == buffer[..., P:].data_ptr() and y.stride() == buffer[..., P:].stride()
    torch.testing.assert_close(buffer[..., P:], fresh.detach(), atol=0, rtol=0)
    assert torch.isnan(buffer[..., :P]).all(), "the other half was written"
    if grad:
        cot = torch.randn(T, B, P, dtype=dtype, generator=g)
        inputs = [x] + [t for t in w if t is not None]
        for a, b in zip(torch.autograd.grad((y * cot).sum(), inputs), torch.autograd.grad((fresh * cot).sum(), inputs)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def _masked_case(cell, order, T, B, I, H, g):
    """A float64 layer and its input for the batch-split tests: (cell, weights, x, h0, c0, the
    op's options) with recurrent dropout, zoneout and, by `order`, lengths or reversed input.
    cell "projection" is the vanilla cell with P=10 outputs of H."""
    dtype = torch.float64
    gru = cell == "gru"
    proj = 10 if cell == "projection" else 0
    P = proj or H
    cell = "vanilla" if proj else cell
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(cell, I, H, proj, True, dtype, g)
    x = torch.randn(T, B, I, dtype=dtype, generator=g)
    h0, c0 = torch.randn(B, P, dtype=dtype, generator=g), torch.randn(B, H, dtype=dtype, generator=g)
    options = dict(recurrent_mask=(torch.rand(B, P, generator=g) > 0.3).to(dtype) / 0.7,
                   zoneout_h=(torch.rand(T, B, P, generator=g) < 0.3).to(dtype))
    if not gru:
        options["zoneout_c"] = (torch.rand(T, B, H, generator=g) < 0.3).to(dtype)
    if order == "lengths":
        options["lengths"] = torch.randint(1, T + 1, (B,), generator=g)
    options["reversed_input"] = order == "reversed"
    return cell, w, x, h0, c0, options


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "projection", "gru"])
@pytest.mark.parametrize("order", ["forward", "reversed", "lengths"])
@pytest.mark.parametrize("B", [12, 29])
def test_inference_split_by_rows_equals_one_thread(cell, order, B):
    """A small layer's inference runs each thread's rows of the batch alone (team.h's
    batch_chunks; sizes here small enough for it): outputs and final states equal the same op on
    one thread, with recurrent dropout, zoneout, lengths or reversed input, written into a half
    of a wider buffer. The projection cell has P=10 outputs of H=24."""
    T, H = 13, 24
    gru = cell == "gru"
    P = 10 if cell == "projection" else H
    cell, w, x, h0, c0, options = _masked_case(cell, order, T, B, 10, H, torch.Generator().manual_seed(11))
    dtype = x.dtype
    before = torch.get_num_threads()
    runs = []
    try:
        for threads in (2, 1):
            torch.set_num_threads(threads)
            out = torch.full((T, B, 2 * P), float("nan"), dtype=dtype)
            with torch.no_grad():
                if gru:
                    y, h = ops.gru(x, h0, w, out=out[..., P:], **options)
                    runs.append([out, h])
                else:
                    y, (h, c) = ops.lstm(x, h0, c0, w, cell=cell, out=out[..., P:], **options)
                    runs.append([out, h, c])
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0, equal_nan=True)


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", ["vanilla", "peephole", "cifg", "layernorm", "projection", "gru"])
@pytest.mark.parametrize("order", ["forward", "reversed", "lengths"])
@pytest.mark.parametrize("threads", [2, 3])
def test_training_split_by_rows_equals_one_thread(cell, order, threads):
    """Training of a small layer runs each thread's rows of the batch alone, forward and
    backward (team.h's batch_chunks, 16 rows a thread or more). Outputs, final states and every
    gradient equal the same op on one thread, with recurrent dropout, zoneout, lengths or
    reversed input; the forward's saved tensors come in one part per chunk. The projection cell
    has P=10 outputs of H=24."""
    g = torch.Generator().manual_seed(12)
    T, B, H = 11, 53, 24
    gru = cell == "gru"
    P = 10 if cell == "projection" else H
    cell, w, x, h0, c0, options = _masked_case(cell, order, T, B, 10, H, g)
    weigh = torch.randn(T, B, P, dtype=x.dtype, generator=g)
    before = torch.get_num_threads()
    runs = []
    try:
        for n in (threads, 1):
            torch.set_num_threads(n)
            leaves = [t.detach().clone().requires_grad_() for t in (x, h0, c0, *(v for v in w if v is not None))]
            wl = iter(leaves[3:])
            weights = type(w)(*(None if v is None else next(wl) for v in w))
            if gru:
                y, h = ops.gru(leaves[0], leaves[1], weights, **options)
                state, leaves = [h], leaves[:2] + leaves[3:]
            else:
                y, state = ops.lstm(leaves[0], leaves[1], leaves[2], weights, cell=cell, **options)
            loss = (y * weigh).sum() + sum((s * s).sum() for s in state)
            grads = torch.autograd.grad(loss, leaves)
            runs.append([y, *state, *grads])
            steps = cpu.gru_steps if gru else cpu.lstm_steps
            with torch.no_grad():
                saved = (gru_forward(x, h0, w, "tanh", "sigmoid", steps=steps)[2] if gru else
                         lstm_forward(x, h0, c0, w, cell, "tanh", "sigmoid", steps=steps)[3])
            assert len(saved) == n
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*runs):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


def test_an_out_of_the_wrong_shape_or_sharing_the_input_is_refused():
    w = random_gru_weights(3, 4, True, torch.float32, torch.Generator().manual_seed(0))
    x, h0 = torch.randn(5, 2, 3), torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"out: expected a \[5, 2, 4\] tensor in torch.float32.*got \(5, 2, 3\)"):
        ops.gru(x, h0, w, out=torch.empty(5, 2, 3))
    with pytest.raises(ValueError, match="got .*torch.float64"):
        ops.gru(x, h0, w, out=torch.empty(5, 2, 4, dtype=torch.float64))
    if not FORCED_PLAIN:                        # the fused loop would read x while writing y over it
        w = random_gru_weights(4, 4, True, torch.float32, torch.Generator().manual_seed(0))
        x = torch.randn(5, 2, 4)
        with pytest.raises(RuntimeError, match="memory location"), torch.no_grad():
            ops.gru(x, h0, w, out=x)


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
@pytest.mark.parametrize("cell", ["vanilla", "layernorm", "gru"])
def test_a_kept_backward_result_is_not_reused_by_the_next_call(cell):
    """The loops take their large buffers (saved tensors, gate gradients) from a per-thread pool
    that hands them out again once nothing holds them: a result the caller still holds keeps
    its values through the next calls. The sizes are large enough for the pool (1 MiB)."""
    T, B, I, H = 20, 16, 7, 160
    gru = cell == "gru"

    def backward(seed):
        gen = torch.Generator().manual_seed(seed)
        w = random_gru_weights(I, H, True, torch.float64, gen) if gru else \
            random_lstm_weights(cell, I, H, 0, True, torch.float64, gen)
        x = torch.randn(T, B, I, dtype=torch.float64, generator=gen)
        h0 = torch.randn(B, H, dtype=torch.float64, generator=gen)
        dy = torch.randn(T, B, H, dtype=torch.float64, generator=gen)
        if gru:
            _, _, [s] = gru_forward(x, h0, w, "tanh", "sigmoid", steps=cpu.gru_steps)   # one chunk: 16 rows
            return cpu.gru_steps.backward_steps(dy, h0, s["gates"], s["gh_n"], s["h_prev"], w.w_hh, None, None,
                                                None, "tanh", "sigmoid")[0]
        *_, [s] = lstm_forward(x, h0, h0, w, cell, "tanh", "sigmoid", steps=cpu.lstm_steps)
        return cpu.lstm_steps.backward_steps(dy, h0, h0, s["gates"], s["c_prev"], s["c_new"], s["phic"], s["x_hat"],
                                             s["x_rstd"], s["h_hat"], s["h_rstd"], s["c_hat"], s["c_rstd"], w.w_hh,
                                             None, w.w_peep, w.ln_gain_ih, w.ln_gain_hh, w.ln_gain_c, None, None,
                                             None, None, cell, "tanh", "sigmoid")[0]

    kept = backward(1)
    copy = kept.clone()
    for seed in (2, 3, 4):                  # each result dropped before the next call
        other = backward(seed)
        assert other.data_ptr() != kept.data_ptr()
        assert not torch.equal(kept, other)
    torch.testing.assert_close(kept, copy, atol=0, rtol=0)


@pytest.mark.parametrize("impl", implementations())
@pytest.mark.parametrize("cell", ["vanilla", "layernorm", "gru"])
def test_masks_that_broadcast_over_the_batch_match_the_reference(impl, cell):
    """A recurrent mask of [1, P] and zoneout masks of [T, 1, N] (one draw shared by the batch)
    broadcast as in the reference, through the team loops too (B=7, H=70)."""
    g = torch.Generator().manual_seed(5)
    T, B, I, H = 4, 7, 5, 70
    gru = cell == "gru"
    dtype = torch.float64
    w = random_gru_weights(I, H, True, dtype, g) if gru else random_lstm_weights(cell, I, H, 0, True, dtype, g)
    x = torch.randn(T, B, I, dtype=dtype, generator=g)
    h0 = torch.randn(B, H, dtype=dtype, generator=g)
    c0 = torch.randn(B, H, dtype=dtype, generator=g)
    rmask = (torch.rand(1, H, generator=g) > 0.3).to(dtype) / 0.7
    zh = (torch.rand(T, 1, H, generator=g) < 0.3).to(dtype)
    zc = None if gru else (torch.rand(T, 1, H, generator=g) < 0.3).to(dtype)
    keep_h, keep_c, out_mask = ops.step_masks(T, None, zh, zc, x)
    steps = IMPLEMENTATIONS[impl][1 if gru else 0]
    if gru:
        got = GRUFunction.apply(x, h0, rmask, keep_h, out_mask, ("tanh", "sigmoid", steps), *w)
        expected = reference.gru_from_weights(x, h0, w, recurrent_mask=rmask, zoneout_h=zh)
    else:
        got = LSTMFunction.apply(x, h0, c0, rmask, keep_h, keep_c, out_mask, (cell, "tanh", "sigmoid", steps), *w)
        y, (h, c) = reference.lstm(x, h0, c0, w, cell, recurrent_mask=rmask, zoneout_h=zh, zoneout_c=zc)
        expected = (y, h, c)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, **TOL[dtype])


@pytest.mark.skipif(FORCED_PLAIN, reason="LSTMKIT_BACKEND=torch asks for the plain-torch loops")
def test_the_kernels_refuse_masks_smaller_than_they_read():
    """Called directly, a loop checks its masks' shapes instead of reading past their end."""
    ext = cpu.load()
    T, B, H = 3, 4, 8
    xw, h0, c0 = torch.randn(T, B, 4 * H), torch.zeros(B, H), torch.zeros(B, H)
    w_hh = torch.randn(4 * H, H)
    with pytest.raises(RuntimeError, match="recurrent mask"):
        ext.lstm_forward_steps(xw, h0, c0, w_hh, None, None, None, None, None, None, None, None,
                               torch.ones(1, H), None, None, None, "vanilla", "tanh", "sigmoid", False)
    with pytest.raises(RuntimeError, match=r"expected a \[3, 4, 8\] mask"):
        ext.lstm_forward_steps(xw, h0, c0, w_hh, None, None, None, None, None, None, None, None,
                               None, torch.ones(T, 1, H), None, None, "vanilla", "tanh", "sigmoid", False)
