"""The first-run demo: an lstmkit.nn.LSTM learns the embedded airline-passengers series.

One-step-ahead forecasting of the month-on-month change in log passengers (the series grows,
so the model learns changes, not levels): windows of 12 months, the last 24 months held out,
scaling fitted on the training span only. Prints the training loss as it falls and the
test error next to the naive forecast (next month = this month).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn

from .. import nn as lnn
from ..data import airline_passengers
from ..ops import backend

LOOKBACK, TEST_MONTHS = 12, 24


class Forecaster(nn.Module):
    """[B, T, 1] window -> [B] next value: an LSTM and a linear read-out of its last state."""

    def __init__(self, hidden: int, cell: str):
        super().__init__()
        self.lstm = lnn.LSTM(1, hidden, batch_first=True, cell=cell)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.head(h[-1]).squeeze(-1)


def windows(series: np.ndarray, lookback: int) -> tuple[torch.Tensor, torch.Tensor]:
    """series [N] -> inputs [N - lookback, lookback, 1], targets [N - lookback]."""
    x = np.stack([series[k: k + lookback] for k in range(len(series) - lookback)])
    return torch.tensor(x, dtype=torch.float32).unsqueeze(-1), torch.tensor(series[lookback:], dtype=torch.float32)


def run_demo(epochs: int = 300, hidden: int = 32, cell: str = "vanilla", seed: int = 0, log=print) -> dict:
    """Train and report; returns {"losses": [...], "test_rmse": ..., "naive_rmse": ...}."""
    torch.manual_seed(seed)
    months, passengers = airline_passengers()
    series = np.log(passengers)
    change = np.diff(series)                      # change[k] = series[k + 1] - series[k]
    n_train = len(change) - TEST_MONTHS
    mean, std = change[:n_train].mean(), change[:n_train].std()
    x, y = windows((change - mean) / std, LOOKBACK)
    split = n_train - LOOKBACK                    # windows whose target lies in the training span
    model = Forecaster(hidden, cell)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    path = backend()   # builds the fused kernels now (once per machine), not inside the timed loop
    log(f"lstmkit demo: LSTM(cell={cell!r}, hidden={hidden}) on airline passengers "
        f"{months[0]}..{months[-1]}, {split} training windows, last {TEST_MONTHS} months held out")
    losses, start = [], time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x[:split]), y[:split])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if epoch == 1 or epoch % max(1, epochs // 10) == 0:
            log(f"  epoch {epoch:4d}  train mse {loss.item():.4f}")
    model.eval()
    with torch.no_grad():
        predicted_change = model(x[split:]).numpy() * std + mean
    last = passengers[-TEST_MONTHS - 1: -1]       # the month before each test month
    actual = passengers[-TEST_MONTHS:]
    predicted = last * np.exp(predicted_change)
    test_rmse = float(np.sqrt(np.mean((predicted - actual) ** 2)))
    naive_rmse = float(np.sqrt(np.mean((last - actual) ** 2)))
    verdict = "beats" if test_rmse < naive_rmse else "does not beat"
    log(f"test RMSE over the last {TEST_MONTHS} months: LSTM {test_rmse:.1f} thousand passengers, "
        f"naive (last month) {naive_rmse:.1f}: the LSTM {verdict} the naive forecast "
        f"({time.perf_counter() - start:.1f} s, backend {path})")
    return {"losses": losses, "test_rmse": test_rmse, "naive_rmse": naive_rmse}

