"""The LSTM family's forward pass and its backward pass through time, written out by hand.

One torch.autograd.Function covers every LSTM cell (vanilla, peephole, cifg, layernorm) with
projection, recurrent dropout, zoneout and per-sequence lengths. Its backward uses no autograd.
The work splits three ways:

    before the loop   the input projection W_ih x_t (+ its layer norm) for all steps: one GEMM
    the loop          forward: gates, cell update, output per step; backward: per step the gate
                      gradients from dh_t and dc_t, then dh_{t-1} and dc_{t-1}
                      (lstm_steps.py in plain torch, or cpu/lstm_steps.cpp fused in C++)
    after the loop    dx and every weight gradient, each one GEMM or reduction over all steps
                      (the fused team loops make dx, and at small sizes dW_ih and dW_hh, in
                      the backward loop itself: cpu/loop_gradients.h)

A small layer's fused loops may run the batch in chunks, one thread each, forward and backward
(cpu/team.h's batch_chunks): the forward then returns each chunk's saved tensors, the backward
runs each chunk's loop on its rows and the chunks' gradients add up after.

Masks arrive already combined by the dispatcher (ops/dispatch.py), so lengths and zoneout are
one mechanism here:

    keep_h [T, B, P], keep_c [T, B, H]:  state_t = keep * state_{t-1} + (1 - keep) * new
    out_mask [T, B, 1]:                  y_t = out_mask_t * h_t   (0 past a sequence's end)
    recurrent_mask [B, P]:               h_in = h_{t-1} * recurrent_mask
"""

from __future__ import annotations

import torch

from . import lstm_steps
from .bptt_util import (chunk_rows, gemm_over_steps, input_projection, join_chunks, linear, saved_by_chunk,
                        sum_rows)
from .weights import LSTMWeights

SAVED = ("gates", "c_prev", "c_new", "phic", "h_in", "h_core", "x_hat", "x_rstd", "h_hat", "h_rstd", "c_hat",
         "c_rstd")


def lstm_forward(x, h0, c0, w, cell, activation, recurrent_activation,
                 recurrent_mask=None, keep_h=None, keep_c=None, out_mask=None, store=True, steps=lstm_steps,
                 reversed=False, out=None):
    """Run the sequence. x [T, B, I], h0 [B, P], c0 [B, H], w: LSTMWeights; steps is the module
    (or object) providing forward_steps. reversed: run over x from its last step to its first,
    as on x.flip(0), with y in x's order (y[t] the output at x[t]); the masks and the saved
    tensors are in the order the steps run. The fused loops read x and write y backward; the
    others run on flipped copies. out: a [T, B, P] tensor to write y into, where the loop can
    (the fused loops that make the input's product); y is out then, else a tensor of its own.

    Returns (y [T, B, P], h_T, c_T, saved) where saved is what backward needs (None when store
    is False: the inference path keeps nothing per step): a list of dicts by name, one per chunk
    of the batch the fused loop ran side by side (one dict unless it split the batch).
    """
    layernorm = cell == "layernorm"
    if hasattr(steps, "forward_input_steps") and steps.input_fusion_fits(x, h0, w, cell):
        # the fused loops multiply x_t W_ih inside the loop, beside h_{t-1} W_hh
        result = steps.forward_input_steps(x, h0.contiguous(), c0.contiguous(), w, recurrent_mask, keep_h, keep_c,
                                        out_mask, cell, activation, recurrent_activation, store, reversed,
                                        out)
    else:
        if reversed:
            x = x.flip(0)
        if layernorm:   # the bare projection: the loop normalises it and adds the biases after
            xw = input_projection(x, w.w_ih, dtype=h0.dtype)
            b_ih, b_hh = w.b_ih, w.b_hh
        else:           # both biases fold into the projection
            xw = input_projection(x, w.w_ih, w.b_ih, w.b_hh, dtype=h0.dtype)
            b_ih = b_hh = None
        result = steps.forward_steps(
            xw.contiguous(), h0.contiguous(), c0.contiguous(), w.w_hh, b_ih, b_hh, w.w_hr, w.w_peep,
            w.ln_gain_ih, w.ln_gain_hh, w.ln_gain_c, w.ln_bias_c, recurrent_mask, keep_h, keep_c, out_mask,
            cell, activation, recurrent_activation, store)
        if reversed:
            result = (result[0].flip(0), *result[1:])
    y, h, c = result[:3]
    saved = saved_by_chunk(SAVED, result[3:]) if store else None
    return y, h, c, saved


