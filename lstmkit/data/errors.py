"""DataError: what was wrong with a user's file, and where (file, line, column)."""

from __future__ import annotations

import os


class DataError(ValueError):
    """A user's data file cannot be used as given.

    str(error) reads like "reviews.csv, line 12, column 'label': expected a number, got 'abc'";
    the parts are also attributes (path, line, column, problem) for programs."""

    def __init__(self, path, problem: str, *, line: int | None = None, column: str | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line, self.column, self.problem = line, column, problem
        where = [self.path or "<data>"]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")
