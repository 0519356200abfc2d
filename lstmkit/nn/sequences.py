"""Padded batches of variable-length sequences: reversing each within its length, and moving
between PackedSequence and (padded tensor, lengths). All time-major: [T, B, *]."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence


def reverse_index(lengths: Optional[Tensor], steps: int, device) -> Optional[Tensor]:
    """[T, B] gather index that reverses each sequence's first lengths[b] steps in place and
    leaves its padding where it is; None without lengths (a plain flip does)."""
    if lengths is None:
        return None
    t = torch.arange(steps, device=device).unsqueeze(1)
    n = lengths.to(device).unsqueeze(0)
    return torch.where(t < n, n - 1 - t, t)


def reverse_sequences(x: Tensor, index: Optional[Tensor]) -> Tensor:
    """Reverse x [T, B, F] along time within each sequence (index from reverse_index)."""
    if index is None:
        return x.flip(0)
    return x.gather(0, index.unsqueeze(-1).expand_as(x))


def unpack(packed: PackedSequence) -> tuple[Tensor, Tensor]:
    """PackedSequence -> (padded [T, B, F] in the caller's batch order, lengths [B])."""
    padded, lengths = pad_packed_sequence(packed)
    return padded, lengths


def repack(padded: Tensor, like: PackedSequence) -> PackedSequence:
    """Pack padded [T, B, F] (caller's batch order) with the layout of `like`, so the output
    PackedSequence has the input's batch_sizes and sorting, as torch.nn.LSTM returns it."""
    if like.sorted_indices is not None:
        padded = padded.index_select(1, like.sorted_indices.to(padded.device))
    batch_sizes = like.batch_sizes.to(padded.device)
    in_batch = torch.arange(padded.shape[1], device=padded.device).unsqueeze(0) < batch_sizes.unsqueeze(1)
    data = padded[: len(batch_sizes)][in_batch]
    return PackedSequence(data, like.batch_sizes, like.sorted_indices, like.unsorted_indices)
