"""The LSTM family, step by step, in plain torch: the readable spec and the test oracle.

Each cell is one function that runs a whole sequence with a Python loop over time, written to be
read next to the articles' formulas. Gradients come from torch autograd; nothing here is fast.
Every other path in lstmkit (hand-written BPTT, fused kernels) is tested against these functions.

Notation (all functions):
    x       [T, B, I]   input sequence, time-major
    h0      [B, P]      initial hidden state (P = projection size, or H without projection)
    c0      [B, H]      initial cell state
    sigma   recurrent_activation (sigmoid by default), phi = activation (tanh by default)
    W_ih [G, I], W_hh [G, P], b_ih [G], b_hh [G]: gate rows stacked in torch.nn.LSTM's order
    i, f, g, o (G = 4H); GRU r, z, n (G = 3H).

Options shared by every function:
    lengths         [B] int: sequence b is real for t < lengths[b]; after that its state is
                    frozen and its output is zero (what PackedSequence does).
    recurrent_mask  [B, P]: recurrent dropout (Gal & Ghahramani 2016), one mask per sequence,
                    multiplied into h_{t-1} where it enters the recurrent matmul.
    zoneout_h       [T, B, P], zoneout_c [T, B, H]: zoneout (Krueger et al. 2016). Entry z is the
                    weight of the previous state: h_t = z h_{t-1} + (1 - z) h~_t. In training z is
                    a 0/1 draw with P(1) = rate; at inference it is the rate itself (the expectation).
    record          a dict; if given, each step appends its gate activations and states to
                    record[name] (lists of [B, *] tensors): how lstmkit.nn's .trace() reads a layer.

Every function returns (y [T, B, P], (h_T [B, P], c_T [B, H])); the GRU returns (y, h_T).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from .activations import get_activation
from .weights import GRUWeights, LSTMWeights, check_cell

LAYER_NORM_EPS = 1e-5

# step(x_t, h_in, c_prev) -> (c_new, h_core, gates): the part that differs between cells.
CellStep = Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor, dict]]


def layer_norm(v: Tensor, gain: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """(v - mean(v)) / sqrt(var(v) + eps) * gain + bias, over the last dimension."""
    mean = v.mean(dim=-1, keepdim=True)
    var = ((v - mean) ** 2).mean(dim=-1, keepdim=True)
    out = (v - mean) / torch.sqrt(var + LAYER_NORM_EPS) * gain
    return out if bias is None else out + bias


def _linear(v: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    out = v @ w.t()
    return out if b is None else out + b


def _record(record: Optional[dict], **values: Tensor) -> None:
    if record is not None:
        for name, value in values.items():
            record.setdefault(name, []).append(value)


def _active(lengths: Optional[Tensor], t: int, like: Tensor) -> Optional[Tensor]:
    """[B, 1] bool: which sequences are still running at step t."""
    if lengths is None:
        return None
    return (lengths.to(like.device) > t).unsqueeze(1)


def _run_lstm(
    step: CellStep,
    x: Tensor,
    h0: Tensor,
    c0: Tensor,
    w_hr: Optional[Tensor],
    lengths: Optional[Tensor],
    recurrent_mask: Optional[Tensor],
    zoneout_h: Optional[Tensor],
    zoneout_c: Optional[Tensor],
    record: Optional[dict],
):
    """The loop every LSTM cell shares: recurrent dropout, projection, zoneout, lengths.

        h_in  = h_{t-1} * recurrent_mask
        c~_t, m_t = step(x_t, h_in, c_{t-1})          m_t = o_t * phi(c~_t), the cell's output
        h~_t  = W_hr m_t  (projection)  or  m_t
        c_t   = z^c_t c_{t-1} + (1 - z^c_t) c~_t       (zoneout; z = 0 without it)
        h_t   = z^h_t h_{t-1} + (1 - z^h_t) h~_t
        y_t   = h_t, or 0 and the state kept where t >= lengths[b]
    """
    h, c = h0, c0
    outputs = []
    for t in range(x.shape[0]):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        c_new, h_core, gates = step(x[t], h_in, c)
        h_new = h_core if w_hr is None else h_core @ w_hr.t()
        if zoneout_c is not None:
            c_new = zoneout_c[t] * c + (1 - zoneout_c[t]) * c_new
        if zoneout_h is not None:
            h_new = zoneout_h[t] * h + (1 - zoneout_h[t]) * h_new
        active = _active(lengths, t, x)
        if active is not None:
            h_new = torch.where(active, h_new, h)
            c_new = torch.where(active, c_new, c)
        h, c = h_new, c_new
        outputs.append(h if active is None else torch.where(active, h, torch.zeros_like(h)))
        _record(record, **gates, c=c, h=h)
    return torch.stack(outputs), (h, c)


def vanilla_lstm(
    x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, *,
    activation="tanh", recurrent_activation="sigmoid", lengths=None,
    recurrent_mask=None, zoneout_h=None, zoneout_c=None, record=None,
):
    """The LSTM of articles 000/002/004 and torch.nn.LSTM (Hochreiter & Schmidhuber 1997):

        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g_t = phi  (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * phi(c_t)                       (then W_hr h_t with projection, see LSTMP)
    """
    sigma, phi = get_activation(recurrent_activation).forward, get_activation(activation).forward

    def step(x_t, h_in, c_prev):
        a = _linear(x_t, w_ih, b_ih) + _linear(h_in, w_hh, b_hh)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i, f, g, o = sigma(a_i), sigma(a_f), phi(a_g), sigma(a_o)
        c = f * c_prev + i * g
        return c, o * phi(c), dict(i=i, f=f, g=g, o=o)

    return _run_lstm(step, x, h0, c0, w_hr, lengths, recurrent_mask, zoneout_h, zoneout_c, record)


def projection_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, **options):
    """LSTMP (Sak et al. 2014; torch.nn.LSTM with proj_size): the vanilla cell whose output is
    projected to P < H units before it is emitted and fed back:

        m_t = o_t * phi(c_t)        [B, H]
        h_t = W_hr m_t              [B, P]      W_hr [P, H]; W_hh is [4H, P]

    Projection combines with every cell: each cell function here takes w_hr.
    """
    return vanilla_lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, **options)


def peephole_lstm(
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_peep, w_hr=None, *,
    activation="tanh", recurrent_activation="sigmoid", lengths=None,
    recurrent_mask=None, zoneout_h=None, zoneout_c=None, record=None,
):
    """Peephole LSTM (Gers & Schmidhuber 2000; article 001): the gates look at the cell state
    through diagonal weights w_peep = [p_i, p_f, p_o] (each [H]). The input and forget gates see
    c_{t-1}; the output gate sees the new c_t:

        i_t = sigma(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi + p_i * c_{t-1})
        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf + p_f * c_{t-1})
        g_t = phi  (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        c_t = f_t * c_{t-1} + i_t * g_t
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho + p_o * c_t)
        h_t = o_t * phi(c_t)
    """
    sigma, phi = get_activation(recurrent_activation).forward, get_activation(activation).forward
    p_i, p_f, p_o = w_peep.chunk(3)

    def step(x_t, h_in, c_prev):
        a = _linear(x_t, w_ih, b_ih) + _linear(h_in, w_hh, b_hh)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i = sigma(a_i + p_i * c_prev)
        f = sigma(a_f + p_f * c_prev)
        g = phi(a_g)
        c = f * c_prev + i * g
        o = sigma(a_o + p_o * c)
        return c, o * phi(c), dict(i=i, f=f, g=g, o=o)

    return _run_lstm(step, x, h0, c0, w_hr, lengths, recurrent_mask, zoneout_h, zoneout_c, record)


def cifg_lstm(
    x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, *,
    activation="tanh", recurrent_activation="sigmoid", lengths=None,
    recurrent_mask=None, zoneout_h=None, zoneout_c=None, record=None,
):
    """Coupled input-forget gate (CIFG; Greff et al. 2017, "LSTM: A Search Space Odyssey"):
    the cell writes exactly as much as it forgets, so there is no input-gate weight. The gate
    rows are f, g, o (G = 3H):

        f_t = sigma(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        i_t = 1 - f_t
        g_t = phi  (W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)
        o_t = sigma(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * phi(c_t)
    """
    sigma, phi = get_activation(recurrent_activation).forward, get_activation(activation).forward

    def step(x_t, h_in, c_prev):
        a = _linear(x_t, w_ih, b_ih) + _linear(h_in, w_hh, b_hh)
        a_f, a_g, a_o = a.chunk(3, dim=1)
        f, g, o = sigma(a_f), phi(a_g), sigma(a_o)
        i = 1 - f
        c = f * c_prev + i * g
        return c, o * phi(c), dict(i=i, f=f, g=g, o=o)

    return _run_lstm(step, x, h0, c0, w_hr, lengths, recurrent_mask, zoneout_h, zoneout_c, record)


def layernorm_lstm(
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln_gain_ih, ln_gain_hh, ln_gain_c, ln_bias_c, w_hr=None, *,
    activation="tanh", recurrent_activation="sigmoid", lengths=None,
    recurrent_mask=None, zoneout_h=None, zoneout_c=None, record=None,
):
    """Layer-normalised LSTM (Ba, Kiros & Hinton 2016, in the form of haste's LayerNormLSTM):
    the input and recurrent pre-activations are normalised separately over all 4H gate rows,
    and the cell state is normalised before the output nonlinearity (the carried c_t is not):

        a_t = LN(W_ih x_t; gain_ih) + b_ih + LN(W_hh h_{t-1}; gain_hh) + b_hh
        i_t, f_t, o_t = sigma(a_t[i, f, o]),  g_t = phi(a_t[g])
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * phi(LN(c_t; gain_c, bias_c))

    with LN(v; gain, bias) = (v - mean(v)) / sqrt(var(v) + 1e-5) * gain + bias.
    """
    sigma, phi = get_activation(recurrent_activation).forward, get_activation(activation).forward

    def step(x_t, h_in, c_prev):
        a = layer_norm(x_t @ w_ih.t(), ln_gain_ih, b_ih) + layer_norm(h_in @ w_hh.t(), ln_gain_hh, b_hh)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
        i, f, g, o = sigma(a_i), sigma(a_f), phi(a_g), sigma(a_o)
        c = f * c_prev + i * g
        return c, o * phi(layer_norm(c, ln_gain_c, ln_bias_c)), dict(i=i, f=f, g=g, o=o)

    return _run_lstm(step, x, h0, c0, w_hr, lengths, recurrent_mask, zoneout_h, zoneout_c, record)


def gru(
    x, h0, w_ih, w_hh, b_ih=None, b_hh=None, *,
    activation="tanh", recurrent_activation="sigmoid", lengths=None,
    recurrent_mask=None, zoneout_h=None, record=None,
):
    """GRU (Cho et al. 2014) as torch.nn.GRU writes it: the reset gate multiplies the recurrent
    matmul's output (Keras's reset_after=True), gate rows r, z, n:

        r_t = sigma(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)
        z_t = sigma(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n_t = phi  (W_in x_t + b_in + r_t * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z_t) * n_t + z_t * h_{t-1}

    Returns (y [T, B, H], h_T [B, H]).
    """
    sigma, phi = get_activation(recurrent_activation).forward, get_activation(activation).forward
    h = h0
    outputs = []
    for t in range(x.shape[0]):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        gx_r, gx_z, gx_n = _linear(x[t], w_ih, b_ih).chunk(3, dim=1)
        gh_r, gh_z, gh_n = _linear(h_in, w_hh, b_hh).chunk(3, dim=1)
        r = sigma(gx_r + gh_r)
        z = sigma(gx_z + gh_z)
        n = phi(gx_n + r * gh_n)
        h_new = (1 - z) * n + z * h
        if zoneout_h is not None:
            h_new = zoneout_h[t] * h + (1 - zoneout_h[t]) * h_new
        active = _active(lengths, t, x)
        if active is not None:
            h_new = torch.where(active, h_new, h)
        h = h_new
        outputs.append(h if active is None else torch.where(active, h, torch.zeros_like(h)))
        _record(record, r=r, z=z, n=n, h=h)
    return torch.stack(outputs), h


def lstm(x: Tensor, h0: Tensor, c0: Tensor, weights: LSTMWeights, cell: str = "vanilla", **options):
    """Run the reference of `cell` ("vanilla", "peephole", "cifg" or "layernorm") with the
    weights of one layer-direction; projection applies when weights.w_hr is set."""
    w = weights
    cell = check_cell(cell)
    if cell == "vanilla":
        return vanilla_lstm(x, h0, c0, w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr, **options)
    if cell == "peephole":
        return peephole_lstm(x, h0, c0, w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_peep, w.w_hr, **options)
    if cell == "cifg":
        return cifg_lstm(x, h0, c0, w.w_ih, w.w_hh, w.b_ih, w.b_hh, w.w_hr, **options)
    return layernorm_lstm(
        x, h0, c0, w.w_ih, w.w_hh, w.b_ih, w.b_hh,
        w.ln_gain_ih, w.ln_gain_hh, w.ln_gain_c, w.ln_bias_c, w.w_hr, **options,
    )


def gru_from_weights(x: Tensor, h0: Tensor, weights: GRUWeights, **options):
    """Run the GRU reference with a GRUWeights bundle."""
    return gru(x, h0, weights.w_ih, weights.w_hh, weights.b_ih, weights.b_hh, **options)
