"""Fixtures of the lstmkit.keras tests (helpers are in keras_testutil.py)."""

import json

import numpy as np
import pytest
import torch

from keras_testutil import FIXTURES


@pytest.fixture(scope="session")
def keras_arrays():
    with np.load(FIXTURES / "keras_layers.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def keras_meta():
    return json.loads((FIXTURES / "keras_meta.json").read_text())


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)
    yield
