"""lstmkit.nn.LSTM: torch.nn.LSTM's interface over every cell of the LSTM family."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .. import ops
from .recurrent import RecurrentLayer, _check_rate


def parse_zoneout(zoneout) -> tuple[float, float]:
    """zoneout=z applies z to both h and c; zoneout=(z_h, z_c) sets them apart."""
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise ValueError(f"zoneout must be a rate or a pair (rate_h, rate_c), got {zoneout!r}")
        return _check_rate("zoneout rate_h", zoneout[0]), _check_rate("zoneout rate_c", zoneout[1])
    rate = _check_rate("zoneout", zoneout)
    return rate, rate


class LSTM(RecurrentLayer):
    """Drop-in for torch.nn.LSTM, plus the cells torch lacks.

    Same constructor, parameter names and shapes, initialisation, forward signature and return
    values as torch.nn.LSTM. Extra keyword arguments:

      cell                 "vanilla" | "peephole" | "cifg" | "layernorm" (see ops/reference.py)
      activation           phi, for the candidate g and the output phi(c): "tanh" (default),
                           "relu", "sigmoid", "hard_sigmoid", "linear"
      recurrent_activation sigma, for the gates: "sigmoid" (default) and the same choices
      recurrent_dropout    rate of a per-sequence dropout mask on h_{t-1} (training only)
      zoneout              rate, or (rate_h, rate_c), of zoneout on the state (Krueger et al.)

    Extra parameters per layer and direction (suffix _l{k}, _reverse for the backward direction):
      peephole:   weight_ch [3H] = diagonal peephole weights p_i, p_f, p_o
      layernorm:  ln_weight_ih [4H], ln_weight_hh [4H], ln_weight_c [H], ln_bias_c [H]
      cifg:       weight_ih, weight_hh, bias_* have 3H rows (gates f, g, o; i = 1 - f)

    forward(input, hx=None, lengths=None): input [T, B, I] ([B, T, I] with batch_first),
    [T, I] unbatched, or a PackedSequence; hx = (h_0 [L*D, B, P], c_0 [L*D, B, H]);
    returns (output [T, B, D*P], (h_n [L*D, B, P], c_n [L*D, B, H])), P = proj_size or H.
    """

    state_names = ("h_0", "c_0")
    weights_type = ops.LSTMWeights
    weight_fields = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight_ch",
                     "ln_weight_ih", "ln_weight_hh", "ln_weight_c", "ln_bias_c")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        device=None,
        dtype=None,
        *,
        cell: str = "vanilla",
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_dropout: float = 0.0,
        zoneout=0.0,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
            activation=activation, recurrent_activation=recurrent_activation,
            recurrent_dropout=recurrent_dropout,
        )
        self.cell = ops.check_cell(cell)
        self.zoneout = parse_zoneout(zoneout)
        self._build(device, dtype)

    def _gate_rows(self) -> int:
        return ops.gate_rows(self.cell, self.hidden_size)

    def _state_sizes(self) -> tuple[int, int]:
        return (self.proj_size or self.hidden_size, self.hidden_size)

    def _extra_parameters(self) -> dict[str, tuple[int, ...]]:
        H = self.hidden_size
        if self.cell == "peephole":
            return {"weight_ch": (3 * H,)}
        if self.cell == "layernorm":
            G = self._gate_rows()
            return {"ln_weight_ih": (G,), "ln_weight_hh": (G,), "ln_weight_c": (H,), "ln_bias_c": (H,)}
        return {}

    def _init_extra(self, name: str, param: Tensor, bound: float) -> None:
        if name.startswith("weight_ch"):
            nn.init.uniform_(param, -bound, bound)
        elif name.startswith("ln_weight"):
            nn.init.ones_(param)
        else:
            nn.init.zeros_(param)

    def _step_kernel(self, device, dtype):
        return ops.lstm_step_kernel(device, dtype, self.cell, self.activation, self.recurrent_activation)

    def _run_direction(self, x: Tensor, state, layer: int, direction: int, lengths: Optional[Tensor], record,
                       reversed_input: bool = False, out: Optional[Tensor] = None):
        T, B, _ = x.shape
        P, H = self._state_sizes()
        training = self.training and record is None
        options = dict(
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            lengths=lengths,
            recurrent_mask=self._recurrent_mask(B, P, x, record),
            zoneout_h=self.zoneout_mask(self.zoneout[0], (T, B, P), x, training),
            zoneout_c=self.zoneout_mask(self.zoneout[1], (T, B, H), x, training),
        )
        weights = self.weights(layer, direction)
        if record is not None:
            return ops.reference.lstm(x, *state, weights, self.cell, record=record, **options)
        return ops.lstm(x, *state, weights, cell=self.cell, reversed_input=reversed_input, out=out, **options)

    @classmethod
    def from_torch(cls, module: nn.LSTM) -> "LSTM":
        """An lstmkit LSTM with the same configuration and weights as a torch.nn.LSTM."""
        if not isinstance(module, nn.LSTM):
            raise TypeError(f"from_torch expects a torch.nn.LSTM, got {type(module).__name__}")
        ref = next(module.parameters())
        layer = cls(module.input_size, module.hidden_size, module.num_layers, module.bias, module.batch_first,
                    module.dropout, module.bidirectional, module.proj_size, device=ref.device, dtype=ref.dtype)
        layer._copy_weights(module, layer)
        return layer.train(module.training)

    def to_torch(self) -> nn.LSTM:
        """A torch.nn.LSTM with this layer's weights (plain cell, default activations only)."""
        self._check_torch_convertible("torch.nn.LSTM")
        ref = next(self.parameters())
        module = nn.LSTM(**self._torch_kwargs(), proj_size=self.proj_size, device=ref.device, dtype=ref.dtype)
        self._copy_weights(self, module)
        return module.train(self.training)
