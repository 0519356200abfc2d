"""Bidirectional and TimeDistributed: layers that run another layer.

Bidirectional(LSTM(u, ...), merge_mode="concat"): x [B, T, I] -> the forward and the backward
layer's outputs merged: concat [.., 2u], sum / mul / ave [.., u], None -> [forward, backward].
The backward layer is a copy of the layer with go_backwards flipped (or `backward_layer`); its
sequence output is flipped back into input order before merging. With return_state the result
is [output, *forward_states, *backward_states]; initial_state takes the forward's then the
backward's states. Weights: the forward layer's, then the backward layer's.

TimeDistributed(layer): x [B, T, ...] -> layer applied to each x[:, t] -> [B, T, ...out].
"""

from __future__ import annotations

import torch

from ..layer import Layer

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def _clone(layer: Layer, **changes) -> Layer:
    config = {**layer.get_config(), **changes}
    return type(layer).from_config(config)


class Bidirectional(Layer):
    supports_masking = True

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        inherited = getattr(layer, "_batch_input_shape", None)
        if inherited is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["batch_input_shape"] = inherited  # Bidirectional(LSTM(.., input_shape=...)) as a first layer
        super().__init__(**kwargs)
        if not isinstance(layer, Layer) or not hasattr(layer, "go_backwards"):
            raise ValueError(f"Bidirectional wraps a recurrent layer (LSTM, GRU, SimpleRNN), got {layer!r}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional merge_mode must be one of {list(MERGE_MODES)}, got {merge_mode!r}")
        base = layer.name.removeprefix("forward_")
        self.forward_layer = _clone(layer, name=f"forward_{base}", batch_input_shape=None)
        if backward_layer is None:
            self.backward_layer = _clone(layer, name=f"backward_{base}", go_backwards=not layer.go_backwards,
                                         batch_input_shape=None)
        else:
            if not hasattr(backward_layer, "go_backwards"):
                raise ValueError(f"backward_layer must be a recurrent layer, got {backward_layer!r}")
            self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Bidirectional: the forward and backward layers must differ in go_backwards, got "
                f"{self.forward_layer.go_backwards} for both"
            )
        for attr in ("return_sequences", "return_state", "stateful"):
            f, b = getattr(self.forward_layer, attr), getattr(self.backward_layer, attr)
            if f != b:
                raise ValueError(f"Bidirectional: forward and backward layers differ in {attr}: {f} vs {b}")
        for sub in (self.forward_layer, self.backward_layer):
            sub.zero_output_for_mask = sub.return_sequences  # as Keras forces it
        self.merge_mode = merge_mode
        self.return_sequences = self.forward_layer.return_sequences
        self.return_state = self.forward_layer.return_state
        self.stateful = self.forward_layer.stateful
        self._initial_weights = weights

    def build(self, input_shape):
        self.forward_layer._maybe_build(input_shape)
        self.backward_layer._maybe_build(input_shape)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def call(self, inputs, initial_state=None, mask=None):
        fwd_state = bwd_state = None
        if initial_state is not None:
            half = len(initial_state) // 2
            fwd_state, bwd_state = list(initial_state[:half]), list(initial_state[half:])
        y = self.forward_layer.call(inputs, initial_state=fwd_state, mask=mask)
        y_rev = self.backward_layer.call(inputs, initial_state=bwd_state, mask=mask)
        states = []
        if self.return_state:
            states = list(y[1:]) + list(y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        if self.merge_mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif self.merge_mode == "sum":
            output = y + y_rev
        elif self.merge_mode == "ave":
            output = (y + y_rev) / 2
        elif self.merge_mode == "mul":
            output = y * y_rev
        else:
            output = [y, y_rev]
        if self.return_state:
            return (output if isinstance(output, list) else [output]) + states
        return output

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        states = []
        if self.return_state:
            shape, states = shape[0], list(shape[1:])
        if self.merge_mode == "concat":
            out = [(*shape[:-1], shape[-1] * 2)]
        elif self.merge_mode is None:
            out = [shape, shape]
        else:
            out = [shape]
        out = out + states + states
        return out[0] if len(out) == 1 else out

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            outs = outs + [None] * (2 * len(self.forward_layer.state_names))
        return outs[0] if len(outs) == 1 else outs

    def reset_states(self):
        self.forward_layer.reset_states()
        self.backward_layer.reset_states()

    @property
    def weights(self):
        return self.forward_layer.weights + self.backward_layer.weights

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights):
        weights = list(weights)
        n = len(self.forward_layer.get_weights())
        if len(weights) != n + len(self.backward_layer.get_weights()):
            raise ValueError(
                f"Bidirectional {self.name!r} expects {2 * n} weights "
                f"(forward then backward), got {len(weights)}"
            )
        self.forward_layer.set_weights(weights[:n])
        self.backward_layer.set_weights(weights[n:])

    @property
    def losses(self):
        return self.forward_layer.losses + self.backward_layer.losses

    def get_config(self):
        from ..saving import serialize_layer

        return {**super().get_config(), "layer": serialize_layer(self.forward_layer),
                "backward_layer": serialize_layer(self.backward_layer), "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        from ..saving import deserialize_layer

        config = dict(config)
        layer = deserialize_layer(config.pop("layer"))
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = deserialize_layer(backward)
        return cls(layer, backward_layer=backward, **config)


class TimeDistributed(Layer):
    supports_masking = True

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed wraps a layer, got {layer!r}")
        self.layer = layer

    def build(self, input_shape):
        if not isinstance(input_shape, tuple) or len(input_shape) < 3:
            raise ValueError(
                f"TimeDistributed {self.name!r} takes input (batch, time, ...) of rank >= 3, got {input_shape}"
            )
        self.layer._maybe_build((None, *input_shape[2:]))

    def call(self, inputs):
        B, T = inputs.shape[:2]
        y = self.layer(inputs.reshape(B * T, *inputs.shape[2:]))
        return y.reshape(B, T, *y.shape[1:])

    def compute_output_shape(self, input_shape):
        inner = self.layer.compute_output_shape((None, *input_shape[2:]))
        return (input_shape[0], input_shape[1], *inner[1:])

    @property
    def weights(self):
        return self.layer.weights

    def get_weights(self):
        return self.layer.get_weights()

    def set_weights(self, weights):
        self.layer.set_weights(weights)

    @property
    def losses(self):
        return self.layer.losses

    def get_config(self):
        from ..saving import serialize_layer

        return {**super().get_config(), "layer": serialize_layer(self.layer)}

    @classmethod
    def from_config(cls, config):
        from ..saving import deserialize_layer

        config = dict(config)
        return cls(deserialize_layer(config.pop("layer")), **config)
