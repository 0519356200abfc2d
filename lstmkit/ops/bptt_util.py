"""Small pieces the hand-written backward passes share: reductions over all steps at once."""

from torch import Tensor


def sum_rows(v: Tensor) -> Tensor:
    """Sum over every step and batch row: v [T, B, N] -> [N] (a bias gradient)."""
    return v.reshape(-1, v.shape[-1]).sum(0)


def gemm_over_steps(d: Tensor, v: Tensor) -> Tensor:
    """sum_t d_t^T v_t as one GEMM: d [T, B, M], v [T, B, N] -> [M, N] (a weight gradient)."""
    return d.reshape(-1, d.shape[-1]).t() @ v.reshape(-1, v.shape[-1])
