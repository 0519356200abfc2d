"""lstmkit.keras.utils: to_categorical, pad_sequences, set_random_seed."""

from __future__ import annotations

import numpy as np

from .backend import set_random_seed


def to_categorical(y, num_classes=None, dtype="float32"):
    """Integer labels [...] -> one-hot [..., num_classes]."""
    y = np.asarray(y)
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise TypeError(f"to_categorical takes integer labels, got an array of dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    if num_classes is None:
        num_classes = int(y.max()) + 1 if y.size else 0
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"labels must be in [0, {num_classes - 1}], got min {y.min()} max {y.max()}")
    return np.eye(num_classes, dtype=dtype)[y]


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Lists of ids -> one array [n, maxlen], padded and truncated at the start ("pre") or end ("post")."""
    if padding not in ("pre", "post") or truncating not in ("pre", "post"):
        raise ValueError(f"padding and truncating must be 'pre' or 'post', got {padding!r}, {truncating!r}")
    seqs = [list(s) for s in sequences]
    if maxlen is None:
        maxlen = max((len(s) for s in seqs), default=0)
    out = np.full((len(seqs), maxlen), value, dtype=dtype)
    for k, s in enumerate(seqs):
        if not s or maxlen == 0:
            continue
        s = s[-maxlen:] if truncating == "pre" else s[:maxlen]
        if padding == "post":
            out[k, :len(s)] = s
        else:
            out[k, maxlen - len(s):] = s
    return out


__all__ = ["pad_sequences", "set_random_seed", "to_categorical"]
