"""Label order and stratified splits, shared by the classification tasks."""

from __future__ import annotations

import numpy as np


def label_order(labels) -> list[str]:
    """Distinct labels in order: numerically when they read as numbers ("2" before "10"), then as text."""

    def key(label):
        try:
            return 0, float(label), str(label)
        except ValueError:
            return 1, 0.0, str(label)

    return sorted(set(labels), key=key)


def stratified_split(labels, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(kept, held-out) sorted index arrays: about `fraction` of each label held out.

    A label with two or more examples gives at least one to the held-out side and never its
    last one; a label with a single example stays on the kept side."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"a split fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    kept, held = [], []
    for label in np.unique(labels):
        index = rng.permutation(np.flatnonzero(labels == label))
        n_held = 0 if len(index) < 2 or fraction == 0 else min(len(index) - 1, max(1, round(fraction * len(index))))
        held.extend(index[:n_held])
        kept.extend(index[n_held:])
    return np.sort(np.array(kept, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))
