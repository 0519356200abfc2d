"""The `lstmkit` command: one subcommand per task."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .ops import CELLS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="LSTM networks from their equations, on PyTorch.")
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="train an LSTM on the embedded airline-passengers series",
                          description="Train lstmkit.nn.LSTM on the embedded airline-passengers series and "
                                      "print its loss falling and its test error next to the naive forecast.")
    demo.add_argument("--epochs", type=int, default=300, help="full-batch training epochs (default 300)")
    demo.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    demo.add_argument("--cell", choices=CELLS, default="vanilla", help="LSTM cell variant (default vanilla)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .tasks.demo import run_demo

        run_demo(epochs=args.epochs, hidden=args.hidden, cell=args.cell, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
