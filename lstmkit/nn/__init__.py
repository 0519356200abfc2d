"""lstmkit.nn: torch.nn-compatible recurrent layers over lstmkit.ops."""

from .cells import GRUCell, LSTMCell
from .gru import GRU
from .lstm import LSTM

__all__ = ["GRU", "GRUCell", "LSTM", "LSTMCell"]
