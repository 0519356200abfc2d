"""Time series for forecasting: the embedded S&P 500 closes, reading a series from a CSV column,
dates and their season, the chronological split, changes (differences, log-returns) and windows.

Row conventions: a series has N rows (time steps) in file order. A window's *origin* t is its last
observed row; it reads rows t-lookback+1 .. t and forecasts rows t+1 .. t+horizon.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import DataError
from .tables import Table, read_table

TRANSFORMS = ("levels", "diff", "log-return")
FILLS = ("none", "interpolate")
DATE_NAMES = ("date", "datetime", "time", "timestamp", "day", "week", "month", "quarter", "year", "period")


def sp500_path() -> Path:
    """The embedded file: S&P 500 daily close, 1999-01-04 .. 2018-12-31 (5,031 trading days)."""
    return Path(str(resources.files(__package__).joinpath("sp500_close.csv")))


def sp500_close() -> tuple[list[str], np.ndarray]:
    """S&P 500 daily closes from the `arch` package's data (credited in NOTICE).

    Returns (dates ["1999-01-04", ...], close float64 [5031])."""
    table = read_table(sp500_path())
    return table.strings("Date"), table.numbers("Close")


@dataclass
class Series:
    """A series read from a table: values [N, 1 + F] (the forecast column first, then the features).

    `lines[k]` is the file line of row k; `dates` the date column's strings (None without one);
    `column_note` says why this column was chosen."""

    path: Path
    column: str
    column_note: str
    features: list[str]
    values: np.ndarray = field(repr=False)
    lines: list[int] = field(repr=False)
    date_column: str | None = None
    dates: list[str] | None = field(default=None, repr=False)
    filled: int = 0

    def __len__(self) -> int:
        return len(self.values)

    @property
    def target(self) -> np.ndarray:
        """The forecast column, float64 [N]."""
        return self.values[:, 0]


def read_series(path, column: str | None = None, date_column: str | None = None, features=(),
                fill: str = "none") -> Series:
    """Read the forecast column (and feature columns) of a CSV/TSV file.

    column: default "Close" when the header has it, else the last numeric column that is not the
    date column. date_column: default a column named like a date (Date, Month, YEAR...), else the
    first column when its first value is not a number, else none. fill="none" makes an empty cell
    an error naming its line; fill="interpolate" fills gaps linearly (ends: the nearest value).
    """
    if fill not in FILLS:
        raise ValueError(f"--fill must be one of {', '.join(FILLS)}, got {fill!r}")
    table = read_table(path)
    features = list(features)
    if date_column is not None:
        table.index(date_column)
    else:
        date_column = _default_date_column(table, exclude={column, *features})
    column, note = _choose_column(table, column, exclude={date_column, *features})
    for name in features:
        if name == column:
            raise DataError(table.path, f"--features names the forecast column {column!r}; list only the extra "
                                        "columns", line=1, column=column)
    read = [_numbers(table, name, fill) for name in [column, *features]]
    values = np.stack([v for v, _ in read], axis=1)
    filled = sum(gaps for _, gaps in read)
    dates = table.strings(date_column, allow_empty=True) if date_column else None
    return Series(table.path, column, note, features, values, table.lines, date_column, dates, filled)


def _is_number(text: str) -> bool:
    try:
        float(text.replace(",", ""))
        return True
    except ValueError:
        return False


def _first_value(table: Table, name: str) -> str:
    k = table.index(name)
    return next((row[k].strip() for row in table.rows if row[k].strip()), "")


def _default_date_column(table: Table, exclude: set) -> str | None:
    for name in table.header:
        if name.lower() in DATE_NAMES and name not in exclude:
            return name
    first = table.header[0]
    if first not in exclude and not _is_number(_first_value(table, first)):
        return first
    return None


def _choose_column(table: Table, column: str | None, exclude: set) -> tuple[str, str]:
    if column is not None:
        table.index(column)
        return column, "given with --column"
    if "Close" in table.header and "Close" not in exclude:
        return "Close", "the column named Close"
    numeric = [name for name in table.header if name not in exclude and _is_number(_first_value(table, name))]
    if not numeric:
        raise DataError(table.path, f"no numeric column to forecast; the header has "
                                    f"{', '.join(map(repr, table.header))}; name one with --column", line=1)
    return numeric[-1], "the last numeric column"


def _numbers(table: Table, name: str, fill: str) -> tuple[np.ndarray, int]:
    """(the column as float64 [N], how many gaps were filled); a gap is an error naming its line
    unless fill="interpolate"."""
    values = table.numbers(name, allow_missing=True)
    missing = np.isnan(values)
    if not missing.any():
        return values, 0
    if fill == "none":
        line = table.lines[int(np.argmax(missing))]
        raise DataError(table.path, f"empty value where a number is needed ({int(missing.sum())} empty in this "
                                    "column); fill the gaps with --fill interpolate", line=line, column=name)
    if missing.all():
        raise DataError(table.path, "every value of the column is empty", column=name)
    rows = np.arange(len(values))
    values[missing] = np.interp(rows[missing], rows[~missing], values[~missing])
    return values, int(missing.sum())


# -- dates and seasons ------------------------------------------------------------------------------

_DATE_FORMATS = (
    (re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?"), ("y", "m", "d")),
    (re.compile(r"(\d{4})/(\d{1,2})/(\d{1,2})"), ("y", "m", "d")),
    (re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})"), ("m", "d", "y")),
    (re.compile(r"(\d{4})(\d{2})(\d{2})"), ("y", "m", "d")),
    (re.compile(r"(\d{4})-(\d{1,2})"), ("y", "m")),
    (re.compile(r"(\d{4})(?:\.0*)?"), ("y",)),
)


def parse_dates(strings) -> np.ndarray | None:
    """datetime64[D] [N] when every string reads as a date in one format, else None.

    Formats: 2018-12-31 (a time after it is ignored), 2018/12/31, 12/31/2018 (day first when a
    first field exceeds 12), 20181231, 2018-12 (the 1st), 2018 (1 January)."""
    strings = [s.strip() for s in strings]
    if not strings:
        return None
    for pattern, order in _DATE_FORMATS:
        matches = [pattern.fullmatch(s) for s in strings]
        if not all(matches):
            continue
        fields = np.array([[int(g) for g in m.groups()[:len(order)]] for m in matches])
        if order == ("m", "d", "y") and (fields[:, 0] > 12).any():
            order = ("d", "m", "y")
        part = {name: fields[:, k] for k, name in enumerate(order)}
        try:
            days = [dt.date(int(y), int(m), int(d)) for y, m, d in
                    zip(part["y"], part.get("m", np.ones(len(strings))), part.get("d", np.ones(len(strings))))]
        except ValueError:
            return None
        return np.array(days, dtype="datetime64[D]")
    return None


def guess_season(dates) -> tuple[int, str]:
    """(season in steps, why) from the spacing of the dates; (1, why) when they say nothing.

    Trading days -> 1 (prices have no calendar season to speak of), calendar days -> 365 over two years or more, else 7,
    weeks -> 52, months -> 12, quarters -> 4, years -> 1."""
    days = parse_dates(dates) if dates is not None else None
    if days is None or len(days) < 3:
        return 1, "no readable dates: season 1 (the seasonal-naive forecast is the naive one)"
    gaps = np.diff(days).astype(np.int64)
    if (gaps <= 0).any():
        return 1, "dates not strictly increasing: season 1"
    step = float(np.median(gaps))
    if step <= 1.5:
        if (gaps >= 3).mean() > 0.1:
            return 1, "trading days (weekends absent): no calendar season assumed, season 1"
        span = int((days[-1] - days[0]).astype(np.int64))
        if span >= 2 * 365:
            return 365, "daily dates: season 365, one year"
        return 7, "daily dates spanning under two years: season 7, one week"
    for low, high, season, name in ((6, 8, 52, "weekly dates: season 52, about a year"),
                                    (28, 31, 12, "monthly dates: season 12, one year"),
                                    (89, 92, 4, "quarterly dates: season 4, one year"),
                                    (365, 366, 1, "yearly dates: season 1 (no calendar season)")):
        if low <= step <= high:
            return season, name
    return 1, f"dates {step:g} days apart: season 1"


# -- splits, changes and windows --------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    """Rows [0, train_end) train, [train_end, val_end) validation, [val_end, n) test, in time order."""

    train_end: int
    val_end: int
    n: int

    def origins(self, span: str, lookback: int, horizon: int, offset: int) -> np.ndarray:
        """Origins t of the windows whose `horizon` targets all lie in `span` ("train", "val", "test")
        and whose `lookback` inputs exist (rows before `offset` have no input: see to_changes)."""
        lo, hi = {"train": (0, self.train_end), "val": (self.train_end, self.val_end),
                  "test": (self.val_end, self.n)}[span]
        first = max(lo - 1, lookback - 1 + offset)
        return np.arange(first, hi - horizon, dtype=np.int64)


def split_rows(n: int, val_fraction: float, test_fraction: float, test_rows: int | None = None) -> Split:
    """Chronological split of n rows: the last round(n * test_fraction) rows are the test span and
    the round(n * val_fraction) before them validation. With test_rows (a separate test file
    appended after the data), the test span is those last rows and the fractions apply to the rest."""
    if test_rows is not None:
        n_test = test_rows
        n_val = int(round((n - test_rows) * val_fraction))
    else:
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
    return Split(n - n_test - n_val, n - n_test, n)


def offset_of(transform: str) -> int:
    """Rows at the start without a change: 1 for diff and log-return, 0 for levels."""
    return 0 if transform == "levels" else 1


def to_changes(levels: np.ndarray, transform: str) -> np.ndarray:
    """levels [N] -> what the model reads and predicts, [N]: the levels, the differences
    x_t - x_{t-1}, or the log-returns log(x_t / x_{t-1}); row 0 is NaN for the last two."""
    levels = np.asarray(levels, dtype=np.float64)
    if transform == "levels":
        return levels.copy()
    out = np.full(len(levels), np.nan)
    if transform == "diff":
        out[1:] = np.diff(levels)
    elif transform == "log-return":
        out[1:] = np.diff(np.log(levels))
    else:
        raise ValueError(f"transform must be one of {', '.join(TRANSFORMS)}, got {transform!r}")
    return out


def from_changes(last: np.ndarray, changes: np.ndarray, transform: str) -> np.ndarray:
    """Invert to_changes over a forecast: last level [B], next changes [B, H] -> levels [B, H]."""
    last = np.asarray(last, dtype=np.float64)[:, None]
    if transform == "levels":
        return np.asarray(changes, dtype=np.float64)
    if transform == "diff":
        return last + np.cumsum(changes, axis=1)
    return last * np.exp(np.cumsum(changes, axis=1))


def windows(rows: np.ndarray, origins: np.ndarray, lookback: int) -> np.ndarray:
    """rows [N, F], origins [B] -> inputs [B, lookback, F]: rows t-lookback+1 .. t for each origin t."""
    index = np.asarray(origins)[:, None] + np.arange(1 - lookback, 1)
    return rows[index]


def targets(values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """values [N], origins [B] -> [B, horizon]: rows t+1 .. t+horizon for each origin t."""
    return values[np.asarray(origins)[:, None] + np.arange(1, horizon + 1)]


def seasonal_naive(levels: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """The last observed value of the same season: for step k the row t + k - season*ceil(k/season).

    levels [N], origins [B] -> [B, horizon]; season 1 gives the naive (last value) forecast."""
    back = np.array([k - season * math.ceil(k / season) for k in range(1, horizon + 1)])
    return levels[np.asarray(origins)[:, None] + back]
