"""fit()'s progress display.

verbose=1 ("auto"): on a terminal, a tqdm bar per epoch with the running loss and metrics and
the ETA; when stdout is not a terminal (a log file, CI), one line per epoch instead.
verbose=2: one line per epoch. verbose=0: nothing.
"""

from __future__ import annotations

import sys
import time

from .callbacks import Callback


def format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in logs.items())


def use_bar(verbose) -> bool:
    return verbose == 1 and sys.stdout.isatty()


class ProgbarLogger(Callback):
    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._start = epoch, time.perf_counter()
        self._steps_done = 0
        epochs = self.params.get("epochs", 1)
        if use_bar(self.verbose):
            from tqdm.auto import tqdm

            print(f"Epoch {epoch + 1}/{epochs}")
            self._bar = tqdm(total=self.params.get("steps"), unit="step", file=sys.stdout, leave=True,
                             dynamic_ncols=True)

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done += 1
        if self._bar is not None:
            self._bar.update(1)
            if batch % 5 == 0 or batch + 1 == self.params.get("steps"):
                self._bar.set_postfix_str(format_logs(logs or {}), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        elapsed = time.perf_counter() - self._start
        if self._bar is not None:
            self._bar.set_postfix_str(format_logs(logs or {}))
            self._bar.close()
            self._bar = None
            return
        epochs = self.params.get("epochs", 1)
        per_step = 1000 * elapsed / max(self._steps_done, 1)
        print(f"Epoch {epoch + 1}/{epochs} - {self._steps_done} steps - {elapsed:.1f}s - {per_step:.0f}ms/step - "
              f"{format_logs(logs or {})}", flush=True)
