"""Test factories: random weights for one layer-direction of every cell."""

from __future__ import annotations

import torch

from lstmkit import ops


def random_lstm_weights(cell: str, input_size: int, hidden: int, proj: int = 0, bias: bool = True,
                        dtype=torch.float64, generator=None) -> ops.LSTMWeights:
    """Weights with O(1) entries so every gate is away from saturation; requires_grad set."""
    g = generator
    G = ops.gate_rows(cell, hidden)
    P = proj or hidden

    def rnd(*shape, scale=0.5, offset=0.0):
        return (torch.randn(*shape, dtype=dtype, generator=g) * scale + offset).requires_grad_()

    return ops.LSTMWeights(
        w_ih=rnd(G, input_size),
        w_hh=rnd(G, P),
        b_ih=rnd(G, scale=0.3) if bias else None,
        b_hh=rnd(G, scale=0.3) if bias else None,
        w_hr=rnd(P, hidden) if proj else None,
        w_peep=rnd(3 * hidden) if cell == "peephole" else None,
        ln_gain_ih=rnd(G, scale=0.2, offset=1.0) if cell == "layernorm" else None,
        ln_gain_hh=rnd(G, scale=0.2, offset=1.0) if cell == "layernorm" else None,
        ln_gain_c=rnd(hidden, scale=0.2, offset=1.0) if cell == "layernorm" else None,
        ln_bias_c=rnd(hidden, scale=0.2) if cell == "layernorm" else None,
    )


def random_gru_weights(input_size: int, hidden: int, bias: bool = True, dtype=torch.float64,
                       generator=None) -> ops.GRUWeights:
    g = generator

    def rnd(*shape, scale=0.5):
        return (torch.randn(*shape, dtype=dtype, generator=g) * scale).requires_grad_()

    G = 3 * hidden
    return ops.GRUWeights(rnd(G, input_size), rnd(G, hidden), rnd(G, scale=0.3) if bias else None,
                          rnd(G, scale=0.3) if bias else None)