def lstm_backward(dy, dh_T, dc_T, x, w, saved, cell, activation, recurrent_activation,
                  recurrent_mask=None, keep_h=None, keep_c=None, out_mask=None, steps=lstm_steps, reversed=False):
    """BPTT by hand. dy [T, B, P], dh_T [B, P], dc_T [B, H]; reversed as lstm_forward (dy and dx
    in x's order); saved as lstm_forward returned it: where the forward ran the batch in chunks,
    the backward runs in the same chunks side by side, and their results join after.

    Returns (dx, dh0, dc0, grads) with grads a dict keyed by the LSTMWeights fields.
    """
    masks = (recurrent_mask, keep_h, keep_c, out_mask)
    if len(saved) > 1:                      # the forward ran the batch in chunks: so does backward
        flat = [chunk[k] for chunk in saved for k in SAVED]
        outs, dx = steps.backward_input_chunks(dy, dh_T.contiguous(), dc_T.contiguous(), flat, w, *masks, cell,
                                               activation, recurrent_activation, x, reversed)
        parts = [_after_loop(out, x.narrow(1, b0, n), w, s, cell, reversed)
                 for out, s, (b0, n) in zip(outs, saved, chunk_rows(x.shape[1], len(saved)))]
        return join_chunks(parts, (1, -2, -2), dx)      # dx [T, B, I], dh0, dc0 [B, *]
    s = saved[0]
    args = (dy, dh_T.contiguous(), dc_T.contiguous(), s["gates"], s["c_prev"], s["c_new"], s["phic"],
            s["x_hat"], s["x_rstd"], s["h_hat"], s["h_rstd"], s["c_hat"], s["c_rstd"], w.w_hh, w.w_hr, w.w_peep,
            w.ln_gain_ih, w.ln_gain_hh, w.ln_gain_c, *masks, cell, activation, recurrent_activation)
    if hasattr(steps, "backward_input_steps"):   # dx, dW_ih and dW_hh inside the loop, where it can
        out = steps.backward_input_steps(*args, x, w.w_ih, s["h_in"], s["h_core"], reversed)
    else:                                    # plain loops: dy in the steps' order
        out = steps.backward_steps(dy.flip(0) if reversed else dy, *args[1:]) + (None,) * 4
    return _after_loop(out, x, w, s, cell, reversed)


