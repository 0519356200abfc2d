"""keras.layers.SimpleRNN: h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias).

x [B, T, I] -> [B, units] (or [B, T, units]; with return_state also h [B, units]).
Weights in Keras layout: kernel [I, units], recurrent_kernel [units, units], bias [units].

lstmkit.ops has no plain-RNN op, so this one layer steps in Python with torch autograd (the
Elman RNN is not part of the LSTM family the engine implements); lengths behave as in the op:
the state stops after each sequence's last real step and outputs past it are zero.
"""

from __future__ import annotations

import torch

from .. import activations
from .recurrent import Recurrent


class SimpleRNN(Recurrent):
    state_names = ("h",)

    def _build_weights(self, input_dim: int) -> None:
        H = self.units
        self.kernel = self.add_weight("kernel", (input_dim, H), self.kernel_initializer)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (H, H), self.recurrent_initializer)
        self.bias = self.add_weight("bias", (H,), self.bias_initializer) if self.use_bias else None

    def _run(self, x, states, lengths, recurrent_mask):
        phi = activations.get(self.activation)
        xw = x @ self.kernel
        if self.bias is not None:
            xw = xw + self.bias
        h = states[0]
        outputs = []
        for t in range(x.shape[0]):
            h_in = h if recurrent_mask is None else h * recurrent_mask
            h_new = phi(xw[t] + h_in @ self.recurrent_kernel)
            if lengths is not None:
                active = (lengths > t).unsqueeze(1)
                h = torch.where(active, h_new, h)
                outputs.append(h_new * active.to(h_new.dtype))
            else:
                h = h_new
                outputs.append(h_new)
        return torch.stack(outputs), (h,)

    def _kernels(self):
        out = [("kernel", self.kernel), ("recurrent", self.recurrent_kernel)]
        return out + ([("bias", self.bias)] if self.bias is not None else [])

    @property
    def weights(self):
        if not self.built:
            return []
        return [self.kernel, self.recurrent_kernel] + ([self.bias] if self.bias is not None else [])
