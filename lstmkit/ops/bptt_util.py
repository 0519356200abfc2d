"""Small pieces the hand-written passes share: the work done for all steps at once."""

from typing import Optional

import torch
from torch import Tensor

from . import cpu


_ONEDNN_MIN_WORK = 1 << 22


def linear(x: Tensor, w: Tensor, bias: Optional[Tensor] = None) -> Tensor:
    """x [M, K] @ w[N, K]^T (+ bias [N]) as one GEMM. Large float32 products on the CPU go to
    oneDNN's matmul, which on this project's AMD machines runs 10-25% faster than MKL's sgemm
    (benchmarks/RESULTS.md); the rest to torch.addmm / matmul."""
    if (x.device.type == "cpu" and x.dtype == torch.float32 and w.dtype == torch.float32
            and x.shape[0] * w.shape[0] * w.shape[1] >= _ONEDNN_MIN_WORK and torch.backends.mkldnn.is_available()):
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), w.contiguous(), bias, "none", [], "")
    return x @ w.t() if bias is None else torch.addmm(bias, x, w.t())


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
    return linear(x2, w_ih, bias).reshape(T, B, -1)


def sum_rows(v: Tensor, w: Optional[Tensor] = None) -> Tensor:
    """Sum over every step and batch row of v, or of v * w: [T, B, N] -> [N] (a bias, peephole or
    gain gradient). With the fused kernels, in one pass without the product as a temporary."""
    v2 = v.reshape(-1, v.shape[-1])
    w2 = None if w is None else w.reshape(-1, w.shape[-1])
    ext = cpu.load() if v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64) else None
    if ext is not None and v2.stride(-1) == 1 and (w2 is None or (w2.stride(-1) == 1 and w2.dtype == v.dtype)):
        return ext.sum_rows(v2, w2)
    return (v2 if w2 is None else v2 * w2).sum(0)


def chunk_rows(batch: int, chunks: int) -> list[tuple[int, int]]:
    """(first row, rows) of each of `chunks` consecutive pieces of `batch` rows, split as the
    fused loops split a batch among their threads (cpu/team.h's chunk_rows)."""
    return [(batch * c // chunks, batch * (c + 1) // chunks - batch * c // chunks) for c in range(chunks)]


def saved_by_chunk(names: tuple, tensors) -> list[dict]:
    """What a forward returned for backward after its outputs, as a dict by name per batch chunk:
    one, unless the fused loop ran the batch in chunks side by side (a small layer's training
    forward, cpu/team.h's batch_chunks), which returns each chunk's tensors in turn."""
    n = len(names)
    return [dict(zip(names, tensors[i:i + n])) for i in range(0, len(tensors), n)]


def join_chunks(parts: list[tuple], batch_dims: tuple, dx: Optional[Tensor] = None) -> tuple:
    """Several batch chunks' backward results as one: each part is (dx, tensors..., grads dict);
    the tensors join along their batch dimension (batch_dims, one per tensor), except dx where
    given (the chunks' loops wrote their rows of it in place); the gradients add up name by name
    (None stays None), into the first chunk's, which the backward made and nothing else holds."""
    joined = [torch.cat([part[i] for part in parts], dim) for i, dim in enumerate(batch_dims)
              if i > 0 or dx is None]
    grads = dict(parts[0][-1])
    for part in parts[1:]:
        for name, g in part[-1].items():
            if g is not None:
                grads[name].add_(g)
    return (*([dx] if dx is not None else []), *joined, grads)


def gemm_over_steps(d: Tensor, v: Tensor) -> Tensor:
    """sum_t d_t^T v_t as one GEMM: d [T, B, M], v [T, B, N] -> [M, N] (a weight gradient)."""
    return d.reshape(-1, d.shape[-1]).t() @ v.reshape(-1, v.shape[-1])
