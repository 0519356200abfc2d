"""The `lstmkit` command's contract: --help everywhere, the shared options of every training
subcommand, one-line errors with exit code 2, and bench on a tiny size."""

from __future__ import annotations

import inspect

import pytest

from lstmkit import cli
from lstmkit.tasks import TASKS, task_module

CONTRACT = ["--data", "--test", "--out", "--seed", "--epochs", "--hidden", "--layers", "--cell", "--bidirectional",
            "--device", "--resume"]


def subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return parser, action.choices


@pytest.mark.parametrize("argv", [["--help"], *[[name, "--help"] for name in
                                                 [*TASKS, "predict", "sample", "inspect", "bench", "demo"]]])
def test_help_on_every_level(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "usage: lstmkit" in text
    if argv == ["--help"]:
        for name in TASKS:
            assert name in text


@pytest.mark.parametrize("name", TASKS)
def test_training_subcommands_keep_the_contract(name):
    _, choices = subparsers()
    sub = choices[name]
    options = {opt for action in sub._actions for opt in action.option_strings}
    assert set(CONTRACT) <= options, f"{name} lacks {sorted(set(CONTRACT) - options)}"
    assert sub.description and sub.description.strip()
    # every option reaches train() under its own name
    accepted = set(inspect.signature(task_module(name).train).parameters)
    dests = {a.dest for a in sub._actions if a.dest not in ("help", "quiet", "threads")}
    assert dests <= accepted, f"{name}: options without a train() keyword: {sorted(dests - accepted)}"


def test_predict_on_a_missing_run_is_one_clear_line(tmp_path, capsys):
    assert cli.main(["predict", str(tmp_path / "nowhere"), "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lstmkit predict: error:") and "no saved model" in err and err.count("\n") == 1


def test_bench_on_a_tiny_size(tmp_path, capsys):
    out = tmp_path / "bench.md"
    assert cli.main(["bench", "--config", "6,2,4,4", "--rounds", "1", "--write", str(out)]) == 0
    table = out.read_text()
    for row in ("| torch.nn.LSTM |", "| lstmkit vanilla |", "| lstmkit GRU |", "| GRU GEMM floor |",
                "| torch.mm 2048^3 | ", "| lstmkit LSTM.step |", "ratio to torch | GFLOP/s |", "Other processes used"):
        assert row in table
    assert "T=6 B=2 I=4 H=4" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["bench", "--config", "6,2,x,4"], "expected T,B,I,H"),
    (["classify", "--epochs", "0", "--data", "missing.csv"], None),
])
def test_bad_options_exit_with_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = cli.main(argv)
    except SystemExit as exc:          # argparse's own errors exit 2 as well
        code = exc.code
    assert code == 2
    if message:
        assert message in capsys.readouterr().err
