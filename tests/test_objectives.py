"""The ELBO, KL and schedules against hand computations."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from textvae import models
from textvae import objectives
from textvae.data import pipeline


def test_kl_per_dim_hand_values():
  mu = jnp.array([[1.0, 0.0, -2.0]])
  logvar = jnp.array([[0.0, np.log(2.0), np.log(0.5)]])
  kl = objectives.gaussian_kl_per_dim(mu, logvar)
  expected = [0.5 * (1 + 1 - 1 - 0),
              0.5 * (0 + 2 - 1 - np.log(2.0)),
              0.5 * (4 + 0.5 - 1 - np.log(0.5))]
  np.testing.assert_allclose(kl[0], expected, rtol=1e-6)
  np.testing.assert_allclose(kl[0], [0.5, 0.1534264, 2.0965736], rtol=1e-6)


def _np_gru(p, xs, h):
  """NumPy reference GRU (PyTorch gate layout), returns every state."""
  W, b = np.asarray(p["input"]["kernel"]), np.asarray(p["input"]["bias"])
  U, c = np.asarray(p["recurrent_kernel"]), np.asarray(p["recurrent_bias"])
  out = []
  for x in xs:
    xr, xz, xn = np.split(x @ W + b, 3)
    hr, hz, hn = np.split(h @ U + c, 3)
    r = 1 / (1 + np.exp(-(xr + hr)))
    u = 1 / (1 + np.exp(-(xz + hz)))
    n = np.tanh(xn + r * hn)
    h = (1 - u) * n + u * h
    out.append(h)
  return out


def _np_sentence_terms(params, tokens, z):
  """-log p(x|z), KL and the posterior for one unpadded sentence, by hand in NumPy."""
  enc, dec = params["encoder"], params["decoder"]
  H = enc["gru"]["recurrent_kernel"].shape[0]
  emb = np.asarray(enc["embed"]["embedding"])[tokens]
  h_last = _np_gru(enc["gru"], emb, np.zeros(H))[-1]
  stats = h_last @ np.asarray(enc["posterior"]["kernel"]) + np.asarray(enc["posterior"]["bias"])
  mu, logvar = np.split(stats, 2)
  h0 = np.tanh(z @ np.asarray(dec["init_state"]["kernel"]) + np.asarray(dec["init_state"]["bias"]))
  inputs = [1] + list(tokens[:-1])  # <bos> then the sentence shifted right
  x = np.asarray(dec["embed"]["embedding"])[inputs]
  # z concatenated to every input: its part of the input kernel is latent_proj.
  zproj = z @ np.asarray(dec["latent_proj"]["kernel"])
  gru = dict(dec["gru"])
  W = np.asarray(gru["input"]["kernel"])
  states = []
  h = h0
  for t in range(len(tokens)):
    xt = x[t] @ W + np.asarray(gru["input"]["bias"]) + zproj
    hs = _np_gru({"input": {"kernel": np.eye(len(xt)), "bias": np.zeros(len(xt))},
                  "recurrent_kernel": gru["recurrent_kernel"],
                  "recurrent_bias": gru["recurrent_bias"]}, [xt], h)
    h = hs[0]
    states.append(h)
  logits = np.stack(states) @ np.asarray(dec["output_kernel"]).T + np.asarray(dec["output_bias"])
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  recon = -sum(logp[t, tok] for t, tok in enumerate(tokens))
  kl = 0.5 * np.sum(mu ** 2 + np.exp(logvar) - 1 - logvar)
  return recon, kl, mu, logvar


def test_elbo_matches_hand_computation():
  model = models.TextVAE(vocab_size=9, embed_dim=5, hidden_dim=6, latent_dim=3)
  sentences = [np.array([5, 6, 7, 2], np.int32), np.array([8, 4, 2], np.int32)]
  batch = pipeline.collate(sentences, np.ones(2))
  key = jax.random.key(3)
  params = model.init({"params": jax.random.key(0), "latent": key},
                      batch["tokens_BxT"], batch["inputs_BxT"])["params"]
  out = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                    rngs={"latent": key})
  terms = objectives.elbo_terms(out, batch["tokens_BxT"])
  z = np.asarray(out["z_BxZ"], np.float64)
  for b, sentence in enumerate(sentences):
    recon, kl, mu, logvar = _np_sentence_terms(jax.device_get(params), sentence, z[b])
    np.testing.assert_allclose(out["mu_BxZ"][b], mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logvar_BxZ"][b], logvar, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(terms["recon_B"][b], recon, rtol=1e-5)
    np.testing.assert_allclose(terms["kl_B"][b], kl, rtol=1e-5)
  assert float(terms["num_tokens_B"][0]) == 4.0  # </s> counted
  # ELBO per sentence and the training loss at beta = 0.5.
  loss = objectives.training_loss(terms, jnp.ones(2), 0.5)
  np.testing.assert_allclose(
      loss, np.mean(np.asarray(terms["recon_B"]) + 0.5 * np.asarray(terms["kl_B"])), rtol=1e-6)


def test_reparameterisation_is_mu_plus_sigma_times_standard_normal():
  """z = mu + exp(logvar / 2) eps, eps ~ N(0, I), with mu and logvar from the
  NumPy encoder: 4,000 copies of one sentence (one noise draw per row) give
  standardised residuals of mean 0 and standard deviation 1 in every
  dimension. The log-variances are set far from 0 (2, -1.5, 1), where
  exp(logvar) or exp(-logvar / 2) in place of exp(logvar / 2) would give a
  standard deviation of 2.7, 2.1 or 0.6 instead of 1."""
  model = models.TextVAE(vocab_size=9, embed_dim=5, hidden_dim=6, latent_dim=3)
  sentence = np.array([5, 6, 7, 2], np.int32)
  n = 4000
  batch = pipeline.collate([sentence] * n, np.ones(n))
  params = jax.device_get(model.init({"params": jax.random.key(0), "latent": jax.random.key(1)},
                                     batch["tokens_BxT"][:2], batch["inputs_BxT"][:2])["params"])
  bias = np.array(params["encoder"]["posterior"]["bias"])
  bias[3:] = [2.0, -1.5, 1.0]
  params["encoder"]["posterior"]["bias"] = jnp.asarray(bias)
  out = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                    rngs={"latent": jax.random.key(7)})
  _, _, mu, logvar = _np_sentence_terms(params, sentence, np.zeros(3))
  assert np.abs(logvar - [2.0, -1.5, 1.0]).max() < 1.0  # the bias dominates
  eps = (np.asarray(out["z_BxZ"], np.float64) - mu) / np.exp(0.5 * logvar)
  assert np.all(np.abs(eps.mean(0)) < 4 / np.sqrt(n))
  assert np.all(np.abs(eps.std(0) - 1) < 4 / np.sqrt(2 * n))
  assert np.abs(np.corrcoef(eps.T) - np.eye(3)).max() < 4 / np.sqrt(n)


def test_summarise_counts_eos_in_ppl():
  sums = {"num_sentences": 2, "num_tokens": 10, "recon": 20.0, "kl": 3.0}
  out = objectives.summarise(sums)
  assert out["elbo"] == pytest.approx(-11.5)
  assert out["nll_per_token_bound"] == pytest.approx(2.3)
  assert out["ppl_bound"] == pytest.approx(np.exp(2.3))


def _schedule(**kw):
  base = dict(name="linear", max_weight=1.0, warmup_steps=100, logistic_k=0.1,
              logistic_x0=50, num_cycles=2, cycle_steps=100, ratio=0.5)
  base.update(kw)
  return ml_collections.ConfigDict(base)


def test_kl_schedules_at_known_steps():
  lin = _schedule()
  assert [float(objectives.kl_weight(s, lin)) for s in (0, 25, 100, 500)] == [0.0, 0.25, 1.0, 1.0]
  assert float(objectives.kl_weight(7, _schedule(name="constant", max_weight=0.3))) == pytest.approx(0.3)
  logi = _schedule(name="logistic")
  assert float(objectives.kl_weight(50, logi)) == pytest.approx(0.5)
  assert float(objectives.kl_weight(0, logi)) == pytest.approx(1 / (1 + np.exp(5.0)), rel=1e-5)
  cyc = _schedule(name="cyclical")
  got = [float(objectives.kl_weight(s, cyc)) for s in (0, 25, 50, 99, 100, 125, 200, 300)]
  np.testing.assert_allclose(got, [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0], atol=1e-6)
  with pytest.raises(ValueError, match="kl_schedule.name"):
    objectives.kl_weight(0, _schedule(name="bogus"))
