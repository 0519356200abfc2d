"""Small pieces the hand-written passes share: the work done for all steps at once."""

from typing import Optional

import torch
from torch import Tensor


def input_projection(x: Tensor, w_ih: Tensor, *biases: Optional[Tensor]) -> Tensor:
    """W_ih x_t + the biases for every step as one GEMM: x [T, B, I] -> [T, B, G]."""
    T, B, I = x.shape
    present = [b for b in biases if b is not None]
    x2 = x.reshape(T * B, I)
    if not present:
        return (x2 @ w_ih.t()).reshape(T, B, -1)
    bias = present[0] if len(present) == 1 else sum(present)
    return torch.addmm(bias, x2, w_ih.t()).reshape(T, B, -1)


def sum_rows(v: Tensor) -> Tensor:
    """Sum over every step and batch row: v [T, B, N] -> [N] (a bias gradient)."""
    return v.reshape(-1, v.shape[-1]).sum(0)


def gemm_over_steps(d: Tensor, v: Tensor) -> Tensor:
    """sum_t d_t^T v_t as one GEMM: d [T, B, M], v [T, B, N] -> [M, N] (a weight gradient)."""
    return d.reshape(-1, d.shape[-1]).t() @ v.reshape(-1, v.shape[-1])
