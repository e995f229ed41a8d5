"""The interface between the training loop and its hooks.

Every method has a default that does nothing, so a hook implements only the
moments it acts at. States are the loop's (placed for the pmapped steps, see
steps.place_state); a hook that changes the state returns the new one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax


@dataclasses.dataclass(frozen=True)
class Context:
  """What hooks may use besides the config."""
  model: Any
  init_key: jax.Array
  train_key: jax.Array
  make_train_dataset: Callable[[int], Any]   # seed -> a grain dataset of training batches
  best_checkpointer: Any                     # checkpoints.Checkpointer of workdir/best
  tracker: Any                               # early_stopping.Tracker
  vocab_tokens: tuple = ()                   # this run's vocabulary, in id order


class Hook:
  """One extension of the training loop. `name` keys its entry in the
  checkpoint's metadata (`meta`/`restore`)."""
  name = ""

  def before_step(self, step: int, state):
    """Before step `step` (1-based) fetches its batch."""
    return state

  def train_step(self, step: int, state, batch):
    """Runs step `step` instead of the loop's train step: (state, metrics), or
    None to leave the step to the loop."""
    return None

  def train_scalars(self) -> dict:
    """Scalars logged with the training window ending now (then reset)."""
    return {}

  def after_validation(self, step: int, state, valid: dict):
    """After the validation at `step` (and the best-checkpoint save)."""
    return state

  def validation_scalars(self) -> dict:
    """Scalars logged after `after_validation`."""
    return {}

  def stop_reason(self, state) -> str | None:
    """Why training must stop now, or None."""
    return None

  def meta(self) -> dict | None:
    """Host-side state for exact resume, saved in each checkpoint's metadata."""
    return None

  def restore(self, meta: dict) -> None:
    """Restores what `meta` returned."""


class Hooks:
  """The enabled hooks, called in order."""

  def __init__(self, hooks: list[Hook]):
    self.hooks = list(hooks)

  def before_step(self, step, state):
    for h in self.hooks:
      state = h.before_step(step, state)
    return state

  def train_step(self, step, state, batch):
    for h in self.hooks:
      out = h.train_step(step, state, batch)
      if out is not None:
        return out
    return None

  def train_scalars(self) -> dict:
    return {k: v for h in self.hooks for k, v in h.train_scalars().items()}

  def after_validation(self, step, state, valid):
    for h in self.hooks:
      state = h.after_validation(step, state, valid)
    return state

  def validation_scalars(self) -> dict:
    return {k: v for h in self.hooks for k, v in h.validation_scalars().items()}

  def stop_reason(self, state) -> str | None:
    for h in self.hooks:
      reason = h.stop_reason(state)
      if reason:
        return reason
    return None

  def meta(self) -> dict:
    return {h.name: m for h in self.hooks if (m := h.meta()) is not None}

  def restore(self, meta: dict) -> None:
    for h in self.hooks:
      if h.name in meta:
        h.restore(meta[h.name])
