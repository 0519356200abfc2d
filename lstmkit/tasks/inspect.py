"""`lstmkit inspect`: what the gates do over one input, drawn from a trained model.

The articles describe the forget gate deciding what the cell state keeps, the input gate what
it writes and the output gate what it shows; this draws exactly those numbers for one input:
the first recurrent layer's gates and cell state (GRU: reset and update gates, candidate and
state) per unit and step, the units whose state moves most shown first.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import plots

# What to draw per cell kind: (trace key, panel title, colour limits).
LSTM_PANELS = (("i", "input gate i", (0.0, 1.0)), ("f", "forget gate f", (0.0, 1.0)),
               ("o", "output gate o", (0.0, 1.0)), ("c", "cell state c", None))
GRU_PANELS = (("r", "reset gate r", (0.0, 1.0)), ("z", "update gate z", (0.0, 1.0)),
              ("n", "candidate n", (-1.0, 1.0)), ("h", "state h", (-1.0, 1.0)))


def gate_panels(layer, x: torch.Tensor, units: int = 32) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({panel title: [units, T]}, the unit indices shown) for layer 0, forward direction.

    x: [1, T, input_size] as the layer reads it (batch_first) or [T, 1, input_size] otherwise.
    Units are ordered by how much their state varies over the steps (std of c, GRU: of h)."""
    if x.dim() != 3 or x.shape[0 if layer.batch_first else 1] != 1:
        raise ValueError(f"inspect takes one sequence: expected x of shape [1, T, {layer.input_size}] "
                         f"(batch_first), got {tuple(x.shape)}")
    traced = layer.trace(x)
    batch_axis = 0 if layer.batch_first else 1            # of v[0]: [B, T, N] or [T, B, N]
    first = {k: v[0].squeeze(batch_axis).cpu().numpy() for k, v in traced.items()}   # [T, N] each
    panels_spec = LSTM_PANELS if "c" in first else GRU_PANELS
    state = first["c" if "c" in first else "h"]
    order = np.argsort(-state.std(axis=0), kind="stable")[:max(1, units)]
    panels = {title: first[key][:, order].T for key, title, _ in panels_spec}
    return panels, order


def inspect_run(run, value: str, units: int = 32, output=None) -> Path:
    """Draw the gate heat maps of one input through a saved run's model; returns the PNG's path."""
    from . import load

    if units < 1:
        raise ValueError(f"--units must be a positive whole number, got {units}")
    predictor = load(run)
    layer, x, step_labels = predictor.inspect_input(value)
    panels, _ = gate_panels(layer, x, units)
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    path = Path(output) if output else run_dir / "inspect.png"
    spec = LSTM_PANELS if "cell state c" in panels else GRU_PANELS
    limits = {title: lim for _, title, lim in spec if lim is not None}
    if "cell state c" in panels:
        bound = float(np.abs(panels["cell state c"]).max()) or 1.0
        limits["cell state c"] = (-bound, bound)
    shown = step_labels if len(step_labels) <= 80 else None
    plots.stacked_heatmaps(panels, path, title=f"first recurrent layer over one input ({len(step_labels)} steps)",
                           step_labels=shown, limits=limits)
    return path
