"""The pmapped train/eval steps: padding, PRNG streams, 1 device vs 4 devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from configs import ptb_lstm
from textvae import checkpoints
from textvae import models
from textvae import objectives
from textvae import steps
from textvae.data import pipeline


def _train_config():
  return ml_collections.ConfigDict(dict(
      learning_rate=1e-2, grad_clip=5.0, adam_b1=0.9, adam_b2=0.999,
      kl_schedule=dict(name="linear", max_weight=1.0, warmup_steps=4, logistic_k=0.0,
                       logistic_x0=0, num_cycles=1, cycle_steps=1, ratio=1.0)))


def _model():
  return models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4,
                        word_dropout=0.3)


def _batch(rng, n=8, pad_multiple=1):
  rows = [rng.integers(4, 20, size=rng.integers(2, 9)).astype(np.int32) for _ in range(n)]
  rows = [np.append(r, 2).astype(np.int32) for r in rows]
  return rows, pipeline.collate(rows, np.ones(n), pad_multiple)


def test_padding_does_not_change_terms():
  model = _model()
  rows, tight = _batch(np.random.default_rng(0))
  _, loose = _batch(np.random.default_rng(0), pad_multiple=16)
  assert loose["tokens_BxT"].shape[1] == 16 > tight["tokens_BxT"].shape[1]
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                      tight["tokens_BxT"], tight["inputs_BxT"])["params"]
  rngs = {"latent": jax.random.key(5), "dropout": jax.random.key(6)}

  def terms(batch):
    out = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                      rngs=rngs)
    return objectives.elbo_terms(out, batch["tokens_BxT"])

  a, b = terms(tight), terms(loose)
  for k in ("recon_B", "kl_B", "num_tokens_B"):
    np.testing.assert_allclose(a[k], b[k], rtol=1e-5)
  np.testing.assert_array_equal(a["num_tokens_B"], [len(r) for r in rows])


def _run_steps(num_devices, batches, num_steps=3):
  devices = jax.devices()[:num_devices]
  model = _model()
  state = steps.create_train_state(model, jax.random.key(0), _train_config())
  p_step = steps.pmap_train_step(_train_config(), devices=devices)
  state = steps.place_state(state, devices)
  losses, grad_norms = [], []
  for batch in batches[:num_steps]:
    sharded = jax.tree_util.tree_map(
        lambda x: x.reshape((num_devices, -1) + x.shape[1:]), batch)
    state, metrics = p_step(state, sharded, jax.random.key(42))
    losses.append(float(metrics["loss"][0]))
    grad_norms.append(float(metrics["grad_norm"][0]))
  return losses, steps.local_state(state).params, grad_norms


def test_four_devices_equal_one_device():
  assert jax.device_count() >= 4, "conftest sets 4 host devices"
  rng = np.random.default_rng(1)
  # One padded length: one compilation per device count.
  batches = [_batch(rng, n=8, pad_multiple=10)[1] for _ in range(3)]
  losses1, params1, norms1 = _run_steps(1, batches)
  losses4, params4, norms4 = _run_steps(4, batches)
  np.testing.assert_allclose(losses1, losses4, rtol=1e-5, atol=1e-5)
  # Adam and active clipping hide a constant gradient scale from the losses
  # and parameters (gradients summed, not averaged, over devices): the norm
  # of the gradient the optimizer receives does not.
  np.testing.assert_allclose(norms1, norms4, rtol=1e-5)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5), params1, params4)
  assert losses1[0] != losses1[1]


def test_same_seed_same_loss_and_steps_draw_different_noise():
  rng = np.random.default_rng(2)
  batch = _batch(rng, n=8)[1]
  # Same batch at every step: differences between steps come from the noise only.
  losses_a, _, _ = _run_steps(1, [batch] * 2, num_steps=2)
  losses_b, _, _ = _run_steps(1, [batch] * 2, num_steps=2)
  assert losses_a == losses_b
  model = _model()
  params = model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                      batch["tokens_BxT"], batch["inputs_BxT"])["params"]
  key = jax.random.key(42)

  def z_at(step):
    out = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                      deterministic=False, rngs=steps.step_rngs(key, step))
    return np.asarray(out["z_BxZ"])

  np.testing.assert_array_equal(z_at(3), z_at(3))
  assert np.abs(z_at(3) - z_at(4)).min() > 0  # every sentence's noise differs
  # The latent and dropout streams are distinct keys.
  r = steps.step_rngs(key, 3)
  assert not np.array_equal(jax.random.key_data(r["latent"]), jax.random.key_data(r["dropout"]))


def test_abstract_train_state_has_the_initialised_structure_and_computes_nothing():
  """What restore targets instead of initialising: the same tree, shapes and
  dtypes as create_train_state's, for GRU and LSTM cells and Adam and SGD."""
  for cell, optimizer in (("gru", "adam"), ("lstm", "sgd")):
    model = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4, cell=cell)
    config = _train_config()
    config.optimizer = optimizer
    real = steps.create_train_state(model, jax.random.key(0), config)
    abstract = steps.abstract_train_state(model, config)
    assert (jax.tree_util.tree_structure(abstract.params)
            == jax.tree_util.tree_structure(real.params))
    for part in ("params", "opt_state", "batch_stats"):
      got, want = getattr(abstract, part), getattr(real, part)
      assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want), part
      for a, r in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        assert isinstance(a, jax.ShapeDtypeStruct)  # nothing was computed
        assert (a.shape, a.dtype) == (np.shape(r), jax.numpy.result_type(r)), part


