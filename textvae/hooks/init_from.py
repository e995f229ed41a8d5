"""Starting from another run's trained modules (Li et al. 2019, "A surprisingly
effective fix": the VAE's encoder is the one of an autoencoder trained to
convergence in a run of its own, text_beta.py --beta 0, loaded with
text_anneal_fb.py --load_path --reset_dec).

config.train.init_from: `workdir` (a finished textvae run; '' = off),
`modules` (top-level parameter groups copied, e.g. ('encoder',)), `checkpoint`
('best': the model that run selected on validation data; or 'latest').

Before step 1 of a fresh run the listed modules' parameters (and batch-norm
statistics) are replaced by the source run's; everything else, the optimizer
state included, stays as initialised. Resume needs nothing: the copied values
are in every checkpoint. The source must share this run's vocabulary (the
encoder's embedding rows are token ids) and the modules' shapes.
"""

from __future__ import annotations

import os

from absl import logging
import jax

from textvae import errors
from textvae import restore
from textvae import steps
from textvae import workdir as workdir_lib
from textvae.hooks import base


def create(config, ctx: base.Context):
  s = config.train.get("init_from", None)
  return InitFrom(s, ctx) if s is not None and s.get("workdir", "") else None


def copy_modules(state: steps.TrainState, source, modules) -> steps.TrainState:
  """`state` (unreplicated) with the `modules` of `source.variables` (a
  restore.Trained); the optimizer state is left as it is."""
  src_params, src_stats = source.variables["params"], source.variables.get("batch_stats", {})
  params, stats = dict(state.params), dict(state.batch_stats or {})
  for name in modules:
    where = f"config.train.init_from.modules: {name!r}"
    if name not in params:
      raise errors.ConfigError(f"{where} is not a parameter group of this model "
                               f"({', '.join(sorted(params))})")
    if name not in src_params:
      raise errors.WorkdirError(f"{where}: {source.workdir} has no such parameter group "
                                f"({', '.join(sorted(src_params))})")
    _check_shapes(params[name], src_params[name], f"params/{name}", source.workdir)
    params[name] = src_params[name]
    if name in stats:
      if name not in src_stats:
        raise errors.WorkdirError(f"{where}: {source.workdir} has no batch statistics for it "
                                  "(its model has no batch norm there)")
      _check_shapes(stats[name], src_stats[name], f"batch_stats/{name}", source.workdir)
      stats[name] = src_stats[name]
  return state.replace(params=params, batch_stats=stats or state.batch_stats)


def _check_shapes(ours, theirs, prefix: str, source_workdir: str) -> None:
  a = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(ours)}
  b = {jax.tree_util.keystr(p): x.shape for p, x in jax.tree_util.tree_leaves_with_path(theirs)}
  diffs = [f"{prefix}{k}: this run {a.get(k)}, {source_workdir} {b.get(k)}"
           for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
  if diffs:
    raise errors.WorkdirError("config.train.init_from.workdir: the modules differ in shape "
                              "(another model config?):\n  " + "\n  ".join(diffs))


class InitFrom(base.Hook):
  name = "init_from"

  def __init__(self, settings, ctx: base.Context):
    self.workdir = os.path.abspath(settings.workdir)
    self.modules = tuple(settings.modules)
    self.checkpoint = settings.checkpoint
    self.vocab_tokens = ctx.vocab_tokens
    self.source = None  # {'workdir', 'step', 'checkpoint'} once copied

  def before_step(self, step, state):
    if step != 1:
      return state
    if not os.path.exists(os.path.join(self.workdir, "final_metrics.json")):
      raise errors.MissingFileError(
          f"config.train.init_from.workdir={self.workdir}: no final_metrics.json there; "
          "train that run to its end first (a run still training has no final model)")
    source = restore.load(self.workdir, checkpoint=self.checkpoint)
    if list(source.vocab.tokens) != list(self.vocab_tokens):
      raise errors.WorkdirError(
          f"config.train.init_from.workdir={self.workdir}: its vocab.json "
          f"({workdir_lib.vocab_digest(source.vocab.tokens)}, {len(source.vocab)} tokens) is "
          f"not this run's ({workdir_lib.vocab_digest(self.vocab_tokens)}, "
          f"{len(self.vocab_tokens)} tokens); both runs must read the same corpus")
    state = copy_modules(steps.local_state(state), source, self.modules)
    self.source = {"workdir": self.workdir, "step": source.step,
                   "checkpoint": source.checkpoint}
    logging.info("Step %d: %s initialised from %s (%s checkpoint, step %d)", step,
                 ", ".join(self.modules), self.workdir, source.checkpoint, source.step)
    return steps.place_state(state)

  def meta(self):
    return self.source

  def restore(self, meta):
    self.source = meta
