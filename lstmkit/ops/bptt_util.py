"""Small pieces the hand-written passes share: the work done for all steps at once."""

from typing import Optional

import torch
from torch import Tensor


def input_projection(x: Tensor, w_ih: Tensor, *biases: Optional[Tensor], dtype: Optional[torch.dtype] = None) -> Tensor:
    """W_ih x_t + the biases for every step as one GEMM: x [T, B, I] -> [T, B, G], in `dtype`
    (default x's). The GEMM runs in the weight's precision: bf16 inference passes x and W_ih
    in bf16 and gets float32 back, the biases added in the same pass."""
    T, B, I = x.shape
    present = [b for b in biases if b is not None]
    bias = None if not present else present[0] if len(present) == 1 else sum(present)
    x2 = x.reshape(T * B, I)
    if dtype is not None and dtype != x.dtype:
        projected = x2 @ w_ih.t()
        out = projected.to(dtype) if bias is None else torch.add(bias, projected)   # promotes to dtype
        return out.reshape(T, B, -1)
    if bias is None:
        return (x2 @ w_ih.t()).reshape(T, B, -1)
    return torch.addmm(bias, x2, w_ih.t()).reshape(T, B, -1)


def sum_rows(v: Tensor) -> Tensor:
    """Sum over every step and batch row: v [T, B, N] -> [N] (a bias gradient)."""
    return v.reshape(-1, v.shape[-1]).sum(0)


def gemm_over_steps(d: Tensor, v: Tensor) -> Tensor:
    """sum_t d_t^T v_t as one GEMM: d [T, B, M], v [T, B, N] -> [M, N] (a weight gradient)."""
    return d.reshape(-1, d.shape[-1]).t() @ v.reshape(-1, v.shape[-1])
