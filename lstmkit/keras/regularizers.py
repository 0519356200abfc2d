"""Keras weight regularizers: each maps a weight tensor to a scalar penalty added to the loss.

    L1(l1=0.01), L2(l2=0.01), L1L2(l1=0.0, l2=0.0); names "l1", "l2", "l1_l2".
Keras's L2 is l2 * sum(w ** 2) (no 1/2 factor).
"""

from __future__ import annotations

import torch


class Regularizer:
    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}


class L1L2(Regularizer):
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def __call__(self, w):
        out = w.new_zeros(())
        if self.l1:
            out = out + self.l1 * w.abs().sum()
        if self.l2:
            out = out + self.l2 * (w * w).sum()
        return out

    def get_config(self):
        return {"l1": self.l1, "l2": self.l2}


class L1(L1L2):
    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"l1": self.l1}


class L2(L1L2):
    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"l2": self.l2}


l1, l2, l1_l2 = L1, L2, L1L2
_NAMES = {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2}


def get(identifier):
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ValueError(f"unknown regularizer {identifier!r}: expected one of {sorted(_NAMES)}")
        return _NAMES[identifier]()
    if isinstance(identifier, dict):
        return _NAMES[identifier["class_name"]](**identifier.get("config", {}))
    if callable(identifier):
        return identifier
    raise TypeError(f"regularizer must be a name or a Regularizer, got {type(identifier).__name__}")


def serialize(reg):
    if reg is None:
        return None
    if not isinstance(reg, Regularizer):
        raise ValueError(f"cannot save a custom regularizer {reg!r}")
    return {"class_name": type(reg).__name__, "config": reg.get_config()}
