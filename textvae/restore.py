"""Loading a trained workdir for the CLIs and notebooks: config, vocabulary,
model and parameters of its best checkpoint (the model selected on validation
data, `workdir/best`), its latest, or a given step."""

from __future__ import annotations

import dataclasses
import os

import flax.linen as nn
import jax
import ml_collections

from textvae import checkpoints
from textvae import errors
from textvae import models
from textvae import steps
from textvae import workdir as workdir_lib
from textvae.data import vocab as vocab_lib


@dataclasses.dataclass
class Trained:
  config: ml_collections.ConfigDict
  vocab: vocab_lib.Vocabulary
  model: nn.Module
  params: dict
  step: int
  workdir: str
  checkpoint: str = "latest"  # 'best' when restored from workdir/best


CHOICES = ("auto", "best", "latest")


def load(workdir: str, step: int | None = None, checkpoint: str = "auto") -> Trained:
  """Restores one of `workdir`'s checkpoints: `step` of the regular ones when given;
  else `checkpoint`: 'best' (the best validation checkpoint in workdir/best),
  'latest', or 'auto' (best when the workdir has one, else latest)."""
  if checkpoint not in CHOICES:
    raise errors.ConfigError(f"checkpoint={checkpoint!r}: expected one of {CHOICES}")
  workdir = os.path.abspath(workdir)
  for path in (workdir_lib.config_path(workdir), workdir_lib.vocab_path(workdir)):
    if not os.path.exists(path):
      raise errors.MissingFileError(f"{path} not found: is {workdir} a textvae workdir?")
  config = workdir_lib.load_config(workdir)
  vocab = vocab_lib.Vocabulary.load(workdir_lib.vocab_path(workdir))
  model = models.create_model(config.model, len(vocab))
  best_dir = os.path.join(workdir, "best")
  best = None
  if step is None and checkpoint != "latest" and os.path.isdir(best_dir):
    best = checkpoints.Checkpointer(workdir, 1, subdir="best")
    if not best.all_steps():
      best.close()
      best = None
  use_best = best is not None
  if checkpoint == "best" and step is None and not use_best:
    raise errors.MissingFileError(f"{best_dir} holds no checkpoint (the run has not "
                                  "validated yet, or predates model selection)")
  ckpt = best if use_best else checkpoints.Checkpointer(workdir)
  try:
    available = ckpt.all_steps()
    if not available:
      raise errors.MissingFileError(f"{ckpt.directory} holds no complete checkpoint")
    step = max(available) if step is None else step
    if step not in available:
      raise errors.MissingFileError(f"no checkpoint at step {step} in {ckpt.directory}; "
                                    f"available: {sorted(available)}")
    template = steps.create_train_state(model, jax.random.key(0), config.train)
    # Model variables only: the optimizer state is not needed to evaluate or generate.
    restored = ckpt.restore_variables(step, template.params, template.batch_stats)
  finally:
    ckpt.close()
  # `params`: the parameter tree; for a BN-VAE the variables {"params", "batch_stats"}
  # (evaluation and decoding accept either, see models.as_variables).
  params = restored["params"]
  if restored.get("batch_stats"):
    params = {"params": params, "batch_stats": restored["batch_stats"]}
  return Trained(config, vocab, model, params, int(step), workdir,
                 "best" if use_best else "latest")
