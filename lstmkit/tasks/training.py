"""The training loop every task shares: Adam, gradient clipping, learning-rate decay on a plateau,
the best validation epoch kept, progress shown, and a checkpoint after every epoch to resume from.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..files import cpu_state, load_tensor_file, save_tensor_file

CHECKPOINT_FORMAT = "lstmkit.checkpoint/1"


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, numpy and torch; returns the numpy Generator a task should draw from."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def resolve_device(device: str | None) -> torch.device:
    """'auto' (or None) -> cuda when present, else cpu; a named device that is absent is an error."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this machine has no CUDA GPU (torch.cuda.is_available() is False)")
    return dev


@dataclass
class History:
    """Per-epoch figures: train_loss, val_loss, val_metric (the task's), lr; best_epoch is 1-based."""

    metric_name: str | None = None
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_metric: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = 0


def to_device(batch, device: torch.device):
    """A tensor, or a tuple/list/dict of them (other values left alone), moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def fit(model: torch.nn.Module, *,
        batches: Callable[[int], Iterable],
        loss: Callable[[torch.nn.Module, object], torch.Tensor],
        validate: Callable[[torch.nn.Module], tuple[float, float | None]] | None = None,
        metric_name: str | None = None, higher_is_better: bool = False,
        epochs: int, lr: float = 1e-3, clip: float | None = 1.0, weight_decay: float = 0.0,
        patience: int | None = None, device: torch.device = torch.device("cpu"),
        checkpoint: Path | None = None, resume: bool = False, progress: bool = True,
        log: Callable[[str], None] = print, desc: str = "train") -> History:
    """Train `model` in place and leave it holding its best validation epoch's weights.

    batches(epoch) yields the epoch's batches (shuffle with a generator seeded from the epoch, so a
    resumed run draws the same batches); loss(model, batch) returns the mean loss of one batch
    already on `device`; validate(model) returns (val_loss, val_metric or None) and picks the best
    epoch: by val_metric when given (higher_is_better says which way), else by val_loss. The
    learning rate halves after 2 epochs without improvement; `patience` stops training early.
    With `checkpoint`, model, optimizer and history are saved after each epoch; resume=True
    continues from that file when it exists.
    """
    from tqdm.auto import tqdm

    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=2)
    history, best_state, start_epoch = History(metric_name), None, 1
    if resume:
        if checkpoint is None or not Path(checkpoint).exists():
            finished = checkpoint is not None and (Path(checkpoint).parent / "model.safetensors").exists()
            raise ValueError(f"nothing to resume: {checkpoint} does not exist" +
                             (" (that run finished: its model is saved)" if finished else
                              "; give --out the folder of the interrupted run"))
        history, best_state, start_epoch = _load_checkpoint(checkpoint, model, optimizer, scheduler)
        log(f"resuming from {checkpoint} after epoch {start_epoch - 1}")
    sign = -1.0 if higher_is_better else 1.0
    if not history.best_epoch:
        best_score = math.inf
    elif validate is None:                        # without validation the latest epoch is the best
        best_score = -history.best_epoch
    else:
        best_score = _score(history, history.best_epoch - 1, sign)
    stale = 0
    for epoch in range(start_epoch, epochs + 1):
        began = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        bar = tqdm(batches(epoch), desc=f"{desc} epoch {epoch}/{epochs}", leave=False, disable=not progress,
                   unit="batch", dynamic_ncols=True)
        for batch in bar:
            optimizer.zero_grad(set_to_none=True)
            value = loss(model, to_device(batch, device))
            if not torch.isfinite(value):
                raise FloatingPointError(f"the training loss became {value.item()} at epoch {epoch}; "
                                         "try a lower learning rate or a smaller --hidden")
            value.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            total, count = total + value.item(), count + 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        history.train_loss.append(total / max(count, 1))
        history.lr.append(optimizer.param_groups[0]["lr"])
        line = f"epoch {epoch}/{epochs}  train loss {history.train_loss[-1]:.4f}"
        if validate is not None:
            model.eval()
            with torch.no_grad():
                val_loss, val_metric = validate(model)
            history.val_loss.append(float(val_loss))
            if val_metric is not None:
                history.val_metric.append(float(val_metric))
            line += f"  val loss {val_loss:.4f}" + (f"  val {metric_name} {val_metric:.4f}" if val_metric is not None else "")
            scheduler.step(val_loss)
        history.seconds.append(time.perf_counter() - began)
        score = _score(history, len(history.train_loss) - 1, sign) if validate is not None else -epoch
        if score < best_score:
            best_score, history.best_epoch, stale = score, epoch, 0
            best_state = cpu_state(model)
        else:
            stale += 1
        if progress:
            log(line + f"  ({history.seconds[-1]:.1f} s)")
        if checkpoint is not None:
            _save_checkpoint(checkpoint, model, optimizer, scheduler, history, best_state, epoch)
        if patience is not None and stale >= patience:
            log(f"no improvement for {patience} epochs: stopping after epoch {epoch}")
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history


def _score(history: History, k: int, sign: float) -> float:
    return sign * history.val_metric[k] if history.val_metric else history.val_loss[k]


def _save_checkpoint(path, model, optimizer, scheduler, history, best_state, epoch) -> None:
    """Model, best weights, optimizer tensors and the rest as JSON, in one safetensors file."""
    tensors = {f"model.{k}": v for k, v in cpu_state(model).items()}
    tensors.update({f"best.{k}": v for k, v in (best_state or {}).items()})
    opt = optimizer.state_dict()
    scalars = {}
    for pid, state in opt["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{pid}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"epoch": epoch, "history": asdict(history), "param_groups": opt["param_groups"],
            "optim_scalars": scalars, "scheduler": scheduler.state_dict(), "has_best": best_state is not None}
    save_tensor_file(path, tensors, CHECKPOINT_FORMAT, {"state": json.dumps(meta, default=float)})


def _load_checkpoint(path, model, optimizer, scheduler):
    metadata, tensors = load_tensor_file(path, CHECKPOINT_FORMAT)
    meta = json.loads(metadata["state"])
    saved = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    own = model.state_dict()
    differs = sorted(k for k in set(saved) | set(own) if k not in saved or k not in own or saved[k].shape != own[k].shape)
    if differs:
        raise ValueError(f"{path} holds another model than this run builds (weights {', '.join(differs[:4])} differ): "
                         "resume with the same options as the interrupted run")
    model.load_state_dict(saved)
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} if meta["has_best"] else None
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in meta["optim_scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return History(**meta["history"]), best, meta["epoch"] + 1
