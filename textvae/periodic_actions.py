"""Progress reports of the training loop, after clu's `ReportProgress`.

clu's own (`clu.periodic_actions`) imports `clu.metric_writers`, which needs
TensorFlow (see metric_writers.py). Same behaviour: the first call never
reports; then every `every_secs` and at step `num_train_steps` it logs steps/s,
progress, ETA and the share of time in each `timed` part, and writes the scalars
`steps_per_sec` and `uptime`.
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Any

from absl import logging


def _format_secs(secs: float) -> str:
  """123456.7 -> '1d10h17m'."""
  days, secs = divmod(int(secs), 24 * 3600)
  hours, secs = divmod(secs, 3600)
  return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + f"{secs // 60}m"


class ReportProgress:
  """Call after every training step: `report(step)`; wrap other parts of the
  loop in `with report.timed(name):`."""

  def __init__(self, *, num_train_steps: int | None = None, writer: Any = None,
               every_secs: float = 60.0):
    self._num_train_steps = num_train_steps if (num_train_steps or 0) > 0 else None
    self._writer = writer
    self._every_secs = every_secs
    self._time_per_part = collections.defaultdict(float)
    self._t0 = time.monotonic()
    self._previous_step = None
    self._previous_time = None

  def __call__(self, step: int, t: float | None = None) -> bool:
    """Reports if due; returns whether it did."""
    t = time.monotonic() if t is None else t
    if self._previous_step is None:
      self._previous_step, self._previous_time = step, t
      return False
    due = (t - self._previous_time > self._every_secs or step == self._num_train_steps)
    if step == self._previous_step or not due:
      return False
    self._report(step, t)
    self._previous_step, self._previous_time = step, t
    return True

  def _report(self, step: int, t: float):
    steps_per_sec = (step - self._previous_step) / (t - self._previous_time)
    message = f"{steps_per_sec:.1f} steps/s"
    if self._num_train_steps:
      eta = (self._num_train_steps - step) / steps_per_sec
      message += (f", {100 * step / self._num_train_steps:.1f}% "
                  f"({step}/{self._num_train_steps}), ETA: {_format_secs(eta)}")
    if self._time_per_part:
      total = time.monotonic() - self._t0
      message += " ({} : {})".format(_format_secs(total), ", ".join(
          f"{100 * dt / total:.1f}% {name}" for name, dt in sorted(self._time_per_part.items())))
    logging.info("Progress: %s", message)
    if self._writer is not None:
      self._writer.write_scalars(step, {"steps_per_sec": steps_per_sec})
      self._writer.write_scalars(step, {"uptime": time.monotonic() - self._t0})

  @contextlib.contextmanager
  def timed(self, name: str):
    """Wall time of the block (its results are fetched to the host inside it)."""
    start = time.monotonic()
    try:
      yield
    finally:
      self._time_per_part[name] += time.monotonic() - start
