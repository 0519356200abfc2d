"""Classify numeric sequences with an LSTM: digit images read row by row, or UCR/UEA series files.

Default data: scikit-learn's 1,797 8x8 digits, each image read as 8 steps (rows) of 8 features, with
a seeded stratified 75/25 train/test split. --data/--test take UCR/UEA files: `.tsv`/`.csv` (one
series per row, label first, no header; shorter series end in blanks or NaN) or sktime/aeon `.ts`
(multivariate, variable length, label last). Without --test, --data is split the same stratified way.

The series are z-normalised with statistics fitted on the training data only (--normalize dataset:
per feature over all training steps; series: each series by its own mean and std; none). --pool K
shortens long series for the LSTM by averaging every K steps. A stratified --val-fraction of the
training data picks the best epoch. The model is compared with the majority class and with 1-NN
Euclidean distance on the normalised, zero-padded (never pooled) series: the UCR archive's reference
classifier. Writes accuracy, macro F1 and the confusion matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from pathlib import Path

from .. import plots
from ..data.errors import DataError
from ..data.splits import label_order, stratified_split
from ..data.sequence_files import SeriesSet, digits, parse_values, read_series
from . import common, runs, training
from .classifier import (SequenceClassifier, fit_classifier, majority_baseline, model_name, pad, predict_classes,
                         write_classification_outputs, write_classifier_report)
from .metrics import classification

TASK = "sequence"
NORMALIZATIONS = ("dataset", "series", "none")


def add_arguments(parser) -> None:
    common.add_training_arguments(
        parser, epochs=30, hidden=64,
        data_help="training series: a UCR/UEA .tsv/.csv (label first) or .ts file (default: scikit-learn's digits)",
        test_help="test series in the same format (default: a seeded stratified split of --data)")
    own = parser.add_argument_group("sequence options")
    own.add_argument("--normalize", choices=NORMALIZATIONS, default="dataset",
                     help="z-normalisation fitted on training data: per feature over the dataset, per series, "
                          "or none (default dataset)")
    own.add_argument("--test-fraction", type=float, default=0.25,
                     help="share of --data held out for testing when no --test is given (default 0.25)")
    own.add_argument("--val-fraction", type=float, default=0.1,
                     help="share of the training data held out to pick the best epoch; 0 keeps the last "
                          "epoch (default 0.1)")
    own.add_argument("--pool", type=int, default=1,
                     help="average every POOL consecutive steps before the LSTM (piecewise aggregate "
                          "approximation; shortens long series, e.g. 5 for 150 steps; default 1: off)")
    own.add_argument("--batch-size", type=int, default=32, help="series per batch (default 32)")
    own.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003)")
    own.add_argument("--dropout", type=float, default=0.1, help="dropout before the output layer (default 0.1)")


# ---------------------------------------------------------------- shared by sequence and speech

def nearest_neighbour(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, chunk: int = 512) -> np.ndarray:
    """1-NN by Euclidean distance: train [N, D], test [M, D] (flattened series) -> predicted classes [M].

    Ties go to the earliest training series."""
    train_sq = (train ** 2).sum(1)
    out = np.empty(len(test), dtype=np.int64)
    for start in range(0, len(test), chunk):
        block = test[start:start + chunk]
        d2 = train_sq[None, :] - 2.0 * block @ train.T                     # + |b|^2, the same for every row
        out[start:start + chunk] = train_labels[d2.argmin(1)]
    return out


def fit_normalization(series: list[np.ndarray], mode: str) -> dict:
    """The JSON-able normaliser fitted on training series [T_k, F]: {"mode", "mean" [F], "std" [F]}."""
    if mode not in NORMALIZATIONS:
        raise ValueError(f"--normalize must be one of {', '.join(NORMALIZATIONS)}, got {mode!r}")
    if mode != "dataset":
        return {"mode": mode}
    steps = np.concatenate(series)                                        # [sum T_k, F]
    std = steps.std(0)
    return {"mode": mode, "mean": steps.mean(0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def apply_normalization(series: list[np.ndarray], norm: dict) -> list[np.ndarray]:
    """Apply a fitted normaliser to series [T_k, F] -> float32 series [T_k, F]."""
    if norm["mode"] == "dataset":
        mean, std = np.asarray(norm["mean"]), np.asarray(norm["std"])
        return [((s - mean) / std).astype(np.float32) for s in series]
    if norm["mode"] == "series":
        out = []
        for s in series:
            std = s.std(0)
            out.append(((s - s.mean(0)) / np.where(std > 0, std, 1.0)).astype(np.float32))
        return out
    return [s.astype(np.float32) for s in series]


def pool_steps(series: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Mean of every k consecutive steps: [T, F] -> [ceil(T / k), F] (the last group may be shorter)."""
    if k == 1:
        return series
    out = []
    for s in series:
        starts = np.arange(0, len(s), k)
        counts = np.diff(np.append(starts, len(s)))[:, None]
        out.append((np.add.reduceat(s, starts, axis=0) / counts).astype(s.dtype))
    return out


