"""lstmkit.ops: the recurrent op of the LSTM family (one layer, one direction, whole sequence).

    lstm(x, h0, c0, LSTMWeights(...), cell=..., ...)   -> (y, (h_T, c_T))
    gru(x, h0, GRUWeights(...), ...)                   -> (y, h_T)
    lstm_step / gru_step                               one step, nothing stored (streaming)
    lstm_step_kernel / gru_step_kernel                 the same with the options bound, for loops
    reference                                          the equations step by step (the oracle)
    backend()                                          which implementation runs
    bernoulli_mask(shape, rate, like)                  zoneout / recurrent dropout draws
"""

from . import reference
from .activations import ACTIVATIONS, get_activation
from .dispatch import (backend, bernoulli_mask, gru, gru_step, gru_step_kernel, lstm, lstm_step, lstm_step_kernel,
                       step_masks)
from .weights import CELLS, GRUWeights, LSTMWeights, check_cell, gate_rows

__all__ = [
    "ACTIVATIONS", "CELLS", "GRUWeights", "LSTMWeights", "backend", "bernoulli_mask", "check_cell", "gate_rows",
    "get_activation", "gru", "gru_step", "gru_step_kernel", "lstm", "lstm_step", "lstm_step_kernel", "reference",
    "step_masks",
]
