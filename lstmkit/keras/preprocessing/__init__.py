"""lstmkit.keras.preprocessing: the older Keras import path of pad_sequences."""

from . import sequence

__all__ = ["sequence"]
