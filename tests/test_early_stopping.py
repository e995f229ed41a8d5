"""Model selection on validation data: the tracker's decisions, its replay from
metrics.jsonl, and whole runs that stop early, keep the best checkpoint in
workdir/best and evaluate it."""

import json
import os

import pytest

from textvae import early_stopping
from textvae import evaluate
from textvae import restore
from textvae import train
from tests.helpers import read_metrics
from tests.helpers import tiny_config


def test_tracker_best_patience_and_min_step():
  t = early_stopping.Tracker(metric="iw_nll", patience=2, min_step=10)
  assert not t.update(5, {"iw_nll": 1.0})          # before min_step: ignored
  assert t.best_step is None and t.evals_since_best == 0
  assert t.update(10, {"iw_nll": 50.0})
  assert t.update(20, {"iw_nll": 49.5})
  assert not t.update(30, {"iw_nll": 49.5})        # equal is not better
  assert (t.best_step, t.best_value, t.evals_since_best, t.stopped) == (20, 49.5, 1, False)
  assert not t.update(40, {"iw_nll": float("nan")})  # a NaN never wins, and counts
  assert t.stopped and t.evals_since_best == 2


def test_tracker_elbo_is_maximised_and_patience_zero_never_stops():
  t = early_stopping.Tracker(metric="elbo", patience=0)
  for step, v in [(1, -100.0), (2, -90.0), (3, -95.0), (4, -96.0), (5, -97.0)]:
    t.update(step, {"elbo": v})
  assert (t.best_step, t.best_value, t.evals_since_best, t.stopped) == (2, -90.0, 3, False)


def test_tracker_rejects_bad_config():
  with pytest.raises(ValueError, match="early_stopping.metric='kl'"):
    early_stopping.Tracker(metric="kl")
  with pytest.raises(ValueError, match="patience=-1"):
    early_stopping.Tracker(patience=-1)


def test_restore_and_replay_take_the_same_decisions(tmp_path):
  values = [(10, 5.0), (20, 4.0), (30, 4.5), (40, 3.0), (50, 3.5), (60, 3.6)]
  live = early_stopping.Tracker(patience=3)
  for step, v in values[:5]:
    live.update(step, {"iw_nll": v})
  again = early_stopping.Tracker(patience=3)
  again.restore(live.to_meta())
  assert again == live
  path = tmp_path / "metrics.jsonl"
  with open(path, "w", encoding="utf-8") as f:
    for step, v in values:
      f.write(json.dumps({"step": step, "valid/iw_nll": v}) + "\n")
      f.write(json.dumps({"step": step, "train/loss": 1.0}) + "\n")
    f.write('{"step": 70, "valid/iw')  # a killed run's partial line
  replayed = early_stopping.Tracker(patience=3)
  replayed.replay(str(path), up_to_step=50)  # lines after the checkpoint are ignored
  assert replayed == live
  assert (live.best_step, live.evals_since_best) == (40, 1)
  # A stopped run resumed with a larger patience goes on.
  stopped = early_stopping.Tracker(patience=1)
  stopped.update(1, {"iw_nll": 2.0})
  stopped.update(2, {"iw_nll": 3.0})
  assert stopped.stopped
  more = early_stopping.Tracker(patience=5)
  more.restore(stopped.to_meta())
  assert not more.stopped


def test_run_stops_early_keeps_best_and_does_not_restart(tmp_path):
  # Learning rate 0: the model never changes, so validation never improves after
  # the first evaluation and the run must stop after `patience` more.
  config = tiny_config(tmp_path, learning_rate=0.0, num_steps=60, eval_every_steps=10,
                       checkpoint_every_steps=25)
  config.train.early_stopping.patience = 2
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  assert results["step"] == 30
  assert results["best_step"] == 10
  assert results["early_stopping"]["stopped"] and results["early_stopping"]["evals_since_best"] == 2
  assert sorted(os.listdir(os.path.join(workdir, "best"))) == ["10"]
  valid = [r for r in read_metrics(workdir) if "valid/iw_nll" in r]
  assert [r["step"] for r in valid] == [10, 20, 30]
  # The checkpoint at the stopping step is saved, and a rerun trains nothing more.
  again = train.train_and_evaluate(config, workdir)
  assert again["step"] == 30
  assert [r["step"] for r in read_metrics(workdir) if "valid/iw_nll" in r] == [10, 20, 30]


def test_best_checkpoint_is_the_best_validation_and_evaluate_uses_it(tmp_path):
  config = tiny_config(tmp_path, num_steps=60, eval_every_steps=10, checkpoint_every_steps=20)
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  valid = {r["step"]: r["valid/iw_nll"] for r in read_metrics(workdir) if "valid/iw_nll" in r}
  best_step = min(valid, key=valid.get)
  assert results["best_step"] == best_step
  assert restore.load(workdir).step == best_step
  assert restore.load(workdir).checkpoint == "best"
  assert restore.load(workdir, checkpoint="latest").step == 60
  out = evaluate.evaluate_workdir(workdir, split="valid", num_samples=5, batch_size=200,
                                  reconstruction=False)
  assert out["step"] == best_step and out["checkpoint"] == "best"
  # The training loop's own validation of that checkpoint (same K and data, other
  # importance samples) agrees with what evaluate reports for it.
  assert out["iw_nll"] == pytest.approx(valid[best_step], rel=2e-3)


def test_enabling_early_stopping_on_an_older_workdir_replays_its_history(tmp_path):
  config = tiny_config(tmp_path, num_steps=40, eval_every_steps=10, checkpoint_every_steps=10,
                       keep_checkpoints=10)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  # Make it look like a run from before model selection: no best/, and no
  # tracker in the checkpoints' metadata, so resuming must replay metrics.jsonl.
  import shutil
  shutil.rmtree(os.path.join(workdir, "best"))
  for step in os.listdir(os.path.join(workdir, "checkpoints")):
    path = os.path.join(workdir, "checkpoints", step, "meta", "metadata")
    with open(path, encoding="utf-8") as f:
      meta = json.load(f)
    del meta["early_stopping"]
    with open(path, "w", encoding="utf-8") as f:
      json.dump(meta, f)
  valid = {r["step"]: r["valid/iw_nll"] for r in read_metrics(workdir) if "valid/iw_nll" in r}
  assert sorted(valid) == [10, 20, 30, 40]
  # Ten steps at a far too large learning rate: validation 50 is worse than
  # the history's best, which only a replayed tracker knows of.
  config.train.num_steps = 50
  config.train.learning_rate = 0.5
  results = train.train_and_evaluate(config, workdir)
  valid[50] = [r["valid/iw_nll"] for r in read_metrics(workdir) if "valid/iw_nll" in r][-1]
  assert valid[50] > min(valid.values())
  assert results["best_step"] == min(valid, key=valid.get) != 50
  assert results["early_stopping"]["best_value"] == pytest.approx(min(valid.values()))
  assert os.listdir(os.path.join(workdir, "best")) == [str(results["best_step"])]
