"""The GRU's forward pass and its backward pass through time, written out by hand.

Same shape as lstm_bptt.py (read that first): masks arrive combined by the dispatcher, the
backward walks the steps in reverse computing gate gradients and dh_{t-1}, and dx and the
weight gradients are one GEMM each after the loop. Equations (torch.nn.GRU's form):

    r = sigma(gx_r + gh_r),  z = sigma(gx_z + gh_z),  n = phi(gx_n + r * gh_n)
    h~ = (1 - z) * n + z * h_{t-1}       gx = W_ih x_t + b_ih,  gh = W_hh h_in + b_hh
"""

from __future__ import annotations

import torch

from .activations import get_activation
from .bptt_util import gemm_over_steps, sum_rows
from .weights import GRUWeights


def gru_forward(x, h0, w, activation, recurrent_activation,
                recurrent_mask=None, keep_h=None, out_mask=None, store=True):
    """x [T, B, I], h0 [B, H], w: GRUWeights. Returns (y [T, B, H], h_T, saved or None)."""
    sigma = get_activation(recurrent_activation).forward
    phi = get_activation(activation).forward
    T, B, _ = x.shape
    xw = (x.reshape(T * B, -1) @ w.w_ih.t()).reshape(T, B, -1)
    if w.b_ih is not None:
        xw = xw + w.b_ih
    y = x.new_empty(T, B, h0.shape[-1])
    if store:
        gates = x.new_empty(T, B, xw.shape[-1])   # r, z, n
        gh_n_all = x.new_empty(T, B, h0.shape[-1])
        h_prev_all = x.new_empty(T, B, h0.shape[-1])
        h_in_all = x.new_empty(T, B, h0.shape[-1])

    h = h0
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        gh = h_in @ w.w_hh.t()
        if w.b_hh is not None:
            gh = gh + w.b_hh
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

    saved = dict(gates=gates, gh_n=gh_n_all, h_prev=h_prev_all, h_in=h_in_all) if store else None
    return y, h, saved


def gru_backward(dy, dh_T, x, w, saved, activation, recurrent_activation,
                 recurrent_mask=None, keep_h=None, out_mask=None):
    """Returns (dx, dh0, grads) with grads a GRUWeights-shaped dict."""
    d_sigma = get_activation(recurrent_activation).grad_from_output
    d_phi = get_activation(activation).grad_from_output
    T, B, _ = x.shape
    G = saved["gates"].shape[-1]
    d_gx = x.new_empty(T, B, G)
    d_gh = x.new_empty(T, B, G)

    dh = dh_T
    for t in range(T - 1, -1, -1):
        if dy is not None:
            dh = dh + (dy[t] if out_mask is None else dy[t] * out_mask[t])
        if keep_h is not None:
            dh_new, dh_prev = dh * (1 - keep_h[t]), dh * keep_h[t]
        else:
            dh_new, dh_prev = dh, 0
        r, z, n = saved["gates"][t].chunk(3, dim=1)
        gh_n = saved["gh_n"][t]
        da_n = dh_new * (1 - z) * d_phi(n)
        da_z = dh_new * (saved["h_prev"][t] - n) * d_sigma(z)
        da_r = da_n * gh_n * d_sigma(r)
        d_gx[t] = torch.cat((da_r, da_z, da_n), dim=1)
        d_gh[t] = torch.cat((da_r, da_z, da_n * r), dim=1)
        dh_in = d_gh[t] @ w.w_hh
        if recurrent_mask is not None:
            dh_in = dh_in * recurrent_mask
        dh = dh_prev + dh_new * z + dh_in

    dx = (d_gx.reshape(T * B, G) @ w.w_ih).reshape(T, B, -1)
    grads = dict(
        w_ih=gemm_over_steps(d_gx, x),
        w_hh=gemm_over_steps(d_gh, saved["h_in"]),
        b_ih=sum_rows(d_gx) if w.b_ih is not None else None,
        b_hh=sum_rows(d_gh) if w.b_hh is not None else None,
    )
    return dx, dh, grads


class GRUFunction(torch.autograd.Function):
    """apply(x, h0, recurrent_mask, keep_h, out_mask, config, *weights); config is
    (activation, recurrent_activation), weights the GRUWeights fields in order."""

    @staticmethod
    def forward(ctx, x, h0, recurrent_mask, keep_h, out_mask, config, *weights):
        w = GRUWeights(*weights)
        act, ract = config
        y, h, saved = gru_forward(x, h0, w, act, ract, recurrent_mask, keep_h, out_mask)
        ctx.config = config
        ctx.weight_present = [v is not None for v in weights]
        ctx.save_for_backward(x, recurrent_mask, keep_h, out_mask, *weights,
                              saved["gates"], saved["gh_n"], saved["h_prev"], saved["h_in"])
        return y, h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_T):
        x, recurrent_mask, keep_h, out_mask, *rest = ctx.saved_tensors
        n_w = len(GRUWeights._fields)
        w = GRUWeights(*rest[:n_w])
        saved = dict(zip(("gates", "gh_n", "h_prev", "h_in"), rest[n_w:]))
        act, ract = ctx.config
        dx, dh0, grads = gru_backward(dy, dh_T, x, w, saved, act, ract, recurrent_mask, keep_h, out_mask)
        weight_grads = [grads[name] if present else None
                        for name, present in zip(GRUWeights._fields, ctx.weight_present)]
        return (dx, dh0, None, None, None, None, *weight_grads)
