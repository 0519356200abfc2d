"""lstmkit.keras.models: Model, Sequential, load_model, clone_model."""

from .model import Model
from .saving import load_model
from .sequential import Sequential


def clone_model(model):
    """A new model with the same configuration and freshly initialised weights."""
    from .saving import deserialize_layer, serialize_layer

    return deserialize_layer(serialize_layer(model))


__all__ = ["Model", "Sequential", "clone_model", "load_model"]
