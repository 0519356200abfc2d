"""lstmkit.nn.GRU: torch.nn.GRU's interface on lstmkit's op."""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from .. import ops
from .recurrent import RecurrentLayer, _check_rate


class GRU(RecurrentLayer):
    """Drop-in for torch.nn.GRU (same constructor, parameter names, initialisation, forward and
    return values), with the extra keyword arguments activation, recurrent_activation,
    recurrent_dropout and zoneout (a rate on h) of lstmkit.nn.LSTM.

    forward(input, hx=None, lengths=None): input [T, B, I] ([B, T, I] with batch_first),
    [T, I] unbatched, or a PackedSequence; hx = h_0 [L*D, B, H];
    returns (output [T, B, D*H], h_n [L*D, B, H]).
    """

    state_names = ("h_0",)
    weights_type = ops.GRUWeights
    weight_fields = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        device=None,
        dtype=None,
        *,
        activation: str = "tanh",
        recurrent_activation: str = "sigmoid",
        recurrent_dropout: float = 0.0,
        zoneout: float = 0.0,
    ):
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, 0,
            activation=activation, recurrent_activation=recurrent_activation,
            recurrent_dropout=recurrent_dropout,
        )
        self.zoneout = (_check_rate("zoneout", zoneout),)
        self._build(device, dtype)

    def _gate_rows(self) -> int:
        return 3 * self.hidden_size

    def _state_sizes(self) -> tuple[int]:
        return (self.hidden_size,)

    def _extra_parameters(self) -> dict:
        return {}

    def _step_kernel(self, device, dtype):
        return ops.gru_step_kernel(device, dtype, self.activation, self.recurrent_activation)

    def _run_direction(self, x: Tensor, state, layer: int, direction: int, lengths: Optional[Tensor], record,
                       reversed_input: bool = False, out: Optional[Tensor] = None):
        T, B, _ = x.shape
        H = self.hidden_size
        options = dict(
            activation=self.activation,
            recurrent_activation=self.recurrent_activation,
            lengths=lengths,
            recurrent_mask=self._recurrent_mask(B, H, x, record),
            zoneout_h=self.zoneout_mask(self.zoneout[0], (T, B, H), x, self.training and record is None),
        )
        weights = self.weights(layer, direction)
        if record is not None:
            y, h = ops.reference.gru_from_weights(x, state[0], weights, record=record, **options)
        else:
            y, h = ops.gru(x, state[0], weights, reversed_input=reversed_input, out=out, **options)
        return y, (h,)

    @classmethod
    def from_torch(cls, module: nn.GRU) -> "GRU":
        """An lstmkit GRU with the same configuration and weights as a torch.nn.GRU."""
        if not isinstance(module, nn.GRU):
            raise TypeError(f"from_torch expects a torch.nn.GRU, got {type(module).__name__}")
        ref = next(module.parameters())
        layer = cls(module.input_size, module.hidden_size, module.num_layers, module.bias, module.batch_first,
                    module.dropout, module.bidirectional, device=ref.device, dtype=ref.dtype)
        layer._copy_weights(module, layer)
        return layer.train(module.training)

    def to_torch(self) -> nn.GRU:
        """A torch.nn.GRU with this layer's weights (default activations, no recurrent dropout)."""
        self._check_torch_convertible("torch.nn.GRU")
        ref = next(self.parameters())
        module = nn.GRU(**self._torch_kwargs(), device=ref.device, dtype=ref.dtype)
        self._copy_weights(self, module)
        return module.train(self.training)
