"""textvae.metric_writers: TensorBoard event files readable without TensorFlow,
metrics.jsonl, progress reports; and no import-time patching of other modules."""

import glob
import json
import os
import subprocess
import sys

from textvae import metric_writers
from textvae import periodic_actions


def test_event_file_and_jsonl(tmp_path):
  writer = metric_writers.create_writer(str(tmp_path))
  writer.write_hparams({"model.latent_dim": 32, "train.kind": "vae"})
  writer.write_scalars(3, {"train/elbo": -12.5, "train/kl": 1.25})
  writer.flush()
  writer.close()
  scalars, tags = {}, set()
  for path in glob.glob(os.path.join(tmp_path, "events.out.tfevents.*")):
    for event in metric_writers.read_events(path):
      for value in event.summary.value:
        tags.add(value.tag)
        if value.HasField("simple_value"):
          scalars[(event.step, value.tag)] = value.simple_value
  assert "_hparams_/experiment" in tags  # in the same, uncorrupted file
  assert scalars[(3, "train/elbo")] == -12.5 and scalars[(3, "train/kl")] == 1.25
  assert metric_writers.read_event_scalars(str(tmp_path)) == [
      (3, "train/elbo", -12.5), (3, "train/kl", 1.25)]
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
  assert rows == [{"step": 3, "train/elbo": -12.5, "train/kl": 1.25}]


def test_just_logging_writes_no_files(tmp_path):
  writer = metric_writers.create_writer(str(tmp_path), just_logging=True)
  writer.write_scalars(1, {"a": 1.0})
  writer.flush()
  assert not os.listdir(tmp_path)


class _Scalars:
  def __init__(self):
    self.rows = []

  def write_scalars(self, step, scalars):
    self.rows.append((step, dict(scalars)))


def test_report_progress():
  out = _Scalars()
  report = periodic_actions.ReportProgress(num_train_steps=10, writer=out, every_secs=60)
  assert not report(1, t=0.0)  # the first call never reports
  assert not report(2, t=30.0)
  with report.timed("eval"):
    pass
  assert report(3, t=61.0)  # every_secs passed
  assert report(10, t=70.0)  # the last step
  assert [(s, sorted(r)) for s, r in out.rows] == [
      (3, ["steps_per_sec"]), (3, ["uptime"]), (10, ["steps_per_sec"]), (10, ["uptime"])]
  assert out.rows[0][1]["steps_per_sec"] == 2 / 61.0


def test_import_patches_nothing():
  code = ("import sys, textvae.metric_writers; "
          "bad = [m for m in sys.modules if m.split('.')[0] in ('clu', 'tensorflow')]; "
          "assert not bad, bad")
  subprocess.run([sys.executable, "-c", code], check=True)
