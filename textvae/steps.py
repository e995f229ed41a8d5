"""Pure per-device train and eval steps, mapped with `jax.pmap(axis_name='batch')`.

PRNG (ARCHITECTURE.md, convention 5): the step key is `fold_in(train_key, step)`,
split into the named streams 'latent' (reparameterisation noise) and 'dropout'
(word and embedding dropout). The device enters through the sentence's global
row index, `axis_index('batch') * rows_per_device + row`, folded into each
stream per sentence (see `models.row_keys`): a global batch therefore gets the
same noise on one device or many, and a resumed run the same noise as an
uninterrupted one.
"""

from __future__ import annotations

import functools

import flax
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import optax

from textvae import objectives

AXIS = "batch"


class TrainState(train_state.TrainState):
  """Flax TrainState: step, params, optimiser state (apply_fn and tx are static)."""


def make_optimizer(train_config) -> optax.GradientTransformation:
  """Adam with global-norm gradient clipping (clip <= 0 disables clipping)."""
  parts = []
  if train_config.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(train_config.grad_clip))
  parts.append(optax.adam(train_config.learning_rate, b1=train_config.adam_b1,
                          b2=train_config.adam_b2))
  return optax.chain(*parts)


def create_train_state(model, init_key, train_config) -> TrainState:
  tokens = jnp.full((2, 3), 4, jnp.int32)
  k_params, k_latent, k_dropout = jax.random.split(init_key, 3)
  variables = model.init({"params": k_params, "latent": k_latent, "dropout": k_dropout},
                         tokens, tokens)
  return TrainState.create(apply_fn=model.apply, params=variables["params"],
                           tx=make_optimizer(train_config))


def step_rngs(key, step):
  """The named streams for one step: {'latent', 'dropout'}."""
  latent, dropout = jax.random.split(jax.random.fold_in(key, step))
  return {"latent": latent, "dropout": dropout}


def global_row_ids(batch_size: int):
  """The rows' indices in the global batch (device-major), inside pmap."""
  return lax.axis_index(AXIS) * batch_size + jnp.arange(batch_size)


def _sums(terms, weights_B):
  """Sums over this device's sentences, the numerators of every reported figure."""
  return {"num_sentences": jnp.sum(weights_B),
          "num_tokens": jnp.sum(weights_B * terms["num_tokens_B"]),
          "recon": jnp.sum(weights_B * terms["recon_B"]),
          "kl": jnp.sum(weights_B * terms["kl_B"]),
          "kl_per_dim": jnp.sum(weights_B[:, None] * terms["kl_BxZ"], axis=0)}


def train_step(state: TrainState, batch, train_key, *, kl_schedule):
  """One optimiser step on this device's share of the global batch."""
  tokens, inputs, weights = batch["tokens_BxT"], batch["inputs_BxT"], batch["weights_B"]
  rngs = step_rngs(train_key, state.step)
  row_ids = global_row_ids(tokens.shape[0])
  beta = objectives.kl_weight(state.step, kl_schedule)

  def loss_fn(params):
    outputs = state.apply_fn({"params": params}, tokens, inputs, deterministic=False,
                             row_ids_B=row_ids, rngs=rngs)
    terms = objectives.elbo_terms(outputs, tokens)
    return objectives.training_loss(terms, weights, beta), terms

  (loss, terms), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = lax.pmean(grads, AXIS)
  new_state = state.apply_gradients(grads=grads)
  metrics = lax.psum(_sums(terms, weights), AXIS)
  metrics.update(loss=lax.pmean(loss, AXIS), kl_weight=beta,
                 grad_norm=optax.global_norm(grads))
  return new_state, metrics


def pmap_train_step(kl_schedule, devices=None):
  """`train_step` pmapped over the local devices (or `devices`); the state is donated."""
  return jax.pmap(functools.partial(train_step, kl_schedule=kl_schedule),
                  axis_name=AXIS, in_axes=(0, 0, None), donate_argnums=(0,),
                  devices=devices)


def replicate(tree, devices=None):
  return flax.jax_utils.replicate(tree, devices=devices)


def unreplicate(tree):
  """The first local replica, on one device. Reads that device's own shard
  rather than indexing `x[0]`, which compiles a copy to every local device (a
  collective) and hangs multi-process CPU runs (gloo)."""
  return jax.tree_util.tree_map(
      lambda x: x.addressable_data(0)[0] if isinstance(x, jax.Array) else x[0], tree)
