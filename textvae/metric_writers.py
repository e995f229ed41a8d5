"""Metric writers: log lines, TensorBoard event files and `metrics.jsonl`.

These follow clu's `MetricWriter` interface (`write_scalars`, `write_hparams`,
`flush`, `close`) but are not clu's: clu 0.0.12 cannot be imported without
TensorFlow. `clu/metric_writers/__init__.py` imports its TensorFlow
`SummaryWriter`, so every `clu.metric_writers.*` submodule (the interface and
the logging writer included) and `clu.periodic_actions` (which imports
`clu.metric_writers`) pull TensorFlow in, and textvae does not depend on it.
TensorBoard event files are written with tensorboardX instead.
"""

from __future__ import annotations

import glob
import json
import os
import struct
from typing import Any, Mapping, Sequence

from absl import logging



class LoggingWriter:
  """Scalars as INFO log lines, in clu's LoggingWriter format."""

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    values = [f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
              for k, v in sorted(scalars.items())]
    logging.info("[%d] %s", step, ", ".join(values))

  def write_hparams(self, hparams: Mapping[str, Any]):
    logging.info("[Hyperparameters] %s", hparams)

  def flush(self):
    logging.flush()

  def close(self):
    self.flush()


class TensorBoardWriter:
  """TensorBoard event files in `logdir`, through tensorboardX."""

  def __init__(self, logdir: str):
    import tensorboardX  # pylint: disable=g-import-not-at-top
    self._writer = tensorboardX.SummaryWriter(logdir=logdir)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    for key, value in scalars.items():
      self._writer.add_scalar(key, float(value), global_step=step)

  def write_hparams(self, hparams: Mapping[str, Any]):
    # Into this writer's own file: `add_hparams` opens a second writer on the
    # logdir, whose file has the same name within the same second (the first
    # write of a run), and the two writers overwrite each other's records.
    from tensorboardX import summary  # pylint: disable=g-import-not-at-top
    for proto in summary.hparams(dict(hparams), {}):
      self._writer.file_writer.add_summary(proto)

  def flush(self):
    self._writer.flush()

  def close(self):
    self._writer.close()


class JsonlWriter:
  """Appends `{"step": s, name: value, ...}` lines to a file: scalars that a
  notebook or a test reads without TensorBoard."""

  def __init__(self, path: str):
    self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    row = {"step": int(step)}
    row.update({k: float(v) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")

  def write_hparams(self, hparams: Mapping[str, Any]):
    del hparams  # config.json holds them

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


class MultiWriter:
  """Writes to each of `writers` in turn. Synchronous: the values written are
  host floats, each write is a log line, a queued tensorboardX event or a
  buffered file line, and `flush` returns with everything on disk."""

  def __init__(self, writers: Sequence[Any]):
    self._writers = tuple(writers)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    for w in self._writers:
      w.write_scalars(step, scalars)

  def write_hparams(self, hparams: Mapping[str, Any]):
    for w in self._writers:
      w.write_hparams(hparams)

  def flush(self):
    for w in self._writers:
      w.flush()

  def close(self):
    for w in self._writers:
      w.close()


def create_writer(workdir: str, *, just_logging: bool = False) -> MultiWriter:
  """Log lines, TensorBoard events in `workdir` and `workdir/metrics.jsonl`;
  log lines only with `just_logging` (processes other than 0)."""
  if just_logging:
    return MultiWriter([LoggingWriter()])
  return MultiWriter([LoggingWriter(), TensorBoardWriter(workdir),
                      JsonlWriter(os.path.join(workdir, "metrics.jsonl"))])


def read_events(path: str):
  """The Event protos of one TensorBoard event file (TFRecord framing: length,
  its CRC, the record, its CRC), read with tensorboardX's protos; a record cut
  short at the end (a run still writing) is left out."""
  from tensorboardX.proto import event_pb2  # pylint: disable=g-import-not-at-top
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos + 12 <= len(data):
    (length,) = struct.unpack("<Q", data[pos:pos + 8])
    if pos + 12 + length + 4 > len(data):
      return
    yield event_pb2.Event.FromString(data[pos + 12:pos + 12 + length])
    pos += 12 + length + 4


def read_event_scalars(workdir: str) -> list[tuple[int, str, float]]:
  """(step, tag, value) of every scalar in `workdir`'s event files, in order."""
  out = []
  for path in sorted(glob.glob(os.path.join(workdir, "events.out.tfevents*"))):
    for event in read_events(path):
      for v in event.summary.value:
        value = v.simple_value if v.HasField("simple_value") else (
            v.tensor.float_val[0] if v.tensor.float_val else None)
        if value is not None:
          out.append((event.step, v.tag, value))
  return out
