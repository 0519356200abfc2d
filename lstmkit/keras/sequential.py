"""keras.Sequential: a stack of layers, each feeding the next.

    model = Sequential([Embedding(1000, 32), LSTM(64), Dense(1)])   # built at the first call
    model = Sequential(); model.add(LSTM(50, input_shape=(5, 10)))   # built right away

The model is built (weights made, output shapes known for summary()) as soon as its input shape
is known: from Input(...) / an InputLayer, a first layer's input_shape=, build(shape), or the
first data it sees. Masks flow from layer to layer (Embedding(mask_zero=True) -> LSTM).
"""

from __future__ import annotations

from torch import nn

from . import tree
from .layer import Layer
from .layers.input_layer import InputLayer
from .model import Model
from .tensor import KerasTensor


class Sequential(Model):
    def __init__(self, layers=None, name=None, trainable=True):
        super().__init__(name=name, trainable=trainable)
        self._stack = nn.ModuleList()
        self._input_layer: InputLayer | None = None
        for layer in layers or []:
            self.add(layer)

    @property
    def layers(self) -> list[Layer]:
        return list(self._stack)

    def add(self, layer) -> None:
        """Append a layer (or set the input with Input(...) / InputLayer as the first entry)."""
        if isinstance(layer, KerasTensor):
            if layer._keras_history is None or not isinstance(layer.node.layer, InputLayer):
                raise ValueError("Sequential.add takes layers; a tensor may only be an Input(...)")
            layer = layer.node.layer
        if isinstance(layer, InputLayer):
            if self._stack or self._input_layer is not None:
                raise ValueError("an Input can only be the first entry of a Sequential model")
            self._input_layer = layer
            self._build_from(layer.batch_shape, layer.input_dtype)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add takes lstmkit.keras layers, got {type(layer).__name__}")
        if any(layer is l for l in self._stack):
            raise ValueError(f"layer {layer.name!r} is already in the model")
        self._stack.append(layer)
        if len(self._stack) == 1 and self._input_layer is None and layer._batch_input_shape is not None:
            dtype = "int32" if type(layer).__name__ == "Embedding" else "float32"
            self._input_layer = InputLayer(batch_shape=layer._batch_input_shape, dtype=dtype,
                                           name=f"{layer.name}_input")
        if self._input_layer is not None:
            self._build_from(self._input_layer.batch_shape, self._input_layer.input_dtype)

    def pop(self) -> Layer:
        if not self._stack:
            raise ValueError("there is no layer to pop")
        layer = self._stack[-1]
        del self._stack[-1]
        return layer

    def _build_from(self, batch_shape, dtype="float32") -> None:
        """Run the shapes through the layers (building each): a symbolic pass."""
        x = KerasTensor(batch_shape, dtype)
        for layer in self._stack:
            x = layer(x)
            if not isinstance(x, KerasTensor):
                raise ValueError(
                    f"layer {layer.name!r} returns several outputs ({len(x)}); a Sequential model needs "
                    "one output per layer (use the functional API for return_state)"
                )
        self.built = bool(self._stack)
        self._build_input_shape = tuple(batch_shape)
        self._output_shape = x.shape

    def build(self, input_shape=None):
        if input_shape is None:
            if self._input_layer is None:
                raise ValueError("Sequential.build() needs an input shape (batch dimension first, may be None)")
            input_shape = self._input_layer.batch_shape
        if not tree.is_shape(tuple(input_shape)):
            raise ValueError(f"Sequential takes one input; got input shape {input_shape}")
        self._build_from(tuple(input_shape))

    def _maybe_build(self, input_shape) -> None:
        if not self.built:
            if not self._stack:
                raise ValueError("the Sequential model has no layers")
            self.build(input_shape)
            self._apply_trainable()

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 1:
                raise ValueError(f"a Sequential model takes one input array, got a list of {len(inputs)}")
            inputs = inputs[0]
        if self._input_layer is not None:
            want = self._input_layer.batch_shape
            if inputs.dim() != len(want) or any(d is not None and d != g for d, g in zip(want[1:], inputs.shape[1:])):
                raise ValueError(f"the model expects input of shape {want}, got {tuple(inputs.shape)}")
        x = inputs
        for layer in self._stack:
            x = layer(x)
        return x

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._stack:
            shape = layer.compute_output_shape(shape)
        return shape

    @property
    def inputs(self):
        return [] if self._input_layer is None else [self._input_layer.output]

    @property
    def output_names(self) -> list[str]:
        return [self._stack[-1].name] if self._stack else ["output"]

    @property
    def input_names(self) -> list[str]:
        return [self._input_layer.name] if self._input_layer is not None else ["input"]

    def get_config(self):
        from .saving import serialize_layer

        config = {"name": self.name, "layers": [serialize_layer(l) for l in self._stack]}
        if self._input_layer is not None:
            config["input"] = self._input_layer.get_config()
        elif self._build_input_shape is not None:
            config["build_input_shape"] = list(self._build_input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .saving import deserialize_layer

        model = cls(name=config.get("name"))
        if "input" in config:
            model.add(InputLayer(**config["input"]))
        for layer_config in config["layers"]:
            model.add(deserialize_layer(layer_config, custom_objects))
        if not model.built and config.get("build_input_shape") is not None:
            model.build(tuple(config["build_input_shape"]))
        return model
