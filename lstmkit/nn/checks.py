"""Input validation for the recurrent layers: each error names what was expected and what came."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import Tensor


def check_float_tensor(name: str, value, dtype: torch.dtype) -> Tensor:
    """A floating-point tensor of the layer's dtype, or a TypeError saying what came instead."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor ({dtype}), got dtype {value.dtype}")
    if value.dtype != dtype:
        raise TypeError(
            f"{name} has dtype {value.dtype} but the layer's parameters are {dtype}; "
            f"convert one of them (e.g. layer.to({dtype}) or {name}.to({dtype}))"
        )
    return value


def check_input(x: Tensor, input_size: int, batch_first: bool, dtype: torch.dtype) -> tuple[Tensor, bool]:
    """Validate a padded input and return (x time-major [T, B, I], was_unbatched)."""
    check_float_tensor("input", x, dtype)
    layout = "[batch, time, features]" if batch_first else "[time, batch, features]"
    if x.dim() not in (2, 3):
        raise ValueError(
            f"input must be 3-D {layout} or 2-D [time, features] (unbatched), "
            f"got {x.dim()}-D with shape {tuple(x.shape)}"
        )
    if x.shape[-1] != input_size:
        raise ValueError(
            f"input must have input_size={input_size} features in its last dimension, "
            f"got shape {tuple(x.shape)} ({x.shape[-1]} features)"
        )
    if x.dim() == 2:
        return x.unsqueeze(1), True
    if x.shape[0 if batch_first else 1] == 0 or x.shape[1 if batch_first else 0] == 0:
        raise ValueError(f"input has an empty time or batch dimension: shape {tuple(x.shape)}")
    return (x.transpose(0, 1) if batch_first else x), False


def check_lengths(lengths, batch: int, steps: int) -> Optional[Tensor]:
    """Per-sequence lengths as an int64 tensor [B] with 1 <= lengths <= T, or None when every
    sequence runs the full T steps (the fast path needs no masks then)."""
    if lengths is None:
        return None
    if isinstance(lengths, Tensor):
        if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must hold integers, got a tensor of dtype {lengths.dtype}")
        lengths = lengths.detach().to("cpu", torch.int64)
    else:
        lengths = torch.as_tensor(_as_int_list(lengths), dtype=torch.int64)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(
            f"lengths must be 1-D with one entry per sequence (batch size {batch}), "
            f"got shape {tuple(lengths.shape)}"
        )
    too_long = lengths > steps
    if bool(too_long.any()):
        b = int(too_long.nonzero()[0])
        raise ValueError(
            f"lengths must not exceed the sequence length T={steps}, "
            f"got lengths[{b}]={int(lengths[b])}"
        )
    not_positive = lengths < 1
    if bool(not_positive.any()):
        b = int(not_positive.nonzero()[0])
        raise ValueError(f"lengths must be >= 1, got lengths[{b}]={int(lengths[b])}")
    if bool((lengths == steps).all()):
        return None
    return lengths


def _as_int_list(values: Sequence) -> list[int]:
    try:
        out = [int(v) for v in values]
    except (TypeError, ValueError):
        raise TypeError(f"lengths must be a sequence of integers, got {values!r}") from None
    if any(int(v) != v for v in values):
        raise TypeError(f"lengths must be integers, got {list(values)!r}")
    return out


def check_state(name: str, value, expected: tuple[int, ...], dtype: torch.dtype, unbatched: bool) -> Tensor:
    """An initial state of exactly `expected` shape ([L*D, B, N], or [L*D, N] unbatched)."""
    check_float_tensor(name, value, dtype)
    want = (expected[0], expected[2]) if unbatched else expected
    if tuple(value.shape) != want:
        kind = "unbatched input" if unbatched else "batched input"
        raise ValueError(
            f"{name} must have shape {want} (num_layers * num_directions, "
            f"{'' if unbatched else 'batch, '}state size) for {kind}, got {tuple(value.shape)}"
        )
    return value.unsqueeze(1) if unbatched else value
