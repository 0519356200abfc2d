"""A run folder: where a task writes its model, metrics, plots and report, and how it is read back.

    runs/<task>-<YYYYmmdd-HHMMSS>/
        model.safetensors   weights + the task's JSON config (no pickle), see save_model
        metrics.json        test figures at the top level, the baseline's under "baseline"
        report.md           the results in words, next to the baseline
        *.png               learning curves and the task's own picture
        checkpoint.safetensors   while training only: resume with the same --out and --resume
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .. import __version__
from ..files import cpu_state, load_tensor_file, save_tensor_file, write_json

MODEL_FILE, METRICS_FILE, REPORT_FILE = "model.safetensors", "metrics.json", "report.md"
MODEL_FORMAT = "lstmkit.task-model/1"


def make_run_dir(task: str, out=None) -> Path:
    """`out` if given (created if needed), else a new runs/<task>-<timestamp>/ folder."""
    if out is not None:
        path = Path(out)
        if path.exists() and not path.is_dir():
            raise NotADirectoryError(f"--out {path} is a file; expected a folder for the run's files")
        path.mkdir(parents=True, exist_ok=True)
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path("runs") / f"{task}-{stamp}", 1
    while path.exists():
        n += 1
        path = Path("runs") / f"{task}-{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def save_model(run_dir, task: str, model: torch.nn.Module, config: dict) -> Path:
    """Write model.safetensors: the weights and {"task", "config"} (JSON) in one file, atomically."""
    path = Path(run_dir) / MODEL_FILE
    save_tensor_file(path, cpu_state(model), MODEL_FORMAT,
                     {"task": task, "config": json.dumps(config), "lstmkit_version": __version__})
    return path


def load_model(run) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """(task, config, state_dict) from a run folder or a model.safetensors path."""
    path = Path(run)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no saved model here; expected a run folder written by an lstmkit task "
                                f"(it holds {MODEL_FILE})")
    metadata, tensors = load_tensor_file(path, MODEL_FORMAT)
    try:
        return metadata["task"], json.loads(metadata["config"]), tensors
    except (KeyError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: the task config stored in the file is damaged ({exc})") from None


def load_task_model(run, task: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, state_dict) of a run written by `task`; another task's run is an error naming both."""
    found, config, state = load_model(run)
    if found != task:
        raise ValueError(f"{run} was written by `lstmkit {found}`, not `lstmkit {task}`")
    return config, state


def write_metrics(run_dir, metrics: dict) -> Path:
    path = Path(run_dir) / METRICS_FILE
    write_json(path, metrics)
    return path


@dataclass
class TaskResult:
    """What a task returns: its run folder, its test metrics (baseline under "baseline"), the model."""

    task: str
    run_dir: Path
    metrics: dict
    model: torch.nn.Module = field(repr=False)
    history: object = field(default=None, repr=False)

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.run_dir.iterdir() if p.is_file() and not p.name.startswith("."))
