"""Starting a run from another run's encoder (textvae/hooks/init_from.py): the
copy is exact and happens once, before step 1 of a fresh run, never on resume;
a source that cannot serve is refused naming config.train.init_from."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from textvae import checkpoints
from textvae import errors
from textvae import models
from textvae import restore
from textvae import steps
from textvae import train
from textvae.hooks import init_from
from tests import helpers
from tests.helpers import tiny_workdir


def _config(tmp_path, source, **train_overrides):
  """tiny_workdir's model and corpus (its valid and test splits included, so
  that the vocabulary is the same), started from `source`'s best encoder."""
  config = helpers.tiny_config(tmp_path, eval_importance_samples=2, num_samples=2,
                               checkpoint_every_steps=1, eval_every_steps=2,
                               log_every_steps=1, **train_overrides)
  config.data.synthetic_num_valid = config.data.synthetic_num_test = 1000
  config.train.init_from.workdir = source
  return config


def _checkpoint(config, workdir, step):
  with open(os.path.join(workdir, "vocab.json"), encoding="utf-8") as f:
    vocab_size = len(json.load(f)["tokens"])
  model = models.create_model(config.model, vocab_size)
  ckpt = checkpoints.Checkpointer(workdir)
  state, _, meta = ckpt.restore(step, steps.create_train_state(model, jax.random.key(0),
                                                               config.train))
  ckpt.close()
  return model, state, meta


def _assert_tree_equal(a, b):
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)


def test_fresh_run_starts_from_the_sources_best_encoder_and_its_own_decoder(
    tmp_path, tmp_path_factory):
  source = tiny_workdir(tmp_path_factory)
  best = restore.load(source, checkpoint="best")
  config = _config(tmp_path, source, num_steps=2, learning_rate=0.0)  # frozen: state = init
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(config, workdir)
  model, state, meta = _checkpoint(config, workdir, 1)
  _assert_tree_equal(state.params["encoder"], best.params["encoder"])
  init_key = jax.random.split(jax.random.key(config.seed), 4)[0]  # train.Keys.init
  fresh = steps.init_variables(model, init_key)["params"]
  _assert_tree_equal(state.params["decoder"], fresh["decoder"])
  assert not np.array_equal(best.params["encoder"]["posterior"]["kernel"],
                            fresh["encoder"]["posterior"]["kernel"])  # a real copy
  assert meta["init_from"] == {"workdir": source, "step": best.step, "checkpoint": "best"}


def test_a_resumed_run_keeps_its_own_encoder(tmp_path, tmp_path_factory):
  source = tiny_workdir(tmp_path_factory)
  workdir = str(tmp_path / "run")
  train.train_and_evaluate(_config(tmp_path, source, num_steps=2), workdir)
  config = _config(tmp_path, source, num_steps=3, learning_rate=0.0)
  train.train_and_evaluate(config, workdir)  # resumes at step 2; frozen from there
  _, at2, _ = _checkpoint(config, workdir, 2)
  _, at3, meta = _checkpoint(config, workdir, 3)
  _assert_tree_equal(at3.params["encoder"], at2.params["encoder"])
  trained_away = restore.load(source, checkpoint="best").params["encoder"]["posterior"]["kernel"]
  assert not np.array_equal(at2.params["encoder"]["posterior"]["kernel"], trained_away)
  assert meta["init_from"]["workdir"] == source  # the provenance survives the resume


def test_a_source_that_has_not_finished_is_refused(tmp_path, tmp_path_factory):
  source = str(tmp_path / "source")
  shutil.copytree(tiny_workdir(tmp_path_factory), source)
  os.remove(os.path.join(source, "final_metrics.json"))
  with pytest.raises(errors.MissingFileError,
                     match=f"config.train.init_from.workdir={source}: no final_metrics.json"):
    train.train_and_evaluate(_config(tmp_path, source, num_steps=2), str(tmp_path / "run"))


def test_another_vocabulary_is_refused(tmp_path, tmp_path_factory):
  config = _config(tmp_path, tiny_workdir(tmp_path_factory), num_steps=2)
  config.data.vocab_size = 20
  with pytest.raises(errors.WorkdirError, match="its vocab.json .* is not this run's"):
    train.train_and_evaluate(config, str(tmp_path / "run"))


def test_other_shapes_and_unknown_modules_are_refused(tmp_path, tmp_path_factory):
  source = restore.load(tiny_workdir(tmp_path_factory), checkpoint="best")
  config = _config(tmp_path, source.workdir)
  config.model.hidden_dim = 8
  model = models.create_model(config.model, len(source.vocab))
  state = steps.create_train_state(model, jax.random.key(0), config.train)
  with pytest.raises(errors.WorkdirError,
                     match=r"params/encoder\['posterior'\]\['kernel'\]: this run \(8, 8\), "):
    init_from.copy_modules(state, source, ("encoder",))
  with pytest.raises(errors.ConfigError, match="'prior' is not a parameter group"):
    init_from.copy_modules(state, source, ("prior",))
