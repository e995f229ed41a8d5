"""Pure per-device train and eval steps, mapped with `jax.pmap(axis_name='batch')`.

PRNG (docs/design.md, "PRNG streams"): the step key is `fold_in(train_key, step)`,
split into the named streams 'latent' (reparameterisation noise) and 'dropout'
(word and embedding dropout). The device enters through the sentence's global
row index, `axis_index('batch') * rows_per_device + row`, folded into each
stream per sentence (see `models.row_keys`): a global batch therefore gets the
same noise on one device or many, and a resumed run the same noise as an
uninterrupted one.
"""

from __future__ import annotations

import functools
from typing import Any

import flax
from flax.training import train_state
import jax
from jax import lax
import jax.numpy as jnp
import numpy as np
import optax

from textvae import models
from textvae import objectives
from textvae import optim
from textvae import parallel

AXIS = "batch"


class TrainState(train_state.TrainState):
  """Flax TrainState: step, params, optimiser state (apply_fn and tx are static),
  and the model's 'batch_stats' (BN-VAE running statistics; {} otherwise).

  `step` counts the joint / decoder updates only: the encoder-only inner steps
  of aggressive training (hooks/aggressive.py) leave it unchanged, so KL schedules and noise keys
  follow the outer step."""
  batch_stats: Any = None

  def variables(self) -> dict:
    """The variables for `model.apply` outside training (evaluation, decoding)."""
    return models.variables(self.params, self.batch_stats)


def update_parts(state: TrainState, grads, parts, *, count_step: bool):
  """Runs the state's optimizer (`state.tx`, `optim.make_optimizer`): gradients
  clipped by their global norm over ALL parts (as the authors'
  clip_grad_norm_(vae.parameters())), the update applied to `parts` only (None:
  every part); the other parts' parameters and optimizer states are unchanged."""
  params, opt_state = optim.apply(state.tx, state.params, grads, state.opt_state,
                                  tuple(parts) if parts is not None else None)
  step = state.step + 1 if count_step else state.step
  return state.replace(step=step, params=params, opt_state=opt_state)


def init_variables(model, init_key):
  """The model's initial variables. Only their initialisers run (Flax's
  `lazy_init`, the inputs given by shape): `model.init` would also evaluate the
  forward pass op by op, each op compiled on its own, seconds in every new
  process; the variables are the same, bit for bit."""
  tokens = jax.ShapeDtypeStruct((2, 3), jnp.int32)
  k_params, k_latent, k_dropout = jax.random.split(init_key, 3)
  rngs = {"params": k_params, "latent": k_latent, "dropout": k_dropout}
  if getattr(model, "num_labels", 0):  # a conditional VAE
    return model.lazy_init(rngs, tokens, tokens, labels_B=jax.ShapeDtypeStruct((2,), jnp.int32))
  return model.lazy_init(rngs, tokens, tokens)


def label_kwargs(batch) -> dict:
  """The model's `labels_B` argument when the batch holds labels (a
  conditional VAE's batches; see pipeline.collate), else nothing."""
  return {"labels_B": batch["labels_B"]} if "labels_B" in batch else {}


def create_train_state(model, init_key, train_config) -> TrainState:
  variables = init_variables(model, init_key)
  return TrainState.create(apply_fn=model.apply, params=dict(variables["params"]),
                           tx=optim.make_optimizer(train_config),
                           batch_stats=dict(variables.get("batch_stats", {})))


def abstract_train_state(model, train_config) -> TrainState:
  """The train state's structure, shapes and dtypes (jax.ShapeDtypeStruct
  leaves) without initialising it: the target of a restore. Initialising runs
  every parameter initialiser as its own small program, seconds of compiling
  in each new process that only wants a checkpoint's values. Its step is
  create_train_state's Python 0, so that a state restored into either target
  is the same (a restored step is then a Python int, not an array)."""
  state = jax.eval_shape(lambda: create_train_state(model, jax.random.key(0), train_config))
  return state.replace(step=0)


def step_rngs(key, step):
  """The named streams for one step: {'latent', 'dropout'}."""
  latent, dropout = jax.random.split(jax.random.fold_in(key, step))
  return {"latent": latent, "dropout": dropout}


def global_row_ids(batch_size: int):
  """The rows' indices in the global batch (device-major), inside pmap."""
  return lax.axis_index(AXIS) * batch_size + jnp.arange(batch_size)


def pmean_grads(grads):
  """`lax.pmean` over the devices; skipped when the step runs on one device,
  where XLA would still copy every gradient through a 1-replica all-reduce
  (about 3 ms per step for 9M parameters on the 2-core CPU)."""
  if lax.axis_size(AXIS) == 1:
    return grads
  return lax.pmean(grads, AXIS)


def batch_sums(terms, weights_B):
  """Sums over this device's sentences, the numerators of every reported figure."""
  return {"num_sentences": jnp.sum(weights_B),
          "num_tokens": jnp.sum(weights_B * terms["num_tokens_B"]),
          "recon": jnp.sum(weights_B * terms["recon_B"]),
          "kl": jnp.sum(weights_B * terms["kl_B"]),
          "kl_per_dim": jnp.sum(weights_B[:, None] * terms["kl_BxZ"], axis=0)}


