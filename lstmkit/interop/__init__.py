"""lstmkit.interop: weight-layout conversions to and from other frameworks.

Depends only on torch and numpy, so every layer of lstmkit may import it.

    keras_weights   Keras kernel [I, G] / recurrent_kernel [H, G] / bias  <->  torch weight_ih [G, I] ...
"""

from . import keras_weights

__all__ = ["keras_weights"]
