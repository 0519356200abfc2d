"""Small datasets embedded in the package (credited in NOTICE), so lstmkit runs with no files."""

from __future__ import annotations

import csv
from importlib import resources

import numpy as np


def airline_passengers() -> tuple[list[str], np.ndarray]:
    """Box & Jenkins' monthly international airline passengers, 1949-01 to 1960-12 (thousands).

    Returns (months ["1949-01", ...], passengers float64 [144])."""
    text = resources.files(__package__).joinpath("airline_passengers.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(text.splitlines()))[1:]
    return [month for month, _ in rows], np.array([float(value) for _, value in rows])
