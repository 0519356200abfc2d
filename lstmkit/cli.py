"""The `lstmkit` command: one subcommand per task, plus predict/sample on saved runs, inspect and bench.

    lstmkit classify [--data reviews.csv]     train; writes runs/classify-<timestamp>/
    lstmkit predict RUN "some text" ...      apply a saved run to new input
    lstmkit sample RUN --prime "ROMEO:"      text from a saved generate run
    lstmkit inspect RUN --input "..."        gate and cell-state heat maps of one input
    lstmkit bench                            kernel speed next to torch, on this machine
"""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .ops import CELLS

TASK_HELP = {
    "classify": "text classification (sentiment) from a CSV/TSV of texts and labels",
    "generate": "character-level language model on a text file",
    "forecast": "time-series forecasting from a CSV column (stock prices by default)",
    "sequence": "classification of numeric sequences (digit images row by row, UCR/UEA files)",
    "translate": "sequence-to-sequence translation with attention on a TSV of sentence pairs",
    "speech": "spoken-word recognition from a folder of WAV files",
}
NOT_TRAINING = {"command", "func", "quiet", "threads"}


def build_parser() -> argparse.ArgumentParser:
    from .tasks import TASKS, task_module

    parser = argparse.ArgumentParser(prog="lstmkit", description="LSTM networks from their equations, on PyTorch.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--version", action="version", version=f"lstmkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="train an LSTM on the embedded airline-passengers series",
                          description="Train lstmkit.nn.LSTM on the embedded airline-passengers series and "
                                      "print its loss falling and its test error next to the naive forecast.")
    demo.add_argument("--epochs", type=int, default=300, help="full-batch training epochs (default 300)")
    demo.add_argument("--hidden", type=int, default=32, help="LSTM hidden size (default 32)")
    demo.add_argument("--cell", choices=CELLS, default="vanilla", help="LSTM cell variant (default vanilla)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=_demo)

    for name in TASKS:
        module = task_module(name)
        task = sub.add_parser(name, help=TASK_HELP[name], description=module.__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(task)
        task.set_defaults(func=_train, task=name)

    predict = sub.add_parser("predict", help="apply a saved run to new input (texts, files, sentences, WAVs)",
                             description="Load a run folder written by a task and apply its model to new input. "
                                         "What INPUT means depends on the task: a text (classify), a sentence "
                                         "(translate), a CSV file (forecast, sequence) or a WAV file (speech).")
    predict.add_argument("run", metavar="RUN", help="run folder (or its model.safetensors)")
    predict.add_argument("inputs", metavar="INPUT", nargs="*", help="inputs to predict")
    predict.add_argument("--file", help="read the inputs from this file instead (one per line, or the task's format)")
    predict.set_defaults(func=_predict)

    sample = sub.add_parser("sample", help="generate text from a saved generate run",
                            description="Sample characters from a language model trained by `lstmkit generate`.")
    sample.add_argument("run", metavar="RUN", help="run folder of `lstmkit generate`")
    sample.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    sample.add_argument("--temperature", type=float, default=0.8, help="softmax temperature > 0 (default 0.8)")
    sample.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest characters (0: all)")
    sample.add_argument("--prime", default="", help="text to start from (default: a random training character)")
    sample.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample.set_defaults(func=_sample)

    inspect = sub.add_parser("inspect", help="heat maps of the gates and cell state over one input",
                             description="Run one input through a saved model's first recurrent layer and draw "
                                         "its input, forget and output gates and its cell state over the steps.")
    inspect.add_argument("run", metavar="RUN", help="run folder written by a task")
    inspect.add_argument("--input", required=True, help="the input: a text, a sentence, or a file (CSV row, WAV)")
    inspect.add_argument("--units", type=int, default=32, help="units to show, the most active first (default 32)")
    inspect.add_argument("--output", help="PNG to write (default RUN/inspect.png)")
    inspect.set_defaults(func=_inspect)

    bench = sub.add_parser("bench", help="the kernels' speed next to torch.nn.LSTM/GRU on this machine",
                           description="Time lstmkit's recurrent kernels and torch's side by side, interleaved "
                                       "in one process, and print medians and ratios as a markdown table.")
    from .bench import add_arguments as add_bench_arguments

    add_bench_arguments(bench)
    bench.set_defaults(func=_bench)
    return parser


def _demo(args) -> None:
    from .tasks.demo import run_demo

    run_demo(epochs=args.epochs, hidden=args.hidden, cell=args.cell, seed=args.seed)


def _train(args) -> None:
    from .tasks import task_module
    from .tasks.common import cpu_threads

    module = task_module(args.task)
    kwargs = {k: v for k, v in vars(args).items() if k not in NOT_TRAINING | {"task"}}
    with cpu_threads(args.threads):
        result = module.train(progress=not args.quiet, **kwargs)
    print(f"\n{args.task}: wrote {result.run_dir}/ ({', '.join(p.name for p in result.files)})")
    figures = {k: v for k, v in result.metrics.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seconds"}
    baseline = result.metrics.get("baseline", {})
    print("  test: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))
    for name, values in baseline.items():
        shown = {k: v for k, v in values.items() if isinstance(v, (int, float))} if isinstance(values, dict) else {}
        if shown:
            print(f"  baseline {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown.items()))


def _predict(args) -> None:
    from .tasks import load

    predictor = load(args.run)
    if not args.inputs and not args.file:
        raise ValueError("give inputs to predict, or --file FILE")
    for line in predictor.predict_lines(args.inputs, file=args.file):
        print(line)


def _sample(args) -> None:
    from .tasks import load

    predictor = load(args.run)
    if not hasattr(predictor, "sample"):
        raise ValueError(f"{args.run} is not a generate run; `lstmkit sample` needs a character language model")
    print(predictor.sample(length=args.length, temperature=args.temperature, top_k=args.top_k,
                           prime=args.prime, seed=args.seed))


def _inspect(args) -> None:
    from .tasks.inspect import inspect_run

    path = inspect_run(args.run, args.input, units=args.units, output=args.output)
    print(f"wrote {path}")


def _bench(args) -> None:
    from .bench import run

    run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, ImportError, FileNotFoundError, NotADirectoryError, FloatingPointError) as exc:
        # Bad input or a missing optional library: one clear line, no traceback (DataError is a
        # ValueError). LSTMKIT_DEBUG=1 shows the traceback.
        if os.environ.get("LSTMKIT_DEBUG"):
            raise
        print(f"lstmkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
