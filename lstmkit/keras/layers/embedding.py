"""Embedding and Masking: where masks come from.

Embedding(input_dim, output_dim): ids [B, T] (ints in [0, input_dim)) -> [B, T, output_dim];
with mask_zero=True id 0 is padding and the mask [B, T] = ids != 0 flows to the next layers.
Masking(mask_value=0.): x [B, T, F] -> x with masked steps zeroed; mask [B, T] = any(x != value).
"""

from __future__ import annotations

import torch

from .. import initializers, regularizers
from ..layer import Layer


class Embedding(Layer):
    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, input_length=None, weights=None, **kwargs):
        if input_length is not None and "input_shape" not in kwargs and "batch_input_shape" not in kwargs:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Embedding {name} must be a positive integer, got {value!r}")
        if embeddings_constraint is not None:
            raise NotImplementedError("Embedding: embeddings_constraint is not supported")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def _ids(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.is_floating_point():
            ids = inputs.long()
            if not torch.equal(ids.to(inputs.dtype), inputs):
                raise TypeError(f"Embedding {self.name!r} takes integer ids, got non-integral floats")
        elif inputs.dtype == torch.bool or inputs.is_complex():
            raise TypeError(f"Embedding {self.name!r} takes integer ids, got dtype {inputs.dtype}")
        else:
            ids = inputs.long()
        if ids.numel():
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= self.input_dim:
                bad = lo if lo < 0 else hi
                raise IndexError(
                    f"Embedding {self.name!r} has input_dim={self.input_dim}, so ids must be in "
                    f"[0, {self.input_dim - 1}]; got id {bad}"
                )
        return ids

    def call(self, inputs):
        return self.embeddings[self._ids(inputs)]

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        return inputs != 0

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    @property
    def losses(self):
        if self.built and self.embeddings_regularizer is not None:
            return [self.embeddings_regularizer(self.embeddings)]
        return []

    def get_config(self):
        return {
            **super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
            "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
            "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
            "mask_zero": self.mask_zero,
        }


class Masking(Layer):
    supports_masking = True

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _mask(self, inputs):
        return (inputs != self.mask_value).any(dim=-1)

    def call(self, inputs):
        return inputs * self._mask(inputs).unsqueeze(-1).to(inputs.dtype)

    def compute_mask(self, inputs, mask=None):
        return self._mask(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
