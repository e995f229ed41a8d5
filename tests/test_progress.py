"""Progress of long work (periodic_actions.Progress): the logged lines by a fake
clock, and the IW evaluation of a split logging its progress."""

import logging

import jax
import numpy as np
import pytest

from textvae import evaluation
from textvae import models
from textvae import periodic_actions
from textvae import steps
from textvae.data import pipeline


class _Clock:
  def __init__(self):
    self.t = 100.0

  def __call__(self):
    return self.t


@pytest.fixture
def lines(caplog):
  caplog.set_level(logging.INFO)
  return lambda: [r.getMessage() for r in caplog.records if r.name == "absl"]


def test_lines_rate_limit_and_final(lines):
  clock = _Clock()
  p = periodic_actions.Progress("valid", 3761, every_secs=30, time_fn=clock)
  clock.t += 10
  p.update(400)  # 10 s < every_secs: nothing
  clock.t += 19.9
  p.update(400)
  assert lines() == []
  clock.t += 0.1  # 30 s since the start
  p.update(400)
  # 1,200 in 30 s: 40.0/s; 2,561 left / 40 = 64.025 s
  assert lines() == ["valid: 1,200/3,761 sentences (31.9%), 40.0 sentences/s, ETA 1m04s"]
  clock.t += 29
  p.update(100)  # 29 s since the last line
  assert len(lines()) == 1
  clock.t += 1
  p.update(100)  # 1,400 in 60 s: 23.3/s; 2,361 / (1400/60) = 101.2 s
  assert lines()[1] == "valid: 1,400/3,761 sentences (37.2%), 23.3 sentences/s, ETA 1m41s"
  clock.t += 5
  p.update(2361)  # done: the final line at once, with the time taken
  assert lines()[2] == "valid: 3,761/3,761 sentences (100.0%), 57.9 sentences/s, took 1m05s"
  p.finish()  # once
  clock.t += 100
  p.update(0)
  assert len(lines()) == 3


def test_eta_in_seconds_and_first_update_at_time_zero(lines):
  clock = _Clock()
  p = periodic_actions.Progress("encoding train", 1000, every_secs=0, time_fn=clock)
  p.update(0)  # no time has passed: no rate, no division by zero
  assert lines() == ["encoding train: 0/1,000 sentences (0.0%)"]
  clock.t += 2
  p.update(100)  # 50/s; 900 / 50 = 18 s
  assert lines()[-1] == "encoding train: 100/1,000 sentences (10.0%), 50.0 sentences/s, ETA 18s"


def test_unknown_total_and_finish(lines):
  clock = _Clock()
  p = periodic_actions.Progress("preparing ptb train", None, unit="examples", every_secs=30,
                                time_fn=clock)
  clock.t += 31
  p.update(62)
  assert lines() == ["preparing ptb train: 62 examples, 2.0 examples/s"]
  clock.t += 3
  p.update(2)
  p.finish()  # 64 in 34 s
  assert lines()[-1] == "preparing ptb train: 64 examples, 1.9 examples/s, took 34.0s"
  assert len(lines()) == 2


def test_evaluate_split_logs_its_progress(lines):
  model = models.TextVAE(vocab_size=7, embed_dim=4, hidden_dim=5, latent_dim=2)
  rows = [np.asarray(r, np.int32) for r in [[4, 5, 2], [6, 2], [5, 5, 6, 2]] * 3]
  split = pipeline.EncodedSplit("test", rows, np.asarray([len(r) for r in rows], np.int32), {})
  batch = pipeline.collate(rows[:3], np.ones(3))
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                      batch["tokens_BxT"], batch["inputs_BxT"])["params"]
  dev = jax.devices()[:1]
  out = evaluation.evaluate_split(model, steps.replicate(params, dev), split, num_samples=4,
                                  batch_size=4, key=jax.random.key(0), devices=dev)
  assert out["num_sentences"] == 9
  progress = [m for m in lines() if m.startswith("IW evaluation of test, K=4: ")]
  assert progress and progress[-1].startswith(
      "IW evaluation of test, K=4: 9/9 sentences (100.0%), "), lines()
  assert len(progress) == 1  # under every_secs: the final line only
