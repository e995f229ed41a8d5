"""Loading a trained workdir for the CLIs and notebooks: config, vocabulary,
model and variables of its best checkpoint (the model selected on validation
data, `workdir/best`), its latest, or a given step."""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import flax.linen as nn
import ml_collections

from textvae import checkpoints
from textvae import conditioning
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
  variables: dict  # for model.apply: {'params': ...} (+ 'batch_stats' for a BN-VAE)
  step: int
  workdir: str
  checkpoint: str = "latest"  # 'best' when restored from workdir/best
  labels: conditioning.Labels | None = None  # a conditional VAE's (labels.json)

  @property
  def params(self) -> dict:
    """The parameter tree alone (variables['params'])."""
    return self.variables["params"]


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
  labels = None
  if config.model.get("condition", ""):
    if not os.path.exists(conditioning.labels_path(workdir)):
      raise errors.MissingFileError(f"{conditioning.labels_path(workdir)} not found: the "
                                    f"conditional VAE of {workdir} needs its labels")
    labels = conditioning.Labels.load(workdir)
  model = models.create_model(config.model, len(vocab), len(labels) if labels else 0)
  best_dir = os.path.join(workdir, "best")
  use_best = step is None and checkpoint != "latest" and _holds_steps(workdir, "best")
  if checkpoint == "best" and step is None and not use_best:
    raise errors.MissingFileError(f"{best_dir} holds no checkpoint (the run has not "
                                  "validated yet, or predates model selection)")
  template = steps.abstract_train_state(model, config.train)
  vpath = workdir_lib.vocab_path(workdir)

  def restore_step(ckpt, s):
    # vocab.json against the checkpoint first: tokens swapped in it would give
    # wrong numbers silently, and another size shape errors that never name it.
    mismatch = workdir_lib.vocab_mismatch(ckpt.restore_meta(s), vocab.tokens)
    if mismatch:
      raise errors.WorkdirError(f"{vpath} does not match checkpoint {s} in {ckpt.directory} "
                                f"({mismatch}); restore the vocab.json it was trained with")
    # Model variables only: the optimizer state is not needed to evaluate or generate.
    return ckpt.restore_variables(s, template.params, template.batch_stats)

  found = None
  if use_best:
    try:
      found = _restore(workdir, "best", None, restore_step)
    except errors.UserError:
      raise
    except Exception as e:  # pylint: disable=broad-except  # unreadable files: the fallback
      logging.warning("The best checkpoint in %s cannot be restored (%s); using the "
                      "latest regular checkpoint instead", best_dir,
                      checkpoints.error_summary(e))
      use_best = False
  if found is None:
    found = _restore(workdir, "checkpoints", step, restore_step)
    if found is None:
      raise errors.MissingFileError(f"{os.path.join(workdir, 'checkpoints')} holds no "
                                    "complete checkpoint")
  step, restored = found
  variables = models.variables(restored["params"], restored.get("batch_stats"))
  return Trained(config, vocab, model, variables, int(step), workdir,
                 "best" if use_best else "latest", labels)


def _holds_steps(workdir: str, subdir: str) -> bool:
  if not os.path.isdir(os.path.join(workdir, subdir)):
    return False
  ckpt = checkpoints.Checkpointer(workdir, 1, subdir=subdir)
  try:
    return bool(ckpt.all_steps())
  finally:
    ckpt.close()


def _restore(workdir: str, subdir: str, step: int | None, restore_step):
  """(step, restored) of `step` in workdir/<subdir>, or of its newest step that
  restores (None when it holds none). Reads only: a step that cannot be
  restored is named and skipped, not moved (training does that)."""
  ckpt = checkpoints.Checkpointer(workdir, 1, subdir=subdir)
  try:
    if step is None:
      return checkpoints.restore_newest(ckpt, lambda s: restore_step(ckpt, s),
                                        move_aside=False)
    available = ckpt.all_steps()
    if step not in available:
      raise errors.MissingFileError(f"no checkpoint at step {step} in {ckpt.directory}; "
                                    f"available: {sorted(available)}")
    return step, restore_step(ckpt, step)
  finally:
    ckpt.close()
