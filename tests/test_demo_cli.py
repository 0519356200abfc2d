"""The first-run demo trains (its loss falls) and the command line answers --help."""

import subprocess
import sys

from lstmkit.cli import main
from lstmkit.tasks.demo import run_demo


def test_demo_loss_falls():
    lines = []
    result = run_demo(epochs=60, hidden=16, log=lines.append)
    assert result["losses"][-1] < 0.5 * result["losses"][0]
    assert any("naive" in line for line in lines)


def test_cli_runs_demo(capsys):
    assert main(["demo", "--epochs", "5", "--hidden", "4", "--cell", "cifg"]) == 0
    assert "epoch" in capsys.readouterr().out


def test_cli_help():
    out = subprocess.run([sys.executable, "-m", "lstmkit.cli", "demo", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--cell" in out.stdout
