"""The LSTM family's forward pass and its backward pass through time, written out by hand.

One torch.autograd.Function covers every LSTM cell (vanilla, peephole, cifg, layernorm) with
projection, recurrent dropout, zoneout and per-sequence lengths. Its backward uses no autograd:
per step, the gate gradients from dh_t and dc_t, then dh_{t-1} and dc_{t-1}; after the loop, dx
and every weight gradient as one GEMM over all steps. This plain-torch version is the CPU
fallback and the template the fused kernels follow; `reference.py` is what it is tested against.

Masks arrive already combined by the dispatcher (ops/dispatch.py), so lengths and zoneout are
one mechanism here:

    keep_h [T, B, P or 1], keep_c [T, B, H or 1]:  state_t = keep * state_{t-1} + (1 - keep) * new
    out_mask [T, B, 1]:                           y_t = out_mask_t * h_t   (0 past a sequence's end)
    recurrent_mask [B, P]:                        h_in = h_{t-1} * recurrent_mask
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .activations import get_activation
from .bptt_util import gemm_over_steps, sum_rows
from .reference import LAYER_NORM_EPS
from .weights import LSTMWeights


def _normalise(v: Tensor) -> tuple[Tensor, Tensor]:
    """Layer norm without gain: returns (v_hat, rstd) with v_hat = (v - mean) * rstd."""
    mean = v.mean(dim=-1, keepdim=True)
    centred = v - mean
    rstd = torch.rsqrt((centred * centred).mean(dim=-1, keepdim=True) + LAYER_NORM_EPS)
    return centred * rstd, rstd


def _normalise_backward(d_hat: Tensor, v_hat: Tensor, rstd: Tensor) -> Tensor:
    """Gradient through v_hat = (v - mean) * rstd, given d_hat = dL/dv_hat."""
    return rstd * (
        d_hat - d_hat.mean(dim=-1, keepdim=True) - v_hat * (d_hat * v_hat).mean(dim=-1, keepdim=True)
    )


def lstm_forward(x, h0, c0, w, cell, activation, recurrent_activation,
                 recurrent_mask=None, keep_h=None, keep_c=None, out_mask=None, store=True):
    """Run the sequence. x [T, B, I], h0 [B, P], c0 [B, H], w: LSTMWeights.

    Returns (y [T, B, P], h_T, c_T, saved) where saved holds what backward needs (None when
    store is False: the inference path keeps nothing per step).
    """
    sigma = get_activation(recurrent_activation).forward
    phi = get_activation(activation).forward
    T, B, _ = x.shape
    H = c0.shape[-1]
    peephole, cifg, layernorm = cell == "peephole", cell == "cifg", cell == "layernorm"
    if peephole:
        p_i, p_f, p_o = w.w_peep.chunk(3)

    # The input projection for every step at once: one GEMM.
    xw = x.reshape(T * B, -1) @ w.w_ih.t()
    xw = xw.reshape(T, B, -1)
    x_hat = x_rstd = None
    if layernorm:
        x_hat, x_rstd = _normalise(xw)
        xw = x_hat * w.ln_gain_ih
    if w.b_ih is not None:
        xw = xw + w.b_ih

    y = x.new_empty(T, B, h0.shape[-1])
    if store:
        gates = x.new_empty(T, B, xw.shape[-1])
        c_prev_all = x.new_empty(T, B, H)
        c_new_all = x.new_empty(T, B, H)
        phic_all = x.new_empty(T, B, H)
        h_in_all = x.new_empty(T, B, h0.shape[-1])
        h_core_all = x.new_empty(T, B, H) if w.w_hr is not None else None
        h_hat_all = x.new_empty(T, B, xw.shape[-1]) if layernorm else None
        h_rstd_all = x.new_empty(T, B, 1) if layernorm else None
        c_hat_all = x.new_empty(T, B, H) if layernorm else None
        c_rstd_all = x.new_empty(T, B, 1) if layernorm else None

    h, c = h0, c0
    for t in range(T):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        hw = h_in @ w.w_hh.t()
        if layernorm:
            h_hat, h_rstd = _normalise(hw)
            hw = h_hat * w.ln_gain_hh
        if w.b_hh is not None:
            hw = hw + w.b_hh
        a = xw[t] + hw
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
            c_hat, c_rstd = _normalise(c_new)
            phic = phi(c_hat * w.ln_gain_c + w.ln_bias_c)
        else:
            phic = phi(c_new)
        h_core = o * phic
        h_new = h_core if w.w_hr is None else h_core @ w.w_hr.t()

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

    saved = None
    if store:
        saved = dict(gates=gates, c_prev=c_prev_all, c_new=c_new_all, phic=phic_all,
                     h_in=h_in_all, h_core=h_core_all, x_hat=x_hat, x_rstd=x_rstd,
                     h_hat=h_hat_all, h_rstd=h_rstd_all, c_hat=c_hat_all, c_rstd=c_rstd_all)
    return y, h, c, saved


def lstm_backward(dy, dh_T, dc_T, x, w, saved, cell, activation, recurrent_activation,
                  recurrent_mask=None, keep_h=None, keep_c=None, out_mask=None):
    """BPTT by hand. dy [T, B, P], dh_T [B, P], dc_T [B, H].

    Returns (dx, dh0, dc0, grads) with grads an LSTMWeights-shaped dict of parameter gradients.
    """
    d_sigma = get_activation(recurrent_activation).grad_from_output
    d_phi = get_activation(activation).grad_from_output
    T, B, _ = x.shape
    H = saved["c_new"].shape[-1]
    peephole, cifg, layernorm = cell == "peephole", cell == "cifg", cell == "layernorm"
    if peephole:
        p_i, p_f, p_o = w.w_peep.chunk(3)
        dp_i, dp_f, dp_o = (x.new_zeros(H) for _ in range(3))
    if layernorm:
        d_gain_c, d_bias_c = x.new_zeros(H), x.new_zeros(H)

    G = saved["gates"].shape[-1]
    d_pre = x.new_empty(T, B, G)          # dL/da_t: gradient of the gate pre-activations
    d_hw = x.new_empty(T, B, G) if layernorm else d_pre   # dL/d(W_hh h_in) before its norm
    dh_new_all = x.new_empty(T, B, dh_T.shape[-1]) if w.w_hr is not None else None

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
            dm = dh_new @ w.w_hr
        else:
            dm = dh_new
        gates, phic, c_prev = saved["gates"][t], saved["phic"][t], saved["c_prev"][t]
        if cifg:
            f, g, o = gates.chunk(3, dim=1)
            i = 1 - f
        else:
            i, f, g, o = gates.chunk(4, dim=1)

        # h_core = o * phi(c) (or phi(LN(c)) for layernorm)
        do = dm * phic
        d_phic = dm * o * d_phi(phic)
        if layernorm:
            c_hat = saved["c_hat"][t]
            d_gain_c += (d_phic * c_hat).sum(0)
            d_bias_c += d_phic.sum(0)
            dc_new = dc_new + _normalise_backward(d_phic * w.ln_gain_c, c_hat, saved["c_rstd"][t])
        else:
            dc_new = dc_new + d_phic
        da_o = do * d_sigma(o)
        if peephole:
            dc_new = dc_new + da_o * p_o
            dp_o += (da_o * saved["c_new"][t]).sum(0)

        # c_new = f * c_prev + i * g
        di, dg, df = dc_new * g, dc_new * i, dc_new * c_prev
        dc_back = dc_new * f
        da_g = dg * d_phi(g)
        if cifg:
            da_f = (df - di) * d_sigma(f)          # i = 1 - f
            d_pre[t] = torch.cat((da_f, da_g, da_o), dim=1)
        else:
            da_i, da_f = di * d_sigma(i), df * d_sigma(f)
            if peephole:
                dc_back = dc_back + da_i * p_i + da_f * p_f
                dp_i += (da_i * c_prev).sum(0)
                dp_f += (da_f * c_prev).sum(0)
            d_pre[t] = torch.cat((da_i, da_f, da_g, da_o), dim=1)

        if layernorm:
            d_hw[t] = _normalise_backward(d_pre[t] * w.ln_gain_hh, saved["h_hat"][t], saved["h_rstd"][t])
        dh_in = d_hw[t] @ w.w_hh
        if recurrent_mask is not None:
            dh_in = dh_in * recurrent_mask
        dh = dh_in if dh_prev is None else dh_prev + dh_in
        dc = dc_back if dc_prev is None else dc_prev + dc_back

    # After the loop: dx and the weight gradients, one GEMM each over all steps.
    if layernorm:
        d_xw = _normalise_backward(d_pre * w.ln_gain_ih, saved["x_hat"], saved["x_rstd"])
    else:
        d_xw = d_pre
    dx = (d_xw.reshape(T * B, G) @ w.w_ih).reshape(T, B, -1)
    grads = dict(
        w_ih=gemm_over_steps(d_xw, x),
        w_hh=gemm_over_steps(d_hw, saved["h_in"]),
        b_ih=sum_rows(d_pre) if w.b_ih is not None else None,
        b_hh=sum_rows(d_pre) if w.b_hh is not None else None,
        w_hr=gemm_over_steps(dh_new_all, saved["h_core"]) if w.w_hr is not None else None,
        w_peep=torch.cat((dp_i, dp_f, dp_o)) if peephole else None,
        ln_gain_ih=sum_rows(d_pre * saved["x_hat"]) if layernorm else None,
        ln_gain_hh=sum_rows(d_pre * saved["h_hat"]) if layernorm else None,
        ln_gain_c=d_gain_c if layernorm else None,
        ln_bias_c=d_bias_c if layernorm else None,
    )
    return dx, dh, dc, grads


class LSTMFunction(torch.autograd.Function):
    """autograd.Function over one LSTM layer-direction with the hand-written backward above.

    apply(x, h0, c0, recurrent_mask, keep_h, keep_c, out_mask, config, *weights) where config is
    (cell, activation, recurrent_activation) and weights are the LSTMWeights fields in order.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, recurrent_mask, keep_h, keep_c, out_mask, config, *weights):
        w = LSTMWeights(*weights)
        cell, act, ract = config
        y, h, c, saved = lstm_forward(x, h0, c0, w, cell, act, ract, recurrent_mask, keep_h, keep_c, out_mask)
        ctx.config = config
        ctx.saved_names = [k for k, v in saved.items() if v is not None]
        ctx.weight_present = [v is not None for v in weights]
        ctx.save_for_backward(x, recurrent_mask, keep_h, keep_c, out_mask, *weights,
                              *(saved[k] for k in ctx.saved_names))
        return y, h, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_T, dc_T):
        x, recurrent_mask, keep_h, keep_c, out_mask, *rest = ctx.saved_tensors
        n_w = len(LSTMWeights._fields)
        w = LSTMWeights(*rest[:n_w])
        saved = dict.fromkeys(("h_core", "x_hat", "x_rstd", "h_hat", "h_rstd", "c_hat", "c_rstd"))
        saved.update(zip(ctx.saved_names, rest[n_w:]))
        cell, act, ract = ctx.config
        dx, dh0, dc0, grads = lstm_backward(dy, dh_T, dc_T, x, w, saved, cell, act, ract,
                                            recurrent_mask, keep_h, keep_c, out_mask)
        weight_grads = [grads[name] if present else None
                        for name, present in zip(LSTMWeights._fields, ctx.weight_present)]
        return (dx, dh0, dc0, None, None, None, None, None, *weight_grads)