def loss_and_grads(state, batch, rngs, beta, train_config):
  tokens, inputs, weights = batch["tokens_BxT"], batch["inputs_BxT"], batch["weights_B"]
  row_ids = global_row_ids(tokens.shape[0])
  token_weights = objectives.recon_token_weights(tokens, weights)
  labels = label_kwargs(batch)

  def loss_fn(params):
    outputs, mutated = state.apply_fn(
        models.variables(params, state.batch_stats), tokens, inputs, deterministic=False,
        row_ids_B=row_ids, token_weights_BxT=token_weights, rngs=rngs,
        mutable=["batch_stats"], **labels)
    terms = objectives.elbo_terms(outputs, tokens)
    loss = objectives.train_objective(terms, weights, beta, train_config, axis_name=AXIS)
    return loss, (terms, mutated.get("batch_stats", {}))

  (loss, (terms, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  grads = pmean_grads(grads)
  return loss, terms, dict(batch_stats) if batch_stats else state.batch_stats, grads


def train_step(state: TrainState, batch, train_key, *, train_config, parts=None):
  """One optimiser step on this device's share of the global batch.

  beta follows `objectives.train_kl_weight` (0 during autoencoder
  pretraining); the KL term has free bits when `train_config.free_bits.kind`
  is not 'none'. `parts=None` updates every parameter; `parts=('decoder',)`
  the decoder only (the outer step of hooks/aggressive.py)."""
  weights = batch["weights_B"]
  rngs = step_rngs(train_key, state.step)
  beta = objectives.train_kl_weight(state.step, train_config)
  loss, terms, batch_stats, grads = loss_and_grads(state, batch, rngs, beta, train_config)
  new_state = update_parts(state, grads, parts, count_step=True)
  new_state = new_state.replace(batch_stats=batch_stats)
  metrics = lax.psum(batch_sums(terms, weights), AXIS)
  metrics.update(loss=lax.pmean(loss, AXIS), kl_weight=beta,
                 grad_norm=optax.global_norm(grads))
  return new_state, metrics


def pmap_train_step(train_config, devices=None, parts=None):
  """`train_step` pmapped over the local devices (or `devices`).

  The state goes in unmapped (`in_axes=None`) and comes out unmapped
  (`out_axes=None`: every device holds the same state after the `pmean` of
  the gradients), and is donated; the batch is mapped over its leading device
  axis and the metrics come out with one (identical) row per device. With a
  leading device axis on the state instead, XLA reshapes every parameter and
  moment inside the step and then copies them before updating them in place:
  20 ms of a 80 ms step on the 2-core CPU (results/perf.md). Hold the state
  with `place_state` and read it with `local_state`. The state is donated
  except on CPU (`donate_state`).
  `parts=('decoder',)`: a decoder-only step (hooks/aggressive.py)."""
  return jax.pmap(functools.partial(train_step, train_config=train_config,
                                    parts=tuple(parts) if parts else None),
                  axis_name=AXIS, in_axes=(None, 0, None), out_axes=(None, 0),
                  donate_argnums=donate_state(devices), devices=devices)


def donate_state(devices=None) -> tuple:
  """`donate_argnums` of the steps: the state (argument 0) on GPU and TPU,
  where updating it in place halves the memory it needs; nothing on CPU,
  where XLA does not fuse each parameter's update into one loop, copies the
  donated moments before overwriting them, and the step was 7-17% slower
  (130 -> 120 ms for a [32, 24] batch; results/perf.md)."""
  devices = list(devices) if devices is not None else jax.local_devices()
  return () if all(d.platform == "cpu" for d in devices) else (0,)


def place_state(state, devices=None):
  """The train state as the pmapped steps take it: one copy per local device
  (`devices`, default all), as one array replicated over them. Always new
  buffers: the steps donate theirs, and `state` stays usable."""
  devices = list(devices) if devices is not None else jax.local_devices()
  mesh = jax.sharding.Mesh(np.asarray(devices), ("replica",))
  sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  return jax.tree_util.tree_map(
      lambda x: (jax.device_put(x, sharding, may_alias=False)
                 if isinstance(x, (jax.Array, np.ndarray)) else x),
      state)


def local_state(state):
  """The pmapped steps' state on one device (this process's first): for
  checkpoints, evaluation and decoding."""
  return parallel.first_local_copy(state)


def replicate(tree, devices=None):
  return flax.jax_utils.replicate(tree, devices=devices)


def unreplicate(tree):
  """The first local replica, on one device. Reads that device's own shard
  rather than indexing `x[0]`, which compiles a copy to every local device (a
  collective) and hangs multi-process CPU runs (gloo)."""
  return jax.tree_util.tree_map(
      lambda x: x.addressable_data(0)[0] if isinstance(x, jax.Array) else x[0], tree)
