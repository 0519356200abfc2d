"""Keras losses on torch tensors.

Each loss function maps (y_true, y_pred) to per-sample values, averaging over the last axis
where Keras does: y_pred [B, ..., C] -> [B, ...]. A Loss object reduces those to one scalar the
Keras way ("sum_over_batch_size": sum(loss * weight) / number of values), with optional
sample weights [B] and an output mask [B, T] (masked steps do not count).

    mse / mean_squared_error       mean((y_pred - y_true)^2, -1)
    mae / mean_absolute_error      mean(|y_pred - y_true|, -1)
    binary_crossentropy            y_true in [0, 1], y_pred probabilities (or logits: from_logits)
    categorical_crossentropy       y_true one-hot [.., C], y_pred probabilities (normalised by their
                                   sum then clipped, as Keras) or logits
    sparse_categorical_crossentropy  y_true int labels [..] (or [.., 1]), y_pred [.., C]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .backend import epsilon


def _same_rank(y_true: torch.Tensor, y_pred: torch.Tensor, name: str) -> torch.Tensor:
    y_true = y_true.to(y_pred.dtype)
    if y_true.dim() == y_pred.dim() - 1 and y_pred.shape[-1] == 1:
        y_true = y_true.unsqueeze(-1)
    elif y_true.dim() == y_pred.dim() + 1 and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"{name}: y_true has shape {tuple(y_true.shape)} but the model's output (y_pred) has shape "
            f"{tuple(y_pred.shape)}; they must match"
        )
    return y_true


def mean_squared_error(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "mean_squared_error")
    return ((y_pred - y_true) ** 2).mean(dim=-1)


def mean_absolute_error(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "mean_absolute_error")
    return (y_pred - y_true).abs().mean(dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "mean_absolute_percentage_error")
    return 100.0 * ((y_true - y_pred).abs() / y_true.abs().clamp_min(epsilon())).mean(dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "mean_squared_logarithmic_error")
    a = torch.log(y_pred.clamp_min(epsilon()) + 1.0)
    b = torch.log(y_true.clamp_min(epsilon()) + 1.0)
    return ((a - b) ** 2).mean(dim=-1)


def huber(y_true, y_pred, delta=1.0):
    y_true = _same_rank(y_true, y_pred, "huber")
    return F.huber_loss(y_pred, y_true, reduction="none", delta=delta).mean(dim=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    y_true = _same_rank(y_true, y_pred, "binary_crossentropy")
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        return F.binary_cross_entropy_with_logits(y_pred, y_true, reduction="none").mean(dim=-1)
    eps = epsilon()
    p = y_pred.clamp(eps, 1.0 - eps)
    return -(y_true * torch.log(p + eps) + (1.0 - y_true) * torch.log(1.0 - p + eps)).mean(dim=-1)


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if y_true.shape != y_pred.shape:
        hint = ""
        if y_true.dim() == y_pred.dim() - 1 or (y_true.dim() == y_pred.dim() and y_true.shape[-1] == 1):
            hint = " (these look like integer labels: use sparse_categorical_crossentropy, or one-hot encode y)"
        raise ValueError(
            f"categorical_crossentropy: y_true must be one-hot with the output's shape {tuple(y_pred.shape)}, "
            f"got {tuple(y_true.shape)}{hint}"
        )
    y_true = y_true.to(y_pred.dtype)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[axis]
    if from_logits:
        log_prob = torch.log_softmax(y_pred, dim=axis)
    else:
        p = y_pred / y_pred.sum(dim=axis, keepdim=True)
        log_prob = torch.log(p.clamp(epsilon(), 1.0 - epsilon()))
    return -(y_true * log_prob).sum(dim=axis)


def sparse_labels(y_true, y_pred, what: str):
    """Labels [..., 1] or [...] for predictions [..., classes]: returned as [...], or a ValueError
    naming `what`, the expected shape and the one given."""
    labels = y_true
    if labels.dim() == y_pred.dim() and labels.shape[-1] == 1:
        labels = labels.squeeze(-1)
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(
            f"{what}: y_true must hold one integer label per output row, shape "
            f"{tuple(y_pred.shape[:-1])}, got {tuple(y_true.shape)}"
            + (" (one-hot labels: use the categorical variant)" if y_true.shape == y_pred.shape else "")
        )
    return labels


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    labels = sparse_labels(y_true, y_pred, "sparse_categorical_crossentropy")
    if labels.is_floating_point():
        if not torch.equal(labels, labels.round()):
            raise ValueError("sparse_categorical_crossentropy: y_true must hold integer class labels, got fractions")
    labels = labels.long()
    valid = torch.ones_like(labels, dtype=torch.bool) if ignore_class is None else labels != ignore_class
    classes = y_pred.shape[-1]
    if labels.numel():
        checked = labels[valid]
        if checked.numel() and (int(checked.min()) < 0 or int(checked.max()) >= classes):
            bad = int(checked.min()) if int(checked.min()) < 0 else int(checked.max())
            raise ValueError(
                f"sparse_categorical_crossentropy: label {bad} is out of range for an output of {classes} "
                f"classes (labels must be in [0, {classes - 1}])"
            )
    if from_logits:
        log_prob = torch.log_softmax(y_pred, dim=-1)
    else:
        p = y_pred / y_pred.sum(dim=-1, keepdim=True)
        log_prob = torch.log(p.clamp(epsilon(), 1.0 - epsilon()))
    out = -log_prob.gather(-1, labels.clamp(0, classes - 1).unsqueeze(-1)).squeeze(-1)
    return out * valid.to(out.dtype)


def kl_divergence(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "kl_divergence").clamp(epsilon(), 1.0)
    y_pred = y_pred.clamp(epsilon(), 1.0)
    return (y_true * torch.log(y_true / y_pred)).sum(dim=-1)


def poisson(y_true, y_pred):
    y_true = _same_rank(y_true, y_pred, "poisson")
    return (y_pred - y_true * torch.log(y_pred + epsilon())).mean(dim=-1)


mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kl_divergence


def reduce_loss(values: torch.Tensor, sample_weight=None, mask=None) -> torch.Tensor:
    """Keras's sum_over_batch_size: sum(values * weights) / values.numel(); masked values count
    zero and the rest are scaled by total / valid (so a mask gives the mean over real steps)."""
    weights = None
    if sample_weight is not None:
        w = sample_weight.to(values.dtype)
        while w.dim() < values.dim():
            w = w.unsqueeze(-1)
        weights = w.expand_as(values)
    if mask is not None and mask.shape == values.shape:
        m = mask.to(values.dtype)
        m = m * (m.numel() / m.sum().clamp_min(epsilon()))
        weights = m if weights is None else weights * m
    if weights is not None:
        values = values * weights
    return values.sum() / max(values.numel(), 1)


class Loss:
    """Callable loss object: loss(y_true, y_pred, sample_weight=None) -> scalar tensor."""

    fn = None

    def __init__(self, reduction="sum_over_batch_size", name=None, **kwargs):
        if reduction not in ("sum_over_batch_size", "auto", "mean", "sum", "none", None):
            raise ValueError(f"unknown loss reduction {reduction!r}")
        self.reduction = reduction
        self.name = name or _snake(type(self).__name__)
        self.kwargs = kwargs

    def call(self, y_true, y_pred):
        return type(self).fn(y_true, y_pred, **self.kwargs)

    def __call__(self, y_true, y_pred, sample_weight=None, mask=None):
        values = self.call(y_true, y_pred)
        if self.reduction in (None, "none"):
            return values
        if self.reduction == "sum":
            return reduce_loss(values, sample_weight, mask) * max(values.numel(), 1)
        return reduce_loss(values, sample_weight, mask)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, **self.kwargs}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _snake(name):
    from .backend import snake_case

    return snake_case(name)


class LossFunctionWrapper(Loss):
    """Wrap a plain function (y_true, y_pred) -> per-sample values as a Loss."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, **kwargs):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"), **kwargs)
        self._fn = fn

    def call(self, y_true, y_pred):
        return self._fn(y_true, y_pred, **self.kwargs)


