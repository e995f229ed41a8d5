"""clu metric writers without TensorFlow.

`clu.metric_writers` imports TensorFlow for its TensorBoard `SummaryWriter`
(clu 0.0.12), and textvae does not depend on TensorFlow. When TensorFlow is not
installed, this module registers `clu.metric_writers.summary_writer` as a module
whose `SummaryWriter` writes the same TensorBoard event files with tensorboardX,
before clu is imported. Everything else (`create_default_writer`, the logging
writer, async writing, `periodic_actions`) is clu's own.

Import clu's writers through here: `from textvae.metric_writers import metric_writers`.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any, Mapping

import numpy as np

_SHIM = "clu.metric_writers.summary_writer"


def _make_summary_writer_class():
  from clu.metric_writers import interface  # pylint: disable=g-import-not-at-top
  import tensorboardX  # pylint: disable=g-import-not-at-top

  class SummaryWriter(interface.MetricWriter):
    """TensorBoard event files through tensorboardX (clu's interface)."""

    def __init__(self, logdir: str):
      super().__init__()
      self._writer = tensorboardX.SummaryWriter(logdir=logdir)

    def write_summaries(self, step: int, values: Mapping[str, Any],
                        metadata: Mapping[str, Any] | None = None):
      for key, value in values.items():
        value = np.asarray(value)
        if value.ndim == 0:
          self._writer.add_scalar(key, float(value), global_step=step)

    def write_scalars(self, step: int, scalars: Mapping[str, Any]):
      for key, value in scalars.items():
        self._writer.add_scalar(key, float(value), global_step=step)

    def write_images(self, step: int, images: Mapping[str, Any]):
      for key, value in images.items():
        value = np.asarray(value)
        if value.ndim == 4:
          self._writer.add_images(key, value, global_step=step, dataformats="NHWC")
        else:
          self._writer.add_image(key, value, global_step=step, dataformats="HWC")

    def write_videos(self, step: int, videos: Mapping[str, Any]):
      for key, value in videos.items():
        self._writer.add_video(key, np.asarray(value), global_step=step)

    def write_audios(self, step: int, audios: Mapping[str, Any], *, sample_rate: int):
      for key, value in audios.items():
        value = np.asarray(value)
        for i, clip in enumerate(value):
          self._writer.add_audio(f"{key}/{i}", clip[:, 0], global_step=step,
                                 sample_rate=sample_rate)

    def write_texts(self, step: int, texts: Mapping[str, str]):
      for key, value in texts.items():
        self._writer.add_text(key, value, global_step=step)

    def write_histograms(self, step: int, arrays: Mapping[str, Any],
                         num_buckets: Mapping[str, int] | None = None):
      for key, value in arrays.items():
        bins = (num_buckets or {}).get(key, "tensorflow")
        self._writer.add_histogram(key, np.asarray(value), global_step=step, bins=bins)

    def write_hparams(self, hparams: Mapping[str, Any]):
      self._writer.add_hparams(dict(hparams), {}, name=".")

    def flush(self):
      self._writer.flush()

    def close(self):
      self._writer.close()

  return SummaryWriter


def _install_shim() -> None:
  if _SHIM in sys.modules or importlib.util.find_spec("tensorflow") is not None:
    return
  shim = types.ModuleType(_SHIM)
  cache = {}

  def __getattr__(name):  # PEP 562: built when clu's package __init__ asks for it
    if name != "SummaryWriter":
      raise AttributeError(name)
    if name not in cache:
      cache[name] = _make_summary_writer_class()
    return cache[name]

  shim.__getattr__ = __getattr__
  sys.modules[_SHIM] = shim


_install_shim()

from clu import metric_writers  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
from clu import periodic_actions  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

__all__ = ["metric_writers", "periodic_actions"]


class JsonlWriter(metric_writers.MetricWriter):
  """Appends `{"step": s, name: value, ...}` lines to a file: scalars that a
  notebook or a test reads without TensorBoard."""

  def __init__(self, path: str):
    super().__init__()
    self._file = open(path, "a", encoding="utf-8")  # pylint: disable=consider-using-with

  def write_scalars(self, step: int, scalars: Mapping[str, Any]):
    import json  # pylint: disable=g-import-not-at-top
    row = {"step": int(step)}
    row.update({k: float(v) for k, v in scalars.items()})
    self._file.write(json.dumps(row) + "\n")

  def write_summaries(self, step, values, metadata=None):
    pass

  def write_images(self, step, images):
    pass

  def write_videos(self, step, videos):
    pass

  def write_audios(self, step, audios, *, sample_rate):
    pass

  def write_texts(self, step, texts):
    pass

  def write_histograms(self, step, arrays, num_buckets=None):
    pass

  def write_hparams(self, hparams):
    pass

  def flush(self):
    self._file.flush()

  def close(self):
    self._file.close()


def create_writer(workdir: str, *, just_logging: bool = False):
  """clu's default writer (log lines + TensorBoard events in `workdir`) plus
  `workdir/metrics.jsonl`; log lines only on processes other than 0."""
  if just_logging:
    return metric_writers.create_default_writer(workdir, just_logging=True)
  import os  # pylint: disable=g-import-not-at-top
  return metric_writers.AsyncMultiWriter([
      metric_writers.LoggingWriter(),
      metric_writers.SummaryWriter(workdir),
      JsonlWriter(os.path.join(workdir, "metrics.jsonl"))])
