"""keras.Model: the functional API (Model(inputs, outputs)) and subclassed models.

    x = Input(shape=(None, 8)); h = LSTM(16)(x); y = Dense(1)(h)
    model = Model(x, y)            # or Model(inputs=[a, b], outputs=[y1, y2])

Model(inputs, outputs) walks the call graph back from the outputs to the inputs (tensor.py)
and runs its nodes in order; a layer called several times shares its weights. Calling a model
on arrays / tensors runs it eagerly; calling it on KerasTensors makes it a layer of a bigger
model. The training API (compile, fit, ...) comes from training.Trainer; saving from saving.py.
"""

from __future__ import annotations

import torch
from torch import nn

from . import tree
from .backend import to_tensor
from .layer import Layer
from .layers.input_layer import InputLayer
from .tensor import KerasTensor, Node
from .training import Trainer


def _topological_nodes(inputs: list[KerasTensor], outputs: list[KerasTensor]) -> list[Node]:
    """The nodes between inputs and outputs, each after the nodes it reads from."""
    input_ids = {id(t) for t in inputs}
    order: list[Node] = []
    state: dict[int, int] = {}  # 1 visiting, 2 done

    def visit(t: KerasTensor):
        if not isinstance(t, KerasTensor) or t._keras_history is None:
            raise ValueError(f"model outputs must come from layers called on Input() tensors, got {t!r}")
        node = t.node
        if id(t) in input_ids:
            if id(node) not in state:
                state[id(node)] = 2
                order.append(node)
            return
        if isinstance(node.layer, InputLayer):
            raise ValueError(
                f"graph disconnected: the output depends on Input {node.layer.name!r}, which is not among "
                f"the model's inputs {[i.node.layer.name for i in inputs]}"
            )
        s = state.get(id(node))
        if s == 2:
            return
        if s == 1:
            raise ValueError("the layer graph has a cycle")
        state[id(node)] = 1
        for parent in node.parents:
            visit(parent)
        state[id(node)] = 2
        order.append(node)

    for t in outputs:
        visit(t)
    return order


