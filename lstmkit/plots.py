"""The figures tasks draw, each written to a PNG atomically (matplotlib, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from .files import atomic_write_bytes


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt, plt.figure(figsize=(width, height), dpi=110)


def _save(plt, fig, path) -> None:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def learning_curves(history, path, title: str = "learning curves") -> None:
    """Train and validation loss per epoch (left) and the validation metric (right, when kept)."""
    plt, fig = _figure(9 if history.val_metric else 5.5, 3.6)
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax = fig.add_subplot(1, 2 if history.val_metric else 1, 1)
    ax.plot(epochs, history.train_loss, label="train", marker=".")
    if history.val_loss:
        ax.plot(epochs[:len(history.val_loss)], history.val_loss, label="validation", marker=".")
    if history.best_epoch:
        ax.axvline(history.best_epoch, color="grey", linestyle=":", label=f"kept: epoch {history.best_epoch}")
    ax.set(xlabel="epoch", ylabel="loss", title=title)
    ax.legend()
    if history.val_metric:
        ax2 = fig.add_subplot(1, 2, 2)
        ax2.plot(epochs[:len(history.val_metric)], history.val_metric, marker=".", color="C2")
        ax2.set(xlabel="epoch", ylabel=history.metric_name or "metric", title=f"validation {history.metric_name}")
    _save(plt, fig, path)


def confusion_matrix(matrix, labels: Sequence[str], path, title: str = "confusion matrix (test)") -> None:
    """Counts with true classes as rows and predictions as columns, each cell annotated."""
    matrix = np.asarray(matrix)
    n = len(labels)
    size = min(3.5 + 0.45 * n, 12)
    plt, fig = _figure(size, size * 0.85)
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(xticks=range(n), yticks=range(n), xlabel="predicted", ylabel="true", title=title)
    ax.set_xticklabels([str(label)[:12] for label in labels], rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticklabels([str(label)[:12] for label in labels])
    if n <= 30:
        top = matrix.max() if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > top / 2 else "black")
    _save(plt, fig, path)


def series(x, lines: dict[str, np.ndarray], path, title: str, xlabel: str = "", ylabel: str = "",
           context: tuple | None = None) -> None:
    """Several named lines over the same x (e.g. actual, LSTM, naive); `context` = (x, y) drawn grey."""
    plt, fig = _figure(9, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    if context is not None:
        ax.plot(context[0], context[1], color="lightgrey", label="history")
    for k, (name, y) in enumerate(lines.items()):
        ax.plot(x, y, label=name, linewidth=1.6 if k == 0 else 1.1, linestyle="-" if k < 2 else "--")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend()
    if len(x) and isinstance(x[0], str):
        step = max(1, len(x) // 8)
        ax.set_xticks(range(0, len(x), step))
        ax.set_xticklabels([x[k] for k in range(0, len(x), step)], rotation=30, ha="right")
    _save(plt, fig, path)


def heatmap(matrix, path, title: str, xlabels: Sequence[str] | None = None, ylabels: Sequence[str] | None = None,
            xlabel: str = "", ylabel: str = "", cmap: str = "viridis") -> None:
    """One matrix as an image, e.g. attention weights [target steps, source steps]."""
    matrix = np.asarray(matrix)
    rows, cols = matrix.shape
    plt, fig = _figure(min(3 + 0.3 * cols, 14), min(2.5 + 0.3 * rows, 12))
    ax = fig.add_subplot(1, 1, 1)
    image = ax.imshow(matrix, aspect="auto", cmap=cmap)
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if xlabels is not None:
        ax.set_xticks(range(cols))
        ax.set_xticklabels(xlabels, rotation=60, ha="right", fontsize=8)
    if ylabels is not None:
        ax.set_yticks(range(rows))
        ax.set_yticklabels(ylabels, fontsize=8)
    _save(plt, fig, path)


def stacked_heatmaps(panels: dict[str, np.ndarray], path, title: str, step_labels: Sequence[str] | None = None,
                     limits: dict[str, tuple[float, float]] | None = None) -> None:
    """One heat map per named [units, steps] matrix, stacked with a shared step axis."""
    names = list(panels)
    steps = next(iter(panels.values())).shape[1]
    plt, fig = _figure(min(4 + 0.28 * steps, 16), 1.9 * len(names) + 0.8)
    for k, name in enumerate(names):
        ax = fig.add_subplot(len(names), 1, k + 1)
        lo, hi = (limits or {}).get(name, (None, None))
        image = ax.imshow(panels[name], aspect="auto", cmap="coolwarm" if lo is not None and lo < 0 else "viridis",
                          vmin=lo, vmax=hi, interpolation="nearest")
        fig.colorbar(image, ax=ax, fraction=0.03)
        ax.set_ylabel(f"{name}\nunit")
        if k == 0:
            ax.set_title(title)
        if step_labels is not None and k == len(names) - 1:
            ax.set_xticks(range(steps))
            ax.set_xticklabels(step_labels, rotation=60, ha="right", fontsize=7)
        elif k < len(names) - 1:
            ax.set_xticks([])
    _save(plt, fig, path)


def shaded_text(text: str, values: np.ndarray, path, title: str, width: int = 80, label: str = "bits") -> None:
    """The text in rows of `width` characters, each character's cell shaded by its value.

    text [N] characters; values [N - 1] for text[1:] (the first character is context, left blank)."""
    import matplotlib

    cells, row, col = [], 0, 0                      # (row, col, char, value or NaN)
    for k, c in enumerate(text):
        cells.append((row, col, "\u21b5" if c == "\n" else c, values[k - 1] if k else np.nan))
        col += 1
        if c == "\n" or col == width:
            row, col = row + 1, 0
    rows = max(r for r, *_ in cells) + 1
    grid = np.full((rows, width), np.nan)
    for r, c, _, v in cells:
        grid[r, c] = v
    plt, fig = _figure(0.115 * width + 1.2, 0.2 * rows + 0.9)
    ax = fig.add_subplot(1, 1, 1)
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="white")
    image = ax.imshow(grid, cmap=cmap, aspect="auto", vmin=0, vmax=max(4.0, float(np.nanpercentile(grid, 99))),
                      interpolation="nearest")
    for r, c, ch, _ in cells:
        ax.text(c, r, ch, ha="center", va="center", fontsize=7, family="DejaVu Sans Mono",
                color="grey" if ch == "\u21b5" else "black")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.02, pad=0.01, label=label)
    _save(plt, fig, path)
