"""Helpers of the lstmkit.keras tests: fixture files, the shared data folder."""

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """../shared next to the repository (or $LSTMKIT_SHARED)."""
    env = os.environ.get("LSTMKIT_SHARED")
    return Path(env) if env else (REPO / ".." / "shared").resolve()


def require_shared(*parts) -> Path:
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (set LSTMKIT_SHARED to the shared folder)")
    return path


def case_list(arrays, case, key):
    """The arrays stored as case/key_0, case/key_1, ... in order."""
    out, k = [], 0
    while f"{case}/{key}_{k}" in arrays:
        out.append(arrays[f"{case}/{key}_{k}"])
        k += 1
    return out
