"""Reading users' text and table files with errors that name the file, the line and the column.

Tables: the first row is the header. `.tsv`, `.tab` and `.txt` are split on tabs with no quote
handling (a TSV field may hold a lone '"', as in the UCI sentiment files); `.csv` is read with
csv-module quoting; other extensions are split on tabs when the header holds one, else commas.
Blank lines are skipped.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError

TAB_EXTENSIONS = {".tsv", ".tab", ".txt"}
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?")  # "1,234.5": a thousands separator, not a decimal comma


def read_text(path, encoding: str = "utf-8", what: str = "text") -> str:
    """The whole file as str. Errors: missing file, a folder, bad encoding (with its line), empty."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, f"no such file (expected a {what} file)")
    if path.is_dir():
        raise DataError(path, f"is a folder, expected a {what} file")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding)
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise DataError(path, f"is not valid {encoding} text: byte 0x{raw[exc.start]:02x} cannot be decoded; "
                              f"re-save it as UTF-8 or give its encoding (e.g. --encoding cp1252)", line=line) from None
    except LookupError:
        raise DataError(path, f"unknown text encoding {encoding!r}") from None
    if not text.strip():
        raise DataError(path, f"is empty (expected {what})")
    return text


@dataclass
class Table:
    """A header and its rows of strings; `lines[k]` is the file line on which row k starts."""

    path: Path
    header: list[str]
    rows: list[list[str]] = field(repr=False)
    lines: list[int] = field(repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def index(self, column: str) -> int:
        """Position of `column`; a missing or misspelt name gets the columns there and the nearest one."""
        if column in self.header:
            return self.header.index(column)
        near = difflib.get_close_matches(column, self.header, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise DataError(self.path, f"no column {column!r}; the header has {', '.join(map(repr, self.header))}{hint}",
                        line=1)

    def strings(self, column: str, allow_empty: bool = False) -> list[str]:
        """The column's values; an empty value is an error unless allow_empty."""
        k = self.index(column)
        values = [row[k] for row in self.rows]
        if not allow_empty:
            for value, line in zip(values, self.lines):
                if not value.strip():
                    raise DataError(self.path, "empty value", line=line, column=column)
        return values

    def numbers(self, column: str, allow_missing: bool = False) -> np.ndarray:
        """The column as float64 [rows]; an empty cell is NaN when allow_missing, else an error."""
        k = self.index(column)
        out = np.empty(len(self.rows))
        for j, (row, line) in enumerate(zip(self.rows, self.lines)):
            value = row[k].strip()
            if not value:
                if allow_missing:
                    out[j] = np.nan
                    continue
                raise DataError(self.path, "empty value where a number is needed", line=line, column=column)
            try:
                out[j] = float(value.replace(",", "") if _THOUSANDS.fullmatch(value) else value)
            except ValueError:
                raise DataError(self.path, f"expected a number, got {value!r}", line=line, column=column) from None
            if not np.isfinite(out[j]):
                raise DataError(self.path, f"expected a finite number, got {value!r}", line=line, column=column)
        return out


def read_table(path, encoding: str = "utf-8", delimiter: str | None = None) -> Table:
    """Read a CSV/TSV file with a header row (see the module docstring for the dialects)."""
    path = Path(path)
    text = read_text(path, encoding, what="CSV/TSV table")
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if delimiter is None:
        ext = path.suffix.lower()
        delimiter = "\t" if ext in TAB_EXTENSIONS or (ext != ".csv" and "\t" in first) else ","
    records = _split_tab(text) if delimiter == "\t" else _split_csv(text, delimiter, path)
    if not records:
        raise DataError(path, "is empty (expected a header row and data rows)")
    (header_line, header), body = records[0], records[1:]
    header = [name.strip() for name in header]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise DataError(path, f"the header names {', '.join(map(repr, duplicated))} more than once", line=header_line)
    if not body:
        raise DataError(path, "has a header but no data rows")
    rows, lines = [], []
    for line, fields in body:
        if len(fields) != len(header):
            sep = "tab" if delimiter == "\t" else repr(delimiter)
            raise DataError(path, f"expected {len(header)} {sep}-separated fields like the header "
                                  f"({', '.join(header)}), got {len(fields)}", line=line)
        rows.append(fields)
        lines.append(line)
    return Table(path, header, rows, lines)


def _split_tab(text: str) -> list[tuple[int, list[str]]]:
    out = []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if line.strip():
            out.append((number, line.split("\t")))
    return out


def _split_csv(text: str, delimiter: str, path) -> list[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    out, start = [], 1
    try:
        for fields in reader:
            if any(f.strip() for f in fields):
                out.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(path, f"is not well-formed CSV ({exc})", line=reader.line_num) from None
    return out


def exists_or_error(path, what: str) -> Path:
    """`path` as a Path, or a DataError saying a `what` was expected there."""
    path = Path(os.fspath(path))
    if not path.exists():
        raise DataError(path, f"no such file or folder (expected {what})")
    return path