def _loss_class(fn, class_name, **defaults):
    def __init__(self, reduction="sum_over_batch_size", name=None, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{class_name}() got unexpected keyword arguments {sorted(unknown)}")
        Loss.__init__(self, reduction=reduction, name=name or fn.__name__, **{**defaults, **kwargs})

    return type(class_name, (Loss,), {"fn": staticmethod(fn), "__init__": __init__,
                                      "__doc__": f"Loss object for {fn.__name__}."})


MeanSquaredError = _loss_class(mean_squared_error, "MeanSquaredError")
MeanAbsoluteError = _loss_class(mean_absolute_error, "MeanAbsoluteError")
MeanAbsolutePercentageError = _loss_class(mean_absolute_percentage_error, "MeanAbsolutePercentageError")
MeanSquaredLogarithmicError = _loss_class(mean_squared_logarithmic_error, "MeanSquaredLogarithmicError")
Huber = _loss_class(huber, "Huber", delta=1.0)
BinaryCrossentropy = _loss_class(binary_crossentropy, "BinaryCrossentropy", from_logits=False, label_smoothing=0.0)
CategoricalCrossentropy = _loss_class(categorical_crossentropy, "CategoricalCrossentropy", from_logits=False,
                                      label_smoothing=0.0, axis=-1)
SparseCategoricalCrossentropy = _loss_class(sparse_categorical_crossentropy, "SparseCategoricalCrossentropy",
                                            from_logits=False, ignore_class=None, axis=-1)
KLDivergence = _loss_class(kl_divergence, "KLDivergence")
Poisson = _loss_class(poisson, "Poisson")

_CLASSES = {c.__name__: c for c in (
    MeanSquaredError, MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber,
    BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy, KLDivergence, Poisson)}
_NAMES = {
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mape": MeanAbsolutePercentageError, "mean_absolute_percentage_error": MeanAbsolutePercentageError,
    "msle": MeanSquaredLogarithmicError, "mean_squared_logarithmic_error": MeanSquaredLogarithmicError,
    "huber": Huber, "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy, "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "kld": KLDivergence, "kl_divergence": KLDivergence, "kullback_leibler_divergence": KLDivergence,
    "poisson": Poisson,
}


def get(identifier) -> Loss:
    """A loss name ("mse", "categorical_crossentropy", "MeanSquaredError"), a Loss, or a function."""
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"unknown loss {identifier!r}: expected one of {sorted(_NAMES)}")
        loss = cls()
        loss.name = identifier if identifier in _NAMES else loss.name
        return loss
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if callable(identifier):
        return LossFunctionWrapper(identifier)
    raise TypeError(f"loss must be a name, a Loss or a function, got {type(identifier).__name__}")


def serialize(loss: Loss):
    if type(loss).__name__ in _CLASSES:
        return {"class_name": type(loss).__name__, "config": loss.get_config()}
    raise ValueError(f"cannot save the custom loss {loss!r}")


def deserialize(config: dict) -> Loss:
    cls = _CLASSES.get(config.get("class_name"))
    if cls is None:
        raise ValueError(f"unknown loss class {config.get('class_name')!r}")
    return cls(**config.get("config", {}))
