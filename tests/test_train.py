"""Whole `train_and_evaluate` runs on a tiny synthetic config: learning, resume,
NaN guard, workdir protection."""

import os

import jax
import numpy as np
import pytest

from textvae import checkpoints
from textvae import fileio
from textvae import hardware
from textvae import train
from tests.helpers import TINY_HELD_OUT, final_params, read_metrics, tiny_config


def test_tiny_run_learns_and_writes_outputs(tmp_path):
  config = tiny_config(tmp_path)
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  rows = [r for r in read_metrics(workdir) if "train/recon" in r]
  assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]
  # Reconstruction falls steadily (the KL weight rises, so the loss is not comparable).
  assert rows[-1]["train/recon"] < 0.75 * rows[0]["train/recon"]
  valid = [r for r in read_metrics(workdir) if "valid/elbo" in r]
  assert [r["step"] for r in valid] == [30, 60]
  assert valid[1]["valid/elbo"] > valid[0]["valid/elbo"]
  assert results["test"]["num_sentences"] == TINY_HELD_OUT
  for name in ("vocab.json", "config.json", "samples.txt", "final_metrics.json"):
    assert os.path.exists(os.path.join(workdir, name)), name
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(workdir))
  assert sorted(checkpoints.Checkpointer(workdir).all_steps()) == [20, 40, 60]
  samples = open(os.path.join(workdir, "samples.txt")).read()
  assert "# prior samples" in samples and " in: " in samples


def test_resume_continues_and_equals_uninterrupted_run(tmp_path, caplog):
  straight = str(tmp_path / "straight")
  train.train_and_evaluate(tiny_config(tmp_path, num_steps=40), straight)

  resumed = str(tmp_path / "resumed")
  train.train_and_evaluate(tiny_config(tmp_path, num_steps=20), resumed)
  caplog.clear()
  with caplog.at_level("INFO"):
    train.train_and_evaluate(tiny_config(tmp_path, num_steps=40), resumed)
  assert "Resuming from step 20" in caplog.text
  # Each training process records where it ran, from the step it started at.
  hosts = fileio.read_jsonl(hardware.path(resumed))
  assert [h["step"] for h in hosts] == [0, 20]
  assert all(h["cores"] == sorted(os.sched_getaffinity(0)) for h in hosts)

  state_a, meta_a = final_params(tiny_config(tmp_path), straight)
  state_b, meta_b = final_params(tiny_config(tmp_path), resumed)
  assert int(state_a.step) == int(state_b.step) == 40 == meta_b["step"]
  jax.tree_util.tree_map(np.testing.assert_array_equal, state_a.params, state_b.params)
  after = lambda w: [(r["step"], r["train/loss"]) for r in read_metrics(w)
                     if "train/loss" in r and r["step"] > 20]
  assert after(straight) == after(resumed)


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path, caplog):
  workdir = str(tmp_path / "nan")
  train.train_and_evaluate(tiny_config(tmp_path, num_steps=20), workdir)
  with pytest.raises(train.NonFiniteError, match=r"at step 22.*last good checkpoint is step 20"):
    train.train_and_evaluate(
        # A finite rate the settings check accepts, large enough that step 21's
        # update overflows the logits of step 22.
        tiny_config(tmp_path, num_steps=40, learning_rate=1e38), workdir)
  assert checkpoints.Checkpointer(workdir).all_steps() == [20]
  with caplog.at_level("WARNING"):
    train.train_and_evaluate(tiny_config(tmp_path, num_steps=30), workdir)
  assert "previous run stopped at step 22" in caplog.text
  assert checkpoints.Checkpointer(workdir).latest_step() == 30


def test_changed_model_is_refused_and_workdir_untouched(tmp_path):
  workdir = str(tmp_path / "w")
  train.train_and_evaluate(tiny_config(tmp_path, num_steps=20), workdir)
  before = {f: os.path.getmtime(os.path.join(workdir, f)) for f in os.listdir(workdir)}
  config = tiny_config(tmp_path, num_steps=40)
  config.model.hidden_dim = 64
  with pytest.raises(ValueError, match=r"config.model.hidden_dim: workdir has 32, this run 64"):
    train.train_and_evaluate(config, workdir)
  after = {f: os.path.getmtime(os.path.join(workdir, f)) for f in os.listdir(workdir)}
  assert before == after
