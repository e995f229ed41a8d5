"""Aggressive inference-network training (He et al. 2019, "Lagging inference
networks").

Before each outer step, encoder-only steps (the first on the outer step's
batch, as the authors' text.py; the rest on fresh batches from a second,
independent iterator) until the loss per token over a window of steps stops
decreasing; then the outer step updates the decoder only. It is switched off
at the first validation whose MI does not increase. The switch, the last MI
and the second iterator are saved in the checkpoint for exact resume.

config.train.aggressive: enabled, window, max_inner_steps.
"""

from __future__ import annotations

import functools
import math

from absl import logging
import jax
from jax import lax
import numpy as np

from textvae import objectives
from textvae import parallel
from textvae import steps
from textvae.hooks import base


def create(config, ctx: base.Context):
  a = config.train.get("aggressive", None)
  return Aggressive(config, ctx) if a is not None and a.enabled else None


def inner_key(train_key):
  """The key of the encoder-only steps (distinct from every
  fold_in(train_key, step) of the outer steps)."""
  return jax.random.split(train_key)[1]


def encoder_step(state: steps.TrainState, batch, key, inner_index, *, train_config):
  """One encoder-only update on a fresh batch: the same objective and beta as
  the outer step `state.step`; noise from `step_rngs(fold_in(key,
  state.step), inner_index)`; `state.step` unchanged. Returns the new state
  and psums of the loss summed over sentences and of the token count (the
  inner loop's stopping rule compares loss per token)."""
  weights = batch["weights_B"]
  rngs = steps.step_rngs(jax.random.fold_in(key, state.step), inner_index)
  beta = objectives.train_kl_weight(state.step, train_config)
  loss, terms, batch_stats, grads = steps.loss_and_grads(state, batch, rngs, beta, train_config)
  new_state = steps.update_parts(state, grads, ("encoder",), count_step=False)
  new_state = new_state.replace(batch_stats=batch_stats)
  sums = steps.batch_sums(terms, weights)
  loss_sum = loss * sums["num_sentences"]
  return new_state, {"loss_sum": lax.psum(loss_sum, steps.AXIS),
                     "num_tokens": lax.psum(sums["num_tokens"], steps.AXIS),
                     "kl": lax.psum(sums["kl"], steps.AXIS),
                     "num_sentences": lax.psum(sums["num_sentences"], steps.AXIS)}


def pmap_encoder_step(train_config, devices=None):
  """`encoder_step` pmapped like `steps.pmap_train_step`; the key and the
  inner index are unmapped too."""
  return jax.pmap(functools.partial(encoder_step, train_config=train_config),
                  axis_name=steps.AXIS, in_axes=(None, 0, None, None), out_axes=(None, 0),
                  donate_argnums=steps.donate_state(devices), devices=devices)


def inner_loop(run_step, *, window: int, max_steps: int) -> int:
  """Encoder-only steps until the objective stops improving. `run_step(i)`
  runs inner step i (0-based) and returns (loss summed over sentences, number
  of tokens), as arrays or numbers; they are read only at the end of each
  window, so the steps of a window are dispatched without waiting. After
  every `window` steps the loss per token over that window is compared with
  the previous window's; the loop stops when it did not decrease (the
  authors' text.py: `if burn_pre_loss - burn_cur_loss < 0: break`, i.e. it
  continues on ties) or after `max_steps` steps. Returns the number of inner
  steps taken."""
  prev = math.inf
  pending = []
  for i in range(max_steps):
    pending.append(run_step(i))
    if (i + 1) % window == 0:
      loss = sum(float(np.asarray(l).reshape(-1)[0]) for l, _ in pending)
      tokens = sum(float(np.asarray(t).reshape(-1)[0]) for _, t in pending)
      cur = loss / max(tokens, 1.0)
      pending = []
      if prev - cur < 0:
        return i + 1
      prev = cur
  return max_steps


def still_on(active: bool, prev_mi, valid_mi) -> bool:
  """Aggressive training stops at the first validation whose MI is not above
  the previous validation's (the first is compared with 0)."""
  if not active:
    return False
  return valid_mi > (0.0 if prev_mi is None else prev_mi)


class Aggressive(base.Hook):
  name = "aggressive"

  def __init__(self, config, ctx: base.Context):
    self.settings = config.train.aggressive
    self.active = True
    self.prev_mi = None
    self.inner_steps = []
    self.train_key = ctx.train_key
    self.inner_key = inner_key(ctx.train_key)
    self.inner_iter = iter(ctx.make_train_dataset(config.seed + 1))
    self.p_decoder_step = steps.pmap_train_step(config.train, parts=("decoder",))
    self.p_encoder_step = pmap_encoder_step(config.train)

  def train_step(self, step, state, batch):
    if not self.active:
      return None
    holder = [state]

    def run_step(i):
      b = batch if i == 0 else parallel.shard(next(self.inner_iter))
      holder[0], m = self.p_encoder_step(holder[0], b, self.inner_key, i)
      return m["loss_sum"], m["num_tokens"]

    self.inner_steps.append(inner_loop(run_step, window=self.settings.window,
                                       max_steps=self.settings.max_inner_steps))
    return self.p_decoder_step(holder[0], batch, self.train_key)

  def train_scalars(self):
    out = {"train/aggressive": float(self.active)}
    if self.inner_steps:
      out["train/inner_steps"] = float(np.mean(self.inner_steps))
    self.inner_steps = []
    return out

  def after_validation(self, step, state, valid):
    if self.active:
      self.active = still_on(True, self.prev_mi, valid["mi"])
      if not self.active:
        logging.info("Step %d: validation MI %.4f did not increase (previous %s): "
                     "aggressive training switched off", step, valid["mi"], self.prev_mi)
      self.prev_mi = float(valid["mi"])
    return state

  def meta(self):
    return {"active": self.active, "prev_mi": self.prev_mi,
            "inner_data": self.inner_iter.get_state()}

  def restore(self, meta):
    self.active, self.prev_mi = meta["active"], meta["prev_mi"]
    self.inner_iter.set_state(meta["inner_data"])
