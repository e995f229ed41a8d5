"""Posterior-collapse toolkit: free bits, BN-VAE, aggressive inference
training, autoencoder pretraining with a decoder reset, and their wiring into
`train_and_evaluate`. The KL schedules' values are tested in test_objectives.py."""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from textvae import checkpoints
from textvae import decoding
from textvae import models
from textvae import objectives
from textvae import steps
from textvae import train
from textvae.hooks import aggressive
from textvae.hooks import pretrain
from textvae.data import pipeline
from tests import helpers


def _fb(kind, target):
  return ml_collections.ConfigDict({"kind": kind, "target": target})


def _batch(rng, n=8, vocab=20):
  rows = [np.append(rng.integers(4, vocab, size=rng.integers(2, 9)), 2).astype(np.int32)
          for _ in range(n)]
  return pipeline.collate(rows, np.ones(n), 1)


# ---------------------------------------------------------------- free bits

def test_per_dim_free_bits_gradient_is_exactly_zero_below_threshold():
  # Batch-mean KL per dimension: dim 0 = 0.05, dim 1 = 1.0, dim 2 = 0.25 + 0.0013.
  mu = jnp.array([[np.sqrt(0.2), 2.0, 1.0], [0.0, 0.0, 0.0]], jnp.float32)
  logvar = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.1]], jnp.float32)
  w = jnp.ones(2)
  kl = objectives.gaussian_kl_per_dim(mu, logvar)
  means = np.asarray(kl.mean(0))
  np.testing.assert_allclose(means[:2], [0.05, 1.0], rtol=1e-6)
  cfg = _fb("per_dim", 3 * 0.2)  # lambda = 0.2: dim 0 below, dims 1 and 2 above

  def term(mu, logvar):
    return objectives.free_bits_kl(objectives.gaussian_kl_per_dim(mu, logvar), w, cfg)

  value = float(term(mu, logvar))
  np.testing.assert_allclose(value, 0.2 + means[1] + means[2], rtol=1e-6)
  g_mu, g_lv = jax.grad(term, argnums=(0, 1))(mu, logvar)
  # d/dmu of mean_b 0.5 mu^2 = mu / B; d/dlogvar = 0.5 (exp(logvar) - 1) / B.
  expect_mu = np.asarray(mu) / 2
  expect_lv = 0.5 * (np.exp(np.asarray(logvar)) - 1) / 2
  expect_mu[:, 0] = 0.0
  expect_lv[:, 0] = 0.0
  np.testing.assert_array_equal(np.asarray(g_mu)[:, 0], [0.0, 0.0])
  np.testing.assert_allclose(g_mu, expect_mu, rtol=1e-6, atol=0)
  np.testing.assert_allclose(g_lv, expect_lv, rtol=1e-6, atol=1e-8)
  assert float(g_mu[0, 1]) == 1.0  # 2.0 / 2

  # Batch-level: max(target, mean total KL); the total here is 0.05 + 1.0 + 0.2513 = 1.3013.
  below, above = _fb("batch", 2.0), _fb("batch", 1.0)
  f_below = lambda m: objectives.free_bits_kl(objectives.gaussian_kl_per_dim(m, logvar), w, below)
  f_above = lambda m: objectives.free_bits_kl(objectives.gaussian_kl_per_dim(m, logvar), w, above)
  assert float(f_below(mu)) == 2.0
  np.testing.assert_array_equal(jax.grad(f_below)(mu), np.zeros((2, 3)))
  np.testing.assert_allclose(jax.grad(f_above)(mu), np.asarray(mu) / 2, rtol=1e-6)


