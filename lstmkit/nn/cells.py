"""lstmkit.nn.LSTMCell / GRUCell: one step, torch.nn.LSTMCell / GRUCell's interface.

A cell is the layer's op run for T = 1, so a loop of cells equals the layer step for step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import ops
from .checks import check_float_tensor


class _Cell(nn.Module):
    _torch_class: type = nn.Module
    _state_count = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool, gate_rows: int, device, dtype,
                 activation: str, recurrent_activation: str, extra: dict):
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        ops.get_activation(activation), ops.get_activation(recurrent_activation)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.activation, self.recurrent_activation = activation, recurrent_activation
        factory = dict(device=device, dtype=dtype)
        shapes = {"weight_ih": (gate_rows, input_size), "weight_hh": (gate_rows, hidden_size)}
        if bias:
            shapes.update(bias_ih=(gate_rows,), bias_hh=(gate_rows,))
        self._torch_names = list(shapes)
        for name, shape in {**shapes, **extra}.items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
        self._extra_names = list(extra)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's U(-1/sqrt(H), 1/sqrt(H)) in torch's order; layer-norm gains 1 and biases 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for name in self._torch_names + self._extra_names:
                param = getattr(self, name)
                if name.startswith("ln_weight"):
                    nn.init.ones_(param)
                elif name.startswith("ln_bias"):
                    nn.init.zeros_(param)
                else:
                    nn.init.uniform_(param, -bound, bound)

    def _prepare(self, input: Tensor, hx) -> tuple[Tensor, tuple[Tensor, ...], bool]:
        """input [B, I] or [I] -> ([1, B, I], states each [B, N], was_unbatched)."""
        dtype = self.weight_ih.dtype
        check_float_tensor("input", input, dtype)
        if input.dim() not in (1, 2) or input.shape[-1] != self.input_size:
            raise ValueError(
                f"input must be [batch, {self.input_size}] or [{self.input_size}] (unbatched), "
                f"got shape {tuple(input.shape)}"
            )
        unbatched = input.dim() == 1
        x = input.reshape(1, -1, self.input_size)
        B = x.shape[1]
        if hx is None:
            return x, tuple(x.new_zeros(B, self.hidden_size) for _ in range(self._state_count)), unbatched
        states = (hx,) if isinstance(hx, Tensor) else tuple(hx)
        if len(states) != self._state_count:
            raise ValueError(f"hx must hold {self._state_count} state tensor(s), got {len(states)}")
        want = (self.hidden_size,) if unbatched else (B, self.hidden_size)
        for k, s in enumerate(states):
            check_float_tensor(f"hx[{k}]", s, dtype)
            if tuple(s.shape) != want:
                raise ValueError(f"hx[{k}] must have shape {want}, got {tuple(s.shape)}")
        return x, tuple(s.reshape(B, self.hidden_size) for s in states), unbatched

    @classmethod
    def from_torch(cls, module: nn.Module):
        """A cell with the configuration and weights of the matching torch cell."""
        if not isinstance(module, cls._torch_class):
            raise TypeError(f"from_torch expects a {cls._torch_class.__name__}, got {type(module).__name__}")
        ref = module.weight_ih
        cell = cls(module.input_size, module.hidden_size, module.bias, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name in cell._torch_names:
                getattr(cell, name).copy_(getattr(module, name))
        return cell

    def to_torch(self) -> nn.Module:
        """The matching torch cell with these weights (plain cell, default activations)."""
        if self.activation != "tanh" or self.recurrent_activation != "sigmoid" or self._extra_names \
                or getattr(self, "cell", "vanilla") != "vanilla":
            raise ValueError(f"{self._torch_class.__name__} has no equivalent of this cell's options: {self.extra_repr()}")
        ref = self.weight_ih
        module = self._torch_class(self.input_size, self.hidden_size, self.bias, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            for name in self._torch_names:
                getattr(module, name).copy_(getattr(self, name))
        return module

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if getattr(self, "cell", "vanilla") != "vanilla":
            s += f", cell={self.cell!r}"
        if self.activation != "tanh":
            s += f", activation={self.activation!r}"
        if self.recurrent_activation != "sigmoid":
            s += f", recurrent_activation={self.recurrent_activation!r}"
        return s


class LSTMCell(_Cell):
    """Drop-in for torch.nn.LSTMCell, with cell=, activation=, recurrent_activation= as in
    lstmkit.nn.LSTM (parameters weight_ch / ln_* without the _l0 suffix).

    forward(input [B, I] or [I], hx=(h [B, H], c [B, H]) or None) -> (h' [B, H], c' [B, H])."""

    _torch_class = nn.LSTMCell
    _state_count = 2

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 cell: str = "vanilla", activation: str = "tanh", recurrent_activation: str = "sigmoid"):
        self.cell = ops.check_cell(cell)
        G = ops.gate_rows(cell, hidden_size)
        extra = {}
        if cell == "peephole":
            extra = {"weight_ch": (3 * hidden_size,)}
        elif cell == "layernorm":
            extra = {"ln_weight_ih": (G,), "ln_weight_hh": (G,), "ln_weight_c": (hidden_size,),
                     "ln_bias_c": (hidden_size,)}
        super().__init__(input_size, hidden_size, bias, G, device, dtype, activation, recurrent_activation, extra)

    def forward(self, input: Tensor, hx=None) -> tuple[Tensor, Tensor]:
        x, (h, c), unbatched = self._prepare(input, hx)
        g = lambda name: getattr(self, name, None)  # noqa: E731
        weights = ops.LSTMWeights(g("weight_ih"), g("weight_hh"), g("bias_ih"), g("bias_hh"), None, g("weight_ch"),
                                  g("ln_weight_ih"), g("ln_weight_hh"), g("ln_weight_c"), g("ln_bias_c"))
        _, (h, c) = ops.lstm(x, h, c, weights, cell=self.cell, activation=self.activation,
                             recurrent_activation=self.recurrent_activation)
        return (h.squeeze(0), c.squeeze(0)) if unbatched else (h, c)


class GRUCell(_Cell):
    """Drop-in for torch.nn.GRUCell, with activation= and recurrent_activation=.

    forward(input [B, I] or [I], hx=h [B, H] or None) -> h' [B, H]."""

    _torch_class = nn.GRUCell

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid"):
        super().__init__(input_size, hidden_size, bias, 3 * hidden_size, device, dtype,
                         activation, recurrent_activation, {})

    def forward(self, input: Tensor, hx=None) -> Tensor:
        x, (h,), unbatched = self._prepare(input, hx)
        weights = ops.GRUWeights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None),
                                 getattr(self, "bias_hh", None))
        _, h = ops.gru(x, h, weights, activation=self.activation, recurrent_activation=self.recurrent_activation)
        return h.squeeze(0) if unbatched else h
