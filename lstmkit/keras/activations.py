"""Keras activations as torch functions, looked up by name (or passed as these functions).

    get("relu") -> relu;  get(None) -> linear;  name_of(relu) -> "relu"
Each function maps a tensor to a tensor of the same shape (softmax over the last axis).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear(x):
    return x


def relu(x):
    return torch.relu(x)


def tanh(x):
    return torch.tanh(x)


def sigmoid(x):
    return torch.sigmoid(x)


def hard_sigmoid(x):
    """Keras 3's definition: clip(x / 6 + 1/2, 0, 1)."""
    return torch.clamp(x / 6.0 + 0.5, 0.0, 1.0)


def softmax(x, axis=-1):
    return torch.softmax(x, dim=axis)


def log_softmax(x, axis=-1):
    return torch.log_softmax(x, dim=axis)


def elu(x):
    return F.elu(x)


def selu(x):
    return F.selu(x)


def gelu(x):
    return F.gelu(x)


def softplus(x):
    return F.softplus(x)


def softsign(x):
    return F.softsign(x)


def silu(x):
    return F.silu(x)


swish = silu


def leaky_relu(x):
    return F.leaky_relu(x, 0.2)  # Keras's default negative_slope


def exponential(x):
    return torch.exp(x)


_ALL = {
    f.__name__: f
    for f in (linear, relu, tanh, sigmoid, hard_sigmoid, softmax, log_softmax, elu, selu, gelu, softplus,
              softsign, silu, leaky_relu, exponential)
}
_ALL["swish"] = silu


def get(identifier):
    """A name ("relu"), None (linear), or a callable -> the activation function."""
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        if identifier not in _ALL:
            raise ValueError(f"unknown activation {identifier!r}: expected one of {sorted(_ALL)}")
        return _ALL[identifier]
    if callable(identifier):
        return identifier
    raise TypeError(f"activation must be a name, None or a callable, got {type(identifier).__name__}")


def name_of(identifier) -> str:
    """The Keras name of an activation ("linear" for None), for configs and the recurrent op.

    Callables are named by their __name__ (so torch.tanh and torch.relu work too)."""
    if identifier is None:
        return "linear"
    if isinstance(identifier, str):
        get(identifier)
        return identifier
    name = getattr(identifier, "__name__", None)
    if name in _ALL:
        return "silu" if name == "swish" else name
    raise ValueError(f"activation {identifier!r} has no Keras name; pass one of {sorted(_ALL)}")


def serialize(identifier) -> str:
    return name_of(identifier)


def deserialize(name):
    return get(name)