def _leaves_identical(got, want):
  """Same tree, and each leaf the same type, dtype and bits."""
  assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
  for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    assert type(a) is type(b)
    assert np.asarray(a).dtype == np.asarray(b).dtype
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _small(variant, **model_fields):
  config = ptb_lstm.get_config(variant).model
  config.embed_dim, config.hidden_dim, config.latent_dim = 8, 16, 4
  config.update(model_fields)
  return config


def test_init_variables_equal_flax_init_bit_for_bit():
  """init_variables runs only the initialisers (lazy_init); its variables must
  be Flax's `model.init`'s, which also runs the forward pass: GRU and LSTM VAEs,
  the papers' uniform initialisation, BN-VAE's batch statistics, the LM and a
  conditional VAE."""
  tokens = jnp.full((2, 3), 4, jnp.int32)
  cases = [(models.create_model(_small("vae", cell="gru", param_init="default"), 20), {}),
           (models.create_model(_small("vae"), 20), {}),
           (models.create_model(_small("bnvae"), 20), {}),
           (models.create_model(_small("lm"), 20), {}),
           (models.create_model(_small("vae", condition="label"), 20, 3),
            {"labels_B": jnp.zeros((2,), jnp.int32)})]
  for i, (model, labels) in enumerate(cases):
    key = jax.random.key(7)
    k_params, k_latent, k_dropout = jax.random.split(key, 3)
    want = model.init({"params": k_params, "latent": k_latent, "dropout": k_dropout},
                      tokens, tokens, **labels)
    got = steps.init_variables(model, key)
    assert ("batch_stats" in got) == (i == 2)  # only BN-VAE keeps running statistics
    _leaves_identical(got, want)


def test_restore_into_the_abstract_state_equals_restore_into_an_initialised_one(tmp_path):
  """Training resumes into steps.abstract_train_state instead of an initialised
  state: both must give the same state (its step a Python int, every array the
  same bits), with SGD and a plateau schedule's state as well as Adam's."""
  for optimizer in ("adam", "sgd"):
    config = ptb_lstm.get_config("vae").train if optimizer == "sgd" else _train_config()
    model = models.create_model(_small("vae"), 20)
    state = steps.create_train_state(model, jax.random.key(1), config)
    grads = jax.tree_util.tree_map(jnp.ones_like, state.params)
    state = steps.update_parts(state, grads, None, count_step=True)
    ckpt = checkpoints.Checkpointer(str(tmp_path / optimizer))
    ckpt.save(1, state, {"position": 3}, {"step": 1})
    from_init, _, _ = ckpt.restore(1, steps.create_train_state(model, jax.random.key(0), config))
    from_shapes, data, _ = ckpt.restore(1, steps.abstract_train_state(model, config))
    ckpt.close()
    assert from_shapes.step == 1 and type(from_shapes.step) is int and data == {"position": 3}
    fields = lambda s: (s.step, s.params, s.opt_state, s.batch_stats)  # tx: a new object each
    _leaves_identical(fields(from_shapes), fields(from_init))
    _leaves_identical(from_shapes.params, state.params)
