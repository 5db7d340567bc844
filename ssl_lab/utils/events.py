"""Metric storage for one training run and the writers that report it.

The trainer opens an :class:`EventStorage`; anything inside a step may call
``get_event_storage().put_scalar(name, value)``. Writers read the smoothed values.
"""

import datetime
import json
import logging
import os
from collections import defaultdict, deque
from typing import TYPE_CHECKING, DefaultDict, Deque, Dict, List, Optional, Tuple

import torch

from .files import atomic_write
from .metrics_file import read_metrics

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

_CURRENT_STORAGE: List["EventStorage"] = []


def get_event_storage() -> "EventStorage":
    if not _CURRENT_STORAGE:
        raise RuntimeError("get_event_storage() must be called inside an `with EventStorage():` block")
    return _CURRENT_STORAGE[-1]


class _History:
    """The recent values of one scalar: (value, iteration) pairs."""

    def __init__(self, max_length: int = 1000):
        self.values: Deque[Tuple[float, int]] = deque(maxlen=max_length)

    def update(self, value: float, iteration: int):
        self.values.append((value, iteration))

    def latest(self) -> float:
        return self.values[-1][0]

    def median(self, window: int) -> float:
        recent = sorted(v for v, _ in list(self.values)[-window:])
        return recent[len(recent) // 2]

    def avg(self, window: int) -> float:
        recent = [v for v, _ in list(self.values)[-window:]]
        return sum(recent) / len(recent)


class EventStorage:
    """Scalars of a run, indexed by iteration. `smoothing_hint` picks median-of-window for writers."""

    def __init__(self, start_iter: int = 0):
        self.iter = start_iter
        self._history: DefaultDict[str, _History] = defaultdict(_History)
        self._latest: Dict[str, Tuple[float, int]] = {}  # name -> (value, iteration)
        self._smoothing: Dict[str, bool] = {}

    def put_scalar(self, name: str, value, smoothing_hint: bool = True):
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        self._history[name].update(value, self.iter)
        self._latest[name] = (value, self.iter)
        self._smoothing.setdefault(name, smoothing_hint)

    def put_scalars(self, smoothing_hint: bool = True, **scalars):
        for name, value in scalars.items():
            self.put_scalar(name, value, smoothing_hint)

    def history(self, name: str) -> _History:
        if name not in self._history:
            raise KeyError(f"No history metric '{name}'")
        return self._history[name]

    def latest(self) -> dict:
        return dict(self._latest)

    def records_since(self, iteration: int) -> dict:
        """{iteration: {name: value}} of the scalars put after `iteration`, one record per write.

        A scalar put with smoothing_hint (a per-step measurement such as "time") gives the mean of
        its values since then, at the current iteration; any other scalar (the trainer's period
        means, lr, evaluation results) gives its latest value, at the iteration it was put.
        """
        records: DefaultDict[int, Dict[str, float]] = defaultdict(dict)
        for name, (value, it) in self._latest.items():
            if it <= iteration:
                continue
            if self._smoothing[name]:
                recent = [v for v, i in self._history[name].values if i > iteration]
                records[self.iter][name] = sum(recent) / len(recent)
            else:
                records[it][name] = value
        return records

    def smoothed(self, name: str, window: int = 20) -> float:
        """Median of the last `window` values if the scalar was put with smoothing_hint, else the latest."""
        history = self.history(name)
        return history.median(window) if self._smoothing[name] else history.latest()

    def __enter__(self):
        _CURRENT_STORAGE.append(self)
        return self

    def __exit__(self, *exc):
        assert _CURRENT_STORAGE[-1] is self
        _CURRENT_STORAGE.pop()


class EventWriter:
    def before_train(self, start_iter: int):
        """Called once before training starts (or resumes) at `start_iter`."""

    def write(self):
        raise NotImplementedError

    def close(self):
        pass


class JSONWriter(EventWriter):
    """Appends one JSON object per write (every LOG_PERIOD iterations) to `metrics.json` (JSON lines).

    Per-step measurements are averaged over the period; the trainer's losses are already period
    means. A run resumed at iteration s first drops the records at iterations >= s (written by the
    interrupted run after its last checkpoint), so it leaves the file an uninterrupted run writes.
    """

    def __init__(self, json_file: str):
        self._path = json_file
        self._file = None  # opened at the first write: building a trainer writes no file
        self._last_written = -1

    def before_train(self, start_iter: int):
        if start_iter > 0 and os.path.exists(self._path):
            records, _ = read_metrics(self._path)  # a line cut by the kill is dropped with the later ones
            with atomic_write(self._path, "w") as f:
                f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records if r["iteration"] < start_iter)
        self._last_written = start_iter - 1

    def write(self):
        if self._file is None:
            self._file = open(self._path, "a")
        records = get_event_storage().records_since(self._last_written)
        for it in sorted(records):
            self._file.write(json.dumps({"iteration": it, **records[it]}, sort_keys=True) + "\n")
        self._last_written = max([get_event_storage().iter, *records])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        if self._file is not None:
            self._file.close()


class TensorboardWriter(EventWriter):
    """Writes the records of each write (see :class:`JSONWriter`) to TensorBoard event files in
    `log_dir`; a resumed run purges the events at iterations >= its start."""

    def __init__(self, log_dir: str):
        self._log_dir = log_dir
        self._writer: Optional["SummaryWriter"] = None  # created at the first write: building a trainer writes no file
        self._last_written = -1

    def before_train(self, start_iter: int):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(self._log_dir, purge_step=start_iter if start_iter > 0 else None)
        self._last_written = start_iter - 1

    def write(self):
        if self._writer is None:
            self.before_train(0)
        records = get_event_storage().records_since(self._last_written)
        for it in sorted(records):
            for name, value in records[it].items():
                self._writer.add_scalar(name, value, it)
        self._last_written = max([get_event_storage().iter, *records])
        self._writer.flush()

    def close(self):
        if self._writer is not None:
            self._writer.close()


class CommonMetricPrinter(EventWriter):
    """Prints iteration, ETA, losses, lr, time and memory to the log."""

    def __init__(self, max_iter: int, window_size: int = 20):
        self.logger = logging.getLogger("ssl_lab.utils.events")
        self._max_iter = max_iter
        self._window_size = window_size

    def _eta(self, storage) -> str:
        if "time" not in storage._history:
            return "N/A"
        seconds = storage.history("time").median(1000) * (self._max_iter - storage.iter - 1)
        return str(datetime.timedelta(seconds=int(max(seconds, 0))))

    def write(self):
        storage = get_event_storage()
        latest = storage.latest()
        if latest.get("total_loss", (None, -1))[1] != storage.iter:
            return  # nothing new this iteration (e.g. writer called after an eval)
        losses = "  ".join(f"{name}: {storage.smoothed(name, self._window_size):.4g}" for name in latest if "loss" in name)
        lr = f"lr: {latest['lr'][0]:.5g}" if "lr" in latest else ""
        timing = (
            f"time: {storage.history('time').avg(self._window_size):.4f}  data_time: {storage.history('data_time').latest():.4f}"
            if "time" in latest and "data_time" in latest
            else ""
        )
        memory = f"max_mem: {torch.cuda.max_memory_allocated() / 1024**2:.0f}M" if torch.cuda.is_available() else ""
        self.logger.info(
            f" eta: {self._eta(storage)}  iter: {storage.iter + 1}/{self._max_iter}  {losses}  {timing}  {lr}  {memory}".rstrip()
        )
