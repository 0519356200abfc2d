"""Turn fit/evaluate/predict's x, y, sample_weight into batches of tensors.

Array data: numpy arrays, torch tensors or nested lists/tuples/dicts of them (one entry per model
input or output); every leaf must have the same number of rows. Floats become float32, ints
int64. Batches are taken in order or in a fresh permutation per epoch (shuffle). validation_split
takes the last fraction of the rows, before any shuffling, as Keras does.

Loader data: a torch Dataset (batched here) or DataLoader (used as is) whose items are
(x, y) or (x, y, sample_weight), or x alone for predict.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from . import tree
from .backend import to_tensor


def _convert(structure, what: str):
    """Arrays -> tensors. A list/tuple of arrays or a dict is a structure (one per input or
    output); any other list (of numbers, of lists) is one array."""
    if structure is None:
        return None
    if isinstance(structure, dict):
        return {k: _convert(v, f"{what}[{k!r}]") for k, v in structure.items()}
    if isinstance(structure, (list, tuple)) and structure and all(
            isinstance(v, (np.ndarray, torch.Tensor, dict)) for v in structure):
        return [_convert(v, f"{what}[{k}]") for k, v in enumerate(structure)]
    if isinstance(structure, (np.ndarray, torch.Tensor, list, tuple)) or np.isscalar(structure):
        return to_tensor(structure, what)
    raise TypeError(f"{what} must be numpy arrays or torch tensors, got {type(structure).__name__}")


class ArrayData:
    """In-memory x, y (optional), sample_weight (optional) with a common number of rows."""

    def __init__(self, x, y=None, sample_weight=None):
        if x is None:
            raise ValueError("x is required: the model's input data")
        self.x = _convert(x, "x")
        self.y = _convert(y, "y")
        self.sample_weight = _convert(sample_weight, "sample_weight")
        rows = {}
        for what, s in (("x", self.x), ("y", self.y), ("sample_weight", self.sample_weight)):
            if s is None:
                continue
            for leaf in tree.flatten(s):
                if leaf.dim() == 0:
                    raise ValueError(f"{what} must have a first (sample) dimension, got a scalar")
                rows.setdefault(what, set()).add(leaf.shape[0])
        for what, counts in rows.items():
            if len(counts) > 1:
                raise ValueError(f"the arrays in {what} have different numbers of rows: {sorted(counts)}")
        n = {what: next(iter(c)) for what, c in rows.items()}
        if "y" in n and n["y"] != n["x"]:
            raise ValueError(
                f"x has {n['x']} rows (samples) but y has {n['y']} rows: they must have the same number"
            )
        if "sample_weight" in n and n["sample_weight"] != n["x"]:
            raise ValueError(f"x has {n['x']} rows but sample_weight has {n['sample_weight']}")
        self.rows = n["x"]

    def __len__(self) -> int:
        return self.rows

    def take(self, index) -> "ArrayData":
        pick = lambda s: None if s is None else tree.map_structure(lambda t: t[index], s)  # noqa: E731
        out = ArrayData.__new__(ArrayData)
        out.x, out.y, out.sample_weight = pick(self.x), pick(self.y), pick(self.sample_weight)
        out.rows = len(range(self.rows)[index]) if isinstance(index, slice) else int(len(index))
        return out

    def split(self, fraction: float) -> tuple["ArrayData", "ArrayData"]:
        if not 0 < fraction < 1:
            raise ValueError(f"validation_split must be in (0, 1), got {fraction}")
        cut = int(math.floor(self.rows * (1.0 - fraction)))
        if cut <= 0 or cut >= self.rows:
            raise ValueError(
                f"validation_split={fraction} leaves no training or no validation rows out of {self.rows}"
            )
        return self.take(slice(0, cut)), self.take(slice(cut, self.rows))

    def steps(self, batch_size: int) -> int:
        return math.ceil(self.rows / batch_size)

    def batches(self, batch_size: int, shuffle: bool = False, generator=None) -> Iterator[tuple]:
        order = torch.randperm(self.rows, generator=generator) if shuffle else None
        for start in range(0, self.rows, batch_size):
            index = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            pick = lambda s: None if s is None else tree.map_structure(lambda t: t[index], s)  # noqa: E731
            yield pick(self.x), pick(self.y), pick(self.sample_weight)


class LoaderData:
    """A torch Dataset or DataLoader yielding (x, y[, sample_weight]) items."""

    def __init__(self, data, batch_size: int, shuffle: bool, has_y: bool = True):
        if isinstance(data, DataLoader):
            self.loader = data
        else:
            self.loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle)
        self.has_y = has_y

    def steps(self, batch_size: int) -> Optional[int]:
        try:
            return len(self.loader)
        except TypeError:
            return None

    def batches(self, batch_size: int, shuffle: bool = False, generator=None):
        for item in self.loader:
            if isinstance(item, dict):
                raise TypeError("Dataset items must be tuples (x, y[, sample_weight]), got a dict")
            if not self.has_y:  # predict: items are x, or (x,) / (x, y) / (x, y, sample_weight)
                x = item[0] if isinstance(item, (list, tuple)) else item
                yield _convert(x, "x"), None, None
                continue
            if not isinstance(item, (list, tuple)) or len(item) not in (2, 3):
                raise ValueError(
                    "each batch from the Dataset/DataLoader must be (x, y) or (x, y, sample_weight), got "
                    f"{type(item).__name__}" + (f" of {len(item)} items" if isinstance(item, (list, tuple)) else "")
                )
            x, y = _convert(item[0], "x"), _convert(item[1], "y")
            sw = _convert(item[2], "sample_weight") if len(item) == 3 else None
            n_x = tree.flatten(x)[0].shape[0]
            n_y = tree.flatten(y)[0].shape[0]
            if n_x != n_y:
                raise ValueError(f"a batch has {n_x} rows of x but {n_y} rows of y")
            yield x, y, sw


def is_loader(x) -> bool:
    return isinstance(x, (Dataset, DataLoader))


def adapt(x, y=None, sample_weight=None, batch_size=32, shuffle=False, has_y=True):
    if is_loader(x):
        if y is not None:
            raise ValueError("when x is a Dataset or DataLoader, y must be None (the items carry the targets)")
        return LoaderData(x, batch_size, shuffle, has_y=has_y)
    return ArrayData(x, y, sample_weight)
