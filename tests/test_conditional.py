"""The conditional VAE: its ELBO and IW-NLL are those of log p(x|y) (the KL
against p(z|y), importance sampling from p(z|y)), unknown labels are clear
errors, and the pmapped steps with a condition (and every collapse remedy) give
the same result on 1 and 4 devices."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from configs import default
from textvae import conditioning
from textvae import decoding
from textvae import errors
from textvae import evaluation
from textvae import models
from textvae import objectives
from textvae import steps
from textvae.hooks import pretrain
from textvae.data import pipeline
from tests import helpers

V, E, H, Z, K, L = 20, 8, 16, 4, 3, 5


def _model(prior="learned", **kw):
  return models.TextVAE(vocab_size=V, embed_dim=E, hidden_dim=H, latent_dim=Z, num_labels=K,
                        label_dim=L, condition_prior=prior, **kw)


def _batch(rng, n=8):
  """Padded to 12 tokens whatever the lengths: one shape, one compilation."""
  rows = [np.append(rng.integers(4, V, size=rng.integers(2, 9)), 2).astype(np.int32)
          for _ in range(n)]
  return pipeline.collate(rows, np.ones(n), 12, labels=rng.integers(0, K, size=n))


def _with_prior(params, rng):
  """Parameters whose learned prior is far from N(0, I) and differs per label."""
  dec = dict(params["decoder"])
  dec["prior_mu"] = jnp.asarray(rng.normal(size=(K, Z)), jnp.float32)
  dec["prior_logvar"] = jnp.asarray(rng.normal(scale=0.5, size=(K, Z)), jnp.float32)
  return dict(params, decoder=dec)


def _np_kl(mu_q, logvar_q, mu_p, logvar_p):
  """KL of two diagonal Gaussians, per sentence, in float64 numpy."""
  mu_q, logvar_q, mu_p, logvar_p = (np.asarray(x, np.float64)
                                    for x in (mu_q, logvar_q, mu_p, logvar_p))
  var_q, var_p = np.exp(logvar_q), np.exp(logvar_p)
  return np.sum(0.5 * np.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / (2 * var_p) - 0.5,
                axis=-1)


def test_conditional_params_and_unconditional_tree_unchanged():
  cond = steps.init_variables(_model(), jax.random.key(0))["params"]
  plain = steps.init_variables(models.TextVAE(vocab_size=V, embed_dim=E, hidden_dim=H,
                                              latent_dim=Z), jax.random.key(0))["params"]
  assert cond["encoder"]["label_embed"]["embedding"].shape == (K, L)
  assert cond["decoder"]["label_embed"]["embedding"].shape == (K, L)
  assert cond["decoder"]["prior_mu"].shape == cond["decoder"]["prior_logvar"].shape == (K, Z)
  # The decoder reads [z; e_y] in its initial state and at every input; q reads [h; e_y].
  assert cond["decoder"]["init_state"]["kernel"].shape == (Z + L, H)
  assert cond["decoder"]["latent_proj"]["kernel"].shape[0] == Z + L
  assert cond["encoder"]["posterior"]["kernel"].shape == (H + L, 2 * Z)
  assert "label_embed" not in plain["encoder"] and "prior_mu" not in plain["decoder"]
  assert plain["decoder"]["init_state"]["kernel"].shape == (Z, H)
  # Parameters that both models have and that do not read the label start equal.
  np.testing.assert_array_equal(cond["decoder"]["embed"]["embedding"],
                                plain["decoder"]["embed"]["embedding"])


def test_conditional_elbo_equals_hand_computation():
  """recon + KL(q(z|x,y) || N(mu_y, sigma_y^2)) with the KL written out in numpy
  from the learned prior's parameters, row by row of the labels."""
  rng = np.random.default_rng(0)
  model = _model()
  batch = _batch(rng)
  params = _with_prior(steps.init_variables(model, jax.random.key(1))["params"], rng)
  out = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                    labels_B=batch["labels_B"], rngs={"latent": jax.random.key(2)})
  terms = objectives.elbo_terms(out, batch["tokens_BxT"])
  y = batch["labels_B"]
  mu_p = np.asarray(params["decoder"]["prior_mu"])[y]
  logvar_p = np.asarray(params["decoder"]["prior_logvar"])[y]
  kl = _np_kl(out["mu_BxZ"], out["logvar_BxZ"], mu_p, logvar_p)
  mask = batch["tokens_BxT"] != 0
  recon = np.sum(np.where(mask, np.asarray(out["nll_BxT"], np.float64), 0.0), axis=1)
  np.testing.assert_allclose(terms["kl_B"], kl, rtol=1e-5)
  np.testing.assert_allclose(terms["recon_B"], recon, rtol=1e-5)
  # Against N(0, I) the KL would be another number: the prior is used.
  kl_std = _np_kl(out["mu_BxZ"], out["logvar_BxZ"], 0 * mu_p, 0 * logvar_p)
  assert np.min(np.abs(kl - kl_std)) > 0.1
  # The decoder reads the label: another label, another likelihood.
  other = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                      labels_B=(y + 1) % K, rngs={"latent": jax.random.key(2)})
  assert np.max(np.abs(np.asarray(other["nll_BxT"]) - np.asarray(out["nll_BxT"]))) > 1e-4

  # The standard prior: the KL against N(0, I), also written out.
  std = _model("standard")
  p_std = steps.init_variables(std, jax.random.key(1))["params"]
  o = std.apply({"params": p_std}, batch["tokens_BxT"], batch["inputs_BxT"], labels_B=y,
                rngs={"latent": jax.random.key(2)})
  assert "prior_mu" not in p_std["decoder"]
  np.testing.assert_allclose(objectives.elbo_terms(o, batch["tokens_BxT"])["kl_B"],
                             _np_kl(o["mu_BxZ"], o["logvar_BxZ"], np.zeros((8, Z)),
                                    np.zeros((8, Z))), rtol=1e-5)

  # Evaluation's KL is the same KL against p(z|y).
  post = evaluation.posterior_stats(params, batch, model=model)
  mu_e, logvar_e = model.apply({"params": params}, batch["tokens_BxT"], labels_B=y,
                               method="encode")
  np.testing.assert_allclose(post["kl_B"], _np_kl(mu_e, logvar_e, mu_p, logvar_p), rtol=1e-5)


