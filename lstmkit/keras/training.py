"""compile / fit / evaluate / predict: the Keras training API over torch autograd and torch.optim.

A mixin of Model. The model's outputs and the targets are handled as flat lists (one entry per
model output); losses, loss_weights and metrics may be given once (applied to every output), as
lists (per output) or dicts keyed by output name, as in Keras.
"""

from __future__ import annotations

import time

import torch

from . import callbacks as callbacks_module
from . import losses as losses_module
from . import metrics as metrics_module
from . import optimizers as optimizers_module
from . import tree
from .backend import device as default_device
from .data_adapter import ArrayData, adapt, is_loader
from .layer import get_mask
from .progress import ProgbarLogger, format_logs, use_bar


def _to_device(structure, device):
    if structure is None:
        return None
    return tree.map_structure(lambda t: t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t,
                              structure)


class Trainer:
    compiled = False

    # ------------------------------------------------------------------ compile

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, loss_weights=None, weighted_metrics=None,
                run_eagerly=None, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer (name or object), the loss(es) and the metrics for fit/evaluate."""
        self.optimizer = optimizers_module.get(optimizer)
        for leaf in tree.flatten(loss if isinstance(loss, (list, tuple, dict)) else [loss]):
            if leaf is not None:
                losses_module.get(leaf)
        for leaf in tree.flatten(metrics if metrics is not None else []):
            metrics_module.check(leaf)
        if weighted_metrics:
            for leaf in tree.flatten(weighted_metrics):
                metrics_module.check(leaf)
        self._loss_spec = loss
        self._metrics_spec = metrics
        self._weighted_metrics_spec = weighted_metrics
        self._loss_weights = loss_weights
        self._resolved = None
        self.compiled = True
        self.stop_training = False
        self._device = default_device()
        self.to(self._device)

    def _require_compiled(self, what: str) -> None:
        if not self.compiled:
            raise RuntimeError(f"you must compile() the model before calling {what}(): "
                               "model.compile(optimizer='adam', loss='mse')")

    # ------------------------------------------------------------------ outputs, losses, metrics

    def _align_targets(self, y) -> list:
        names = self.output_names
        if isinstance(y, dict):
            missing = [n for n in y if n not in names]
            if missing:
                raise ValueError(f"y has keys {missing} that are not output names {names}")
            return [y.get(n) for n in names]
        if len(names) == 1:
            if isinstance(y, (list, tuple)):
                if len(y) != 1:
                    raise ValueError(f"the model has 1 output but y is a list of {len(y)} arrays")
                return [y[0]]
            return [y]
        if not isinstance(y, (list, tuple)) or len(y) != len(names):
            got = f"a list of {len(y)}" if isinstance(y, (list, tuple)) else "one array"
            raise ValueError(f"the model has {len(names)} outputs {names}; y must be a list of {len(names)} "
                             f"arrays (or a dict by output name), got {got}")
        return list(y)

    def _per_output(self, spec, what: str) -> list:
        names = self.output_names
        if isinstance(spec, dict):
            unknown = [k for k in spec if k not in names]
            if unknown:
                raise ValueError(f"{what} has keys {unknown} that are not output names {names}")
            return [spec.get(n) for n in names]
        if isinstance(spec, (list, tuple)) and len(names) > 1 and (
                what != "metrics" or all(isinstance(s, (list, tuple)) or s is None for s in spec)):
            if len(spec) != len(names):
                raise ValueError(f"{what} lists {len(spec)} entries but the model has {len(names)} outputs")
            return list(spec)
        return [spec] * len(names)

    def _resolve(self, targets, preds) -> None:
        """Make the loss and metric objects for each output (the first batch gives the shapes)."""
        names = self.output_names
        if self._loss_spec is None:
            raise ValueError("compile() was called without a loss, so the model cannot be trained or evaluated")
        loss_specs = self._per_output(self._loss_spec, "loss")
        weights = self._per_output(self._loss_weights, "loss_weights") if self._loss_weights is not None \
            else [1.0] * len(names)
        losses = [None if s is None else losses_module.get(s) for s in loss_specs]
        metric_specs = self._per_output(self._metrics_spec, "metrics") if self._metrics_spec is not None \
            else [[]] * len(names)
        weighted_specs = self._per_output(self._weighted_metrics_spec, "metrics") \
            if self._weighted_metrics_spec is not None else [[]] * len(names)
        metrics = []
        for k, (spec, wspec, yt, yp) in enumerate(zip(metric_specs, weighted_specs, targets, preds)):
            out = []
            for weighted, s in [(False, m) for m in tree.flatten(spec or [])] + \
                               [(True, m) for m in tree.flatten(wspec or [])]:
                if yt is None:
                    continue
                m = metrics_module.resolve(s, yt, yp)
                base = m.name if not weighted else f"weighted_{m.name}"
                name = base if len(names) == 1 else f"{names[k]}_{base}"
                out.append((name, m, weighted))
            metrics.append(out)
        self._resolved = {"losses": losses, "weights": [1.0 if w is None else float(w) for w in weights],
                          "metrics": metrics}

    def _compute_loss(self, targets, preds, sample_weight):
        r = self._resolved
        total = None
        per_output = []
        for loss, w, yt, yp in zip(r["losses"], r["weights"], targets, preds):
            if loss is None or yt is None:
                per_output.append(None)
                continue
            value = loss(yt, yp, sample_weight=sample_weight, mask=get_mask(yp))
            per_output.append(value)
            total = w * value if total is None else total + w * value
        if total is None:
            raise ValueError("no output has both a loss and targets: nothing to train on")
        reg = self.losses
        if reg:
            total = total + sum(reg)
        return total, per_output

    def _new_trackers(self) -> dict:
        trackers = {"loss": metrics_module.Mean(name="loss")}
        if len(self.output_names) > 1:
            for n in self.output_names:
                trackers[f"{n}_loss"] = metrics_module.Mean(name=f"{n}_loss")
        return trackers

    def _update_metrics(self, trackers, loss, per_output, targets, preds, sample_weight, rows):
        trackers["loss"].update_state(torch.tensor([float(loss)]), torch.tensor([float(rows)]))
        if len(self.output_names) > 1:
            for n, v in zip(self.output_names, per_output):
                if v is not None:
                    trackers[f"{n}_loss"].update_state(torch.tensor([float(v.detach())]), torch.tensor([float(rows)]))
        for out_metrics, yt, yp in zip(self._resolved["metrics"], targets, preds):
            for name, m, weighted in out_metrics:
                m.update_state(yt, yp.detach(), sample_weight=sample_weight if weighted else None,
                               mask=get_mask(yp))

    def _logs(self, trackers) -> dict:
        logs = {k: t.result() for k, t in trackers.items()}
        for out_metrics in self._resolved["metrics"] if self._resolved else []:
            for name, m, _ in out_metrics:
                logs[name] = float(m.result())
        return logs

    def _reset_metrics(self):
        if self._resolved:
            for out_metrics in self._resolved["metrics"]:
                for _, m, _ in out_metrics:
                    m.reset_state()

    # ------------------------------------------------------------------ steps

    def _forward(self, x):
        out = self(x)
        return tree.flatten(out) if isinstance(out, (list, tuple)) else [out]

    def _class_weights(self, targets, class_weight, sample_weight):
        y = targets[0]
        if y.dim() >= 2 and y.shape[-1] > 1:
            labels = y.argmax(dim=-1)
        else:
            labels = (y.reshape(y.shape[0], -1)[:, 0]).round().long() if y.is_floating_point() else \
                y.reshape(y.shape[0], -1)[:, 0].long()
        table = torch.ones(int(max(max(class_weight), int(labels.max()))) + 1, device=labels.device)
        for k, v in class_weight.items():
            table[int(k)] = float(v)
        w = table[labels]
        if w.dim() > 1:  # per-step labels: weight each sample by the mean over its steps
            w = w.reshape(w.shape[0], -1).mean(1)
        return w if sample_weight is None else w * sample_weight

    def train_step(self, batch, trackers, class_weight=None) -> dict:
        x, y, sw = (_to_device(v, self._device) for v in batch)
        targets = self._align_targets(y)
        if class_weight is not None:
            sw = self._class_weights(targets, class_weight, sw)
        preds = self._forward(x)
        if self._resolved is None:
            self._resolve(targets, preds)
        loss, per_output = self._compute_loss(targets, preds, sw)
        if not self.optimizer.built:
            self.optimizer.build(self.parameters())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        rows = tree.flatten(x)[0].shape[0]
        self._update_metrics(trackers, loss.detach(), per_output, targets, preds, sw, rows)
        return self._logs(trackers)

    def test_step(self, batch, trackers) -> dict:
        x, y, sw = (_to_device(v, self._device) for v in batch)
        targets = self._align_targets(y)
        with torch.no_grad():
            preds = self._forward(x)
            if self._resolved is None:
                self._resolve(targets, preds)
            loss, per_output = self._compute_loss(targets, preds, sw)
        rows = tree.flatten(x)[0].shape[0]
        self._update_metrics(trackers, loss, per_output, targets, preds, sw, rows)
        return self._logs(trackers)

    # ------------------------------------------------------------------ fit

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns a History (history.history["loss"], ...)."""
        self._require_compiled("fit")
        batch_size = 32 if batch_size is None else int(batch_size)
        verbose = 1 if verbose == "auto" else verbose
        data = adapt(x, y, sample_weight, batch_size, shuffle)
        if is_loader(x) and validation_split:
            raise ValueError("validation_split needs array data; give a Dataset validation_data instead")
        if isinstance(data, ArrayData) and data.y is None:
            raise ValueError("fit() needs targets: pass y")
        val = None
        if validation_data is not None:
            if is_loader(validation_data):
                val = adapt(validation_data, batch_size=validation_batch_size or batch_size)
            else:
                if not isinstance(validation_data, (list, tuple)) or len(validation_data) not in (2, 3):
                    raise ValueError("validation_data must be (x_val, y_val) or (x_val, y_val, sample_weight)")
                val = ArrayData(*validation_data)
        elif validation_split:
            data, val = data.split(validation_split)
        if class_weight is not None and len(self.output_names) > 1:
            raise ValueError("class_weight is only supported for models with one output")

        steps = data.steps(batch_size)
        if steps_per_epoch is not None:
            steps = min(steps, steps_per_epoch) if steps else steps_per_epoch
        history = callbacks_module.History()
        cbs = list(callbacks or [])
        for c in cbs:
            if not isinstance(c, callbacks_module.Callback):
                raise TypeError(f"callbacks must be keras Callback objects, got {type(c).__name__}")
        all_cbs = ([ProgbarLogger(verbose)] if verbose else []) + cbs + [history]
        params = {"epochs": epochs, "steps": steps, "verbose": verbose, "batch_size": batch_size}
        cb = callbacks_module.CallbackList(all_cbs, self, params)
        self.stop_training = False
        self.history = history
        cb.on_train_begin()
        logs = {}
        for epoch in range(initial_epoch, epochs):
            self.train(True)
            self._reset_metrics()
            trackers = self._new_trackers()
            cb.on_epoch_begin(epoch)
            for step, batch in enumerate(data.batches(batch_size, shuffle=bool(shuffle) and shuffle != "batch")):
                if steps_per_epoch is not None and step >= steps_per_epoch:
                    break
                cb.on_train_batch_begin(step)
                logs = self.train_step(batch, trackers, class_weight)
                cb.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            logs = self._logs(trackers)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._run_eval(val, validation_batch_size or batch_size, validation_steps)
                logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        self.train(False)
        cb.on_train_end(logs)
        return history

    # ------------------------------------------------------------------ evaluate, predict

    def _run_eval(self, data, batch_size, steps=None) -> dict:
        was_training = self.training
        self.train(False)
        self._reset_metrics()
        trackers = self._new_trackers()
        try:
            for step, batch in enumerate(data.batches(batch_size)):
                if steps is not None and step >= steps:
                    break
                self.test_step(batch, trackers)
        finally:
            self.train(was_training)
        if trackers["loss"].count == 0:
            raise ValueError("no data to evaluate on (0 rows)")
        return self._logs(trackers)

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """Loss (a float) when there are no metrics, else [loss, *metrics]; a dict with return_dict."""
        self._require_compiled("evaluate")
        batch_size = 32 if batch_size is None else int(batch_size)
        data = adapt(x, y, sample_weight, batch_size)
        if isinstance(data, ArrayData) and data.y is None:
            raise ValueError("evaluate() needs targets: pass y")
        start = time.perf_counter()
        logs = self._run_eval(data, batch_size, steps)
        verbose = 1 if verbose == "auto" else verbose
        if verbose:
            print(f"evaluate - {time.perf_counter() - start:.1f}s - {format_logs(logs)}", flush=True)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The model's outputs for x as numpy arrays (a list of them for several outputs)."""
        batch_size = 32 if batch_size is None else int(batch_size)
        data = adapt(x, None, None, batch_size, has_y=False)
        device = getattr(self, "_device", None) or default_device()
        if self.built:
            self.to(device)
        was_training = self.training
        self.train(False)
        chunks = []
        total = data.steps(batch_size)
        bar = None
        if use_bar(1 if verbose == "auto" else verbose) and total and total > 1:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, unit="step", leave=False)
        try:
            with torch.no_grad():
                for step, (bx, _, _) in enumerate(data.batches(batch_size)):
                    if steps is not None and step >= steps:
                        break
                    out = self(_to_device(bx, device))
                    chunks.append([t.detach().cpu() for t in (tree.flatten(out) if isinstance(out, (list, tuple))
                                                              else [out])])
                    if bar is not None:
                        bar.update(1)
        finally:
            if bar is not None:
                bar.close()
            self.train(was_training)
        if not chunks:
            raise ValueError("no data to predict on (0 rows)")
        outs = [torch.cat([c[k] for c in chunks]).numpy() for k in range(len(chunks[0]))]
        return outs[0] if len(outs) == 1 else outs

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        self._require_compiled("train_on_batch")
        data = ArrayData(x, y, sample_weight)
        self.train(True)
        trackers = self._new_trackers()
        self._reset_metrics()
        logs = self.train_step((data.x, data.y, data.sample_weight), trackers, class_weight)
        self.train(False)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        data = ArrayData(x, y, sample_weight)
        self._reset_metrics()
        trackers = self._new_trackers()
        logs = self.test_step((data.x, data.y, data.sample_weight), trackers)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def predict_on_batch(self, x):
        return self.predict(x, batch_size=max(ArrayData(x).rows, 1), verbose=0)
