"""The time loops of the GRU's hand-written passes, in plain torch (cpu/gru_steps.cpp is the
fused C++ twin, with the same arguments and results). See lstm_steps.py for the conventions.

forward_steps(xw [T, B, 3H], h0 [B, H], w_hh [3H, H], b_hh, recurrent_mask, keep_h, out_mask,
              activation, recurrent_activation, store)
    xw = W_ih x_t + b_ih (gate rows r, z, n). Returns y [T, B, H], h_T, then the saved
    gates [T, B, 3H] (r, z, n), gh_n [T, B, H] (W_hn h_in + b_hn), h_prev, h_in [T, B, H].

backward_steps(dy, dh_T, gates, gh_n, h_prev, w_hh, recurrent_mask, keep_h, out_mask,
               activation, recurrent_activation)
    Returns d_gx [T, B, 3H] (dL/d xw), d_gh [T, B, 3H] (dL/d (W_hh h_in + b_hh)), dh_0.
"""

from __future__ import annotations

import torch

from .activations import get_activation


def forward_steps(xw, h0, w_hh, b_hh, recurrent_mask, keep_h, out_mask, activation, recurrent_activation, store):
    sigma = get_activation(recurrent_activation).forward
    phi = get_activation(activation).forward
    T, B, G = xw.shape
    H = h0.shape[-1]
    new = lambda *shape: xw.new_empty(*shape) if store else None  # noqa: E731
    gates, gh_n_all, h_prev_all, h_in_all = new(T, B, G), new(T, B, H), new(T, B, H), new(T, B, H)
    y = xw.new_empty(T, B, H)

    h = h0
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        gh = h_in @ w_hh.t() if b_hh is None else torch.addmm(b_hh, h_in, w_hh.t())
        gx_r, gx_z, gx_n = xw[t].chunk(3, dim=1)
        gh_r, gh_z, gh_n = gh.chunk(3, dim=1)
        r = sigma(gx_r + gh_r)
        z = sigma(gx_z + gh_z)
        n = phi(gx_n + r * gh_n)
        h_new = (1 - z) * n + z * h
        if store:
            gates[t] = torch.cat((r, z, n), dim=1)
            gh_n_all[t], h_prev_all[t], h_in_all[t] = gh_n, h, h_in
        if keep_h is not None:
            h_new = keep_h[t] * h + (1 - keep_h[t]) * h_new
        h = h_new
        y[t] = h if out_mask is None else h * out_mask[t]
    return y, h, gates, gh_n_all, h_prev_all, h_in_all


def backward_steps(dy, dh_T, gates, gh_n, h_prev, w_hh, recurrent_mask, keep_h, out_mask,
                   activation, recurrent_activation):
    d_sigma = get_activation(recurrent_activation).grad_from_output
    d_phi = get_activation(activation).grad_from_output
    T, B, G = gates.shape
    d_gx = gates.new_empty(T, B, G)
    d_gh = gates.new_empty(T, B, G)

    dh = dh_T
    for t in range(T - 1, -1, -1):
        if dy is not None:
            dh = dh + (dy[t] if out_mask is None else dy[t] * out_mask[t])
        if keep_h is not None:
            dh_new, dh_prev = dh * (1 - keep_h[t]), dh * keep_h[t]
        else:
            dh_new, dh_prev = dh, 0
        r, z, n = gates[t].chunk(3, dim=1)
        # h~ = (1 - z) * n + z * h_prev;  n = phi(gx_n + r * gh_n)
        da_n = dh_new * (1 - z) * d_phi(n)
        da_z = dh_new * (h_prev[t] - n) * d_sigma(z)
        da_r = da_n * gh_n[t] * d_sigma(r)
        d_gx[t] = torch.cat((da_r, da_z, da_n), dim=1)
        d_gh[t] = torch.cat((da_r, da_z, da_n * r), dim=1)
        dh_in = d_gh[t] @ w_hh
        if recurrent_mask is not None:
            dh_in = dh_in * recurrent_mask
        dh = dh_prev + dh_new * z + dh_in
    return d_gx, d_gh, dh