def test_iw_nll_samples_from_the_label_prior():
  """A model whose posterior q(z|x,y) equals its prior p(z|y) (both set by hand
  to the same Gaussian per label, far from N(0, I)) and whose decoder ignores
  z: every importance weight p(x|z,y) p(z|y) / q(z|x,y) is exactly p(x|y), so
  the IW-NLL is the NLL under any z, whatever K, and the KL is 0. With N(0, I)
  in the weights instead, the IW-NLL would be off by log N(z; 0, I) - log q."""
  rng = np.random.default_rng(3)
  model = _model()
  params = jax.tree_util.tree_map(np.asarray,
                                  steps.init_variables(model, jax.random.key(4))["params"])
  enc, dec = dict(params["encoder"]), dict(params["decoder"])
  post = dict(enc["posterior"])
  kernel = np.array(post["kernel"])
  kernel[:H] = 0.0  # q reads the label only
  post["kernel"] = kernel
  post["bias"] = rng.normal(size=2 * Z).astype(np.float32)
  enc["posterior"] = post
  e_y = np.asarray(enc["label_embed"]["embedding"], np.float64)
  stats = e_y @ kernel[H:].astype(np.float64) + post["bias"]  # [K, 2Z], by hand
  dec["prior_mu"], dec["prior_logvar"] = (stats[:, :Z].astype(np.float32),
                                          stats[:, Z:].astype(np.float32))
  for name in ("init_state", "latent_proj"):  # the decoder ignores z (rows 0..Z-1 of [z; e_y])
    layer = dict(dec[name])
    k = np.array(layer["kernel"])
    k[:Z] = 0.0
    layer["kernel"] = k
    dec[name] = layer
  params = dict(params, encoder=enc, decoder=dec)
  assert np.abs(stats[:, :Z]).max() > 0.3  # far from N(0, I)

  batch = _batch(rng, n=8)
  split = pipeline.EncodedSplit(
      "t", [r[r != 0] for r in batch["tokens_BxT"]],
      np.asarray((batch["tokens_BxT"] != 0).sum(1), np.int32), {"y": batch["labels_B"]})
  repl = steps.replicate({"params": params}, jax.devices()[:1])
  per = evaluation.collect(model, repl, split, num_samples=6, batch_size=8,
                           key=jax.random.key(0), chunk_size=3, devices=jax.devices()[:1],
                           condition="y")
  np.testing.assert_allclose(per["kl_B"], 0.0, atol=1e-4)
  # -log p(x|y) from the decoder at an arbitrary z (it ignores z), per sentence.
  order = np.argsort(split.lengths, kind="stable")
  nll = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                    jnp.zeros((8, Z)), labels_B=batch["labels_B"], method="decode_nll")
  exact = np.sum(np.where(batch["tokens_BxT"] != 0, np.asarray(nll, np.float64), 0), 1)[order]
  np.testing.assert_allclose(-per["log_px_B"], exact, rtol=1e-5)
  np.testing.assert_allclose(per["recon_B"], exact, rtol=1e-5)


def test_unknown_label_is_a_clear_error():
  labels = conditioning.Labels("sentiment", ("negative", "positive"))
  assert labels.index("positive") == 1 and labels.index("0") == 0
  with pytest.raises(errors.ConfigError) as e:
    labels.index("neutral")
  assert str(e.value) == ("unknown label 'neutral' for 'sentiment'; known labels: "
                          "negative, positive")
  with pytest.raises(errors.ConfigError, match="label 2 of 'sentiment' is outside its 2"):
    conditioning.check_values(labels, [0, 1, 2], "the train split")
  split = pipeline.EncodedSplit("valid", [], np.zeros(0, np.int32), {"topic": np.zeros(0)})
  with pytest.raises(errors.ConfigError, match="no label feature 'sentiment'; it has: topic"):
    pipeline.split_labels(split, "sentiment")
  # A conditional model asked to decode without labels, or beyond them.
  model = _model()
  params = steps.init_variables(model, jax.random.key(0))["params"]
  with pytest.raises(ValueError, match="needs the labels"):
    decoding.prior_sample(model, params, jax.random.key(0), 2, max_length=4)
  with pytest.raises(ValueError, match="outside 0..2"):
    decoding.prior_sample(model, params, jax.random.key(0), 2, max_length=4, labels=[0, 3])


