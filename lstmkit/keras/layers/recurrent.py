"""What Keras's LSTM, GRU and SimpleRNN layers share: arguments, masks, state, directions.

Input [B, T, I] (batch first, as Keras). Output [B, units] (the last output), or [B, T, units]
with return_sequences (in processing order: reversed when go_backwards, as Keras returns it);
with return_state, a list [output, *final_states], each state [B, units].

Masks ([B, T] bool, from Embedding(mask_zero=True) or Masking) become sequence lengths for the
op: the real steps of each sequence are gathered to its front (a no-op for post-padding), run
with lengths (the state stops after the last real step), and the outputs are put back in place.
At a masked step the output repeats the last real output (the initial h before the first real
step), or is zero with zero_output_for_mask (Bidirectional sets it with return_sequences), as in
Keras; the final state is the state after the last real step.

Subclasses create their weights in _build_weights(input_dim) and run one direction over a
time-major sequence in _run(x [T, B, I], states, lengths) -> (y [T, B, H], final states).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import activations, initializers, regularizers
from ..layer import Layer


def _rate(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
    return float(value)


class Recurrent(Layer):
    supports_masking = True
    state_names: tuple[str, ...] = ("h",)

    def __init__(self, units, activation="tanh", use_bias=True, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, zero_output_for_mask=False,
                 use_cudnn="auto", time_major=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(f"{type(self).__name__} units must be a positive integer, got {units!r}")
        if any(c is not None for c in (kernel_constraint, recurrent_constraint, bias_constraint, activity_regularizer)):
            raise NotImplementedError(f"{type(self).__name__}: constraints and activity_regularizer are not supported")
        if time_major:
            raise NotImplementedError("time_major=True is not supported: inputs are [batch, time, features]")
        self.units = units
        self.activation = activations.name_of(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.dropout = _rate("dropout", dropout)
        self.recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        self.seed = seed
        self._generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.unroll = bool(unroll)  # accepted for compatibility; the op never unrolls
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self._states: Optional[list[Tensor]] = None
        self.input_dim: Optional[int] = None

    # ------------------------------------------------------------------ subclass hooks

    def _build_weights(self, input_dim: int) -> None:
        raise NotImplementedError

    def _run(self, x: Tensor, states: tuple[Tensor, ...], lengths: Optional[Tensor],
             recurrent_mask: Optional[Tensor]) -> tuple[Tensor, tuple[Tensor, ...]]:
        raise NotImplementedError

    def _kernels(self) -> list[tuple[str, Tensor]]:
        """(kind, weight) pairs for the regularizers: kind in kernel / recurrent / bias."""
        return []

    # ------------------------------------------------------------------ build

    def build(self, input_shape):
        if not isinstance(input_shape, tuple) or len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"{type(self).__name__} {self.name!r} takes input of shape (batch, time, features) with "
                f"known features, got {input_shape}"
            )
        self.input_dim = int(input_shape[-1])
        self._build_weights(self.input_dim)

    # ------------------------------------------------------------------ call

    def call(self, inputs, initial_state=None, mask=None):
        x = inputs
        if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != self.input_dim:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(
                f"{type(self).__name__} {self.name!r} expects input of shape (batch, time, {self.input_dim}), "
                f"got {shape}"
            )
        x = x.to(self._dtype())
        B, T, I = x.shape
        if mask is not None:
            mask = mask.to(device=x.device, dtype=torch.bool)
            if tuple(mask.shape) != (B, T):
                raise ValueError(f"{self.name!r}: mask must have shape {(B, T)} (batch, time), got {tuple(mask.shape)}")
        if self.training and self.dropout:
            keep = 1.0 - self.dropout
            x = x * (self._bernoulli((B, 1, I), keep, x) / keep)
        if self.go_backwards:
            x = x.flip(1)
            mask = None if mask is None else mask.flip(1)
        states = self._initial_states(initial_state, B, x)
        recurrent_mask = None
        if self.training and self.recurrent_dropout:
            keep = 1.0 - self.recurrent_dropout
            recurrent_mask = self._bernoulli((B, self._state_sizes()[0]), keep, x) / keep

        xt = x.transpose(0, 1)  # [T, B, I]
        lengths, compacted = None, False
        if mask is not None and bool(mask.all()):
            mask = None
        if mask is not None:
            lengths = mask.sum(1)
            prefix = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
            compacted = not torch.equal(prefix, mask)
            if compacted:  # holes or pre-padding: gather the real steps to the front
                order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True).t()
                xt = xt.gather(0, order.unsqueeze(-1).expand(-1, -1, I))
        y, finals = self._run(xt, states, lengths, recurrent_mask)
        if mask is not None and self.return_sequences:
            y = self._outputs_in_place(y, mask, compacted, states[0], finals[0])
        if self.stateful:
            self._states = [s.detach() for s in finals]
        output = y.transpose(0, 1) if self.return_sequences else finals[0]
        if self.return_state:
            return [output, *finals]
        return output

    def _outputs_in_place(self, y: Tensor, mask: Tensor, compacted: bool, h0: Tensor, h_last: Tensor) -> Tensor:
        """Outputs y [T, B, H] of the compacted run -> at each step of the masked sequence: the
        output of the last real step so far (h0 before any), or zero with zero_output_for_mask."""
        active = mask.t().unsqueeze(-1)  # [T, B, 1]
        if not compacted:  # post-padding: the op already gives zeros past each length
            return y if self.zero_output_for_mask else torch.where(active, y, h_last.unsqueeze(0))
        cum = mask.cumsum(1).t()  # [T, B]: real steps so far
        y = y.gather(0, (cum - 1).clamp(min=0).unsqueeze(-1).expand(-1, -1, y.shape[-1]))
        if self.zero_output_for_mask:
            return y * active.to(y.dtype)
        return torch.where((cum == 0).unsqueeze(-1), h0.unsqueeze(0), y)

    def _dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def _bernoulli(self, shape, keep: float, like: Tensor) -> Tensor:
        if self._generator is not None and like.device.type == "cpu":
            return torch.bernoulli(torch.full(shape, keep, dtype=like.dtype), generator=self._generator)
        return torch.bernoulli(like.new_full(shape, keep))

    def _state_sizes(self) -> tuple[int, ...]:
        return tuple(self.units for _ in self.state_names)

    def _initial_states(self, initial_state, batch: int, like: Tensor) -> tuple[Tensor, ...]:
        sizes = self._state_sizes()
        if initial_state is None:
            if self.stateful and self._states is not None:
                if self._states[0].shape[0] == batch:
                    return tuple(self._states)
                raise ValueError(
                    f"stateful layer {self.name!r} holds states for batch size {self._states[0].shape[0]}, "
                    f"got a batch of {batch}: use a fixed batch size (and a sample count divisible by it) "
                    "or call reset_states()"
                )
            return tuple(like.new_zeros(batch, n) for n in sizes)
        if isinstance(initial_state, Tensor):
            initial_state = [initial_state]
        initial_state = list(initial_state)
        if len(initial_state) != len(sizes):
            raise ValueError(
                f"{type(self).__name__} {self.name!r} takes initial_state as a list of {len(sizes)} tensors "
                f"({', '.join(self.state_names)}), got {len(initial_state)}"
            )
        out = []
        for name, s, n in zip(self.state_names, initial_state, sizes):
            if not isinstance(s, Tensor):
                from ..backend import to_tensor
                s = to_tensor(s, f"initial_state {name}")
            if tuple(s.shape) != (batch, n):
                raise ValueError(
                    f"{type(self).__name__} {self.name!r}: initial state {name} must have shape "
                    f"{(batch, n)} (batch, units), got {tuple(s.shape)}"
                )
            out.append(s.to(device=like.device, dtype=like.dtype))
        return tuple(out)

    def reset_states(self, states=None) -> None:
        """Forget a stateful layer's carried state (zeros at the next call), or set it."""
        self._states = None if states is None else [torch.as_tensor(s, dtype=torch.float32) for s in states]

    # ------------------------------------------------------------------ shapes, masks

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return [out, *((batch, n) for n in self._state_sizes())]
        return out

    def compute_mask(self, inputs, mask=None):
        out = mask if self.return_sequences else None
        if self.return_state:
            return [out] + [None] * len(self.state_names)
        return out

    # ------------------------------------------------------------------ weights, config

    @property
    def losses(self):
        if not self.built:
            return []
        regs = {"kernel": self.kernel_regularizer, "recurrent": self.recurrent_regularizer,
                "bias": self.bias_regularizer}
        return [regs[kind](w) for kind, w in self._kernels() if regs[kind] is not None]

    def get_config(self):
        return {
            **super().get_config(), "units": self.units, "activation": self.activation,
            "use_bias": self.use_bias, "kernel_initializer": initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
            "bias_initializer": initializers.serialize(self.bias_initializer),
            "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
            "recurrent_regularizer": regularizers.serialize(self.recurrent_regularizer),
            "bias_regularizer": regularizers.serialize(self.bias_regularizer),
            "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout, "seed": self.seed,
            "return_sequences": self.return_sequences, "return_state": self.return_state,
            "go_backwards": self.go_backwards, "stateful": self.stateful, "unroll": self.unroll,
            "zero_output_for_mask": self.zero_output_for_mask,
        }
