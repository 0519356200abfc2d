"""Flatten ([B, d1, d2, ...] -> [B, d1*d2*...]), RepeatVector(n) ([B, F] -> [B, n, F]) and
Concatenate(axis=-1) (a list of tensors -> one, joined along `axis`)."""

from __future__ import annotations

import math

import torch

from ..layer import Layer


class Flatten(Layer):
    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], -1)

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if any(d is None for d in rest) else math.prod(rest))


class RepeatVector(Layer):
    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"RepeatVector n must be a positive integer, got {n!r}")
        self.n = n

    def call(self, inputs):
        if inputs.dim() != 2:
            raise ValueError(f"RepeatVector takes 2-D input [batch, features], got shape {tuple(inputs.shape)}")
        return inputs.unsqueeze(1).expand(-1, self.n, -1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        return {**super().get_config(), "n": self.n}


class Concatenate(Layer):
    supports_masking = True

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = int(axis)

    def _check(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) < 2 or not all(isinstance(s, tuple) for s in shapes):
            raise ValueError(f"Concatenate takes a list of at least 2 inputs, got {shapes!r}")
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise ValueError(f"Concatenate inputs must have the same rank, got shapes {list(shapes)}")
        axis = self.axis % len(shapes[0])
        for d in range(len(shapes[0])):
            sizes = {s[d] for s in shapes if s[d] is not None}
            if d != axis and d != 0 and len(sizes) > 1:
                raise ValueError(
                    f"Concatenate(axis={self.axis}) needs matching sizes off the axis, got shapes {list(shapes)}"
                )
        return axis

    def build(self, input_shape):
        self._check(input_shape)

    def call(self, inputs):
        self._check([tuple(t.shape) for t in inputs])
        return torch.cat(list(inputs), dim=self.axis)

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        present = [m for m in mask if m is not None]
        out = present[0]
        for m in present[1:]:
            out = out & m
        return out

    def compute_output_shape(self, input_shape):
        axis = self._check(input_shape)
        out = list(input_shape[0])
        sizes = [s[axis] for s in input_shape]
        out[axis] = None if any(v is None for v in sizes) else sum(sizes)
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