# ---------------------------------------------------------------- training

def _check_classes(data: SeriesSet, names: list[str] | None = None) -> None:
    """A single class in training data, or a test class never seen in training, is a DataError."""
    if names is None:
        distinct = set(data.labels)
        if len(distinct) < 2:
            raise DataError(data.path or "digits", f"only one class ({next(iter(distinct))!r}) in "
                                                   f"{len(data)} series; classification needs at least two")
        return
    known = set(names)
    for label, line in zip(data.labels, data.lines):
        if label not in known:
            raise DataError(data.path, f"class {label!r} does not occur in the training data "
                                       f"(classes: {', '.join(names)})", line=line, column="label")


def _load(data, test, test_fraction: float, seed: int, rng) -> tuple[SeriesSet, SeriesSet, str, str]:
    """(train, test, data description, split description)."""
    if data is None and test is not None:
        raise ValueError("--test needs --data: the embedded digits are split automatically")
    source = digits() if data is None else read_series(data)
    _check_classes(source)
    if test is not None:
        held = read_series(test)
        if held.n_features != source.n_features:
            raise DataError(held.path, f"series have {held.n_features} dimensions, the training data "
                                       f"{source.n_features}", line=held.lines[0])
        split = f"the given files: {len(source)} training series from --data, {len(held)} test series from --test"
        name = f"{source.path} / {held.path}"
        return source, held, name, split
    labels = np.asarray(source.labels)
    kept, held_out = stratified_split(labels, test_fraction, rng)
    if not len(held_out):
        raise ValueError(f"--test-fraction {test_fraction} holds out no series; give a larger fraction or --test")
    name = "scikit-learn digits (8x8 images, 8 rows x 8 pixels)" if data is None else str(source.path)
    split = (f"seeded stratified split (seed {seed}): {round(100 * test_fraction)}% of each class held out "
             f"for testing, {len(kept)} training / {len(held_out)} test series")
    return _subset(source, kept), _subset(source, held_out), name, split


def _subset(data: SeriesSet, idx) -> SeriesSet:
    return SeriesSet(data.path, [data.series[k] for k in idx], [data.labels[k] for k in idx],
                     [data.lines[k] for k in idx])


