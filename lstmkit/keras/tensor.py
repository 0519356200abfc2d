"""Symbolic tensors and the call graph of the functional API.

    x = Input(shape=(None, 8))        # KerasTensor, shape (None, None, 8)
    y = LSTM(16)(x)                   # KerasTensor (None, 16), made by a Node of the LSTM layer

A KerasTensor has a shape (ints, None for unknown), a dtype name, and `_keras_history` =
(node, index): the Node that produced it and its position among that node's outputs. A Node
records one call of a layer on symbolic tensors: the layer, the call's args and kwargs (which
hold KerasTensors where data will flow) and its outputs. Model(inputs, outputs) walks these back.
"""

from __future__ import annotations

from . import tree


class KerasTensor:
    """A placeholder for data of a known shape (batch dimension None) in a functional model."""

    def __init__(self, shape, dtype: str = "float32", name: str | None = None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtype
        self.name = name
        self._keras_history = None  # (node, index)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def node(self) -> "Node":
        return self._keras_history[0]

    def __repr__(self) -> str:
        src = f", produced by {self.node.layer.name!r}" if self._keras_history else ""
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}{src}>"

    def __len__(self):
        raise TypeError(
            "a symbolic KerasTensor has no length; to unpack a layer's several outputs "
            "(return_state=True) the layer returns a list"
        )

    def __iter__(self):
        raise TypeError("a symbolic KerasTensor cannot be iterated; call a layer on it instead")

    def __bool__(self):
        raise TypeError("a symbolic KerasTensor has no truth value")


class Node:
    """One call of `layer` on symbolic inputs: args/kwargs as given, outputs as returned."""

    def __init__(self, layer, args: tuple, kwargs: dict, outputs):
        self.layer = layer
        self.args = args
        self.kwargs = kwargs
        self.outputs = outputs  # structure of KerasTensor
        self.flat_outputs = tree.flatten(outputs)
        for i, t in enumerate(self.flat_outputs):
            t._keras_history = (self, i)

    @property
    def parents(self) -> list[KerasTensor]:
        """Every KerasTensor this call reads (args first, then kwargs such as initial_state)."""
        return [t for t in tree.flatten([list(self.args), self.kwargs]) if isinstance(t, KerasTensor)]


def any_symbolic(*structures) -> bool:
    return any(isinstance(t, KerasTensor) for t in tree.flatten(list(structures)))
