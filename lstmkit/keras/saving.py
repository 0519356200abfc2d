"""Saving and loading: one file, the model's config as JSON plus its weights as safetensors.

    model.save("model.keras")  /  load_model("model.keras")
    model.save_weights("w.safetensors")  /  model.load_weights("w.safetensors")
    model.load_weights("keras_model.weights.h5")   # weights saved by real Keras 3 (needs h5py)

The file is a safetensors file (no pickle, nothing executed on load) whose metadata holds the
model config, the compile config and a SHA-256 of the weights, so a corrupted file is refused
rather than loaded wrong. Files are written to a temporary name and renamed into place.
Any extension works ("model.keras" is only a name: the content is not Keras's zip format).
"""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ..files import cpu_state, load_tensor_file, save_tensor_file
from . import tree
from .tensor import KerasTensor

FORMAT = "lstmkit.keras.model/1"
WEIGHTS_FORMAT = "lstmkit.keras.weights/1"


# ---------------------------------------------------------------------- layer configs

def _registry() -> dict:
    from . import layers
    from .model import Model
    from .sequential import Sequential

    reg = {name: obj for name, obj in vars(layers).items() if isinstance(obj, type)}
    reg.update(Model=Model, Sequential=Sequential, Functional=Model)
    return reg


def serialize_layer(layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def deserialize_layer(config: dict, custom_objects=None):
    name = config.get("class_name")
    cls = (custom_objects or {}).get(name) or _registry().get(name)
    if cls is None:
        raise ValueError(f"unknown layer class {name!r} in the saved config; pass it in custom_objects={{...}}")
    from .model import Model

    if cls is Model:
        return functional_from_config(config["config"], custom_objects)
    if hasattr(cls, "from_config") and "custom_objects" in cls.from_config.__code__.co_varnames:
        return cls.from_config(config["config"], custom_objects=custom_objects)
    return cls.from_config(config["config"])


def _json_value(v):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    raise ValueError(f"cannot save a call argument of type {type(v).__name__} in the model config")


def functional_config(model) -> dict:
    layers = model.layers
    layer_index = {id(l): k for k, l in enumerate(layers)}
    node_index = {id(n): k for k, n in enumerate(model._nodes)}

    def enc(a):
        if isinstance(a, KerasTensor):
            return {"__tensor__": [node_index[id(a.node)], a._keras_history[1]]}
        if isinstance(a, dict):
            return {k: enc(v) for k, v in a.items()}
        if isinstance(a, (list, tuple)):
            return [enc(v) for v in a]
        return _json_value(a)

    return {
        "name": model.name,
        "layers": [serialize_layer(l) for l in layers],
        "nodes": [{"layer": layer_index[id(n.layer)], "args": enc(list(n.args)), "kwargs": enc(n.kwargs)}
                  for n in model._nodes],
        "inputs": enc(model._inputs_struct),
        "outputs": enc(model._outputs_struct),
    }


def functional_from_config(config: dict, custom_objects=None):
    from .layers.input_layer import InputLayer
    from .model import Model

    layers = [deserialize_layer(c, custom_objects) for c in config["layers"]]
    tensors: dict[tuple, KerasTensor] = {}

    def dec(a):
        if isinstance(a, dict) and "__tensor__" in a:
            return tensors[tuple(a["__tensor__"])]
        if isinstance(a, dict):
            return {k: dec(v) for k, v in a.items()}
        if isinstance(a, list):
            return [dec(v) for v in a]
        return a

    for k, node in enumerate(config["nodes"]):
        layer = layers[node["layer"]]
        if isinstance(layer, InputLayer):
            tensors[(k, 0)] = layer.output
            continue
        out = layer(*dec(node["args"]), **dec(node["kwargs"]))
        for i, t in enumerate(tree.flatten(out) if isinstance(out, (list, tuple)) else [out]):
            tensors[(k, i)] = t
    return Model(dec(config["inputs"]), dec(config["outputs"]), name=config.get("name"))


# ---------------------------------------------------------------------- files

def _write(filepath, tensors, metadata, overwrite) -> None:
    filepath = os.fspath(filepath)
    if not overwrite and os.path.exists(filepath):
        raise FileExistsError(f"{filepath} exists and overwrite=False")
    fmt = metadata.pop("format")
    save_tensor_file(filepath, tensors, fmt, metadata)


def _read(filepath, want_format: str):
    """-> (metadata dict, tensors dict), with clear errors for missing, foreign or damaged files."""
    filepath = os.fspath(filepath)
    if os.path.exists(filepath):
        with open(filepath, "rb") as f:
            magic = f.read(8)
        if magic[:4] == b"PK\x03\x04":
            raise ValueError(
                f"{filepath} is a zip archive (a real Keras .keras file?); lstmkit reads its own model files. "
                "To bring Keras weights in, save them in Keras with model.save_weights('x.weights.h5') and "
                "call load_weights on the same model built in lstmkit."
            )
        if magic == b"\x89HDF\r\n\x1a\n":
            raise ValueError(f"{filepath} is an HDF5 file: use model.load_weights() for Keras .weights.h5 files")
    accepted = (want_format, FORMAT) if want_format == WEIGHTS_FORMAT else (want_format,)
    return load_tensor_file(filepath, accepted)


def _load_state(model, tensors: dict, filepath: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    if missing or extra:
        raise ValueError(f"{filepath} does not fit this model: missing weights {missing[:5]}, "
                         f"unexpected weights {extra[:5]}")
    for k, v in tensors.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise ValueError(f"{filepath}: weight {k!r} has shape {tuple(v.shape)}, the model's is {tuple(own[k].shape)}")
    model.load_state_dict(tensors)


def _compile_config(model):
    from . import losses, optimizers

    if not getattr(model, "compiled", False):
        return None
    try:
        def loss_enc(spec):
            if spec is None or isinstance(spec, str):
                return spec
            if isinstance(spec, (list, tuple)):
                return [loss_enc(s) for s in spec]
            if isinstance(spec, dict):
                return {k: loss_enc(v) for k, v in spec.items()}
            return {"__loss__": losses.serialize(spec)}

        def metric_enc(spec):
            if spec is None or isinstance(spec, str):
                return spec
            if isinstance(spec, (list, tuple)):
                return [metric_enc(s) for s in spec]
            if isinstance(spec, dict):
                return {k: metric_enc(v) for k, v in spec.items()}
            raise ValueError("metric objects are not saved")

        return {"optimizer": optimizers.serialize(model.optimizer), "loss": loss_enc(model._loss_spec),
                "metrics": metric_enc(model._metrics_spec), "loss_weights": model._loss_weights}
    except (ValueError, TypeError, KeyError):
        return None


def _compile_from(config):
    from . import losses

    def loss_dec(spec):
        if isinstance(spec, dict) and "__loss__" in spec:
            return losses.deserialize(spec["__loss__"])
        if isinstance(spec, list):
            return [loss_dec(s) for s in spec]
        if isinstance(spec, dict):
            return {k: loss_dec(v) for k, v in spec.items()}
        return spec

    return {"optimizer": config["optimizer"], "loss": loss_dec(config["loss"]), "metrics": config["metrics"],
            "loss_weights": config["loss_weights"]}


def save_model(model, filepath, overwrite=True) -> None:
    """Write the model (config, compile config, weights) to one safetensors file, atomically."""
    if not model.built:
        raise ValueError("the model is not built yet (no weights): call it on data, fit it, or give an input shape")
    config = serialize_layer(model)
    metadata = {"format": FORMAT, "model_config": json.dumps(config),
                "compile_config": json.dumps(_compile_config(model))}
    _write(filepath, cpu_state(model), metadata, overwrite)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by Model.save: same layers, same weights, compiled as it was."""
    metadata, tensors = _read(filepath, FORMAT)
    try:
        config = json.loads(metadata["model_config"])
        compile_config = json.loads(metadata.get("compile_config", "null"))
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{filepath}: the model config in the file is damaged ({exc})") from None
    model = deserialize_layer(config, custom_objects)
    if not model.built:
        raise ValueError(f"{filepath}: the saved model has no input shape to rebuild its weights from")
    _load_state(model, tensors, os.fspath(filepath))
    if compile and compile_config:
        model.compile(**_compile_from(compile_config))
    return model


def save_weights(model, filepath, overwrite=True) -> None:
    filepath = os.fspath(filepath)
    if filepath.endswith(".h5"):
        raise ValueError("lstmkit writes weights as safetensors; use a name like 'model.weights.safetensors'")
    if not model.built:
        raise ValueError("the model is not built yet: it has no weights to save")
    _write(filepath, cpu_state(model), {"format": WEIGHTS_FORMAT}, overwrite)


def load_weights(model, filepath) -> None:
    """Load lstmkit weights (safetensors), or a real Keras 3 .weights.h5 file (by layer)."""
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"no such file: {filepath}")
    with open(filepath, "rb") as f:
        magic = f.read(8)
    if magic == b"\x89HDF\r\n\x1a\n":
        load_keras_h5(model, filepath)
        return
    if not model.built:
        raise ValueError("build the model (call it on data or give an input shape) before load_weights")
    _, tensors = _read(filepath, WEIGHTS_FORMAT)
    _load_state(model, tensors, filepath)


# ---------------------------------------------------------------------- Keras .weights.h5

def _h5_arrays(group) -> list[np.ndarray]:
    """A Keras 3 layer group's weights in get_weights() order: its vars, then its sublayers'."""
    arrays = []
    if "vars" in group:
        v = group["vars"]
        arrays += [np.asarray(v[k]) for k in sorted(v.keys(), key=int)]
    for sub in ("cell", "forward_layer", "backward_layer", "layer"):
        if sub in group:
            arrays += _h5_arrays(group[sub])
    return arrays


def _split_name(name: str) -> tuple[str, int]:
    m = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return m.group(1), int(m.group(2) or 0)


def load_keras_h5(model, filepath) -> None:
    """Set the model's weights from a Keras 3 .weights.h5 file, layer by layer.

    Layers are matched by name; where names differ (Keras numbers them per session), layers of
    the same kind are matched in order ("lstm", "lstm_1", ... to the model's LSTM layers in order).
    """
    try:
        import h5py
    except ImportError:
        raise ImportError("reading Keras .weights.h5 files needs h5py: pip install h5py") from None
    if not model.built:
        raise ValueError("build the model (call it on data or give an input shape) before load_weights")
    with h5py.File(filepath, "r") as f:
        if "layers" not in f:
            raise ValueError(f"{filepath} has no 'layers' group: not a Keras 3 .weights.h5 file")
        root = f["layers"]
        file_layers = {name: _h5_arrays(root[name]) for name in root.keys()}
    file_layers = {n: a for n, a in file_layers.items() if a}
    targets = [l for l in model.layers if l.weights]
    by_name = {l.name: l for l in targets}
    plan = [(by_name[n], n) for n in file_layers if n in by_name]
    left_file = sorted((n for n in file_layers if n not in by_name), key=_split_name)
    left_model = [l for l in targets if l.name not in file_layers]
    if len(left_file) != len(left_model):
        raise ValueError(
            f"{filepath} has weights for layers {sorted(file_layers)} but the model's layers with weights are "
            f"{[l.name for l in targets]}"
        )
    for base in {_split_name(n)[0] for n in left_file}:
        files = [n for n in left_file if _split_name(n)[0] == base]
        mods = [l for l in left_model if _split_name(l.name)[0] == base]
        if len(files) != len(mods):
            raise ValueError(f"{filepath} has {len(files)} '{base}' layers with weights, the model has {len(mods)}")
        plan += list(zip(mods, files))
    for layer, name in plan:
        try:
            layer.set_weights(file_layers[name])
        except ValueError as exc:
            raise ValueError(f"{filepath}: Keras layer {name!r} does not fit layer {layer.name!r}: {exc}") from None