def train(data=None, test=None, out=None, *, seed: int = 0, epochs: int = 30, hidden: int = 64, layers: int = 1,
          cell: str = "vanilla", bidirectional: bool = False, device: str = "auto", resume: bool = False,
          progress: bool = True, log=print, normalize: str = "dataset", test_fraction: float = 0.25,
          val_fraction: float = 0.1, pool: int = 1, batch_size: int = 32, lr: float = 3e-3,
          dropout: float = 0.1) -> runs.TaskResult:
    """Train an LSTM sequence classifier; returns the TaskResult (run folder, metrics, model)."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, batch_size=batch_size, pool=pool)
    with common.Timer() as timer:
        rng = training.seed_everything(seed)
        dev = training.resolve_device(device)
        train_set, test_set, data_name, split = _load(data, test, test_fraction, seed, rng)
        names = label_order(train_set.labels)
        _check_classes(test_set, names)
        index = {name: k for k, name in enumerate(names)}
        y_all = np.array([index[label] for label in train_set.labels])
        y_test = np.array([index[label] for label in test_set.labels])

        norm = fit_normalization(train_set.series, normalize)
        train_series = apply_normalization(train_set.series, norm)
        test_series = apply_normalization(test_set.series, norm)
        model_series = pool_steps(train_series, pool)
        fit_idx, val_idx = stratified_split(y_all, val_fraction, rng)
        x_fit, l_fit = pad([model_series[k] for k in fit_idx])
        val = None
        if len(val_idx):
            x_val, l_val = pad([model_series[k] for k in val_idx])
            val = (x_val, l_val, torch.as_tensor(y_all[val_idx]))

        config = {"n_classes": len(names), "n_features": train_set.n_features, "hidden": hidden, "layers": layers,
                  "cell": cell, "bidirectional": bidirectional, "dropout": dropout}
        model = SequenceClassifier(config)
        run_dir = runs.make_run_dir(TASK, out)
        checkpoint = run_dir / "checkpoint.safetensors"
        log(f"sequence: {len(fit_idx)} training, {len(val_idx)} validation, {len(test_series)} test series, "
            f"{len(names)} classes, {train_set.n_features} features per step")
        history = fit_classifier(model, x_fit, l_fit, torch.as_tensor(y_all[fit_idx]), val, epochs=epochs,
                                 batch_size=batch_size, lr=lr, seed=seed, device=dev, checkpoint=checkpoint,
                                 resume=resume, progress=progress, log=log, desc=TASK)

        x_test, l_test = pad(pool_steps(test_series, pool))
        predicted, _ = predict_classes(model, x_test, l_test, device=dev)
        figures = write_classification_outputs(run_dir, y_test, predicted, names,
                                               f"sequence {model_name(cell)}: confusion (test)")
        # 1-NN on every training series (as the UCR archive does), zero-padded to one common length
        flat_train, flat_test = _flatten_common(train_series, test_series)
        nn_predicted = nearest_neighbour(flat_train, y_all, flat_test)
        baselines = {"majority": majority_baseline(y_all, y_test, len(names)),
                     "1nn_euclidean": classification(y_test, nn_predicted, len(names))}
        for b in baselines.values():
            b["error"] = 1.0 - b["accuracy"]

        saved = {"model": config, "labels": names, "normalization": norm, "pool": pool,
                 "train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed,
                           "val_fraction": val_fraction, "best_epoch": history.best_epoch}}
        runs.save_model(run_dir, TASK, model, saved)
        checkpoint.unlink(missing_ok=True)
        plots.learning_curves(history, run_dir / "learning_curves.png", title=f"sequence {model_name(cell)}")
    lengths = [len(s) for s in train_set.series + test_set.series]
    metrics = {
        "accuracy": figures["accuracy"], "macro_f1": figures["macro_f1"], "error": 1.0 - figures["accuracy"],
        "confusion_matrix": figures["confusion_matrix"], "labels": names,
        "baseline": baselines,
        "data": {"source": data_name, "train_series": len(train_set), "fit_series": int(len(fit_idx)),
                 "validation_series": int(len(val_idx)), "test_series": len(test_set), "classes": len(names),
                 "features": train_set.n_features, "min_length": min(lengths), "max_length": max(lengths)},
        "split": split + (f"; {len(val_idx)} of the training series (stratified) held out for validation"
                          if len(val_idx) else "; no validation part: the last epoch is kept"),
        "normalization": _describe_normalization(normalize) + (
            f"; the LSTM then reads the mean of every {pool} steps" if pool > 1 else ""),
        "training": {"best_epoch": history.best_epoch, "epochs_run": len(history.train_loss)},
        "seconds": round(timer.seconds, 2), "config": saved,
    }
    runs.write_metrics(run_dir, metrics)
    _write_report(run_dir, metrics, cell)
    return runs.TaskResult(TASK, run_dir, metrics, model, history)


def _flatten_common(train_series, test_series) -> tuple[np.ndarray, np.ndarray]:
    """Both sets zero-padded to their common longest length and flattened: [N, T_max * F], [M, T_max * F]."""
    steps = max(len(s) for s in train_series + test_series)
    width = train_series[0].shape[1]

    def flat(series):
        out = np.zeros((len(series), steps, width))
        for k, s in enumerate(series):
            out[k, :len(s)] = s
        return out.reshape(len(series), -1)

    return flat(train_series), flat(test_series)


def _describe_normalization(mode: str) -> str:
    return {"dataset": "per feature: mean and standard deviation over all training steps, applied to both sets",
            "series": "per series and dimension: each series minus its own mean, over its own standard deviation",
            "none": "none: the values as read"}[mode]


def _write_report(run_dir, metrics: dict, cell: str) -> None:
    d = metrics["data"]
    data = (f"## Data\n\n{d['source']}: {d['train_series']} training series ({d['fit_series']} fitted, "
            f"{d['validation_series']} for validation), {d['test_series']} test series, {d['classes']} classes, "
            f"{d['features']} feature(s) per step, lengths {d['min_length']}-{d['max_length']}.\n\n"
            f"Split: {metrics['split']}.\n\nNormalisation: {metrics['normalization']}.")
    extra = ("The 1-NN Euclidean baseline uses every training series, zero-padded to a common length and "
             "normalised the same way; the UCR archive reports this classifier's error for its datasets.")
    write_classifier_report(run_dir, "Sequence classification", metrics, cell, "the series", data, extra,
                            "confusion_matrix.png, learning_curves.png")


# ---------------------------------------------------------------- saved runs

class SequencePredictor:
    """A saved sequence run: .predict(series) -> labels; series are arrays [T] or [T, F] of raw values."""

    def __init__(self, model: SequenceClassifier, config: dict):
        self.model, self.config = model.eval(), config
        self.labels: list[str] = config["labels"]
        self.n_features: int = config["model"]["n_features"]

    def _prepare(self, series_list) -> tuple[torch.Tensor, torch.Tensor]:
        shaped = []
        for k, s in enumerate(series_list):
            s = np.asarray(s, dtype=np.float64)
            s = s[:, None] if s.ndim == 1 else s
            if s.ndim != 2 or s.shape[1] != self.n_features or not len(s):
                raise ValueError(f"series {k}: expected [steps, {self.n_features}] values, got shape {s.shape}")
            shaped.append(s)
        return pad(pool_steps(apply_normalization(shaped, self.config["normalization"]), self.config["pool"]))

    def predict_proba(self, series_list) -> np.ndarray:
        """Class probabilities [N, n_classes], columns in the order of .labels."""
        x, lengths = self._prepare(series_list)
        return predict_classes(self.model, x, lengths)[1]

    def predict(self, series_list) -> list[str]:
        return [self.labels[k] for k in self.predict_proba(series_list).argmax(1)]

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """"label<TAB>probability<TAB>source" per series. inputs: "1,2,3" (dimensions split by ':');
        file: a file in the training format, whose labels are read but ignored."""
        series = [parse_values(text) for text in inputs]
        sources = [f"input {k + 1}" for k in range(len(inputs))]
        if file is not None:
            read = read_series(file)
            series += read.series
            sources += [f"{file}:{line}" for line in read.lines]
        p = self.predict_proba(series)
        return [f"{self.labels[k]}\t{p[i, k]:.4f}\t{src}" for i, (k, src) in enumerate(zip(p.argmax(1), sources))]

    def inspect_input(self, value: str):
        """(first recurrent layer, normalised (pooled) series [1, T, F], step indices) of "1,2,3" or of
        a file's first series."""
        path = Path(value)
        series = read_series(path).series[0] if path.suffix.lower() in (".ts", ".tsv", ".csv", ".txt") \
            else parse_values(value)
        x, _ = self._prepare([series])
        pool = self.config["pool"]
        return self.model.rnn, self.model.features(x), [str(t * pool) for t in range(x.shape[1])]


def load(run) -> SequencePredictor:
    config, state = runs.load_task_model(run, TASK)
    model = SequenceClassifier(config["model"])
    model.load_state_dict(state)
    return SequencePredictor(model, config)
