"""Layer norm without gain, split into its forward (keeping what backward needs) and backward,
for the hand-written passes. The readable form is reference.layer_norm."""

from __future__ import annotations

import torch
from torch import Tensor

from .reference import LAYER_NORM_EPS


def normalise(v: Tensor) -> tuple[Tensor, Tensor]:
    """v [..., N] -> (v_hat, rstd [..., 1]) with v_hat = (v - mean(v)) * rstd."""
    mean = v.mean(dim=-1, keepdim=True)
    centred = v - mean
    rstd = torch.rsqrt((centred * centred).mean(dim=-1, keepdim=True) + LAYER_NORM_EPS)
    return centred * rstd, rstd


def normalise_backward(d_hat: Tensor, v_hat: Tensor, rstd: Tensor) -> Tensor:
    """dL/dv from d_hat = dL/dv_hat, through v_hat = (v - mean) * rstd."""
    return rstd * (
        d_hat - d_hat.mean(dim=-1, keepdim=True) - v_hat * (d_hat * v_hat).mean(dim=-1, keepdim=True)
    )
