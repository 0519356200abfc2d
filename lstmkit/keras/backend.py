"""What the Keras front end shares: the device, float type, layer names, seeding, and turning
user data (numpy, lists, torch) into tensors with clear errors.

    device()             torch.device: $LSTMKIT_DEVICE if set, else CUDA when available, else CPU
    floatx()             "float32" (the dtype of every layer's weights)
    unique_name(base)    "lstm", "lstm_1", ... per session, as Keras names layers
    clear_session()      reset the name counters
    set_random_seed(n)   seed python, numpy and torch (Keras's keras.utils.set_random_seed)
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict

import numpy as np
import torch

_NAME_COUNTS: dict[str, int] = defaultdict(int)


def floatx() -> str:
    return "float32"


def epsilon() -> float:
    """Keras's fuzz factor (clip bound of the cross-entropies)."""
    return 1e-7


def device() -> torch.device:
    """Where models run: $LSTMKIT_DEVICE ("cpu", "cuda", "cuda:1") if set, else CUDA if available."""
    name = os.environ.get("LSTMKIT_DEVICE")
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def snake_case(name: str) -> str:
    """"SimpleRNN" -> "simple_rnn", "LSTM" -> "lstm", "TimeDistributed" -> "time_distributed"."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", s).lower()


def unique_name(base: str) -> str:
    """Keras's naming: the first layer of a kind is "lstm", then "lstm_1", "lstm_2", ..."""
    n = _NAME_COUNTS[base]
    _NAME_COUNTS[base] += 1
    return base if n == 0 else f"{base}_{n}"


def clear_session() -> None:
    """Reset the layer-name counters (as keras.backend.clear_session does)."""
    _NAME_COUNTS.clear()


def set_random_seed(seed: int) -> None:
    """Seed Python's random, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_tensor(value, name: str = "input", dtype=None) -> torch.Tensor:
    """numpy array / list / scalar / tensor -> torch tensor (floats as float32, ints as int64).

    Strings and objects raise a TypeError that names the argument and the dtype received.
    """
    if isinstance(value, torch.Tensor):
        t = value
    else:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf":
            raise TypeError(
                f"{name} must be numeric (float, int or bool), got a numpy array of dtype {arr.dtype}"
                + (" (strings: encode labels as integers first)" if arr.dtype.kind in "USO" else "")
            )
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if dtype is not None:
        return t.to(dtype)
    if t.is_floating_point() and t.dtype != torch.float32:
        return t.to(torch.float32)
    if t.dtype in (torch.int8, torch.int16, torch.int32, torch.uint8):
        return t.to(torch.int64)
    return t
