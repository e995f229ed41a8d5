"""Exact resume of the loop's remedies: a run interrupted at a checkpoint and
resumed ends bitwise where an uninterrupted one does, with aggressive training
(its second iterator, its switch and last MI), BN-VAE (batch_stats),
autoencoder pretraining (the decoder reset falls after the resume) and free
bits all on."""

import jax
import numpy as np

from textvae import train
from tests.helpers import final_params, read_metrics, tiny_config

NUM_STEPS, RESUME_AT = 24, 12


def _config(tmp_path, num_steps):
  config = tiny_config(tmp_path, num_steps=num_steps, eval_every_steps=6,
                       checkpoint_every_steps=RESUME_AT, log_every_steps=1)
  config.model.bn_gamma = 0.6
  config.train.pretrain_steps = 15  # the decoder is reset in the resumed part
  config.train.free_bits.kind = "per_dim"
  config.train.free_bits.target = 1.0
  config.train.aggressive.enabled = True
  config.train.aggressive.window = 2
  config.train.aggressive.max_inner_steps = 6
  return config


def _rows(workdir):
  keep = ("train/loss", "train/kl", "train/grad_norm", "train/inner_steps", "train/aggressive",
          "valid/iw_nll", "valid/mi")
  return {(r["step"], k): r[k] for r in read_metrics(workdir) for k in keep if k in r}


def test_every_loop_remedy_resumes_bitwise(tmp_path):
  straight = str(tmp_path / "straight")
  train.train_and_evaluate(_config(tmp_path, NUM_STEPS), straight)
  resumed = str(tmp_path / "resumed")
  train.train_and_evaluate(_config(tmp_path, RESUME_AT), resumed)
  train.train_and_evaluate(_config(tmp_path, NUM_STEPS), resumed)

  a, meta_a = final_params(_config(tmp_path, NUM_STEPS), straight)
  b, meta_b = final_params(_config(tmp_path, NUM_STEPS), resumed)
  assert int(a.step) == int(b.step) == NUM_STEPS
  for x, y in ((a.params, b.params), (a.batch_stats, b.batch_stats), (a.opt_state, b.opt_state)):
    jax.tree_util.tree_map(np.testing.assert_array_equal, x, y)
  assert meta_a["aggressive"] == meta_b["aggressive"]
  rows_a, rows_b = _rows(straight), _rows(resumed)
  assert rows_a == rows_b
  # The run exercises what resume must carry: inner steps before and after the
  # resume point, and the switch turned off by a validation's MI.
  inner = {s: v for (s, k), v in rows_a.items() if k == "train/inner_steps"}
  assert any(s <= RESUME_AT for s in inner) and any(s > RESUME_AT for s in inner)
