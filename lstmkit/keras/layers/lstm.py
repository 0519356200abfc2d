"""keras.layers.LSTM on lstmkit's op.

LSTM(units): x [B, T, I] -> [B, units] (or [B, T, units] with return_sequences; with
return_state also h [B, units] and c [B, units]). Keras's arguments and defaults (glorot_uniform
kernel, orthogonal recurrent kernel, zero bias with unit_forget_bias), plus lstmkit's
`cell="vanilla" | "peephole" | "cifg" | "layernorm"` and `zoneout` (see lstmkit.nn.LSTM).

The weights live in an lstmkit.nn.LSTM (one layer, no biases of its own: weight_ih_l0 [G, I],
weight_hh_l0 [G, units], plus the cell's extras) and one Keras-style bias [G] (G = 4 units;
3 units for cifg), so the parameter count equals Keras's. The recurrence is lstmkit.ops.lstm.
get_weights / set_weights speak Keras's layout: [kernel [I, G], recurrent_kernel [units, G],
bias [G]] in gate order i, f, c, o, then the cell's extra weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ... import nn as lnn
from ... import ops
from ...interop import keras_weights
from .. import activations
from ..backend import to_tensor
from .recurrent import Recurrent


class LSTM(Recurrent):
    state_names = ("h", "c")

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, *, cell="vanilla", zoneout=0.0, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        self.recurrent_activation = activations.name_of(recurrent_activation)
        for name in (self.activation, self.recurrent_activation):
            ops.get_activation(name)  # the op's activations: a clear error for others
        self.unit_forget_bias = bool(unit_forget_bias)
        self.cell = ops.check_cell(cell)
        self.zoneout = zoneout

    def _build_weights(self, input_dim: int) -> None:
        H = self.units
        self.rnn = lnn.LSTM(input_dim, H, bias=False, cell=self.cell, activation=self.activation,
                            recurrent_activation=self.recurrent_activation, zoneout=self.zoneout)
        G = self.rnn.weight_ih_l0.shape[0]
        kernel = self.kernel_initializer((input_dim, G))
        recurrent = self.recurrent_initializer((H, G))
        bias = None
        if self.use_bias:
            bias = self.bias_initializer((G,))
            if self.unit_forget_bias:
                forget = 0 if self.cell == "cifg" else 1  # cifg's blocks are f, g, o
                bias[forget * H:(forget + 1) * H] = 1.0
            self.bias = nn.Parameter(bias.to(torch.float32))
        else:
            self.bias = None
        conv = keras_weights.lstm_from_keras(kernel, recurrent, None, gates=G // H)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(conv["weight_ih"])
            self.rnn.weight_hh_l0.copy_(conv["weight_hh"])

    def _run(self, x, states, lengths, recurrent_mask):
        T, B, _ = x.shape
        weights = self.rnn.weights(0)._replace(b_ih=self.bias)
        zh, zc = self.rnn.zoneout
        return ops.lstm(
            x, states[0], states[1], weights, cell=self.cell, activation=self.activation,
            recurrent_activation=self.recurrent_activation, lengths=lengths, recurrent_mask=recurrent_mask,
            zoneout_h=self.rnn.zoneout_mask(zh, (T, B, self.units), x, self.training),
            zoneout_c=self.rnn.zoneout_mask(zc, (T, B, self.units), x, self.training),
        )

    def _kernels(self):
        out = [("kernel", self.rnn.weight_ih_l0), ("recurrent", self.rnn.weight_hh_l0)]
        return out + ([("bias", self.bias)] if self.bias is not None else [])

    def _extras(self) -> list[nn.Parameter]:
        return self.rnn.extra_weights

    @property
    def weights(self):
        if not self.built:
            return []
        return [self.rnn.weight_ih_l0, self.rnn.weight_hh_l0] + ([self.bias] if self.bias is not None else []) \
            + self._extras()

    def get_weights(self):
        """[kernel [I, G], recurrent_kernel [units, G], bias [G]] (Keras layout), then the cell's extras."""
        self._require_built("get_weights")
        keras = keras_weights.lstm_to_keras(self.rnn.weight_ih_l0, self.rnn.weight_hh_l0, self.bias)
        return [w.cpu().numpy() for w in keras] + [p.detach().cpu().numpy().copy() for p in self._extras()]

    def set_weights(self, weights):
        """Take Keras's list [kernel [I, G], recurrent_kernel [units, G], bias [G]] (+ the cell's extras)."""
        self._require_built("set_weights")
        weights = list(weights)
        extras = self._extras()
        n_main = 3 if self.use_bias else 2
        G = self.rnn.weight_ih_l0.shape[0]
        expected = [(self.input_dim, G), (self.units, G)] + ([(G,)] if self.use_bias else []) \
            + [tuple(p.shape) for p in extras]
        if len(weights) != len(expected):
            raise ValueError(
                f"LSTM {self.name!r} expects {len(expected)} weights (Keras layout) with shapes {expected}, "
                f"got {len(weights)} arrays"
            )
        got = [tuple(to_tensor(w, "weight").shape) for w in weights]
        for k, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                raise ValueError(f"LSTM {self.name!r}: weight {k} must have shape {e} (Keras layout), got {g}")
        conv = keras_weights.lstm_from_keras(*weights[:2], weights[2] if self.use_bias else None, gates=G // self.units)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(conv["weight_ih"])
            self.rnn.weight_hh_l0.copy_(conv["weight_hh"])
            if self.use_bias:
                self.bias.copy_(conv["bias"])
            for p, w in zip(extras, weights[n_main:]):
                p.copy_(to_tensor(w, "weight", dtype=p.dtype))

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "unit_forget_bias": self.unit_forget_bias, "cell": self.cell,
                "zoneout": list(self.zoneout) if isinstance(self.zoneout, (list, tuple)) else self.zoneout}
