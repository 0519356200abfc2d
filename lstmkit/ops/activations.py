"""Gate and candidate nonlinearities, with derivatives written from their outputs.

Every activation here has a derivative that can be computed from its *output* y = f(a) alone,
so the hand-written backward stores only activations, never pre-activations:

    sigmoid       y = 1 / (1 + e^-a)          f'(a) = y (1 - y)
    tanh          y = tanh(a)                 f'(a) = 1 - y^2
    relu          y = max(a, 0)               f'(a) = [y > 0]
    hard_sigmoid  y = clip(a / 6 + 1/2, 0, 1) f'(a) = [0 < y < 1] / 6   (Keras 3's definition)
    linear        y = a                       f'(a) = 1
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch


class Activation(NamedTuple):
    name: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    grad_from_output: Callable[[torch.Tensor], torch.Tensor]


def _hard_sigmoid(a: torch.Tensor) -> torch.Tensor:
    return torch.clamp(a / 6.0 + 0.5, 0.0, 1.0)


ACTIVATIONS: dict[str, Activation] = {
    "sigmoid": Activation("sigmoid", torch.sigmoid, lambda y: y * (1.0 - y)),
    "tanh": Activation("tanh", torch.tanh, lambda y: 1.0 - y * y),
    "relu": Activation("relu", torch.relu, lambda y: (y > 0).to(y.dtype)),
    "hard_sigmoid": Activation(
        "hard_sigmoid", _hard_sigmoid, lambda y: ((y > 0) & (y < 1)).to(y.dtype) / 6.0
    ),
    "linear": Activation("linear", lambda a: a, torch.ones_like),
}


def get_activation(name: str) -> Activation:
    """Look up an activation by its Keras name; raise ValueError naming the choices."""
    if isinstance(name, Activation):
        return name
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}: expected one of {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[name]