class Model(Trainer, Layer):
    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if name is None and inputs is not None:
            from .backend import unique_name

            name = unique_name("functional")  # Keras 3 names functional models so
        Layer.__init__(self, name=name, trainable=trainable, **kwargs)
        self._functional = inputs is not None
        self.history = None
        self.optimizer = None
        self.stop_training = False
        if not self._functional:
            if outputs is not None:
                raise ValueError("Model(outputs=...) needs inputs= as well")
            return
        if outputs is None:
            raise ValueError("Model(inputs, outputs): outputs are missing")
        self._init_graph(inputs, outputs)

    def _init_graph(self, inputs, outputs) -> None:
        self._inputs_struct = inputs
        self._outputs_struct = outputs
        self.inputs = tree.flatten(inputs)
        self.outputs = tree.flatten(outputs)
        for t in self.inputs:
            if not isinstance(t, KerasTensor) or t._keras_history is None or not isinstance(t.node.layer, InputLayer):
                raise ValueError(f"model inputs must be Input() tensors, got {t!r}")
        self._nodes = _topological_nodes(self.inputs, self.outputs)
        layers: list[Layer] = []
        for node in self._nodes:
            if all(node.layer is not l for l in layers):
                layers.append(node.layer)
        self._graph_layers = nn.ModuleList(layers)
        self.built = True
        self._output_shape = tree.map_structure(lambda t: t.shape, outputs)

    # ------------------------------------------------------------------ structure

    @property
    def layers(self) -> list[Layer]:
        if self._functional:
            return list(self._graph_layers)
        return [m for m in self.children() if isinstance(m, Layer)]

    def get_layer(self, name=None, index=None) -> Layer:
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"no layer named {name!r}; the layers are {[l.name for l in self.layers]}")

    @property
    def output_names(self) -> list[str]:
        if self._functional:
            names = []
            for t in self.outputs:
                base = t.node.layer.name
                names.append(base if base not in names else f"{base}_{len(names)}")
            return names
        return ["output"]

    @property
    def input_names(self) -> list[str]:
        return [t.node.layer.name for t in self.inputs] if self._functional else ["input"]

    @property
    def weights(self):
        seen, out = set(), []
        for layer in self.layers:
            for w in layer.weights:
                if id(w) not in seen:
                    seen.add(id(w))
                    out.append(w)
        return out

    def get_weights(self):
        return [w for layer in self._unique_weight_layers() for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        layers = self._unique_weight_layers()
        counts = [len(l.get_weights()) for l in layers]
        need = sum(counts)
        if len(weights) != need:
            raise ValueError(f"model {self.name!r} has {need} weights, got {len(weights)} arrays")
        k = 0
        for layer, n in zip(layers, counts):
            layer.set_weights(weights[k:k + n])
            k += n

    def _unique_weight_layers(self) -> list[Layer]:
        return [l for l in self.layers if l.weights]

    @property
    def losses(self):
        return [loss for layer in self.layers for loss in layer.losses]

    def count_params(self) -> int:
        self._require_built("count_params")
        return int(sum(w.numel() for w in self.weights))

    def reset_states(self) -> None:
        """Forget the carried state of every stateful recurrent layer."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_states") and isinstance(m, Layer) and not isinstance(m, Model):
                m.reset_states()

    # ------------------------------------------------------------------ calling

    def _eager_call(self, args, kwargs):
        """Data given to a built model goes to the model's device first (numpy comes in on the CPU)."""
        param = next(self.parameters(), None)
        if param is not None and args:
            device = param.device
            moved = tree.map_structure(
                lambda v: (v if isinstance(v, torch.Tensor) else to_tensor(v)).to(device), args[0])
            args = (moved, *args[1:])
        return super()._eager_call(args, kwargs)

    def _structure_inputs(self, inputs):
        """Match user data to the model's inputs: a single array, a list in order, or a dict by name."""
        if isinstance(inputs, dict):
            names = self.input_names
            missing = [n for n in names if n not in inputs]
            if missing:
                raise ValueError(f"the input dict lacks {missing}; the model's inputs are {names}")
            return [inputs[n] for n in names]
        flat = tree.flatten(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        if len(flat) != len(self.inputs):
            raise ValueError(f"model {self.name!r} has {len(self.inputs)} inputs "
                             f"{self.input_names}, got {len(flat)} arrays")
        return flat

    def call(self, inputs):
        if not self._functional:
            raise NotImplementedError("a subclassed Model must define call()")
        flat = self._structure_inputs(inputs)
        values: dict[int, torch.Tensor] = {}
        for t, v in zip(self.inputs, flat):
            v = v if isinstance(v, torch.Tensor) else to_tensor(v)
            want = t.node.layer.input_dtype
            v = v.long() if want.startswith("int") and v.is_floating_point() is False else v
            if want == "float32" and not v.is_floating_point():
                v = v.float()
            if v.dim() != len(t.shape) or any(d is not None and d != g for d, g in zip(t.shape[1:], v.shape[1:])):
                raise ValueError(
                    f"input {t.node.layer.name!r} expects shape {t.shape}, got {tuple(v.shape)}"
                )
            values[id(t)] = v
        lookup = lambda a: values[id(a)] if isinstance(a, KerasTensor) else a  # noqa: E731
        for node in self._nodes:
            if isinstance(node.layer, InputLayer):
                continue
            args = tree.map_structure(lookup, list(node.args))
            kwargs = tree.map_structure(lookup, dict(node.kwargs))
            out = node.layer(*args, **kwargs)
            for t, v in zip(node.flat_outputs, tree.flatten(out) if isinstance(out, (list, tuple)) else [out]):
                values[id(t)] = v
        return tree.map_structure(lambda t: values[id(t)], self._outputs_struct)

    def compute_output_shape(self, input_shape):
        if self._functional:
            return tree.map_structure(lambda t: t.shape, self._outputs_struct)
        return super().compute_output_shape(input_shape)

    def build(self, input_shape):
        """A subclassed model's layers build themselves at their first call."""

    # ------------------------------------------------------------------ summary, saving

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False,
                layer_range=None):
        from .summary import print_summary

        print_summary(self, print_fn=print_fn)

    def get_config(self):
        from .saving import functional_config

        if not self._functional:
            raise NotImplementedError("a subclassed Model has no config to save; save its weights instead")
        return functional_config(self)

    def save(self, filepath, overwrite=True, **kwargs):
        from .saving import save_model

        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        from .saving import save_weights

        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False, **kwargs):
        from .saving import load_weights

        load_weights(self, filepath)

    def to_json(self, **kwargs) -> str:
        import json

        from .saving import serialize_layer

        return json.dumps(serialize_layer(self), **kwargs)
