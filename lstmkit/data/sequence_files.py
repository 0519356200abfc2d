"""Labelled numeric series from files: UCR/UEA `.tsv`/`.csv`/`.txt` and sktime/aeon `.ts`, and the digits.

Every loader returns a SeriesSet: series[k] is a float64 array [T_k, F] (T_k steps, F dimensions),
labels[k] its class as written in the file, lines[k] the file line it came from.

- `.tsv` / `.txt` (tab-separated) and `.csv` (comma-separated), the UCR 2018 layout: one series per
  row, the label first, no header, univariate. Series may be of different lengths: shorter rows end
  early, or end in blank fields or NaN, which are dropped. A missing value inside a series is an error.
- `.ts` (sktime/aeon): `#` comments and `@` header lines, then `@data`; one case per line, each
  dimension's comma-separated values, dimensions separated by ':', the label after the last ':'
  (when `@classLabel true`). Multivariate and variable length; '?' or NaN at a dimension's end is padding.
- `digits()`: scikit-learn's 8x8 handwritten digits read row by row: 8 steps x 8 features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError
from .tables import read_text

_MISSING = {"", "?", "nan", "NaN", "NAN"}


@dataclass
class SeriesSet:
    """Labelled series: series [N] arrays of [T_k, F]; labels [N] str (None when unlabelled)."""

    path: Path | None
    series: list[np.ndarray] = field(repr=False)
    labels: list[str | None] = field(repr=False)
    lines: list[int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.series)

    @property
    def n_features(self) -> int:
        return self.series[0].shape[1]


def read_series(path, labelled: bool = True) -> SeriesSet:
    """A `.ts`, `.tsv`/`.txt` or `.csv` file of labelled series (see the module docstring).

    labelled=False reads a `.tsv`/`.csv` whose rows hold values only (no label field)."""
    path = Path(path)
    text = read_text(path, what="series (.ts, .tsv or .csv)")
    if path.suffix.lower() == ".ts":
        return _parse_ts(path, text)
    delimiter = "," if path.suffix.lower() == ".csv" else "\t"
    return _parse_rows(path, text, delimiter, labelled)


def parse_values(text: str, source=None, line: int | None = None) -> np.ndarray:
    """One series written inline: "1,2,3" (univariate) or "1,2,3:4,5,6" (dimensions split by ':').

    -> float64 [T, F]."""
    dims = [_numbers(part.split(","), source, line, f"dimension {d + 1}")
            for d, part in enumerate(text.strip().split(":"))]
    return _stack(dims, source, line)


def digits() -> SeriesSet:
    """scikit-learn's 1,797 8x8 digit images (pixel values 0-16) as 8 rows read top to bottom.

    -> SeriesSet with series [8, 8] and labels "0".."9". Needs scikit-learn (the `apps` extra)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError("the default data of `lstmkit sequence` are scikit-learn's digits: "
                          "pip install scikit-learn (or lstmkit[apps]), or give your own --data file") from None
    bunch = load_digits()
    images = bunch.images.astype(np.float64)                    # [N, 8, 8]: rows become steps
    return SeriesSet(None, list(images), [str(int(t)) for t in bunch.target], list(range(1, len(images) + 1)))


def _parse_rows(path: Path, text: str, delimiter: str, labelled: bool) -> SeriesSet:
    series, labels, lines = [], [], []
    first = 2 if labelled else 1                              # field number of the first value
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.rstrip("\r")
        if not raw.strip():
            continue
        fields = raw.split(delimiter)
        label = None
        if labelled:
            label = fields[0].strip()
            if not label:
                raise DataError(path, "empty label (the first field of each row is the class)", line=number,
                                column="field 1")
            fields = fields[1:]
        values = _numbers(fields, path, number, None, first_field=first)
        if not len(values):
            raise DataError(path, f"a label ({label!r}) but no values; each row is the label followed by the "
                                  f"series' {'tab' if delimiter == chr(9) else 'comma'}-separated values",
                            line=number)
        series.append(values[:, None])
        labels.append(label)
        lines.append(number)
    if not series:
        raise DataError(path, "holds no series")
    return SeriesSet(path, series, labels, lines)


