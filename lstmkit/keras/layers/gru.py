"""keras.layers.GRU on lstmkit's op (Keras 3's default reset_after=True formulation).

GRU(units): x [B, T, I] -> [B, units] (or [B, T, units]; with return_state also h [B, units]).
The weights live in an lstmkit.nn.GRU (weight_ih_l0 [3H, I], weight_hh_l0 [3H, H], bias_ih_l0,
bias_hh_l0, torch gate order r, z, n); Keras's input and recurrent biases are those two, so the
parameter count equals Keras's. get_weights / set_weights speak Keras's layout:
[kernel [I, 3H], recurrent_kernel [H, 3H], bias [2, 3H]] in gate order z, r, h.
reset_after=False (the Keras 2 default) is a different function and is refused.
"""

from __future__ import annotations

import torch

from ... import nn as lnn
from ... import ops
from ...interop import keras_weights
from .. import activations
from ..backend import to_tensor
from .recurrent import Recurrent


class GRU(Recurrent):
    state_names = ("h",)

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", reset_after=True, *, zoneout=0.0, **kwargs):
        super().__init__(units, activation=activation, use_bias=use_bias, kernel_initializer=kernel_initializer,
                         recurrent_initializer=recurrent_initializer, bias_initializer=bias_initializer, **kwargs)
        if not reset_after:
            raise NotImplementedError(
                "GRU(reset_after=False) is not supported: lstmkit's GRU is the reset_after=True formulation "
                "(Keras 3's default, and torch's)"
            )
        self.recurrent_activation = activations.name_of(recurrent_activation)
        for name in (self.activation, self.recurrent_activation):
            ops.get_activation(name)
        self.reset_after = True
        self.zoneout = zoneout

    def _build_weights(self, input_dim: int) -> None:
        H = self.units
        self.rnn = lnn.GRU(input_dim, H, bias=self.use_bias, activation=self.activation,
                           recurrent_activation=self.recurrent_activation, zoneout=self.zoneout)
        kernel = self.kernel_initializer((input_dim, 3 * H))
        recurrent = self.recurrent_initializer((H, 3 * H))
        bias = self.bias_initializer((2, 3 * H)) if self.use_bias else None
        self._copy_keras(kernel, recurrent, bias)

    def _copy_keras(self, kernel, recurrent, bias) -> None:
        conv = keras_weights.gru_from_keras(kernel, recurrent, bias)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(conv["weight_ih"])
            self.rnn.weight_hh_l0.copy_(conv["weight_hh"])
            if self.use_bias:
                self.rnn.bias_ih_l0.copy_(conv["bias_ih"])
                self.rnn.bias_hh_l0.copy_(conv["bias_hh"])

    def _run(self, x, states, lengths, recurrent_mask):
        T, B, _ = x.shape
        zoneout = self.rnn.zoneout_mask(self.rnn.zoneout[0], (T, B, self.units), x, self.training)
        y, h = ops.gru(x, states[0], self.rnn.weights(0), activation=self.activation,
                       recurrent_activation=self.recurrent_activation, lengths=lengths,
                       recurrent_mask=recurrent_mask, zoneout_h=zoneout)
        return y, (h,)

    def _kernels(self):
        out = [("kernel", self.rnn.weight_ih_l0), ("recurrent", self.rnn.weight_hh_l0)]
        if self.use_bias:
            out += [("bias", self.rnn.bias_ih_l0), ("bias", self.rnn.bias_hh_l0)]
        return out

    @property
    def weights(self):
        return list(self.rnn.parameters()) if self.built else []

    def get_weights(self):
        """[kernel [I, 3H], recurrent_kernel [H, 3H], bias [2, 3H]] (Keras layout, gates z, r, h)."""
        self._require_built("get_weights")
        r = self.rnn
        keras = keras_weights.gru_to_keras(r.weight_ih_l0, r.weight_hh_l0, getattr(r, "bias_ih_l0", None),
                                           getattr(r, "bias_hh_l0", None))
        return [w.cpu().numpy() for w in keras]

    def set_weights(self, weights):
        """Take Keras's list [kernel [I, 3H], recurrent_kernel [H, 3H], bias [2, 3H]]."""
        self._require_built("set_weights")
        weights = list(weights)
        H = self.units
        expected = [(self.input_dim, 3 * H), (H, 3 * H)] + ([(2, 3 * H)] if self.use_bias else [])
        if len(weights) != len(expected):
            raise ValueError(
                f"GRU {self.name!r} expects {len(expected)} weights (Keras layout) with shapes {expected}, "
                f"got {len(weights)} arrays"
            )
        for k, (w, e) in enumerate(zip(weights, expected)):
            g = tuple(to_tensor(w, "weight").shape)
            if g != e:
                hint = " (a (3H,) bias is Keras's reset_after=False GRU)" if k == 2 and g == (3 * H,) else ""
                raise ValueError(f"GRU {self.name!r}: weight {k} must have shape {e} (Keras layout), got {g}{hint}")
        self._copy_keras(weights[0], weights[1], weights[2] if self.use_bias else None)

    def get_config(self):
        return {**super().get_config(), "recurrent_activation": self.recurrent_activation,
                "reset_after": True, "zoneout": self.zoneout}
