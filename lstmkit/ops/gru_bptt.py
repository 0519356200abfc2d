"""The GRU's forward pass and its backward pass through time, written out by hand.

Same split as lstm_bptt.py (read that first): the input projection before the loop, the time
loop (gru_steps.py, or the fused cpu/gru_steps.cpp), and dx and the weight gradients as one
GEMM each after it, where the fused loop did not make them itself. Equations (torch.nn.GRU's form):

    r = sigma(gx_r + gh_r),  z = sigma(gx_z + gh_z),  n = phi(gx_n + r * gh_n)
    h~ = (1 - z) * n + z * h_{t-1}       gx = W_ih x_t + b_ih,  gh = W_hh h_in + b_hh
"""

from __future__ import annotations

import torch

from . import gru_steps
from .bptt_util import (chunk_rows, gemm_over_steps, input_projection, join_chunks, linear, saved_by_chunk,
                        sum_rows)
from .weights import GRUWeights

SAVED = ("gates", "gh_n", "h_prev", "h_in")


def gru_forward(x, h0, w, activation, recurrent_activation,
                recurrent_mask=None, keep_h=None, out_mask=None, store=True, steps=gru_steps, reversed=False,
                out=None):
    """x [T, B, I], h0 [B, H], w: GRUWeights. Returns (y [T, B, H], h_T, saved or None), saved a
    list of dicts, one per batch chunk the fused loop ran side by side (as lstm_bptt.lstm_forward).
    reversed: over x from its last step to its first, y in x's order; out: where the loop may
    write y (as lstm_bptt.lstm_forward)."""
    if hasattr(steps, "forward_input_steps") and steps.input_fusion_fits(x, h0, w):
        # the fused loop multiplies x_t W_ih inside the loop, beside h_{t-1} W_hh
        y, h, *saved = steps.forward_input_steps(x, h0.contiguous(), w, recurrent_mask, keep_h, out_mask,
                                                 activation, recurrent_activation, store, reversed, out)
    else:
        if reversed:
            x = x.flip(0)
        xw = input_projection(x, w.w_ih, w.b_ih, dtype=h0.dtype)
        y, h, *saved = steps.forward_steps(xw.contiguous(), h0.contiguous(), w.w_hh, w.b_hh, recurrent_mask,
                                           keep_h, out_mask, activation, recurrent_activation, store)
        if reversed:
            y = y.flip(0)
    return y, h, (saved_by_chunk(SAVED, saved) if store else None)


def gru_backward(dy, dh_T, x, w, saved, activation, recurrent_activation,
                 recurrent_mask=None, keep_h=None, out_mask=None, steps=gru_steps, reversed=False):
    """Returns (dx, dh0, grads) with grads a dict keyed by the GRUWeights fields (reversed: as
    lstm_bptt.lstm_backward)."""
    masks = (recurrent_mask, keep_h, out_mask)
    if len(saved) > 1:                      # the forward ran the batch in chunks: so does backward
        flat = [chunk[k] for chunk in saved for k in SAVED]
        outs, dx = steps.backward_input_chunks(dy, dh_T.contiguous(), flat, w, *masks, activation,
                                               recurrent_activation, x, reversed)
        parts = [_after_loop(out, x.narrow(1, b0, n), w, s, reversed)
                 for out, s, (b0, n) in zip(outs, saved, chunk_rows(x.shape[1], len(saved)))]
        return join_chunks(parts, (1, -2), dx)      # dx [T, B, I], dh0 [B, H]
    s = saved[0]
    args = (dy, dh_T.contiguous(), s["gates"], s["gh_n"], s["h_prev"], w.w_hh, *masks, activation,
            recurrent_activation)
    if hasattr(steps, "backward_input_steps"):   # dx, dW_ih and dW_hh inside the loop, where it can
        out = steps.backward_input_steps(*args, x, w.w_ih, s["h_in"], reversed)
    else:                                    # plain loops: dy in the steps' order
        out = steps.backward_steps(dy.flip(0) if reversed else dy, *args[1:]) + (None, None, None)
    return _after_loop(out, x, w, s, reversed)


def _after_loop(out, x, w, s, reversed):
    """From what the backward loop returned (backward_input_steps' values) to (dx, dh0, grads):
    what the loop left, one GEMM or reduction each. x and s, the saved dict, of the rows it ran."""
    T, B, _ = x.shape
    d_gx, d_gh, dh0, dx, dw_ih, dw_hh, *column_sums = out
    # The fused loop sums the biases' gradients itself where it makes the weights'.
    in_loop = dict(zip(("b_ih", "b_hh"), column_sums))
    if reversed and (dx is None or dw_ih is None):
        x = x.flip(0)                       # what the steps read, for the GEMMs below
    if dx is None:
        dx = linear(d_gx.reshape(T * B, -1), w.w_ih.t()).reshape(T, B, -1)
        if reversed:
            dx = dx.flip(0)
    grads = dict(
        w_ih=gemm_over_steps(d_gx, x) if dw_ih is None else dw_ih,
        w_hh=gemm_over_steps(d_gh, s["h_in"]) if dw_hh is None else dw_hh,
        b_ih=None if w.b_ih is None else in_loop["b_ih"] if in_loop.get("b_ih") is not None else sum_rows(d_gx),
        b_hh=None if w.b_hh is None else in_loop["b_hh"] if in_loop.get("b_hh") is not None else sum_rows(d_gh),
    )
    return dx, dh0, grads


class GRUFunction(torch.autograd.Function):
    """apply(x, h0, recurrent_mask, keep_h, out_mask, config, *weights); config is
    (activation, recurrent_activation, steps[, reversed]), weights the GRUWeights fields in order."""

    @staticmethod
    def forward(ctx, x, h0, recurrent_mask, keep_h, out_mask, config, *weights):
        w = GRUWeights(*weights)
        act, ract, steps, reversed = (*config, False)[:4]
        y, h, saved = gru_forward(x, h0, w, act, ract, recurrent_mask, keep_h, out_mask, steps=steps,
                                  reversed=reversed)
        ctx.config = config
        ctx.weight_present = [v is not None for v in weights]
        ctx.save_for_backward(x, recurrent_mask, keep_h, out_mask, *weights, *(c[k] for c in saved for k in SAVED))
        return y, h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy, dh_T):
        x, recurrent_mask, keep_h, out_mask, *rest = ctx.saved_tensors
        n_w = len(GRUWeights._fields)
        w = GRUWeights(*rest[:n_w])
        saved = saved_by_chunk(SAVED, rest[n_w:])
        act, ract, steps, reversed = (*ctx.config, False)[:4]
        dx, dh0, grads = gru_backward(dy.contiguous(), dh_T, x, w, saved, act, ract, recurrent_mask, keep_h,
                                      out_mask, steps=steps, reversed=reversed)
        weight_grads = [grads[name] if present else None
                        for name, present in zip(GRUWeights._fields, ctx.weight_present)]
        return (dx, dh0, None, None, None, None, *weight_grads)
