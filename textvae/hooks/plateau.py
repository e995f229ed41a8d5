"""Learning-rate reductions on validation plateaus, as the papers' code does
(e.g. bohanli/vae-pretraining-encoder's lm.py and text_anneal_fb.py).

At every validation from `lr_schedule.start_step` on, the early-stopping
metric feeds optax's reduce_on_plateau state (held in the optimizer state,
optim.py, so it is checkpointed with it); after a reduction training restarts
from the best validation checkpoint when `lr_schedule.restore_best`; training
stops after the `max_decays`-th reduction.

config.train.lr_schedule: name='plateau', factor, patience, rtol, max_decays,
start_step, restore_best.
"""

from __future__ import annotations

from absl import logging

from textvae import early_stopping
from textvae import optim
from textvae import steps
from textvae.hooks import base


def create(config, ctx: base.Context):
  s = config.train.get("lr_schedule", None)
  return Plateau(config, ctx) if s is not None and s.get("name", "constant") == "plateau" else None


class Plateau(base.Hook):
  name = "plateau"

  def __init__(self, config, ctx: base.Context):
    self.train_config = config.train
    self.schedule = config.train.lr_schedule
    self.tracker = ctx.tracker
    self.best_ckpt = ctx.best_checkpointer
    self.learning_rate = None  # logged after each validation

  def after_validation(self, step, state, valid):
    if step >= self.schedule.start_step:
      state = self._observe(step, state, valid)
    self.learning_rate = optim.learning_rate(self.train_config,
                                             steps.local_state(state).opt_state)
    return state

  def validation_scalars(self):
    return {"train/learning_rate": self.learning_rate}

  def _observe(self, step, state, valid):
    tracker, schedule = self.tracker, self.schedule
    value = float(valid[tracker.metric])
    if not early_stopping.LOWER_IS_BETTER[tracker.metric]:
      value = -value
    local = steps.local_state(state)
    opt_state, decayed = optim.observe_validation(self.train_config, local.opt_state, value)
    if decayed:
      logging.info("Step %d: validation %s has not improved for %d validations; learning "
                   "rate reduced to %g (reduction %d of %d)", step, tracker.metric,
                   schedule.patience, optim.learning_rate(self.train_config, opt_state),
                   optim.num_decays(self.train_config, opt_state), schedule.max_decays)
      if schedule.restore_best and tracker.best_step in self.best_ckpt.all_steps():
        self.best_ckpt.wait_until_finished()
        best_state, _, _ = self.best_ckpt.restore(tracker.best_step, local)
        local = best_state.replace(step=local.step)
        opt_state = local.opt_state._replace(plateau=opt_state.plateau)
        logging.info("Step %d: restarting from the best validation checkpoint (step %d)",
                     step, tracker.best_step)
    return steps.place_state(local.replace(opt_state=opt_state))

  def stop_reason(self, state):
    if optim.schedule_finished(self.train_config, steps.local_state(state).opt_state):
      return (f"the learning rate was reduced {self.schedule.max_decays} times (best "
              f"{self.tracker.metric} {self.tracker.best_value:.4f} at step "
              f"{self.tracker.best_step})")
    return None
