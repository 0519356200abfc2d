"""lstmkit.keras.layers: the Keras layers, on torch and lstmkit's recurrent op."""

from .core import Activation, Dense, Dropout
from .embedding import Embedding, Masking
from .gru import GRU
from .input_layer import Input, InputLayer
from .lstm import LSTM
from .recurrent import Recurrent
from .reshaping import Concatenate, Flatten, RepeatVector
from .simple_rnn import SimpleRNN
from .wrappers import Bidirectional, TimeDistributed
from ..layer import Layer

__all__ = [
    "Activation", "Bidirectional", "Concatenate", "Dense", "Dropout", "Embedding", "Flatten", "GRU", "Input",
    "InputLayer", "LSTM", "Layer", "Masking", "Recurrent", "RepeatVector", "SimpleRNN", "TimeDistributed",
]
