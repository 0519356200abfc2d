"""Forecast a time series from a CSV column with an LSTM (default: the embedded S&P 500 daily close).

The model reads windows of --lookback steps and outputs the next --horizon steps at once (direct
multi-output). It models log-returns when every value is positive (prices), differences otherwise,
unless --transform says levels, diff or log-return. The split is in time order (training, then
--val-fraction for validation, then --test-fraction for the test span), and the scaling is fitted on
the training span only. The test figures (mae, rmse, mape, mase; averaged over the horizon steps)
are reported next to the naive forecast (the last value) and the seasonal-naive one (--season; by
default guessed from the dates). Stock prices move much like a random walk: there the naive
forecast is hard to beat, and the report says so when it is not beaten.

    lstmkit forecast                                       the embedded S&P 500 closes
    lstmkit forecast --data co2.csv --fill interpolate --horizon 4
    lstmkit predict RUN --file recent.csv                   the next --horizon values after its end
    lstmkit predict RUN 101.2 102.5 ...                     the same after numbers given here
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import plots
from ..data.errors import DataError
from ..data.series import (FILLS, TRANSFORMS, Series, Split, from_changes, guess_season, offset_of, read_series,
                           seasonal_naive, sp500_path, split_rows, targets, to_changes, windows)
from . import common, runs, training
from .metrics import regression

TASK = "forecast"
EPOCHS, HIDDEN, LOOKBACK = 20, 32, 20
FIGURES = ("mae", "rmse", "mape", "mase")
TIE_PERCENT = 1.0   # an MAE within 1% of the naive forecast's is reported as a tie, not a win


def add_arguments(parser) -> None:
    common.add_training_arguments(
        parser, epochs=EPOCHS, hidden=HIDDEN,
        data_help="CSV/TSV file with a header row (default: the embedded S&P 500 daily close, 1999-2018)",
        test_help="a CSV with the same columns that continues the series after --data: the test span "
                  "(default: the last --test-fraction of --data)")
    series = parser.add_argument_group("series")
    series.add_argument("--column", help="column to forecast (default: Close when present, else the last "
                                         "numeric column; the report says which)")
    series.add_argument("--date-column", help="column of dates, for labels and the season guess (default: a "
                                              "column named Date, Month, Year..., else the first column when "
                                              "it is not numeric)")
    series.add_argument("--features", help="extra input columns, comma-separated, e.g. Volume,Open (scaled "
                                           "levels; the model still forecasts --column only)")
    series.add_argument("--lookback", type=int, default=LOOKBACK, help=f"steps the model reads (default {LOOKBACK})")
    series.add_argument("--horizon", type=int, default=1, help="steps ahead, all forecast at once (default 1)")
    series.add_argument("--transform", choices=("auto", *TRANSFORMS), default="auto",
                        help="what the model reads and predicts: levels, differences, or log-returns (default "
                             "auto: log-returns when every value is positive, as for prices; else differences)")
    series.add_argument("--season", type=int, default=0,
                        help="season length in steps for the seasonal-naive baseline and MASE (default 0: "
                             "guessed from the dates: months 12, weeks 52, calendar days 365, trading days 1)")
    series.add_argument("--fill", choices=FILLS, default="none",
                        help="empty cells: none = an error naming the line (default), interpolate = linear")
    series.add_argument("--val-fraction", type=float, default=0.1,
                        help="share of rows before the test span kept for validation, in time order; 0: none, "
                             "the last epoch is kept (default 0.1)")
    series.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of rows at the end held out as the test span (default 0.2)")
    series.add_argument("--batch-size", type=int, default=64, help="windows per batch (default 64)")
    series.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")


class Forecaster(nn.Module):
    """Scaled input windows [B, lookback, n_inputs] -> the next `horizon` scaled changes [B, horizon].

    config keys: n_inputs, hidden, layers, cell, bidirectional, horizon. The read-out is a linear
    map of the last step's state (forward direction) and the first step's (backward direction)."""

    def __init__(self, config: dict):
        super().__init__()
        self.config = dict(config)
        self.rnn = common.recurrent(config["cell"], config["n_inputs"], config["hidden"], config["layers"],
                                    config["bidirectional"])
        directions = 2 if config["bidirectional"] else 1
        self.head = nn.Linear(directions * config["hidden"], config["horizon"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        output, _ = self.rnn(x)                                 # [B, T, D*H]
        hidden = self.config["hidden"]
        state = output[:, -1, :hidden]
        if self.config["bidirectional"]:
            state = torch.cat([state, output[:, 0, hidden:]], dim=-1)
        return self.head(state)


def model_rows(values: np.ndarray, config: dict) -> np.ndarray:
    """values [N, 1 + F] (target levels, then features) -> scaled model inputs [N, 1 + F]:
    channel 0 the target's changes (see series.to_changes), then the features; z-scored with the
    training span's mean and std. Rows before series.offset_of(transform) are NaN."""
    rows = np.array(values, dtype=np.float64)
    rows[:, 0] = to_changes(values[:, 0], config["transform"])
    return (rows - np.asarray(config["input_mean"])) / np.asarray(config["input_std"])


