"""Keras metrics: stateful objects that accumulate over an epoch.

    m = CategoricalAccuracy(); m.update_state(y_true, y_pred); m.result() -> float; m.reset_state()

"accuracy" in compile() is resolved per output from the shapes, as Keras does: a 1-unit output
-> binary_accuracy (threshold 0.5); integer labels (y_true of lower rank, or last dim 1) ->
sparse_categorical_accuracy; else categorical_accuracy. Precision / Recall count thresholded
predictions (0.5) over every element. Metric values honour sample weights and output masks.
"""

from __future__ import annotations

import torch

from . import losses as losses_module


def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true = losses_module._same_rank(y_true, y_pred, "binary_accuracy")
    return ((y_pred > threshold).to(y_pred.dtype) == y_true).to(y_pred.dtype).mean(dim=-1)


def categorical_accuracy(y_true, y_pred):
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"categorical_accuracy: y_true must be one-hot with shape {tuple(y_pred.shape)}, got {tuple(y_true.shape)}"
        )
    return (y_true.argmax(dim=-1) == y_pred.argmax(dim=-1)).to(y_pred.dtype)


def sparse_categorical_accuracy(y_true, y_pred):
    labels = losses_module.sparse_labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (labels.long() == y_pred.argmax(dim=-1)).to(y_pred.dtype)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    top = y_pred.topk(min(k, y_pred.shape[-1]), dim=-1).indices
    return (top == y_true.argmax(dim=-1, keepdim=True)).any(dim=-1).to(y_pred.dtype)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    labels = y_true.squeeze(-1) if y_true.dim() == y_pred.dim() else y_true
    top = y_pred.topk(min(k, y_pred.shape[-1]), dim=-1).indices
    return (top == labels.long().unsqueeze(-1)).any(dim=-1).to(y_pred.dtype)


class Metric:
    def __init__(self, name=None, dtype=None):
        from .backend import snake_case

        self.name = name or snake_case(type(self).__name__)
        self.reset_state()

    def reset_state(self):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}


class Mean(Metric):
    """Weighted mean of values: update_state(values, sample_weight=None)."""

    def reset_state(self):
        self.total = 0.0
        self.count = 0.0

    def update_state(self, values, sample_weight=None, mask=None):
        values = values.detach().to(torch.float64)
        w = torch.ones_like(values)
        if sample_weight is not None:
            sw = sample_weight.detach().to(values.dtype)
            while sw.dim() < values.dim():
                sw = sw.unsqueeze(-1)
            w = w * sw
        if mask is not None and mask.shape == values.shape:
            w = w * mask.to(values.dtype)
        self.total += float((values * w).sum())
        self.count += float(w.sum())

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """A per-sample function (y_true, y_pred) -> values, averaged over every value seen."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        self._fn = fn
        self._kwargs = kwargs
        super().__init__(name=name or fn.__name__)

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        with torch.no_grad():
            values = self._fn(y_true, y_pred.detach(), **self._kwargs)
        super().update_state(values, sample_weight, mask)


def _wrapper_class(fn, class_name, **defaults):
    def __init__(self, name=None, dtype=None, **kwargs):
        MeanMetricWrapper.__init__(self, fn, name=name or fn.__name__, **{**defaults, **kwargs})

    return type(class_name, (MeanMetricWrapper,), {"__init__": __init__, "__doc__": f"Mean of {fn.__name__}."})


BinaryAccuracy = _wrapper_class(binary_accuracy, "BinaryAccuracy", threshold=0.5)
CategoricalAccuracy = _wrapper_class(categorical_accuracy, "CategoricalAccuracy")
SparseCategoricalAccuracy = _wrapper_class(sparse_categorical_accuracy, "SparseCategoricalAccuracy")
TopKCategoricalAccuracy = _wrapper_class(top_k_categorical_accuracy, "TopKCategoricalAccuracy", k=5)
SparseTopKCategoricalAccuracy = _wrapper_class(sparse_top_k_categorical_accuracy,
                                               "SparseTopKCategoricalAccuracy", k=5)
MeanSquaredError = _wrapper_class(losses_module.mean_squared_error, "MeanSquaredError")
MeanAbsoluteError = _wrapper_class(losses_module.mean_absolute_error, "MeanAbsoluteError")
MeanAbsolutePercentageError = _wrapper_class(losses_module.mean_absolute_percentage_error,
                                             "MeanAbsolutePercentageError")
BinaryCrossentropy = _wrapper_class(losses_module.binary_crossentropy, "BinaryCrossentropy")
CategoricalCrossentropy = _wrapper_class(losses_module.categorical_crossentropy, "CategoricalCrossentropy")
SparseCategoricalCrossentropy = _wrapper_class(losses_module.sparse_categorical_crossentropy,
                                               "SparseCategoricalCrossentropy")


class RootMeanSquaredError(Mean):
    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        super().update_state(losses_module.mean_squared_error(y_true, y_pred.detach()), sample_weight, mask)

    def result(self) -> float:
        return super().result() ** 0.5


class _Confusion(Metric):
    """Counts over every element of a binary (or one-vs-rest via class_id) prediction."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise NotImplementedError(f"{type(self).__name__}: top_k is not supported")
        self.threshold = 0.5 if thresholds is None else float(thresholds)
        self.class_id = class_id
        super().__init__(name=name)

    def reset_state(self):
        self.tp = self.fp = self.fn = self.tn = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None, mask=None):
        y_pred = y_pred.detach()
        y_true = losses_module._same_rank(y_true, y_pred, self.name)
        if self.class_id is not None:
            y_true, y_pred = y_true[..., self.class_id], y_pred[..., self.class_id]
        pred = y_pred > self.threshold
        true = y_true > 0.5
        w = torch.ones_like(y_pred, dtype=torch.float64)
        if sample_weight is not None:
            sw = sample_weight.to(torch.float64)
            while sw.dim() < w.dim():
                sw = sw.unsqueeze(-1)
            w = w * sw
        self.tp += float((w * (pred & true)).sum())
        self.fp += float((w * (pred & ~true)).sum())
        self.fn += float((w * (~pred & true)).sum())
        self.tn += float((w * (~pred & ~true)).sum())


class Precision(_Confusion):
    def result(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0


class Recall(_Confusion):
    def result(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0


_NAMES = {
    "binary_accuracy": BinaryAccuracy, "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "rmse": RootMeanSquaredError, "root_mean_squared_error": RootMeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "precision": Precision, "recall": Recall,
}
_CLASSES = {c.__name__: c for c in set(_NAMES.values())}


def get(identifier) -> Metric:
    """A metric name, class name or Metric (a function becomes a mean of its values).
    "accuracy" / "acc" need the shapes: see resolve()."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown metric {identifier!r}: expected 'accuracy' or one of {sorted(_NAMES)}")
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"metric must be a name, a Metric or a function, got {type(identifier).__name__}")


def check(identifier) -> None:
    """Raise now (at compile time) for an unknown metric name."""
    if isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc"):
        return
    get(identifier)


def resolve(identifier, y_true, y_pred) -> Metric:
    """get(), with "accuracy" chosen from the shapes as Keras chooses it."""
    if not (isinstance(identifier, str) and identifier.lower() in ("accuracy", "acc")):
        return get(identifier)
    is_binary = y_pred.shape[-1] == 1
    is_sparse = y_true.dim() < y_pred.dim() or (y_true.shape[-1] == 1 and y_pred.shape[-1] > 1)
    if is_binary:
        return BinaryAccuracy(name=identifier)
    if is_sparse:
        return SparseCategoricalAccuracy(name=identifier)
    return CategoricalAccuracy(name=identifier)