def test_per_sentence_dim_free_bits_thresholds_each_sentence():
  """The authors' `--fb 2`: the threshold holds each sentence's KL in each
  dimension, not the batch mean, so the two kinds differ on the same batch."""
  kl = jnp.array([[0.1, 0.5], [0.3, 0.05]], jnp.float32)
  w = jnp.ones(2)
  cfg = _fb("per_sentence_dim", 0.4)  # lambda = 0.2
  # Sentence 0: 0.2 (held) + 0.5; sentence 1: 0.3 + 0.2 (held); mean 0.6.
  np.testing.assert_allclose(float(objectives.free_bits_kl(kl, w, cfg)), 0.6, rtol=1e-6)
  g = jax.grad(lambda k: objectives.free_bits_kl(k, w, cfg))(kl)
  np.testing.assert_array_equal(np.asarray(g), [[0.0, 0.5], [0.5, 0.0]])
  # Batch means per dimension are 0.2 and 0.275: per_dim holds dimension 0 whole.
  np.testing.assert_allclose(float(objectives.free_bits_kl(kl, w, _fb("per_dim", 0.4))),
                             0.2 + 0.275, rtol=1e-6)
  # A zero-weight (padding) row neither counts nor gets a gradient.
  kl3 = jnp.concatenate([kl, jnp.array([[5.0, 5.0]])])
  w3 = jnp.array([1.0, 1.0, 0.0])
  np.testing.assert_allclose(float(objectives.free_bits_kl(kl3, w3, cfg)), 0.6, rtol=1e-6)
  g3 = jax.grad(lambda k: objectives.free_bits_kl(k, w3, cfg))(kl3)
  np.testing.assert_array_equal(np.asarray(g3)[2], [0.0, 0.0])


def test_free_bits_gradient_wrt_encoder_parameters():
  """Through a real encoder: the posterior layer's columns of a dimension under
  its threshold get exactly zero gradient from the KL term, the others the
  gradient of their plain batch-mean KL."""
  model = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=6)
  batch = _batch(np.random.default_rng(0))
  tokens = batch["tokens_BxT"]
  params = model.init({"params": jax.random.key(3), "latent": jax.random.key(1)},
                      tokens, batch["inputs_BxT"])["params"]
  w = jnp.ones(tokens.shape[0])

  def kl_of(p):
    mu, logvar = model.apply({"params": p}, tokens, method="encode")
    return objectives.gaussian_kl_per_dim(mu, logvar)

  means = np.asarray(kl_of(params).mean(0))
  lam = float(np.median(means))
  below = means <= lam
  assert 0 < below.sum() < 6
  cfg = _fb("per_dim", lam * 6)
  grads = jax.grad(lambda p: objectives.free_bits_kl(kl_of(p), w, cfg))(params)
  kernel = np.asarray(grads["encoder"]["posterior"]["kernel"])  # [H, 2Z]: mu | logvar
  bias = np.asarray(grads["encoder"]["posterior"]["bias"])
  for j in range(6):
    cols = kernel[:, [j, 6 + j]]
    if below[j]:
      np.testing.assert_array_equal(cols, 0.0)
      assert bias[j] == 0.0 and bias[6 + j] == 0.0
    else:
      assert np.abs(cols).max() > 1e-6
  # Every encoder gradient equals that of the plain batch-mean KL of the dimensions above.
  active = jnp.asarray(~below, jnp.float32)
  ref = jax.grad(lambda p: jnp.sum(kl_of(p).mean(0) * active))(params)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9),
                         grads["encoder"], ref["encoder"])


def _train_config(free_bits):
  return ml_collections.ConfigDict(dict(
      learning_rate=1e-2, grad_clip=5.0, adam_b1=0.9, adam_b2=0.999, pretrain_steps=0,
      free_bits=free_bits,
      kl_schedule=dict(name="constant", max_weight=1.0, warmup_steps=0, logistic_k=0.0,
                       logistic_x0=0, num_cycles=1, cycle_steps=1, ratio=1.0)))


def _run(num_devices, model, cfg, batches):
  devices = jax.devices()[:num_devices]
  state = steps.place_state(steps.create_train_state(model, jax.random.key(0), cfg), devices)
  p_step = steps.pmap_train_step(cfg, devices=devices)
  losses = []
  for batch in batches:
    sharded = jax.tree_util.tree_map(lambda x: x.reshape((num_devices, -1) + x.shape[1:]), batch)
    state, metrics = p_step(state, sharded, jax.random.key(42))
    losses.append(float(metrics["loss"][0]))
  return losses, steps.local_state(state)


