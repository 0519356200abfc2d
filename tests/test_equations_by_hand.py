"""Each cell's equations recomputed by hand in numpy on a tiny case, independently of
lstmkit.ops.reference, so a wrong equation (not only a wrong gradient) is caught. The expected
values come from the papers' formulas written out here, scalar by scalar where it helps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmkit.nn as lnn
from lstmkit import ops
from lstmkit.ops import reference


def sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def make_layer(cell: str, hidden=2, inp=1, proj=0, **kwargs):
    torch.manual_seed(0)
    layer = lnn.LSTM(inp, hidden, cell=cell, proj_size=proj, **kwargs).double()
    with torch.no_grad():
        for p in layer.parameters():   # O(1) values so nothing saturates
            p.copy_(torch.randn(p.shape, dtype=torch.float64) * 0.7)
    return layer


def numpy_params(layer, suffix="_l0"):
    return {name[: -len(suffix)]: p.detach().numpy().copy() for name, p in layer.named_parameters()
            if name.endswith(suffix)}


X = np.array([[0.5], [-1.2], [0.8]])  # T=3 steps, I=1 feature


def run_layer(layer, x=X):
    with torch.no_grad():
        y, (h, c) = layer(torch.tensor(x).unsqueeze(1))
    return y.squeeze(1).numpy(), c.squeeze(0).squeeze(0).numpy()


def test_peephole_by_hand():
    """Gers & Schmidhuber 2000: i, f see c_{t-1}; o sees c_t; diagonal (per-unit) peepholes."""
    layer = make_layer("peephole")
    p = numpy_params(layer)
    H = 2
    p_i, p_f, p_o = p["weight_ch"][:H], p["weight_ch"][H:2 * H], p["weight_ch"][2 * H:]
    h, c = np.zeros(H), np.zeros(H)
    expected = []
    for x in X:
        a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
        i = sig(a[0:H] + p_i * c)
        f = sig(a[H:2 * H] + p_f * c)
        g = np.tanh(a[2 * H:3 * H])
        c = f * c + i * g
        o = sig(a[3 * H:] + p_o * c)       # the new c_t
        h = o * np.tanh(c)
        expected.append(h)
    y, c_last = run_layer(layer)
    np.testing.assert_allclose(y, np.array(expected), atol=1e-12)
    np.testing.assert_allclose(c_last, c, atol=1e-12)
    # A peephole that is ignored or fed the wrong state would differ:
    with torch.no_grad():
        layer.weight_ch_l0.zero_()
    assert np.abs(run_layer(layer)[0] - np.array(expected)).max() > 1e-3


def test_cifg_by_hand():
    """Greff et al. 2017: input gate coupled to the forget gate, i = 1 - f; rows f, g, o."""
    layer = make_layer("cifg")
    assert layer.weight_ih_l0.shape == (6, 1)
    p = numpy_params(layer)
    H = 2
    h, c = np.zeros(H), np.zeros(H)
    expected = []
    for x in X:
        a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
        f = sig(a[0:H])
        g = np.tanh(a[H:2 * H])
        o = sig(a[2 * H:])
        c = f * c + (1.0 - f) * g
        h = o * np.tanh(c)
        expected.append(h)
    y, c_last = run_layer(layer)
    np.testing.assert_allclose(y, np.array(expected), atol=1e-12)
    np.testing.assert_allclose(c_last, c, atol=1e-12)


def layer_norm(v, gain, bias=0.0, eps=1e-5):
    return (v - v.mean()) / np.sqrt(v.var() + eps) * gain + bias


def test_layernorm_by_hand():
    """Ba et al. 2016 as in haste's LayerNormLSTM: LN on W x and on R h separately (over 4H),
    and on c_t before the output tanh; the carried c_t is not normalised."""
    layer = make_layer("layernorm", hidden=3, inp=2)
    p = numpy_params(layer)
    H = 3
    xs = np.array([[0.5, -0.1], [-1.2, 0.4], [0.8, 0.9]])
    h, c = np.zeros(H), np.zeros(H)
    expected = []
    for x in xs:
        a = (layer_norm(p["weight_ih"] @ x, p["ln_weight_ih"]) + p["bias_ih"]
             + layer_norm(p["weight_hh"] @ h, p["ln_weight_hh"]) + p["bias_hh"])
        i, f, g, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])
        c = f * c + i * g
        h = o * np.tanh(layer_norm(c, p["ln_weight_c"], p["ln_bias_c"]))
        expected.append(h)
    y, c_last = run_layer(layer, xs)
    np.testing.assert_allclose(y, np.array(expected), atol=1e-10)
    np.testing.assert_allclose(c_last, c, atol=1e-10)


def test_projection_and_activations_by_hand():
    """LSTMP with Keras-style activation choices: h_t = W_hr (o * relu(c_t)), gates hard_sigmoid."""
    layer = make_layer("vanilla", hidden=3, proj=2, activation="relu", recurrent_activation="hard_sigmoid")
    p = numpy_params(layer)
    H = 3
    hard = lambda a: np.clip(a / 6.0 + 0.5, 0.0, 1.0)  # noqa: E731  (Keras 3's hard_sigmoid)
    relu = lambda a: np.maximum(a, 0.0)  # noqa: E731
    h, c = np.zeros(2), np.zeros(H)
    expected = []
    for x in X:
        a = p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
        i, f, g, o = hard(a[:H]), hard(a[H:2 * H]), relu(a[2 * H:3 * H]), hard(a[3 * H:])
        c = f * c + i * g
        h = p["weight_hr"] @ (o * relu(c))
        expected.append(h)
    y, c_last = run_layer(layer)
    np.testing.assert_allclose(y, np.array(expected), atol=1e-12)


def test_gru_by_hand():
    """torch.nn.GRU's form: reset applied to (W_hn h + b_hn); h_t = (1 - z) n + z h_{t-1}."""
    torch.manual_seed(0)
    layer = lnn.GRU(1, 2).double()
    p = numpy_params(layer)
    H = 2
    h = np.zeros(H)
    for x in X:
        gx = p["weight_ih"] @ x + p["bias_ih"]
        gh = p["weight_hh"] @ h + p["bias_hh"]
        r = sig(gx[:H] + gh[:H])
        z = sig(gx[H:2 * H] + gh[H:2 * H])
        n = np.tanh(gx[2 * H:] + r * gh[2 * H:])
        h = (1 - z) * n + z * h
    with torch.no_grad():
        _, h_n = layer(torch.tensor(X).unsqueeze(1))
    np.testing.assert_allclose(h_n.reshape(-1).numpy(), h, atol=1e-12)


