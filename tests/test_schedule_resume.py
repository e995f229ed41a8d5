"""The papers' setting end to end on a tiny run: LSTM, uniform init, dropout,
SGD with learning-rate halving on validation plateaus, the best checkpoint
restored at every halving, training stopped after the last one; a run
interrupted and resumed ends bitwise where an uninterrupted one does."""

import jax
import numpy as np

from textvae import optim
from textvae import train
from tests.helpers import final_params, read_metrics, tiny_config


def _config(tmp_path, num_steps):
  config = tiny_config(tmp_path, num_steps=num_steps, eval_every_steps=10,
                       checkpoint_every_steps=10, optimizer="sgd", learning_rate=2.0)
  config.model.cell = "lstm"
  config.model.param_init = "uniform"
  config.model.embed_dropout = 0.5
  config.model.output_dropout = 0.5
  s = config.train.lr_schedule
  s.name = "plateau"
  s.patience = 1
  # A validation counts as better only below half the best so far: every
  # validation after the first is a plateau, so the halvings are known in advance.
  s.rtol = 0.5
  s.max_decays = 3
  s.restore_best = True
  return config


def test_halvings_restore_best_stop_and_resume_bitwise(tmp_path):
  straight = str(tmp_path / "straight")
  results = train.train_and_evaluate(_config(tmp_path, 60), straight)
  # Validations at 10 (best), 20, 30, 40 (three halvings): training stops at 40.
  assert results["step"] == 40
  assert results["lr_schedule"] == {"learning_rate": 0.25, "decays": 3, "finished": True}
  lrs = {r["step"]: r["train/learning_rate"] for r in read_metrics(straight)
         if "train/learning_rate" in r}
  assert lrs == {10: 2.0, 20: 1.0, 30: 0.5, 40: 0.25}
  state, _ = final_params(_config(tmp_path, 60), straight)
  assert optim.num_decays(_config(tmp_path, 60).train, state.opt_state) == 3

  resumed = str(tmp_path / "resumed")
  # Stopped at step 30 (its last step validates: the second halving), then resumed.
  first = train.train_and_evaluate(_config(tmp_path, 30), resumed)
  assert first["lr_schedule"]["decays"] == 2 and not first["lr_schedule"]["finished"]
  again = train.train_and_evaluate(_config(tmp_path, 60), resumed)
  assert again["step"] == 40 and again["lr_schedule"]["finished"]
  state_r, _ = final_params(_config(tmp_path, 60), resumed)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state_r)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # After the last halving a rerun trains nothing more.
  assert train.train_and_evaluate(_config(tmp_path, 60), resumed)["step"] == 40