@pytest.mark.parametrize("kind", ["per_dim", "per_sentence_dim"])
def test_free_bits_and_bn_four_devices_equal_one_device(kind):
  """Free bits (per_dim: pmean of the per-dimension means) and BN-VAE
  (batch statistics over the 'batch' axis): a 4-device step is the 1-device step."""
  model = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4,
                         bn_gamma=0.5, bn_axis_name="batch")
  rng = np.random.default_rng(1)
  batches = [_batch(rng) for _ in range(3)]
  # lambda between the dimensions' initial batch-mean KLs, so that both sides occur.
  probe = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4, bn_gamma=0.5)
  variables = steps.init_variables(probe, jax.random.key(0))
  (mu, logvar), _ = probe.apply(variables, batches[0]["tokens_BxT"], False, method="encode",
                                mutable=["batch_stats"])
  means = np.sort(np.asarray(objectives.gaussian_kl_per_dim(mu, logvar).mean(0)))
  cfg = _train_config(_fb(kind, 4 * float(means[1] + means[2]) / 2))
  losses1, s1 = _run(1, model, cfg, batches)
  helpers.assert_same_training((losses1, s1), _run(4, model, cfg, batches))
  assert np.abs(np.asarray(s1.batch_stats["encoder"]["mu_bn"]["mean"])).max() > 0


# ---------------------------------------------------------------- BN-VAE

def test_bn_vae_expected_kl_is_at_least_the_gamma_bound():
  gamma, Z = 0.6, 8
  model = models.TextVAE(vocab_size=30, embed_dim=8, hidden_dim=16, latent_dim=Z,
                         bn_gamma=gamma)
  batch = _batch(np.random.default_rng(4), n=16, vocab=30)
  tokens = batch["tokens_BxT"]
  variables = steps.init_variables(model, jax.random.key(5))
  assert variables["params"]["encoder"]["mu_bn"]["shift"].shape == (Z,)
  shift = jnp.linspace(-0.3, 0.2, Z)
  params = jax.tree_util.tree_map(lambda x: x, variables["params"])
  params["encoder"]["mu_bn"]["shift"] = shift
  # A larger spread of the raw means, so that v >> eps (the bound -> 0.5 Z gamma^2).
  params["encoder"]["posterior"]["kernel"] = 30.0 * params["encoder"]["posterior"]["kernel"]
  variables = {"params": params, "batch_stats": variables["batch_stats"]}
  (mu, logvar), state = model.apply(variables, tokens, False, method="encode",
                                    mutable=["batch_stats", "intermediates"],
                                    capture_intermediates=True)
  raw_mu = np.split(np.asarray(state["intermediates"]["encoder"]["posterior"]["__call__"][0]),
                    2, axis=-1)[0]
  v = raw_mu.var(axis=0)  # biased batch variance, as batch norm uses
  mu, logvar = np.asarray(mu, np.float64), np.asarray(logvar, np.float64)
  # The batch moments the normalisation imposes: mean = shift, var = gamma^2 v / (v + eps).
  np.testing.assert_allclose(mu.mean(0), shift, atol=1e-5)
  np.testing.assert_allclose((mu ** 2).mean(0), np.asarray(shift) ** 2 + gamma ** 2 * v / (v + 1e-5),
                             rtol=1e-4)
  kl = float(objectives.gaussian_kl_per_dim(mu, logvar).sum(-1).mean())
  bound = float(objectives.bn_kl_lower_bound(gamma, v))
  assert bound > 0.5 * Z * gamma ** 2 * 0.999  # v >> eps here: the bound is 0.5 Z gamma^2
  exact = 0.5 * np.sum((mu ** 2).mean(0)) + 0.5 * np.sum(
      (np.exp(logvar) - 1 - logvar).mean(0))
  np.testing.assert_allclose(kl, exact, rtol=1e-5)
  assert kl >= bound + 0.5 * float(np.sum(np.asarray(shift) ** 2)) - 1e-5
  # Running statistics after one training step (momentum 0.9 from mean 0, var 1).
  np.testing.assert_allclose(state["batch_stats"]["encoder"]["mu_bn"]["mean"],
                             0.1 * raw_mu.mean(0), rtol=1e-4, atol=1e-6)
  # Evaluation and decoding use the running statistics through the variables.
  full = {"params": params, "batch_stats": state["batch_stats"]}
  m_eval = np.asarray(decoding.posterior_mean(model, full, tokens))
  run_mean = np.asarray(state["batch_stats"]["encoder"]["mu_bn"]["mean"])
  run_var = np.asarray(state["batch_stats"]["encoder"]["mu_bn"]["var"])
  np.testing.assert_allclose(m_eval, gamma * (raw_mu - run_mean) / np.sqrt(run_var + 1e-5)
                             + np.asarray(shift), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------- aggressive training

def test_aggressive_inner_loop_stops_by_the_rule():
  calls = []

  def runner(losses, tokens=None):
    def run_step(i):
      calls.append(i)
      return losses[i], (1.0 if tokens is None else tokens[i])
    return run_step

  # Per-token loss over windows of 10: 9.5, 7.0, 7.5 -> stops after the third window.
  seq = [10.0 - 0.25 * i for i in range(20)] + [7.5] * 20
  assert aggressive.inner_loop(runner(seq), window=10, max_steps=100) == 30
  assert calls == list(range(30))
  # A tie does not stop the loop (the authors' `if pre - cur < 0: break`).
  assert aggressive.inner_loop(runner([5.0] * 100), window=10, max_steps=100) == 100
  # Always improving: capped at max_steps.
  seq = [100.0 - i for i in range(100)]
  assert aggressive.inner_loop(runner(seq), window=10, max_steps=100) == 100
  # Per token, not per sentence: the second window's loss sum is larger but its
  # loss per token smaller (more tokens): go on; the third is worse per token.
  seq, tok = [1.0] * 5 + [1.5] * 5 + [1.5] * 5, [1.0] * 5 + [2.0] * 5 + [1.0] * 5
  assert aggressive.inner_loop(runner(seq, tok), window=5, max_steps=50) == 15


def test_aggressive_switches_off_when_validation_mi_stops_increasing():
  active, prev, history = True, None, []
  for mi in (0.4, 1.1, 1.6, 1.6, 2.5, 3.0):
    active = aggressive.still_on(active, prev, mi)
    prev = mi
    history.append(active)
  assert history == [True, True, True, False, False, False]
  assert not aggressive.still_on(True, None, 0.0)  # MI 0 is no increase over 0


def test_encoder_step_updates_only_the_encoder():
  model = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4)
  cfg = _train_config(_fb("none", 0.0))
  state = steps.create_train_state(model, jax.random.key(0), cfg)
  devices = jax.devices()[:1]
  p_enc = aggressive.pmap_encoder_step(cfg, devices=devices)
  batch = jax.tree_util.tree_map(lambda x: x[None], _batch(np.random.default_rng(2)))
  new, m = p_enc(steps.place_state(state, devices), batch, jax.random.key(1), 0)
  new = steps.local_state(new)
  assert int(new.step) == 0
  jax.tree_util.tree_map(np.testing.assert_array_equal, new.params["decoder"],
                         state.params["decoder"])
  jax.tree_util.tree_map(np.testing.assert_array_equal, new.opt_state.parts["decoder"],
                         state.opt_state.parts["decoder"])
  assert int(new.opt_state.parts["encoder"][0].count) == 1
  diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(a - b).max()),
                                new.params["encoder"], state.params["encoder"])
  assert min(jax.tree_util.tree_leaves(diff)) > 0
  assert float(m["num_tokens"][0]) == float(np.sum(batch["tokens_BxT"] != 0))


