"""Progress reports of long work: the training loop's `ReportProgress`, and
`Progress` for everything else that loops over a split (evaluation,
reconstruction, encoding, control, dataset preparation).

`ReportProgress` follows clu's (`clu.periodic_actions`, which imports
`clu.metric_writers`, which needs TensorFlow; see metric_writers.py). Same
behaviour: the first call never reports; then every `every_secs` and at step
`num_train_steps` it logs steps/s, progress, ETA and the share of time in each
`timed` part, and writes the scalars `steps_per_sec` and `uptime`.

`Progress(what, total)` counts units done (`update(n)`) and logs, through absl
logging at INFO (which pytest does not show), at most every `every_secs` and
once at the end: done/total, percent, units/s and ETA, rate and ETA from the
wall time since it was made.
"""

from __future__ import annotations

import collections
import contextlib
import time
from typing import Any

from absl import logging


def _format_secs(secs: float) -> str:
  """57.3 -> '57s'; 65.2 -> '1m05s'; 123456.7 -> '1d10h17m'."""
  secs = max(secs, 0.0)
  if secs < 3600:
    minutes, secs = divmod(int(secs), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
  days, secs = divmod(int(secs), 24 * 3600)
  hours, secs = divmod(secs, 3600)
  return (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + f"{secs // 60}m"


def _took(secs: float) -> str:
  """2.34 -> '2.3s'; else as _format_secs."""
  return f"{secs:.1f}s" if secs < 60 else _format_secs(secs)


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


class Progress:
  """Progress of `total` units of work (sentences, lines, examples): call
  `update(n)` after each n units, and `finish()` after the last. Logs

    <what>: 1,200/3,761 sentences (31.9%), 45.1 sentences/s, ETA 57s

  when `every_secs` have passed since the previous line (or since the start),
  and once at the end (done == total, or `finish()`), with the time taken in
  place of the ETA. `total` None: a count of unknown size (no percent, no ETA).
  Count from host-side sizes (batch rows, lines read): reading a device array
  to count would add a host-device sync to the loop. `time_fn` is for tests."""

  def __init__(self, what: str, total: int | None, unit: str = "sentences",
               every_secs: float = 30.0, time_fn=time.monotonic):
    self.what, self.total, self.unit = what, total, unit
    self.done = 0
    self._every_secs = every_secs
    self._time = time_fn
    self._start = self._last = time_fn()
    self._finished = False

  def update(self, n: int = 1) -> None:
    self.done += int(n)
    if self._finished:
      return
    if self.total is not None and self.done >= self.total:
      self.finish()
      return
    t = self._time()
    if t - self._last >= self._every_secs:
      self._last = t
      logging.info("%s", self.message(t))

  def finish(self) -> None:
    """Logs the final line, once."""
    if not self._finished:
      self._finished = True
      logging.info("%s", self.message(self._time(), final=True))

  def message(self, t: float, final: bool = False) -> str:
    elapsed = t - self._start
    if self.total is None:
      out = f"{self.what}: {self.done:,} {self.unit}"
    else:
      pct = 100.0 * self.done / self.total if self.total else 100.0
      out = f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({pct:.1f}%)"
    if elapsed > 0:
      rate = self.done / elapsed
      out += f", {rate:.1f} {self.unit}/s"
      if final:
        out += f", took {_took(elapsed)}"
      elif self.total is not None and rate > 0:
        out += f", ETA {_format_secs(max(self.total - self.done, 0) / rate)}"
    elif final:
      out += f", took {_took(elapsed)}"
    return out
