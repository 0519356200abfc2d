"""Input: the entry point of a functional model, a KerasTensor of shape (batch, *shape)."""

from __future__ import annotations

from ..layer import Layer
from ..tensor import KerasTensor, Node

_DTYPES = ("float32", "int32", "int64", "bool", "float64")


class InputLayer(Layer):
    """Holds the shape of a model input. Input(shape=(T, F)) -> KerasTensor (None, T, F)."""

    def __init__(self, shape=None, batch_size=None, dtype=None, batch_shape=None, name=None, **kwargs):
        for legacy in ("input_shape", "batch_input_shape"):
            if legacy in kwargs:
                value = kwargs.pop(legacy)
                if legacy == "input_shape":
                    shape = value
                else:
                    batch_shape = value
        super().__init__(name=name, **kwargs)
        if batch_shape is None:
            if shape is None:
                raise ValueError("Input needs shape= (without the batch dimension) or batch_shape=")
            if isinstance(shape, int):
                shape = (shape,)
            batch_shape = (batch_size, *tuple(shape))
        self.batch_shape = tuple(None if d is None else int(d) for d in batch_shape)
        dtype = "float32" if dtype is None else str(dtype).replace("torch.", "")
        if dtype not in _DTYPES:
            raise ValueError(f"Input dtype must be one of {list(_DTYPES)}, got {dtype!r}")
        self.input_dtype = dtype
        self.built = True
        self.output = KerasTensor(self.batch_shape, dtype, name=self.name)
        Node(self, (), {}, self.output)
        self._output_shape = self.batch_shape

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return self.batch_shape

    def get_config(self):
        return {"name": self.name, "batch_shape": list(self.batch_shape), "dtype": self.input_dtype}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, **kwargs) -> KerasTensor:
    """A symbolic model input. shape excludes the batch dimension; None marks any length.

    Input(shape=(None,), dtype="int32")  -> token ids of any length, (None, None)
    Input(shape=(5, 10))                 -> (None, 5, 10)
    """
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, batch_shape=batch_shape, name=name, **kwargs)
    return layer.output
