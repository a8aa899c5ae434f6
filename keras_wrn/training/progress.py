"""Progress output that suits where it goes: Keras' bar on a terminal, plain periodic lines in a log.

Keras' progress bar redraws itself with backspaces and carriage returns
whenever it believes it writes to a console, which on POSIX it always does
(it checks ``"posix" in sys.modules``), so a piped log fills with control
characters.  `keras_verbose` picks the bar only when stdout is a terminal;
otherwise `PeriodicProgress` prints one plain line every few seconds.
"""

import sys
import time

import numpy as np

import keras

__all__ = ["PeriodicProgress", "keras_verbose", "is_terminal", "progress_callbacks"]


def is_terminal(stream=None):
    stream = sys.stdout if stream is None else stream
    return hasattr(stream, "isatty") and stream.isatty()


def keras_verbose(verbose=None):
    """Keras' ``verbose``: the given value, or (None) 1 on a terminal and 0 otherwise (lines come from us)."""
    if verbose is None:
        return 1 if is_terminal() else 0
    return verbose


def progress_callbacks(verbose, label, every_seconds=10.0):
    """``[PeriodicProgress]`` where Keras shows nothing (``verbose=None`` and stdout not a terminal), else ``[]``."""
    if verbose is None and not is_terminal():
        return [PeriodicProgress(label, every_seconds)]
    return []


class PeriodicProgress(keras.callbacks.Callback):
    """Prints ``label: step k/n (p%), <logs>, <s> s`` at most every ``every_seconds``, and at the end.

    Works for ``fit`` (per training batch and at each epoch's end), ``predict``
    and ``evaluate``; the step count comes from Keras (``params["steps"]``).
    """

    def __init__(self, label, every_seconds=10.0, stream=None):
        super().__init__()
        self.label = label
        self.every_seconds = every_seconds
        self.stream = stream
        self._started = self._last = None
        self._fitting = False

    def _begin(self, logs=None):
        self._last = time.perf_counter()
        if self._started is None:
            self._started = self._last

    def _line(self, text):
        print(f"{self.label}: {text}, {time.perf_counter() - self._started:.0f} s",
              file=self.stream or sys.stdout, flush=True)

    def _batch(self, batch, logs=None):
        now = time.perf_counter()
        if now - self._last < self.every_seconds:
            return
        self._last = now
        steps = self.params.get("steps") if self.params else None
        done = f"step {batch + 1}/{steps} ({100 * (batch + 1) / steps:.0f}%)" if steps else f"step {batch + 1}"
        self._line(done + _metrics(logs))

    on_predict_begin = on_test_begin = _begin
    on_train_batch_end = on_predict_batch_end = on_test_batch_end = _batch

    def on_train_begin(self, logs=None):
        self._fitting = True
        self._begin(logs)

    def on_train_end(self, logs=None):
        self._fitting = False

    def on_epoch_end(self, epoch, logs=None):
        self._line("done" + _metrics(logs))

    def on_predict_end(self, logs=None):
        self._line("done")

    def on_test_end(self, logs=None):
        if not self._fitting:  # inside fit, the epoch's line carries the validation metrics
            self._line("done" + _metrics(logs))


def _metrics(logs):
    """``", name value"`` for each scalar in ``logs``; a predict batch's logs hold its outputs, which are skipped."""
    return "".join(f", {key} {float(value):.4f}" for key, value in (logs or {}).items() if np.ndim(value) == 0)