class Predictor:
    """A trained forecaster: .forecast(values) -> the next `horizon` values after them."""

    def __init__(self, model: Forecaster, config: dict):
        self.model, self.config = model.eval(), config

    @property
    def horizon(self) -> int:
        return self.config["horizon"]

    @property
    def lookback(self) -> int:
        return self.config["lookback"]

    @property
    def columns(self) -> list[str]:
        """What each row of `values` holds: the forecast column, then the features."""
        return [self.config["column"], *self.config["features"]]

    @property
    def rows_needed(self) -> int:
        return self.lookback + offset_of(self.config["transform"])

    def forecast(self, values) -> np.ndarray:
        """values [N] (or [N, 1 + F] with the features, in the order of .columns), oldest first,
        N >= .rows_needed -> the next `horizon` values of the forecast column, float64 [horizon]."""
        values = self._checked(values)
        return self.levels(self.window(values), values[-1:, 0])[0]

    def forecast_file(self, path) -> np.ndarray:
        """The next `horizon` values after the end of a CSV with the same columns as the training data."""
        return self.forecast(self.read(path).values)

    def window(self, values) -> torch.Tensor:
        """The last scaled window the model reads, float32 [1, lookback, 1 + F]."""
        rows = model_rows(self._checked(values), self.config)
        return torch.as_tensor(rows[-self.lookback:][None], dtype=torch.float32)

    @torch.no_grad()
    def levels(self, x: torch.Tensor, last: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Scaled windows [B, lookback, 1 + F] and the last level before each [B] -> forecasts [B, horizon]."""
        self.model.eval()
        device = next(self.model.parameters()).device
        out = [self.model(x[k:k + batch_size].to(device)).double().cpu().numpy() for k in range(0, len(x), batch_size)]
        scaled = np.concatenate(out) if out else np.zeros((0, self.horizon))
        changes = scaled * self.config["input_std"][0] + self.config["input_mean"][0]
        return from_changes(last, changes, self.config["transform"])

    def read(self, path) -> Series:
        """A CSV of the training data's columns, checked for this model (rows, positivity)."""
        series = read_series(path, self.config["column"], None, self.config["features"], self.config["fill"])
        if len(series) < self.rows_needed:
            raise DataError(series.path, f"has {len(series)} rows; this model needs the last {self.rows_needed} "
                                         f"(--lookback {self.lookback}"
                                         f"{' + 1 for the first change' if self.rows_needed > self.lookback else ''})",
                            column=series.column)
        if self.config["transform"] == "log-return":
            _check_positive_values(series)
        return series

    def predict_lines(self, inputs: list[str], file: str | None = None) -> list[str]:
        """`lstmkit predict`: the forecast after --file (a CSV) and/or after the inputs, which are either
        numbers (one history, oldest first; commas allowed) or CSV paths; one line per step ahead."""
        blocks = []
        if file:
            blocks.append((str(file), self.forecast_file(file)))
        if inputs:
            numbers = _parse_numbers(inputs)
            if numbers is not None:
                blocks.append(("numbers", self.forecast(numbers)))
            else:
                blocks += [(name, self.forecast_file(name)) for name in inputs]
        lines = []
        for source, values in blocks:
            prefix = f"{source}\t" if len(blocks) > 1 else ""
            lines += [f"{prefix}t+{k}\t{v:.8g}" for k, v in enumerate(values, start=1)]
        return lines

    def inspect_input(self, value: str) -> tuple[nn.Module, torch.Tensor, list[str]]:
        """`lstmkit inspect`: value = a CSV path (its last window) or comma-separated numbers ->
        (the first recurrent layer, the scaled window [1, lookback, 1 + F], a label per step:
        the dates when the CSV has them, else t-(lookback-1) .. t)."""
        numbers = _parse_numbers([value])
        if numbers is not None:
            values, dates = numbers, None
        else:
            series = self.read(value)
            values, dates = series.values, series.dates
        x = self.window(values)
        labels = (dates[-self.lookback:] if dates is not None
                  else [f"t-{k}" if k else "t" for k in range(self.lookback - 1, -1, -1)])
        return self.model.rnn, x, labels

    def _checked(self, values) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            values = values[:, None]
        width = len(self.columns)
        if values.ndim != 2 or values.shape[1] != width:
            what = f"[N, {width}] (columns {', '.join(self.columns)})" if width > 1 else "[N]"
            raise ValueError(f"expected values {what}, got shape {list(np.shape(values))}"
                             + ("; this model also reads features: give a CSV with those columns" if width > 1 else ""))
        if len(values) < self.rows_needed:
            raise ValueError(f"needs at least {self.rows_needed} values (the --lookback window"
                             f"{' and one before it for the first change' if self.rows_needed > self.lookback else ''}"
                             f"), got {len(values)}")
        if not np.isfinite(values).all():
            raise ValueError("the values hold NaN or infinity; give finite numbers")
        if self.config["transform"] == "log-return" and (values[:, 0] <= 0).any():
            raise ValueError("this model reads log-returns, so the values must be positive")
        return values


def load(run) -> Predictor:
    """The Predictor of a saved forecast run (a run folder or its model.safetensors)."""
    config, state = runs.load_task_model(run, TASK)
    model = Forecaster(config["model"])
    model.load_state_dict(state)
    return Predictor(model, config)


def train(data=None, test=None, out=None, *, seed=0, epochs=EPOCHS, hidden=HIDDEN, layers=1, cell="vanilla",
          bidirectional=False, device="auto", resume=False, progress=True, log=print, column=None,
          date_column=None, features=None, lookback=LOOKBACK, horizon=1, transform="auto", season=0,
          fill="none", val_fraction=0.1, test_fraction=0.2, batch_size=64, lr=1e-3) -> runs.TaskResult:
    """Train a forecaster on a CSV column (default: the embedded S&P 500 closes); write the run folder.

    features: extra input columns (a list, or a comma-separated string). season=0 guesses the
    season from the dates. Returns TaskResult(run_dir, metrics, model); see the module docstring."""
    common.check_positive(epochs=epochs, hidden=hidden, layers=layers, lookback=lookback, horizon=horizon,
                          batch_size=batch_size)
    _check_options(transform, fill, season, val_fraction, test_fraction, lr)
    say = log if progress else (lambda *_: None)
    dev = training.resolve_device(device)
    with common.Timer() as timer:
        training.seed_everything(seed)
        features = _feature_list(features)
        source = Path(data) if data is not None else sp500_path()
        series = read_series(source, column, date_column, features, fill)
        extra = read_series(test, series.column, series.date_column, features, fill) if test is not None else None
        parts = [series] + ([extra] if extra else [])
        values = np.concatenate([p.values for p in parts])
        dates = sum((p.dates for p in parts), []) if all(p.dates is not None for p in parts) else None
        levels = values[:, 0]
        transform, transform_note = _choose_transform(transform, parts)
        offset = offset_of(transform)
        split = split_rows(len(values), val_fraction, test_fraction, len(extra) if extra else None)
        season, season_note = _choose_season(season, dates, split)
        _check_rows(series, extra, split, lookback, horizon, offset, season, val_fraction, test_fraction)
        if np.ptp(series.target) == 0:
            raise DataError(series.path, f"holds the same value ({series.target[0]:g}) on every row: a constant "
                                         "series has nothing to forecast", column=series.column)
        say(f"forecast: column {series.column!r} ({series.column_note}) of {_source_name(data, series)}; "
            f"{transform_note}; {season_note}")

        raw = values.copy()
        raw[:, 0] = to_changes(levels, transform)
        fitted = raw[offset:split.train_end]
        std = fitted.std(0)
        config = {
            "model": {"n_inputs": values.shape[1], "hidden": hidden, "layers": layers, "cell": cell,
                      "bidirectional": bool(bidirectional), "horizon": horizon},
            "column": series.column, "features": features, "date_column": series.date_column,
            "lookback": lookback, "horizon": horizon, "transform": transform, "season": season, "fill": fill,
            "input_mean": fitted.mean(0).tolist(), "input_std": np.where(std > 0, std, 1.0).tolist(),
        }
        rows = model_rows(values, config)
        spans = {name: split.origins(name, lookback, horizon, offset) for name in ("train", "val", "test")}
        x = {name: _float32(windows(rows, o, lookback)) for name, o in spans.items()}
        y = {name: _float32(targets(rows[:, 0], o, horizon)) for name, o in spans.items()}

        model = Forecaster(config["model"])
        predictor = Predictor(model, config)
        x_val_device = x["val"].to(dev)
        y_val_device = y["val"].to(dev)

        def batches(epoch):
            order = np.random.default_rng([seed, epoch]).permutation(len(spans["train"]))
            for k in range(0, len(order), batch_size):
                index = order[k:k + batch_size]
                yield x["train"][index], y["train"][index]

        def loss(model, batch):
            return nn.functional.mse_loss(model(batch[0]), batch[1])

        def validate(model):
            val_loss = nn.functional.mse_loss(model(x_val_device), y_val_device).item()
            predicted = predictor.levels(x_val_device, levels[spans["val"]])
            return val_loss, float(np.mean(np.abs(predicted - targets(levels, spans["val"], horizon))))

        say(f"training on {len(spans['train'])} windows, validating on {len(spans['val'])}, "
            f"testing on {len(spans['test'])} (lookback {lookback}, horizon {horizon}, device {dev})")
        run_dir = runs.make_run_dir(TASK, out)
        checkpoint = run_dir / "checkpoint.safetensors"
        history = training.fit(model, batches=batches, loss=loss, validate=validate if len(spans["val"]) else None,
                               metric_name="mae", epochs=epochs, lr=lr, device=dev, checkpoint=checkpoint,
                               resume=resume, progress=progress, log=log, desc=TASK)

        origins = spans["test"]
        actual = targets(levels, origins, horizon)
        forecasts = {"LSTM": predictor.levels(x["test"], levels[origins]),
                     "naive": np.repeat(levels[origins][:, None], horizon, axis=1),
                     "seasonal_naive": seasonal_naive(levels, origins, horizon, season)}
        train_levels = levels[:split.train_end]
        figures = {name: _figures(actual, f, train_levels, season) for name, f in forecasts.items()}
    metrics = {
        **figures["LSTM"]["mean"],
        "per_step": figures["LSTM"]["per_step"],
        "baseline": {name: {**figures[name]["mean"], "per_step": figures[name]["per_step"]}
                     for name in ("naive", "seasonal_naive")},
        "data": _data_facts(data, test, series, extra, split, spans, dates, transform, transform_note,
                            season, season_note),
        "split": _split_facts(split, dates, val_fraction, test_fraction, extra is not None),
        "training": {"epochs_run": len(history.train_loss), "best_epoch": history.best_epoch,
                     "kept": "the epoch with the lowest validation MAE" if len(spans["val"]) else "the last epoch"},
        "seconds": round(timer.seconds, 2),
        "config": {k: v for k, v in config.items() if k not in ("input_mean", "input_std")}
                  | {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed, "device": str(dev)},
    }
    metrics = _json_safe(metrics)
    model.cpu().eval()
    runs.save_model(run_dir, TASK, model, config)
    runs.write_metrics(run_dir, metrics)
    plots.learning_curves(history, run_dir / "learning_curves.png", title="forecast: loss (scaled changes)")
    _plot(run_dir / "forecast.png", levels, dates, split, origins, forecasts["LSTM"], horizon, series.column)
    _write_report(run_dir, metrics, horizon)
    (run_dir / "checkpoint.safetensors").unlink(missing_ok=True)   # only now: the run is complete
    say(f"forecast: test MAE {metrics['mae']:.4g} (naive {metrics['baseline']['naive']['mae']:.4g}); "
        f"wrote {run_dir}")
    return runs.TaskResult(TASK, run_dir, metrics, model, history)


# -- options and data checks ------------------------------------------------------------------------

def _check_options(transform, fill, season, val_fraction, test_fraction, lr) -> None:
    if transform not in ("auto", *TRANSFORMS):
        raise ValueError(f"--transform must be auto or one of {', '.join(TRANSFORMS)}, got {transform!r}")
    if fill not in FILLS:
        raise ValueError(f"--fill must be one of {', '.join(FILLS)}, got {fill!r}")
    if season is None or season < 0:
        raise ValueError(f"--season must be 0 (guess from the dates) or a positive number of steps, got {season}")
    if not 0 <= val_fraction < 1 or not 0 < test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(f"--val-fraction ({val_fraction}) must be in [0, 1), --test-fraction ({test_fraction}) in "
                         "(0, 1), and together they must leave rows to train on")
    if not lr > 0:
        raise ValueError(f"--lr must be positive, got {lr}")


def _feature_list(features) -> list[str]:
    if not features:
        return []
    names = features.split(",") if isinstance(features, str) else list(features)
    return [name.strip() for name in names if name.strip()]


def _check_positive_values(series: Series) -> None:
    bad = np.flatnonzero(series.target <= 0)
    if len(bad):
        k = int(bad[0])
        raise DataError(series.path, f"log-returns need positive values, got {series.target[k]:g}; use "
                                     "--transform diff or levels", line=series.lines[k], column=series.column)


def _choose_transform(transform: str, parts: list[Series]) -> tuple[str, str]:
    if transform == "log-return":
        for part in parts:
            _check_positive_values(part)
    if transform != "auto":
        return transform, f"modelling {_TRANSFORM_WORDS[transform]} (--transform {transform})"
    if all((p.target > 0).all() for p in parts):
        return "log-return", "modelling log-returns (auto: every value is positive, as for prices)"
    return "diff", "modelling differences (auto: some values are zero or negative)"


_TRANSFORM_WORDS = {"levels": "levels", "diff": "differences", "log-return": "log-returns"}


def _choose_season(season: int, dates, split: Split) -> tuple[int, str]:
    if season:
        return season, f"season {season} (--season)"
    season, why = guess_season(dates)
    if season >= split.train_end:
        return 1, f"{why}, but the training span has only {split.train_end} rows: season 1"
    return season, why


def _check_rows(series, extra, split, lookback, horizon, offset, season, val_fraction, test_fraction) -> None:
    """A DataError saying how many rows are needed when a span gets no window (or the season
    does not fit in the training span)."""
    def enough(s: Split) -> bool:
        spans = ("train", "val", "test") if val_fraction > 0 else ("train", "test")
        return all(len(s.origins(name, lookback, horizon, offset)) for name in spans) and s.train_end > season

    if enough(split):
        return
    window = f"--lookback {lookback} + --horizon {horizon}" + (" + 1 for the first change" if offset else "")
    if extra is not None and len(extra) < horizon:
        raise DataError(extra.path, f"has {len(extra)} rows; the test span needs at least --horizon {horizon}",
                        column=extra.column)
    n_test = len(extra) if extra is not None else None
    need = _fewest_rows(len(series) + 1, lambda n: enough(split_rows(n + (n_test or 0), val_fraction,
                                                                   test_fraction, n_test)))
    spans = "training and validation spans" if extra is not None else "training, validation and test spans"
    raise DataError(series.path, f"has {len(series)} rows, too few for {window} with this split (validation "
                                 f"{val_fraction:g}{'' if extra is not None else f', test {test_fraction:g}'}"
                                 f"{f', season {season}' if season > 1 else ''}): each of the {spans} needs a "
                                 f"whole window; at least {need} rows are needed", column=series.column)


def _fewest_rows(start: int, fits) -> int:
    """The smallest n >= start with fits(n), by doubling then bisection (more rows never hurt a
    split), so a huge --lookback or --season is answered at once."""
    high = start
    while not fits(high):
        high *= 2
    low = start
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return low


def _float32(array: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(array, dtype=torch.float32)


def _parse_numbers(inputs: list[str]) -> list[float] | None:
    """The numbers in the inputs (split on commas and spaces), or None when any piece is not one."""
    pieces = [p for text in inputs for p in re.split(r"[,\s]+", text.strip()) if p]
    try:
        return [float(p) for p in pieces] if pieces else None
    except ValueError:
        return None


# -- figures, facts, plot and report ---------------------------------------------------------------

def _figures(actual: np.ndarray, predicted: np.ndarray, train_levels: np.ndarray, season: int) -> dict:
    """{"mean": the figures averaged over the horizon steps, "per_step": {"t+k": figures}}."""
    per_step = {f"t+{k + 1}": regression(actual[:, k], predicted[:, k], train_levels, season)
                for k in range(actual.shape[1])}
    mean = {name: float(np.mean([step[name] for step in per_step.values()])) for name in FIGURES}
    return {"mean": mean, "per_step": per_step}


def _json_safe(value):
    """NaN/inf (e.g. MAPE of an all-zero span) -> None, which JSON can hold."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _source_name(data, series: Series) -> str:
    return str(series.path) if data is not None else "the embedded S&P 500 daily close (1999-2018)"


def _span(dates, lo: int, hi: int) -> str:
    if hi <= lo:
        return "none"
    text = f"rows {lo + 1}-{hi}"
    return text + (f" ({dates[lo]} .. {dates[hi - 1]})" if dates is not None and hi > lo else "")


def _data_facts(data, test, series, extra, split, spans, dates, transform, transform_note, season,
                season_note) -> dict:
    return {
        "source": _source_name(data, series), "test_file": None if test is None else str(extra.path),
        "column": series.column, "column_chosen": series.column_note, "date_column": series.date_column,
        "features": series.features, "rows": split.n, "filled_gaps": series.filled + (extra.filled if extra else 0),
        "train_rows": split.train_end, "val_rows": split.val_end - split.train_end,
        "test_rows": split.n - split.val_end,
        "windows": {name: int(len(o)) for name, o in spans.items()},
        "transform": transform, "transform_chosen": transform_note, "season": season, "season_chosen": season_note,
    }


def _split_facts(split: Split, dates, val_fraction, test_fraction, test_file: bool) -> dict:
    how = ("in time order: the --test file is the test span, continuing --data; the last "
           f"{val_fraction:g} of --data validates, the rest trains" if test_file else
           f"in time order: the last {test_fraction:g} of the rows is the test span, the {val_fraction:g} "
           "before it validates, the rest trains")
    return {"method": how + "; a window belongs to the span holding all its targets (its inputs may reach "
                            "back into the span before); scaling fitted on the training span only",
            "train": _span(dates, 0, split.train_end), "val": _span(dates, split.train_end, split.val_end),
            "test": _span(dates, split.val_end, split.n)}


def _plot(path, levels, dates, split, origins, predicted, horizon, column) -> None:
    """Actual values over the test span, the LSTM's 1-step-ahead forecasts (and its horizon-step
    ones when horizon > 1) and the naive forecast, each drawn at the time it forecasts."""
    rows = np.arange(split.val_end, split.n)
    first = rows[0]
    lines = {"actual": levels[rows]}
    steps = sorted({1, horizon})
    for k in steps:
        line = np.full(len(rows), np.nan)
        line[origins + k - first] = predicted[:, k - 1]
        lines[f"LSTM, {k} step{'s' if k > 1 else ''} ahead"] = line
    lines["naive (last value)"] = levels[rows - 1]
    x = [dates[r] for r in rows] if dates is not None else rows + 1
    plots.series(x, lines, path, title=f"{column}: test-span forecasts", xlabel="date" if dates else "row",
                 ylabel=column)


def _write_report(run_dir, metrics: dict, horizon: int) -> None:
    base, facts, split = metrics["baseline"], metrics["data"], metrics["split"]
    season = facts["season"]
    table = common.markdown_table(
        ["forecast", *FIGURES],
        [["LSTM", *[metrics[k] for k in FIGURES]], ["naive (last value)", *[base["naive"][k] for k in FIGURES]],
         [f"seasonal naive (season {season})", *[base["seasonal_naive"][k] for k in FIGURES]]])
    naive_mae = base["naive"]["mae"]
    change = 100 * (naive_mae - metrics["mae"]) / naive_mae if naive_mae else 0.0
    steps = f"the next {horizon} values" if horizon > 1 else "the next value"
    against = f"MAE {metrics['mae']:.4g} against {naive_mae:.4g}"
    if change >= TIE_PERCENT:
        verdict = (f"**The LSTM beats the naive forecast** (the last value) on the test span: {against}, "
                   f"{change:.1f}% lower.")
    else:
        verdict = ((f"**The LSTM does not beat the naive forecast** (the last value) on the test span: {against} "
                    f"({-change:.1f}% higher)." if change < 0 else
                    f"**The LSTM does not meaningfully beat the naive forecast** (the last value) on the test span: "
                    f"{against}, only {change:.2f}% lower (under {TIE_PERCENT:g}%: in effect a tie).")
                   + " Series whose changes are close to unpredictable from their past, as stock prices are (nearly "
                     "a random walk), are the classic case: there the last value is about as good a forecast as "
                     "any, and the model learns little beyond it.")
    if season > 1:
        seasonal_mae = base["seasonal_naive"]["mae"]
        verdict += (f" Against the seasonal-naive forecast (season {season}, MAE {seasonal_mae:.4g}) it "
                    f"{'does better' if metrics['mae'] < seasonal_mae else 'does not do better'}.")
    config = metrics["config"]
    model = config["model"]
    summary = (f"An LSTM ({model['cell']} cell, {model['layers']} layer(s) of {model['hidden']} units"
               f"{', bidirectional' if model['bidirectional'] else ''}) forecast {steps} of column "
               f"'{facts['column']}' ({facts['column_chosen']}) of {facts['source']} from the last "
               f"{config['lookback']} steps" + (f" and the features {', '.join(facts['features'])}"
                                                 if facts["features"] else "") + ".")
    sections = [
        summary + "\n\n" + verdict,
        "## Test figures\n\nAveraged over the horizon steps" + (" (per step in metrics.json)" if horizon > 1 else "")
        + f"; MAPE in %, MASE scaled by the in-sample seasonal-naive MAE (season {season}) of the training span.\n\n"
        + table,
        "## Data and split\n\n" + "\n".join([
            f"- {facts['rows']} rows; {facts['transform_chosen']}; {facts['season_chosen']}.",
            f"- Split {split['method']}.",
            f"- Training {split['train']}, validation {split['val']}, test {split['test']}; windows: "
            f"{facts['windows']['train']} training, {facts['windows']['val']} validation, "
            f"{facts['windows']['test']} test.",
            *([f"- {facts['filled_gaps']} empty cells filled by linear interpolation over the whole file, before "
               "the split: a fill uses the values on both sides of its gap, even across the split, and a filled "
               "cell in the test span is scored as if it were observed."]
              if facts["filled_gaps"] else []),
        ]),
        "## Training\n\n" + (f"{metrics['training']['epochs_run']} epochs, kept epoch "
                             f"{metrics['training']['best_epoch']} ({metrics['training']['kept']}); "
                             f"{metrics['seconds']:.1f} s on {config['device']}. "
                             "Pictures: forecast.png (test span), learning_curves.png."),
    ]
    common.write_report(run_dir, f"Forecast: {facts['column']}", sections)