def test_zoneout_and_recurrent_dropout_by_hand():
    """Zoneout blends the previous state in with weight z; recurrent dropout masks h_{t-1} in
    the recurrent matmul only (the c path and the zoneout blend use the unmasked state)."""
    H = 2
    g = torch.Generator().manual_seed(5)
    w = ops.LSTMWeights(*(torch.randn(s, dtype=torch.float64, generator=g) * 0.7
                          for s in [(4 * H, 1), (4 * H, H), (4 * H,), (4 * H,)]))
    zh = np.array([[1.0, 0.0], [0.0, 1.0], [0.3, 0.3]])   # per step, per unit
    zc = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    mask = np.array([2.0, 0.0])
    p = {k: v.numpy() for k, v in w._asdict().items() if v is not None}
    h, c = np.array([0.1, -0.2]), np.array([0.3, 0.4])
    h0, c0 = h.copy(), c.copy()
    for t, x in enumerate(X):
        a = p["w_ih"] @ x + p["b_ih"] + p["w_hh"] @ (h * mask) + p["b_hh"]
        i, f, gg, o = sig(a[:H]), sig(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sig(a[3 * H:])
        c_new = f * c + i * gg
        h_new = o * np.tanh(c_new)
        c = zc[t] * c + (1 - zc[t]) * c_new
        h = zh[t] * h + (1 - zh[t]) * h_new
    kw = dict(recurrent_mask=torch.tensor(mask).unsqueeze(0),
              zoneout_h=torch.tensor(zh).unsqueeze(1), zoneout_c=torch.tensor(zc).unsqueeze(1))
    xt = torch.tensor(X).unsqueeze(1)
    for run in (reference.lstm, lambda *a, **k: ops.lstm(*a[:4], cell=a[4], **k)):
        _, (h_t, c_t) = run(xt, torch.tensor(h0).unsqueeze(0), torch.tensor(c0).unsqueeze(0), w, "vanilla", **kw)
        np.testing.assert_allclose(h_t.reshape(-1).numpy(), h, atol=1e-12)
        np.testing.assert_allclose(c_t.reshape(-1).numpy(), c, atol=1e-12)


@pytest.mark.parametrize("cell", ops.CELLS)
def test_trace_shows_the_gates_of_the_equations(cell):
    """trace() returns the per-step gates; checked against the cell update c_t = f c_{t-1} + i g."""
    layer = make_layer(cell, hidden=3, inp=1)
    tr = layer.trace(torch.tensor(X).unsqueeze(1))
    assert set(tr) == {"i", "f", "g", "o", "c", "h"}
    i, f, g, c = (tr[k][0, :, 0] for k in "ifgc")
    c_prev = torch.cat([torch.zeros(1, 3, dtype=c.dtype), c[:-1]])
    torch.testing.assert_close(c, f * c_prev + i * g, atol=1e-12, rtol=0)
    y, _ = run_layer(layer)
    np.testing.assert_allclose(tr["h"][0, :, 0].numpy(), y, atol=1e-12)
    if cell == "cifg":
        torch.testing.assert_close(i, 1 - f, atol=1e-15, rtol=0)