def _parse_ts(path: Path, text: str) -> SeriesSet:
    series, labels, lines = [], [], []
    in_data, has_labels, dimensions = False, True, None
    for number, raw in enumerate(text.split("\n"), start=1):
        row = raw.strip()
        if not row or row.startswith("#"):
            continue
        if not in_data:
            if not row.startswith("@"):
                raise DataError(path, f"expected an @ header line or @data before the values, got {row[:40]!r}",
                                line=number)
            key, _, value = row.partition(" ")
            key = key.lower()
            if key == "@data":
                in_data = True
            elif key == "@classlabel":
                has_labels = value.strip().split(" ")[0].lower() == "true"
            elif key == "@timestamps" and value.strip().lower() == "true":
                raise DataError(path, "@timeStamps true is not supported: give the values without time stamps",
                                line=number)
            continue
        parts = row.split(":")
        label = None
        if has_labels:
            label = parts[-1].strip()
            parts = parts[:-1]
            if not label:
                raise DataError(path, "empty class label after the last ':'", line=number,
                                column=f"label (after dimension {len(parts)})")
            if not parts:
                raise DataError(path, f"a label ({label!r}) but no values; a case is each dimension's "
                                      f"comma-separated values, split by ':', then ':' and the label", line=number)
        if dimensions is None:
            dimensions = len(parts)
        elif len(parts) != dimensions:
            raise DataError(path, f"{len(parts)} dimensions, but the first case (line {lines[0]}) has {dimensions}; "
                                  f"every case needs the same number of ':'-separated dimensions", line=number)
        dims = [_numbers(p.split(","), path, number, f"dimension {d + 1}")
                for d, p in enumerate(parts)]
        series.append(_stack(dims, path, number))
        labels.append(label)
        lines.append(number)
    if not in_data:
        raise DataError(path, "no @data line: not a sktime/aeon .ts file")
    if not series:
        raise DataError(path, "has no cases after @data")
    return SeriesSet(path, series, labels, lines)


def _numbers(fields: list[str], path, line, dimension: str | None, first_field: int = 1) -> np.ndarray:
    """Fields -> float64 [T]; missing values are allowed only at the end (padding), and dropped."""
    values = np.empty(len(fields))
    for k, text in enumerate(fields):
        text = text.strip()
        try:
            values[k] = math.nan if text in _MISSING else float(text)
        except ValueError:
            where = f"{dimension} value {k + 1}" if dimension else f"field {k + first_field}"
            raise DataError(path, f"expected a number, got {text[:30]!r}", line=line, column=where) from None
        if math.isinf(values[k]):
            where = f"{dimension} value {k + 1}" if dimension else f"field {k + first_field}"
            raise DataError(path, f"expected a finite number, got {text!r}", line=line, column=where)
    missing = np.isnan(values)
    end = len(values) - int(np.argmax(~missing[::-1])) if (~missing).any() else 0
    if missing[:end].any():
        k = int(np.argmax(missing[:end]))
        where = f"{dimension} value {k + 1}" if dimension else f"field {k + first_field}"
        raise DataError(path, "missing value inside the series (only trailing blanks/NaN are allowed, as "
                              "padding of a shorter series)", line=line, column=where)
    return values[:end]


def _stack(dims: list[np.ndarray], path, line) -> np.ndarray:
    """Per-dimension value arrays -> [T, F]; every dimension of one case must have the same length."""
    lengths = {len(d) for d in dims}
    if len(lengths) > 1:
        shown = ", ".join(f"dimension {k + 1}: {len(d)}" for k, d in enumerate(dims))
        raise DataError(path, f"the dimensions of this case have different lengths ({shown})", line=line)
    if not dims or not len(dims[0]):
        raise DataError(path, "a case with no values", line=line)
    return np.stack(dims, axis=1)