# ---------------------------------------------------------------- pretraining

def test_reinit_decoder_gives_fresh_decoder_and_keeps_encoder():
  model = models.TextVAE(vocab_size=20, embed_dim=8, hidden_dim=16, latent_dim=4)
  cfg = _train_config(_fb("none", 0.0))
  cfg.pretrain_steps = 7
  init_key = jax.random.key(0)
  state = steps.create_train_state(model, init_key, cfg)
  trained = state.replace(
      params=jax.tree_util.tree_map(lambda x: x + 1.0, state.params),
      opt_state=jax.tree_util.tree_map(lambda x: x + 1, state.opt_state), step=7)
  new = pretrain.reinit_decoder(trained, model, init_key, cfg)
  fresh = steps.init_variables(model, pretrain.decoder_reinit_key(init_key, 7))["params"]
  jax.tree_util.tree_map(np.testing.assert_array_equal, new.params["decoder"], fresh["decoder"])
  jax.tree_util.tree_map(np.testing.assert_array_equal, new.params["encoder"],
                         trained.params["encoder"])
  # Not the original initialisation either: a key of its own.
  assert not np.array_equal(new.params["decoder"]["output_kernel"],
                            state.params["decoder"]["output_kernel"])
  assert int(new.opt_state.parts["decoder"][0].count) == 0
  assert int(new.opt_state.parts["encoder"][0].count) == 1
  assert int(new.step) == 7
  # beta: 0 for the 7 autoencoder steps (state.step 0..6), then the schedule from 0.
  cfg.kl_schedule = ml_collections.ConfigDict(dict(name="linear", max_weight=1.0,
                                                   warmup_steps=10))
  betas = [float(objectives.train_kl_weight(s, cfg)) for s in (0, 6, 7, 12, 17, 30)]
  np.testing.assert_allclose(betas, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0])


