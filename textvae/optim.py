"""The optimiser: one optax `GradientTransformation` that the train state holds
and the train step runs (`state.tx.update`, then `optax.apply_updates`).

`make_optimizer(train_config)`:
  - global-norm gradient clipping over ALL parameters (`grad_clip`, <= 0: off;
    the authors' `clip_grad_norm_(vae.parameters(), 5)`);
  - `optimizer` = 'adam' (b1, b2, eps as optax.adam) or 'sgd' (plain SGD, as the
    papers' PTB/Yahoo/Yelp code), with one state per top-level part of the
    parameters ('encoder', 'decoder'), so that aggressive training (He et al.
    2019) updates one part alone: `tx.update(grads, state, params,
    parts=('encoder',))` leaves the other parts' parameters and states as they
    are (their updates are None);
  - the learning rate multiplied by the scale of optax's own
    `optax.contrib.reduce_on_plateau` state, which only `observe_validation`
    changes (once per validation, with the validation loss), never the steps:
    `config.train.lr_schedule` = 'constant' | 'plateau' (halve on a plateau of
    `patience` validations, at most `max_decays` times; training stops after
    the last one, as the authors' code: `if decay_cnt == max_decay: break`).

Adam is computed in one elementwise expression per parameter of (grad, mu, nu)
with the clipping factor as a scalar: written as optax's chain of
clip_by_global_norm and adam, XLA on CPU materialised the clipped gradients and
the updates in extra passes, 18-19.5 ms against 7.5-8 ms on the 9M parameters
of the svae model (README, speed section). Its arithmetic and state per part
are optax.adam's (tests/test_optim.py checks both).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from optax.contrib import reduce_on_plateau

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "plateau")


class OptimizerState(NamedTuple):
  parts: dict     # {part: optax.adam's state | ()} per top-level parameter part
  plateau: optax.contrib.ReduceLROnPlateauState


def clip_factor(grads, max_norm: float):
  """min(1, max_norm / global norm) (1 when max_norm <= 0), as
  optax.clip_by_global_norm."""
  if max_norm <= 0:
    return jnp.ones([], jnp.float32)
  norm = optax.global_norm(grads)
  return jnp.where(norm < max_norm, 1.0, max_norm / norm)


def _adam_updates(grads, adam_state, *, learning_rate, b1, b2, eps, scale):
  """optax.adam's update of `grads * scale`, each leaf in one expression."""
  count = optax.safe_increment(adam_state.count)
  t = count.astype(jnp.float32)
  c1 = 1.0 - b1 ** t
  c2 = 1.0 - b2 ** t

  def leaf(g, m, v):
    g = g * scale
    m = b1 * m + (1.0 - b1) * g
    v = b2 * v + (1.0 - b2) * g * g
    return -(learning_rate * (m / c1) / (jnp.sqrt(v / c2) + eps)), m, v

  flat_g, treedef = jax.tree.flatten(grads)
  out = [leaf(g, m, v) for g, m, v in zip(
      flat_g, treedef.flatten_up_to(adam_state.mu), treedef.flatten_up_to(adam_state.nu))]
  updates, mu, nu = (treedef.unflatten([o[i] for o in out]) for i in range(3))
  return updates, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)


def _schedule(train_config):
  s = train_config.get("lr_schedule", None)
  return s if s is not None and s.get("name", "constant") != "constant" else None


def plateau_transformation(train_config) -> optax.GradientTransformationExtraArgs:
  """optax's reduce_on_plateau with the config's factor and patience."""
  s = _schedule(train_config)
  if s is None:  # never observed: its scale stays 1
    return reduce_on_plateau()
  return reduce_on_plateau(factor=s.factor, patience=s.patience, rtol=s.rtol, atol=0.0,
                           cooldown=0)


def make_optimizer(train_config) -> optax.GradientTransformationExtraArgs:
  kind = train_config.get("optimizer", "adam")
  if kind not in OPTIMIZERS:
    raise ValueError(f"config.train.optimizer={kind!r}: expected one of {OPTIMIZERS}")
  b1, b2 = train_config.adam_b1, train_config.adam_b2
  adam = optax.adam(train_config.learning_rate, b1=b1, b2=b2)  # its state only
  plateau = plateau_transformation(train_config)

  def init_part(p):
    return adam.init(p) if kind == "adam" else ()

  def init(params):
    return OptimizerState({part: init_part(p) for part, p in params.items()},
                          plateau.init(params))

  def update(grads, state, params=None, *, parts=None, **extra_args):
    del params, extra_args
    scale = clip_factor(grads, train_config.grad_clip)
    lr = train_config.learning_rate * state.plateau.scale
    updates, new_parts = {}, dict(state.parts)
    for part, g in grads.items():
      if parts is not None and part not in parts:
        updates[part] = None
        continue
      if kind == "adam":
        # optax.adam's state is (ScaleByAdamState, EmptyState) per part.
        u, adam_state = _adam_updates(g, state.parts[part][0], learning_rate=lr, b1=b1,
                                      b2=b2, eps=1e-8, scale=scale)
        new_parts[part] = (adam_state,) + tuple(state.parts[part][1:])
      else:
        u = jax.tree.map(lambda x: -(lr * (x * scale)), g)
      updates[part] = u
    return updates, state._replace(parts=new_parts)

  return optax.GradientTransformationExtraArgs(init, update)


def apply(tx, params, grads, opt_state, parts=None):
  """`tx.update` then `optax.apply_updates` (to the updated parts): (new params,
  new optimizer state)."""
  updates, opt_state = tx.update(grads, opt_state, params, parts=parts)
  return {part: p if updates[part] is None else optax.apply_updates(p, updates[part])
          for part, p in params.items()}, opt_state


def reset_part(train_config, opt_state: OptimizerState, part: str, params_part):
  """A fresh optimizer state for one part (its parameters re-initialised)."""
  tx = make_optimizer(train_config)
  fresh = tx.init({part: params_part})
  return opt_state._replace(parts=dict(opt_state.parts, **{part: fresh.parts[part]}))


def observe_validation(train_config, opt_state: OptimizerState, value: float):
  """Feeds one validation loss (lower is better) to the plateau schedule:
  returns (new optimizer state, whether the learning rate was just reduced).
  A no-op for the constant schedule and before `lr_schedule.start_step`
  (checked by the caller)."""
  if _schedule(train_config) is None:
    return opt_state, False
  plateau = plateau_transformation(train_config)
  _, new = plateau.update(jnp.zeros([]), opt_state.plateau, value=jnp.asarray(value))
  new = jax.device_get(new)
  decayed = float(new.scale) < float(jax.device_get(opt_state.plateau.scale))
  return opt_state._replace(plateau=type(opt_state.plateau)(*new)), decayed


def num_decays(train_config, opt_state: OptimizerState) -> int:
  """How many times the plateau schedule has reduced the learning rate."""
  s = _schedule(train_config)
  if s is None:
    return 0
  scale = float(jax.device_get(opt_state.plateau.scale))
  return int(round(math.log(scale) / math.log(s.factor))) if scale > 0 else 0


def schedule_finished(train_config, opt_state: OptimizerState) -> bool:
  """True after the plateau schedule's last decay (`max_decays`)."""
  s = _schedule(train_config)
  return s is not None and s.max_decays > 0 and num_decays(train_config, opt_state) >= s.max_decays


def learning_rate(train_config, opt_state: OptimizerState) -> float:
  return float(train_config.learning_rate * jax.device_get(opt_state.plateau.scale))
