"""lstmkit.tasks: ready sequence tasks, each data -> model -> training -> run folder with a report.

    from lstmkit.tasks import classify, load
    result = classify.train(data="reviews.csv", epochs=5)   # -> TaskResult (run_dir, metrics, model)
    predictor = load(result.run_dir)                        # a saved run, ready to predict

Each task lives in its own module (classify, generate, forecast, sequence, translate, speech) with
train(), load() and the command-line parts the `lstmkit` command uses.
"""

from __future__ import annotations

import importlib

from .runs import TaskResult, load_model

TASKS = ("classify", "generate", "forecast", "sequence", "translate", "speech")


def task_module(name: str):
    """The module of task `name` (imported on first use, so `lstmkit --help` stays quick)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; the tasks are {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")


def load(run):
    """The predictor of a saved run folder (or model.safetensors), whichever task wrote it."""
    task, _, _ = load_model(run)
    return task_module(task).load(run)


__all__ = ["TASKS", "TaskResult", "load", "task_module"]