# ---------------------------------------------------------------- the training loop

def test_training_loop_with_every_remedy(tmp_path):
  """A tiny run with BN-VAE, free bits, 4 autoencoder steps and aggressive
  training: the decoder is fresh exactly at step 5, the aggressive state is in
  the checkpoints, and evaluation runs with the running statistics."""
  config = default.get_config()
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  config.data.synthetic_num_train = 320
  config.data.pad_multiple = 24  # one padded length: one compilation of each step
  config.model.embed_dim, config.model.hidden_dim, config.model.latent_dim = 8, 16, 4
  config.model.bn_gamma = 0.6
  config.train.batch_size = 16
  config.train.eval_batch_size = 200
  config.train.eval_importance_samples = 2
  config.train.num_steps = 8
  config.train.log_every_steps = 1
  config.train.eval_every_steps = 4
  config.train.checkpoint_every_steps = 1
  config.train.keep_checkpoints = 10
  config.train.num_samples = 2
  config.train.kl_schedule.name = "constant"
  config.train.pretrain_steps = 4
  config.train.free_bits.kind = "per_dim"
  config.train.free_bits.target = 2.0
  config.train.aggressive.enabled = True
  config.train.aggressive.window = 2
  config.train.aggressive.max_inner_steps = 4
  workdir = str(tmp_path / "run")
  results = train.train_and_evaluate(config, workdir)
  assert results["test"]["kl"] > 0 and np.isfinite(results["test"]["iw_nll"])

  rows = helpers.read_metrics(workdir)
  beta = {r["step"]: r["train/kl_weight"] for r in rows if "train/kl_weight" in r}
  assert [beta[s] for s in range(1, 9)] == [0.0] * 4 + [1.0] * 4
  inner = {r["step"]: r["train/inner_steps"] for r in rows if "train/inner_steps" in r}
  assert sorted(inner) == list(range(1, 9))  # one outer step per row, aggressive throughout

  vocab_size = len(json.load(open(os.path.join(workdir, "vocab.json")))["tokens"])
  model = models.create_model(config.model, vocab_size)
  template = steps.create_train_state(model, jax.random.key(0), config.train)
  ckpt = checkpoints.Checkpointer(workdir)
  s4, _, meta4 = ckpt.restore(4, template)
  s5, _, meta5 = ckpt.restore(5, template)
  ckpt.close()
  # Step 4 ends the autoencoder phase; step 5 is the first update of a fresh decoder.
  assert int(s4.opt_state.parts["decoder"][0].count) == 4
  assert int(s5.opt_state.parts["decoder"][0].count) == 1
  # Only the inner steps update the encoder: its optimizer has counted exactly
  # the inner steps the log reports, and the outer steps count the decoder's.
  assert int(s4.opt_state.parts["encoder"][0].count) == sum(inner[s] for s in range(1, 5))
  assert int(s5.opt_state.parts["encoder"][0].count) == sum(inner[s] for s in range(1, 6))
  fresh = steps.init_variables(model, pretrain.decoder_reinit_key(
      jax.random.split(jax.random.key(config.seed), 4)[0], 4))["params"]["decoder"]
  d5 = np.asarray(s5.params["decoder"]["output_kernel"])
  d4 = np.asarray(s4.params["decoder"]["output_kernel"])
  # One Adam step (lr 1e-3) moves each parameter by at most ~lr from its fresh value.
  assert np.abs(d5 - np.asarray(fresh["output_kernel"])).max() <= 1.01e-3
  assert np.abs(d4 - np.asarray(fresh["output_kernel"])).max() > 1e-2
  assert meta5["aggressive"]["active"] is True and "inner_data" in meta5["aggressive"]
  assert s5.batch_stats["encoder"]["mu_bn"]["var"].shape == (4,)
