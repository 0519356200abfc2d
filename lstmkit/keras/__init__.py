"""lstmkit.keras: the Keras API on lstmkit's LSTM engine.

A Keras LSTM program runs on lstmkit by changing its imports:

    import lstmkit as tf                       # tf.keras.layers.LSTM, tf.keras.Sequential, ...
    from lstmkit.keras.models import Sequential
    from lstmkit.keras.layers import LSTM, Dense

Namespaces: models, layers, losses, metrics, optimizers (with optimizers.schedules), callbacks,
activations, initializers, regularizers, utils, backend, preprocessing. Models run on CUDA when
available ($LSTMKIT_DEVICE overrides). Recurrent layers compute with lstmkit.ops.
"""

from . import (activations, backend, callbacks, initializers, layers, losses, metrics, models, optimizers,
               preprocessing, regularizers, utils)
from .layers import Input, Layer
from .model import Model
from .saving import load_model
from .sequential import Sequential


__all__ = [
    "Input", "Layer", "Model", "Sequential", "activations", "backend", "callbacks", "initializers", "layers",
    "load_model", "losses", "metrics", "models", "optimizers", "preprocessing", "regularizers", "utils",
]
