"""What the task commands share: their command-line contract, the recurrent stack, the report."""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .. import nn as lnn
from ..files import atomic_write_text

CELL_CHOICES = ("vanilla", "peephole", "cifg", "layernorm", "gru")


def add_training_arguments(parser: argparse.ArgumentParser, *, epochs: int, hidden: int, layers: int = 1,
                           bidirectional: bool = False, text_columns: bool = False, data_help: str = "",
                           test_help: str = "", data_metavar: str = "FILE") -> None:
    """The contract every training subcommand keeps (dest names = the train() keyword names)."""
    io = parser.add_argument_group("data and output")
    io.add_argument("--data", metavar=data_metavar, help=data_help or "training data (default: the embedded dataset)")
    io.add_argument("--test", metavar=data_metavar,
                    help=test_help or "held-out test data (default: a split of --data, stated in the report)")
    io.add_argument("--out", metavar="DIR", help="run folder to write (default runs/<task>-<timestamp>/)")
    io.add_argument("--resume", action="store_true",
                    help="continue an interrupted run from the checkpoint in --out")
    if text_columns:
        io.add_argument("--text-column", default="text", help="column holding the text (default: text)")
        io.add_argument("--label-column", default="label", help="column holding the label (default: label)")
        io.add_argument("--encoding", default="utf-8", help="text encoding of the files (default utf-8)")
    model = parser.add_argument_group("model and training")
    model.add_argument("--epochs", type=int, default=epochs, help=f"training epochs (default {epochs})")
    model.add_argument("--hidden", type=int, default=hidden, help=f"hidden units per direction (default {hidden})")
    model.add_argument("--layers", type=int, default=layers, help=f"stacked recurrent layers (default {layers})")
    model.add_argument("--cell", choices=CELL_CHOICES, default="vanilla", help="recurrent cell (default vanilla)")
    model.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=bidirectional,
                       help=f"read sequences both ways (default {'on' if bidirectional else 'off'})")
    model.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same run (default 0)")
    model.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 or auto (default auto: cuda when present)")
    model.add_argument("--threads", type=int, default=0,
                       help="CPU threads for torch (default 0: torch's choice, one per core). On a busy or shared "
                            "machine try 1: threads that wait on each other ran these small models 4-13x slower")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


@contextlib.contextmanager
def cpu_threads(count: int | None):
    """torch's CPU thread count set to `count` for the block (None or 0: left alone), then restored."""
    if count is not None and count < 0:
        raise ValueError(f"--threads must be 0 (torch's choice) or a positive whole number, got {count}")
    before = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_positive(**values: int) -> None:
    """Refuse zero or negative sizes with the option's name: check_positive(epochs=0) -> ValueError."""
    for name, value in values.items():
        if value is None or value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive whole number, got {value}")


def recurrent(cell: str, input_size: int, hidden: int, layers: int = 1, bidirectional: bool = False,
              dropout: float = 0.0) -> nn.Module:
    """An lstmkit.nn.LSTM of the given cell, or lstmkit.nn.GRU for cell="gru"; batch_first.

    Input [B, T, input_size] -> output [B, T, hidden * (2 if bidirectional else 1)]."""
    if cell not in CELL_CHOICES:
        raise ValueError(f"--cell must be one of {', '.join(CELL_CHOICES)}, got {cell!r}")
    kwargs = dict(num_layers=layers, batch_first=True, bidirectional=bidirectional,
                  dropout=dropout if layers > 1 else 0.0)
    if cell == "gru":
        return lnn.GRU(input_size, hidden, **kwargs)
    return lnn.LSTM(input_size, hidden, cell=cell, **kwargs)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(run_dir, title: str, sections: Sequence[str]) -> Path:
    """report.md: a title, the sections (markdown), and when it was written."""
    path = Path(run_dir) / "report.md"
    body = "\n\n".join(s.strip() for s in sections if s and s.strip())
    atomic_write_text(path, f"# {title}\n\n{body}\n\n_Written {time.strftime('%Y-%m-%d %H:%M:%S')}._\n")
    return path


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start
        return False
