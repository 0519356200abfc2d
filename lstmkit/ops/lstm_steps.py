"""The time loops of the LSTM family's hand-written passes, in plain torch.

These are the sequential parts only; lstm_bptt.py does what can be done for all steps at once
(the input projection before, dx and the weight gradients after). cpu/lstm_steps.cpp is the
fused C++ twin of this file, with the same arguments and results, and is tested against it.

Shapes: T steps, B batch, H hidden, P = projection size (H without), G gate rows (4H; cifg 3H).

forward_steps(xw [T, B, G], h0 [B, P], c0 [B, H], w_hh [G, P], b_ih, b_hh, w_hr, w_peep,
              ln_gain_ih, ln_gain_hh, ln_gain_c, ln_bias_c, recurrent_mask, keep_h, keep_c,
              out_mask, cell, activation, recurrent_activation, store)
    xw is W_ih x_t for every step (consumed: it may be overwritten). For the layernorm cell it is
    the bare projection, normalised here, and b_ih, b_hh are added after the norms; for the other
    cells both biases are already in it, and b_ih, b_hh are None.
    keep_h [T, B, P], keep_c [T, B, H], out_mask [T, B, 1] may be broadcast views.
    Returns y [T, B, P], h_T, c_T, then the saved activations (None when store is False or the
    cell has no use for them): gates [T, B, G] (i, f, g, o; cifg f, g, o), c_prev, c_new
    (peephole), phic = phi(c or LN(c)), h_in [T, B, P], h_core [T, B, H] (projection), and for
    the layernorm cell x_hat [T, B, G], x_rstd [T, B, 1], h_hat [T, B, G], h_rstd [T, B, 1],
    c_hat [T, B, H], c_rstd [T, B, 1].

backward_steps(dy, dh_T, dc_T, gates, c_prev, c_new, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat,
               c_rstd, w_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, recurrent_mask,
               keep_h, keep_c, out_mask, cell, activation, recurrent_activation)
    Returns d_pre [T, B, G] (dL/d gate pre-activations), d_xw [T, B, G] (dL/d W_ih x_t before
    its layer norm; layernorm only, else d_pre is it), d_hw [T, B, G] (dL/d W_hh h_in before its
    layer norm; layernorm only), dh_new [T, B, P] (dL/d projected output; projection only),
    d_c_norm [T, B, H] (dL/d (LN(c) * gain_c + bias_c); layernorm only), dh_0, dc_0.
"""

from __future__ import annotations

import torch

from .activations import get_activation
from .layer_norm import normalise, normalise_backward


def forward_steps(xw, h0, c0, w_hh, b_ih, b_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, ln_bias_c,
                  recurrent_mask, keep_h, keep_c, out_mask, cell, activation, recurrent_activation, store):
    sigma = get_activation(recurrent_activation).forward
    phi = get_activation(activation).forward
    T, B, G = xw.shape
    H, P = c0.shape[-1], h0.shape[-1]
    peephole, cifg, layernorm = cell == "peephole", cell == "cifg", cell == "layernorm"
    if peephole:
        p_i, p_f, p_o = w_peep.chunk(3)

    x_hat = x_rstd = None
    if layernorm:   # the input's norm needs no state: all steps at once
        x_hat, x_rstd = normalise(xw)
        xw = x_hat * ln_gain_ih if b_ih is None else torch.addcmul(b_ih, x_hat, ln_gain_ih)
    new = lambda *shape: xw.new_empty(*shape) if store else None  # noqa: E731
    gates, c_prev_all, c_new_all, phic_all = new(T, B, G), new(T, B, H), new(T, B, H), new(T, B, H)
    h_in_all = new(T, B, P)
    h_core_all = new(T, B, H) if w_hr is not None else None
    h_hat_all, h_rstd_all = (new(T, B, G), new(T, B, 1)) if layernorm else (None, None)
    c_hat_all, c_rstd_all = (new(T, B, H), new(T, B, 1)) if layernorm else (None, None)
    y = xw.new_empty(T, B, P)

    h, c = h0, c0
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        if layernorm:
            h_hat, h_rstd = normalise(h_in @ w_hh.t())
            a = xw[t] + h_hat * ln_gain_hh
            if b_hh is not None:
                a = a + b_hh
        else:
            a = torch.addmm(xw[t], h_in, w_hh.t())
        if cifg:
            a_f, a_g, a_o = a.chunk(3, dim=1)
            f = sigma(a_f)
            i = 1 - f
        else:
            a_i, a_f, a_g, a_o = a.chunk(4, dim=1)
            if peephole:
                a_i, a_f = a_i + p_i * c, a_f + p_f * c
            i, f = sigma(a_i), sigma(a_f)
        g = phi(a_g)
        c_new = f * c + i * g
        if peephole:
            a_o = a_o + p_o * c_new
        o = sigma(a_o)
        if layernorm:
            c_hat, c_rstd = normalise(c_new)
            phic = phi(c_hat * ln_gain_c + ln_bias_c)
        else:
            phic = phi(c_new)
        h_core = o * phic
        h_new = h_core if w_hr is None else h_core @ w_hr.t()

        if store:
            gates[t] = torch.cat((f, g, o) if cifg else (i, f, g, o), dim=1)
            c_prev_all[t], c_new_all[t], phic_all[t], h_in_all[t] = c, c_new, phic, h_in
            if h_core_all is not None:
                h_core_all[t] = h_core
            if layernorm:
                h_hat_all[t], h_rstd_all[t], c_hat_all[t], c_rstd_all[t] = h_hat, h_rstd, c_hat, c_rstd

        if keep_c is not None:
            c_new = keep_c[t] * c + (1 - keep_c[t]) * c_new
        if keep_h is not None:
            h_new = keep_h[t] * h + (1 - keep_h[t]) * h_new
        h, c = h_new, c_new
        y[t] = h if out_mask is None else h * out_mask[t]

    if not store:
        x_hat = x_rstd = None
    return (y, h, c, gates, c_prev_all, c_new_all if peephole else None, phic_all, h_in_all, h_core_all,
            x_hat, x_rstd, h_hat_all, h_rstd_all, c_hat_all, c_rstd_all)


