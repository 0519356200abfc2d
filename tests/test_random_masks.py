"""ops.bernoulli_mask, the draw behind zoneout and recurrent dropout masks: its rate, its
independence between elements, and its repeatability under torch.manual_seed."""

from __future__ import annotations

import math

import pytest
import torch

from lstmkit import ops

N = 1_000_000


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_the_share_of_ones_is_the_rate(rate, dtype):
    """Within five standard errors of the rate over a million draws (bfloat16 takes torch's own draw)."""
    torch.manual_seed(1)
    mask = ops.bernoulli_mask((N,), rate, torch.zeros(1, dtype=dtype))
    assert mask.dtype == dtype and mask.shape == (N,)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert abs(mask.double().mean().item() - rate) < 5 * math.sqrt(rate * (1 - rate) / N)


def test_neighbouring_elements_are_uncorrelated():
    """Counter-based draws of consecutive elements must not follow each other: the correlation
    between element i and i + 1 (and i + 128, a row apart in a [T, B, 128] mask) stays within
    five standard errors of zero."""
    torch.manual_seed(2)
    mask = ops.bernoulli_mask((N,), 0.5, torch.zeros(1)).double()
    for lag in (1, 128):
        a, b = mask[:-lag] - 0.5, mask[lag:] - 0.5
        corr = (a * b).mean().item() / 0.25
        assert abs(corr) < 5 / math.sqrt(N - lag)


def test_rates_zero_and_one_are_exact_and_shapes_kept():
    like = torch.zeros(1)
    assert ops.bernoulli_mask((7, 3, 5), 0.0, like).sum().item() == 0
    assert ops.bernoulli_mask((7, 3, 5), 1.0, like).sum().item() == 7 * 3 * 5


def test_torch_manual_seed_repeats_the_draw_and_the_next_draw_differs():
    like = torch.zeros(1)
    torch.manual_seed(3)
    first, second = ops.bernoulli_mask((50, 4, 16), 0.3, like), ops.bernoulli_mask((50, 4, 16), 0.3, like)
    torch.manual_seed(3)
    again = ops.bernoulli_mask((50, 4, 16), 0.3, like)
    assert torch.equal(first, again)
    assert not torch.equal(first, second)
