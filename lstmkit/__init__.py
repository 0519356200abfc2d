"""lstmkit: the LSTM family from its equations, on PyTorch."""

__version__ = "0.1.0"


def __getattr__(name):
    # `import lstmkit as tf; tf.keras.layers.LSTM`: the Keras front end loads on first use,
    # so `import lstmkit` stays cheap.
    if name == "keras":
        import importlib

        return importlib.import_module(".keras", __name__)
    raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