def test_create_model_from_config_and_its_errors():
  config = default.get_config()
  assert config.model.condition == "" and config.model.condition_prior == "standard"
  assert not isinstance(models.create_model(config.model, V, 2), type(None))
  assert models.create_model(config.model, V, 2).num_labels == 0  # no condition: ignored
  config.model.condition = "sentiment"
  model = models.create_model(config.model, V, 2)
  assert model.num_labels == 2 and model.label_dim == config.model.label_dim
  with pytest.raises(ValueError, match="needs the number of labels"):
    models.create_model(config.model, V, 0)
  config.model.condition_prior = "uniform"
  with pytest.raises(ValueError, match="condition_prior='uniform'"):
    models.create_model(config.model, V, 2)


def _train_config(free_bits_kind="none", target=0.0):
  return ml_collections.ConfigDict(dict(
      learning_rate=1e-2, grad_clip=5.0, adam_b1=0.9, adam_b2=0.999, pretrain_steps=0,
      free_bits=dict(kind=free_bits_kind, target=target),
      kl_schedule=dict(name="constant", max_weight=1.0, warmup_steps=0, logistic_k=0.0,
                       logistic_x0=0, num_cycles=1, cycle_steps=1, ratio=1.0)))


def _run(num_devices, model, cfg, batches, parts=None):
  devices = jax.devices()[:num_devices]
  state = steps.place_state(steps.create_train_state(model, jax.random.key(0), cfg), devices)
  p_step = steps.pmap_train_step(cfg, devices=devices, parts=parts)
  losses = []
  for batch in batches:
    sharded = jax.tree_util.tree_map(lambda x: x.reshape((num_devices, -1) + x.shape[1:]),
                                     batch)
    state, metrics = p_step(state, sharded, jax.random.key(42))
    losses.append(float(metrics["loss"][0]))
  return losses, steps.local_state(state)


def test_conditional_four_devices_equal_one_device():
  """With word dropout, BN-VAE (batch statistics over the devices) and
  per-dimension free bits (global batch means): the collapse remedies whose
  numbers depend on the device split."""
  assert jax.device_count() >= 4, "conftest sets 4 host devices"
  model = _model(word_dropout=0.3, bn_gamma=0.5, bn_axis_name="batch")
  cfg = _train_config("per_dim", 1.0)
  rng = np.random.default_rng(1)
  batches = [_batch(rng) for _ in range(2)]
  losses1, s1 = _run(1, model, cfg, batches)
  helpers.assert_same_training((losses1, s1), _run(4, model, cfg, batches))
  # Both label embeddings were trained.
  init = steps.create_train_state(model, jax.random.key(0), cfg).params
  for part in ("encoder", "decoder"):
    assert np.abs(np.asarray(s1.params[part]["label_embed"]["embedding"])
                  - np.asarray(init[part]["label_embed"]["embedding"])).max() > 0

  # Evaluation with labels: the same figures on 1 and 4 devices.
  batch = batches[0]
  split = pipeline.EncodedSplit(
      "t", [r[r != 0] for r in batch["tokens_BxT"]],
      np.asarray((batch["tokens_BxT"] != 0).sum(1), np.int32), {"y": batch["labels_B"]})
  figures = []
  for n in (1, 4):
    devices = jax.devices()[:n]
    figures.append(evaluation.evaluate_split(
        model, steps.replicate(s1.variables(), devices), split, num_samples=4, batch_size=8,
        key=jax.random.key(0), chunk_size=2, devices=devices, condition="y"))
  for k in ("iw_nll", "elbo", "kl", "mi"):
    np.testing.assert_allclose(figures[0][k], figures[1][k], rtol=1e-5, atol=1e-6)


def test_aggressive_and_pretraining_parts_with_a_condition():
  """The decoder part holds p(x|z,y) and p(z|y): a decoder-only step leaves the
  encoder (and its label embedding) alone and trains the prior; the decoder
  reset after pretraining re-initialises the prior too."""
  model = _model()
  cfg = _train_config()
  batches = [_batch(np.random.default_rng(5))]
  _, state = _run(1, model, cfg, batches, parts=("decoder",))
  init = steps.create_train_state(model, jax.random.key(0), cfg)
  jax.tree_util.tree_map(np.testing.assert_array_equal, state.params["encoder"],
                         init.params["encoder"])
  assert np.abs(np.asarray(state.params["decoder"]["prior_mu"])).max() > 0
  cfg.pretrain_steps = 3
  reset = pretrain.reinit_decoder(state, model, jax.random.key(0), cfg)
  np.testing.assert_array_equal(reset.params["decoder"]["prior_mu"], 0.0)
