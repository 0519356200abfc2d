"""lstmkit: the LSTM family from its equations, on PyTorch."""

__version__ = "0.1.0"