def backward_steps(dy, dh_T, dc_T, gates, c_prev, c_new, phic, x_hat, x_rstd, h_hat, h_rstd, c_hat, c_rstd,
                   w_hh, w_hr, w_peep, ln_gain_ih, ln_gain_hh, ln_gain_c, recurrent_mask, keep_h, keep_c,
                   out_mask, cell, activation, recurrent_activation):
    d_sigma = get_activation(recurrent_activation).grad_from_output
    d_phi = get_activation(activation).grad_from_output
    T, B, G = gates.shape
    peephole, cifg, layernorm = cell == "peephole", cell == "cifg", cell == "layernorm"
    if peephole:
        p_i, p_f, p_o = w_peep.chunk(3)

    d_pre = gates.new_empty(T, B, G)
    d_hw = gates.new_empty(T, B, G) if layernorm else None
    dh_new_all = gates.new_empty(T, B, dh_T.shape[-1]) if w_hr is not None else None
    d_c_norm = gates.new_empty(c_hat.shape) if layernorm else None

    dh, dc = dh_T, dc_T
    for t in range(T - 1, -1, -1):
        if dy is not None:
            dh = dh + (dy[t] if out_mask is None else dy[t] * out_mask[t])
        if keep_h is not None:
            dh_new, dh_prev = dh * (1 - keep_h[t]), dh * keep_h[t]
        else:
            dh_new, dh_prev = dh, None
        if keep_c is not None:
            dc_new, dc_prev = dc * (1 - keep_c[t]), dc * keep_c[t]
        else:
            dc_new, dc_prev = dc, None

        if dh_new_all is not None:
            dh_new_all[t] = dh_new
            dm = dh_new @ w_hr
        else:
            dm = dh_new
        if cifg:
            f, g, o = gates[t].chunk(3, dim=1)
            i = 1 - f
        else:
            i, f, g, o = gates[t].chunk(4, dim=1)

        # h_core = o * phi(c), or o * phi(LN(c) * gain_c + bias_c)
        do = dm * phic[t]
        d_phi_in = dm * o * d_phi(phic[t])
        if layernorm:
            d_c_norm[t] = d_phi_in
            dc_new = dc_new + normalise_backward(d_phi_in * ln_gain_c, c_hat[t], c_rstd[t])
        else:
            dc_new = dc_new + d_phi_in
        da_o = do * d_sigma(o)
        if peephole:
            dc_new = dc_new + da_o * p_o

        # c_new = f * c_prev + i * g
        di, dg, df = dc_new * g, dc_new * i, dc_new * c_prev[t]
        dc_back = dc_new * f
        da_g = dg * d_phi(g)
        if cifg:
            d_pre[t] = torch.cat(((df - di) * d_sigma(f), da_g, da_o), dim=1)   # i = 1 - f
        else:
            da_i, da_f = di * d_sigma(i), df * d_sigma(f)
            if peephole:
                dc_back = dc_back + da_i * p_i + da_f * p_f
            d_pre[t] = torch.cat((da_i, da_f, da_g, da_o), dim=1)

        if layernorm:
            d_hw[t] = normalise_backward(d_pre[t] * ln_gain_hh, h_hat[t], h_rstd[t])
        dh_in = (d_hw[t] if layernorm else d_pre[t]) @ w_hh
        if recurrent_mask is not None:
            dh_in = dh_in * recurrent_mask
        dh = dh_in if dh_prev is None else dh_prev + dh_in
        dc = dc_back if dc_prev is None else dc_prev + dc_back

    d_xw = normalise_backward(d_pre * ln_gain_ih, x_hat, x_rstd) if layernorm else None
    return d_pre, d_xw, d_hw, dh_new_all, d_c_norm, dh, dc