def _after_loop(out, x, w, s, cell, reversed):
    """From what the backward loop returned (backward_input_steps' values) to (dx, dh0, dc0,
    grads): what the loop left, one GEMM or reduction each over all steps. x [T, B, I] and s,
    the saved dict, of the rows the loop ran."""
    T, B, _ = x.shape
    d_pre, d_xw, d_hw, dh_new, d_c_norm, dh0, dc0, dx, dw_ih, dw_hh, dw_hr, *column_sums = out
    if reversed and (dx is None or dw_ih is None):
        x = x.flip(0)                       # what the steps read, for the GEMMs below
    layernorm = cell == "layernorm"
    if not layernorm:
        d_xw = d_pre
    if dx is None:
        dx = linear(d_xw.reshape(T * B, -1), w.w_ih.t()).reshape(T, B, -1)
        if reversed:
            dx = dx.flip(0)
    # The fused loops sum the bias, gain and peephole gradients themselves where they make the weights'.
    in_loop = dict(zip(("bias", "ln_gain_ih", "ln_gain_hh", "ln_gain_c", "ln_bias_c", "w_peep"), column_sums))
    # Both biases get the same gradient: one reduction, and a copy so the two .grad never share memory.
    d_bias = None
    if w.b_ih is not None or w.b_hh is not None:
        d_bias = in_loop["bias"] if in_loop.get("bias") is not None else sum_rows(d_pre)
    grads = dict(
        w_ih=gemm_over_steps(d_xw, x) if dw_ih is None else dw_ih,
        w_hh=gemm_over_steps(d_hw if layernorm else d_pre, s["h_in"]) if dw_hh is None else dw_hh,
        b_ih=d_bias if w.b_ih is not None else None,
        b_hh=None if w.b_hh is None else d_bias.clone() if w.b_ih is not None else d_bias,
        w_hr=gemm_over_steps(dh_new, s["h_core"]) if w.w_hr is not None and dw_hr is None else dw_hr,
    )
    if cell == "peephole" and in_loop.get("w_peep") is not None:
        grads["w_peep"] = in_loop["w_peep"]
    elif cell == "peephole":
        da_i, da_f, _, da_o = d_pre.chunk(4, dim=-1)
        grads["w_peep"] = torch.cat((sum_rows(da_i, s["c_prev"]), sum_rows(da_f, s["c_prev"]),
                                     sum_rows(da_o, s["c_new"])))
    if layernorm and in_loop.get("ln_gain_ih") is not None:
        grads.update((name, in_loop[name]) for name in ("ln_gain_ih", "ln_gain_hh", "ln_gain_c", "ln_bias_c"))
    elif layernorm:
        grads.update(ln_gain_ih=sum_rows(d_pre, s["x_hat"]), ln_gain_hh=sum_rows(d_pre, s["h_hat"]),
                     ln_gain_c=sum_rows(d_c_norm, s["c_hat"]), ln_bias_c=sum_rows(d_c_norm))
    return dx, dh0, dc0, grads


class LSTMFunction(torch.autograd.Function):
    """autograd.Function over one LSTM layer-direction with the hand-written backward above.

    apply(x, h0, c0, recurrent_mask, keep_h, keep_c, out_mask, config, *weights) where config is
    (cell, activation, recurrent_activation, steps[, reversed]) and weights are the LSTMWeights
    fields.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, recurrent_mask, keep_h, keep_c, out_mask, config, *weights):
        w = LSTMWeights(*weights)
        cell, act, ract, steps, reversed = (*config, False)[:5]
        y, h, c, saved = lstm_forward(x, h0, c0, w, cell, act, ract, recurrent_mask, keep_h, keep_c, out_mask,
                                      steps=steps, reversed=reversed)
        ctx.config = config
        ctx.saved_names = [(c, k) for c, chunk in enumerate(saved) for k, v in chunk.items() if v is not None]
        ctx.saved_chunks = len(saved)
        ctx.weight_present = [v is not None for v in weights]
        ctx.save_for_backward(x, recurrent_mask, keep_h, keep_c, out_mask, *weights,
                              *(saved[c][k] for c, k in ctx.saved_names))
        return y, h, c

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_T, dc_T):
        x, recurrent_mask, keep_h, keep_c, out_mask, *rest = ctx.saved_tensors
        n_w = len(LSTMWeights._fields)
        w = LSTMWeights(*rest[:n_w])
        saved = [dict.fromkeys(SAVED) for _ in range(ctx.saved_chunks)]
        for (c, k), v in zip(ctx.saved_names, rest[n_w:]):
            saved[c][k] = v
        cell, act, ract, steps, reversed = (*ctx.config, False)[:5]
        dx, dh0, dc0, grads = lstm_backward(dy.contiguous(), dh_T, dc_T, x, w, saved, cell, act, ract,
                                            recurrent_mask, keep_h, keep_c, out_mask, steps=steps,
                                            reversed=reversed)
        weight_grads = [grads[name] if present else None
                        for name, present in zip(LSTMWeights._fields, ctx.weight_present)]
        return (dx, dh0, dc0, None, None, None, None, None, *weight_grads)
