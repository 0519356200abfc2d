"""Keras initializers: each is called with a Keras-layout shape and returns a float32 tensor.

    GlorotUniform()((fan_in, fan_out))  uniform in +-sqrt(6 / (fan_in + fan_out))
    Orthogonal()((rows, cols))          rows (or columns) orthonormal, as Keras draws it
    RandomUniform(-0.05, 0.05), RandomNormal, Zeros, Ones, Constant, GlorotNormal, HeUniform, HeNormal
A `seed` makes the draw reproducible; without one the draw uses torch's global generator.
"""

from __future__ import annotations

import math

import torch


class Initializer:
    def __init__(self, seed=None):
        self.seed = seed

    def _generator(self):
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(int(self.seed))

    def __call__(self, shape, dtype=torch.float32):
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"seed": self.seed} if self.seed is not None else {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _fans(shape) -> tuple[float, float]:
    if len(shape) == 0:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    if len(shape) == 2:
        return float(shape[0]), float(shape[1])
    receptive = math.prod(shape[:-2])
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class Zeros(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.zeros(shape, dtype=dtype)


class Ones(Initializer):
    def __call__(self, shape, dtype=torch.float32):
        return torch.ones(shape, dtype=dtype)


class Constant(Initializer):
    def __init__(self, value=0.0):
        super().__init__()
        self.value = float(value)

    def __call__(self, shape, dtype=torch.float32):
        return torch.full(shape, self.value, dtype=dtype)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype=torch.float32):
        t = torch.empty(shape, dtype=dtype)
        return t.uniform_(self.minval, self.maxval, generator=self._generator())

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, **super().get_config()}


class RandomNormal(Initializer):
    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype=torch.float32):
        return torch.empty(shape, dtype=dtype).normal_(self.mean, self.stddev, generator=self._generator())

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, **super().get_config()}


class _VarianceScaling(Initializer):
    scale, mode, uniform = 1.0, "fan_avg", True

    def __call__(self, shape, dtype=torch.float32):
        fan_in, fan_out = _fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        t = torch.empty(shape, dtype=dtype)
        if self.uniform:
            limit = math.sqrt(3.0 * var)
            return t.uniform_(-limit, limit, generator=self._generator())
        std = math.sqrt(var) / 0.87962566103423978  # truncated normal's correction, as Keras
        t.normal_(0.0, 1.0, generator=self._generator())
        return (torch.fmod(t, 2.0) * std)  # values beyond 2 std folded back in


class GlorotUniform(_VarianceScaling):
    pass


class GlorotNormal(_VarianceScaling):
    uniform = False


class HeUniform(_VarianceScaling):
    scale, mode = 2.0, "fan_in"


class HeNormal(_VarianceScaling):
    scale, mode, uniform = 2.0, "fan_in", False


class LecunUniform(_VarianceScaling):
    mode = "fan_in"


class Orthogonal(Initializer):
    """Keras's draw: a normal matrix [max(r, c), min(r, c)] -> QR -> Q * sign(diag(R)),
    transposed when rows < cols; shape (rows, cols) with rows = prod(shape[:-1])."""

    def __init__(self, gain=1.0, seed=None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype=torch.float32):
        rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
        cols = shape[-1]
        flat = (max(rows, cols), min(rows, cols))
        a = torch.randn(flat, generator=self._generator(), dtype=torch.float64)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
        if rows < cols:
            q = q.t()
        return (self.gain * q).reshape(shape).to(dtype)

    def get_config(self):
        return {"gain": self.gain, **super().get_config()}


_ALIASES = {
    "zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
    "uniform": RandomUniform, "random_normal": RandomNormal, "normal": RandomNormal,
    "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal, "he_uniform": HeUniform,
    "he_normal": HeNormal, "lecun_uniform": LecunUniform, "orthogonal": Orthogonal,
}
_CLASSES = {cls.__name__: cls for cls in set(_ALIASES.values())}


def get(identifier) -> Initializer:
    """A name ("orthogonal"), an Initializer, a {"class_name", "config"} dict, or a callable."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        key = identifier if identifier in _ALIASES else snake(identifier)
        if key not in _ALIASES:
            raise ValueError(f"unknown initializer {identifier!r}: expected one of {sorted(_ALIASES)}")
        return _ALIASES[key]()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(f"initializer must be a name or an Initializer, got {type(identifier).__name__}")


def snake(name: str) -> str:
    from .backend import snake_case

    return snake_case(name)


def serialize(init) -> dict:
    if not isinstance(init, Initializer):
        raise ValueError(f"cannot save a custom initializer {init!r}; use one of {sorted(_ALIASES)}")
    return {"class_name": type(init).__name__, "config": init.get_config()}


def deserialize(config: dict) -> Initializer:
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown initializer class {config.get('class_name')!r}")
    return cls.from_config(config.get("config", {}))
