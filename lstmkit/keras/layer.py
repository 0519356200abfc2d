"""The Keras Layer on a torch.nn.Module: lazy build, symbolic and eager calls, masks, weights.

    layer = Dense(4)                 # no weights yet
    y = layer(torch.randn(2, 3))     # first call builds from the input shape (2, 3), then runs
    z = layer(Input(shape=(3,)))     # symbolic call: a KerasTensor (None, 4) for the functional API

Subclasses implement build(input_shape), call(inputs, [mask], [training], ...) and
compute_output_shape(input_shape); masking layers set supports_masking or compute_mask.
Masks travel with eager tensors as the attribute `_keras_mask` ([B, T] bool), as in Keras.
Layers start in eval mode (training=False, as a Keras layer called directly); Model.fit switches
its layers to training mode while it trains.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from . import tree
from .backend import snake_case, to_tensor, unique_name
from .tensor import KerasTensor, Node, any_symbolic

_BASE_KWARGS = ("name", "trainable", "dtype", "input_shape", "batch_input_shape", "batch_size", "input_dim")


def get_mask(x):
    return getattr(x, "_keras_mask", None) if isinstance(x, torch.Tensor) else None


def set_mask(x, mask) -> None:
    if isinstance(x, torch.Tensor):
        x._keras_mask = mask


class Layer(nn.Module):
    supports_masking = False

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None, batch_input_shape=None,
                 batch_size=None, input_dim=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {sorted(kwargs)}")
        super().__init__()
        if dtype not in (None, "float32", torch.float32):
            raise ValueError(f"lstmkit.keras layers compute in float32, got dtype={dtype!r}")
        self.name = name or unique_name(snake_case(type(self).__name__))
        self.built = False
        self._trainable = bool(trainable)
        if input_shape is not None:
            self._batch_input_shape = (batch_size, *tuple(input_shape))
        elif batch_input_shape is not None:
            self._batch_input_shape = tuple(batch_input_shape)
        elif input_dim is not None:
            self._batch_input_shape = (batch_size, int(input_dim))
        else:
            self._batch_input_shape = None
        self._build_input_shape = None
        self._output_shape = None
        self._inbound_nodes: list[Node] = []
        self.train(False)

    # ------------------------------------------------------------------ to override

    def build(self, input_shape) -> None:
        """Create the weights for inputs of `input_shape` (batch dimension first, may be None)."""

    def call(self, inputs, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement call()")

    def compute_output_shape(self, input_shape):
        """Output shape(s) for an input shape; the default runs the layer on zeros."""
        def zeros(shape):
            return torch.zeros([2 if d is None else d for d in shape])
        with torch.no_grad():
            out = self.call(tree.map_structure(zeros, input_shape) if not tree.is_shape(input_shape)
                            else zeros(input_shape))
        return tree.map_structure(lambda t: (None, *t.shape[1:]), out)

    def compute_mask(self, inputs, mask=None):
        """The mask of the output: passed through when supports_masking, else dropped."""
        return mask if self.supports_masking else None

    # ------------------------------------------------------------------ building

    def _maybe_build(self, input_shape) -> None:
        if self.built:
            return
        self.build(input_shape)
        self._build_input_shape = input_shape
        self.built = True
        self._apply_trainable()

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self._trainable = bool(value)
        for child in self.modules():
            if isinstance(child, Layer) and child is not self:
                child._trainable = bool(value)
        self._apply_trainable()

    def _apply_trainable(self) -> None:
        """requires_grad of every weight from the trainable flag of the nearest enclosing Layer."""
        def apply(module: nn.Module, flag: bool) -> None:
            for p in module.parameters(recurse=False):
                p.requires_grad_(flag)
            for child in module.children():
                apply(child, flag and child._trainable if isinstance(child, Layer) else flag)

        apply(self, self._trainable)

    def add_weight(self, name: str, shape, initializer, trainable: bool = True) -> nn.Parameter:
        """Create, initialise (Keras layout shape) and register one weight."""
        from . import initializers

        value = initializers.get(initializer)(tuple(shape))
        param = nn.Parameter(value.to(torch.float32), requires_grad=trainable and self._trainable)
        self.register_parameter(name, param)
        return param

    # ------------------------------------------------------------------ calling

    def __call__(self, *args, **kwargs):
        if any_symbolic(args, kwargs):
            return self._symbolic_call(args, kwargs)
        return self._eager_call(args, kwargs)

    def _accepts(self, name: str) -> bool:
        return name in inspect.signature(self.call).parameters

    def _symbolic_call(self, args, kwargs):
        if not args:
            raise TypeError(f"layer {self.name!r} must be called with its inputs as the first argument")
        inputs = args[0]
        bad = [t for t in tree.flatten(inputs) if not isinstance(t, KerasTensor)]
        if bad:
            raise TypeError(
                f"layer {self.name!r}: in a functional model every input must be a symbolic tensor "
                f"from Input() or another layer, got {type(bad[0]).__name__}"
            )
        shapes = tree.map_structure(lambda t: t.shape, inputs)
        self._check_input_shape(shapes)
        self._maybe_build(shapes)
        out_shapes = self._output_shapes(shapes, kwargs)
        outputs = _shapes_to_tensors(out_shapes, self.compute_output_dtype(inputs))
        self._inbound_nodes.append(Node(self, args, kwargs, outputs))
        self._output_shape = out_shapes
        return outputs

    def _output_shapes(self, shapes, kwargs):
        return self.compute_output_shape(shapes)

    def compute_output_dtype(self, inputs) -> str:
        return "float32"

    def _check_input_shape(self, shapes) -> None:
        """Check a (batch) input shape against the layer's declared input_shape, if any."""
        if self._batch_input_shape is None or not tree.is_shape(shapes):
            return
        want = self._batch_input_shape
        if len(want) != len(shapes) or any(w is not None and g is not None and w != g
                                           for w, g in zip(want[1:], shapes[1:])):
            raise ValueError(
                f"layer {self.name!r} was declared with input_shape={want[1:]} (batch shape {want}), "
                f"got input of shape {shapes}"
            )

    def _eager_call(self, args, kwargs):
        if not args:
            raise TypeError(f"layer {self.name!r} must be called with its inputs as the first argument")
        inputs = tree.map_structure(lambda v: v if isinstance(v, torch.Tensor) else to_tensor(v), args[0])
        mask = kwargs.pop("mask", None)
        if mask is None:
            masks = tree.map_structure(get_mask, inputs)
            mask = masks if any(m is not None for m in tree.flatten(masks)) else None
        training = kwargs.pop("training", None)
        if not self.built:
            shapes = tree.map_structure(lambda t: (None, *t.shape[1:]), inputs)
            self._check_input_shape(shapes)
            self._maybe_build(shapes)
            first = tree.flatten(inputs)[0]
            self.to(first.device)
        if mask is not None and self._accepts("mask"):
            kwargs["mask"] = mask
        with _training_mode(self, training):
            outputs = self.call(inputs, *args[1:], **kwargs)
        out_mask = self.compute_mask(inputs, mask)
        if out_mask is not None:
            if isinstance(outputs, (list, tuple)) and isinstance(out_mask, (list, tuple)):
                for o, m in zip(outputs, out_mask):
                    if m is not None:
                        set_mask(o, m)
            elif isinstance(outputs, (list, tuple)):
                set_mask(outputs[0], out_mask)
            else:
                set_mask(outputs, out_mask)
        return outputs

    # ------------------------------------------------------------------ weights

    @property
    def weights(self) -> list[nn.Parameter]:
        """Weights in Keras's order (trainable and not), as get_weights() lists them."""
        return list(self.parameters())

    @property
    def trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list[nn.Parameter]:
        return [w for w in self.weights if not w.requires_grad]

    def get_weights(self) -> list[np.ndarray]:
        """The weights as numpy arrays in Keras's layout and order."""
        return [w.detach().cpu().numpy().copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Set the weights from numpy arrays in Keras's layout and order (as get_weights returns)."""
        self._require_built("set_weights")
        own = self.weights
        weights = list(weights)
        if len(weights) != len(own):
            raise ValueError(
                f"layer {self.name!r} expects {len(own)} weights with shapes "
                f"{[tuple(w.shape) for w in own]}, got {len(weights)} arrays"
            )
        with torch.no_grad():
            for k, (w, v) in enumerate(zip(own, weights)):
                v = to_tensor(v, f"weight {k} of layer {self.name!r}", dtype=torch.float32)
                if tuple(v.shape) != tuple(w.shape):
                    raise ValueError(
                        f"layer {self.name!r}: weight {k} must have shape {tuple(w.shape)}, got {tuple(v.shape)}"
                    )
                w.copy_(v)

    def count_params(self) -> int:
        self._require_built("count_params")
        return int(sum(w.numel() for w in self.weights))

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ValueError(
                f"layer {self.name!r} is not built yet, so {what}() has no weights to work on: "
                "call it on data or give it an input_shape first"
            )

    @property
    def losses(self) -> list[torch.Tensor]:
        """Regularisation penalties of this layer's weights (scalars), recomputed on each access."""
        return []

    # ------------------------------------------------------------------ config

    def get_config(self) -> dict:
        config = {"name": self.name, "trainable": self._trainable}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    @property
    def input_shape(self):
        return self._build_input_shape

    @property
    def output_shape(self):
        return self._output_shape

    def __repr__(self) -> str:
        return f"<{type(self).__name__} name={self.name!r}, built={self.built}>"


def _shapes_to_tensors(shapes, dtype):
    if tree.is_shape(shapes):
        return KerasTensor(shapes, dtype)
    return [_shapes_to_tensors(s, dtype) for s in shapes]


@contextmanager
def _training_mode(layer: nn.Module, training):
    if training is None or bool(training) == layer.training:
        yield
        return
    modes = {m: m.training for m in layer.modules()}
    layer.train(bool(training))
    try:
        yield
    finally:
        for m, mode in modes.items():
            m.training = mode
