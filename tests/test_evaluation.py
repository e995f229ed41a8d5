"""Evaluation numbers against exact values: quadrature log p(x), IW vs ELBO,
MI with a known value, active units, PPL token counting, determinism."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from textvae import evaluation
from textvae import models
from textvae import steps
from textvae.data import pipeline

DEV1 = jax.devices()[:1]


def _tiny_vae(latent_dim=1):
  return models.TextVAE(vocab_size=7, embed_dim=4, hidden_dim=5, latent_dim=latent_dim)


def _split(rows):
  rows = [np.asarray(r, np.int32) for r in rows]
  return pipeline.EncodedSplit("test", rows, np.asarray([len(r) for r in rows], np.int32), {})


def _params(model, rows, seed=0, scale=1.0):
  batch = pipeline.collate([np.asarray(r, np.int32) for r in rows], np.ones(len(rows)))
  params = model.init({"params": jax.random.key(seed), "latent": jax.random.key(1)},
                      batch["tokens_BxT"], batch["inputs_BxT"])["params"]
  # Larger decoder weights make p(x|z) depend on z more strongly (a harder test).
  return jax.tree_util.tree_map(lambda x: x * scale, params)


def _per_sentence(model, params, rows, num_samples, seed=0, chunk=50):
  return evaluation.collect(model, steps.replicate(params, DEV1), _split(rows),
                            num_samples=num_samples, batch_size=len(rows),
                            key=jax.random.key(seed), chunk_size=chunk, devices=DEV1)


ROWS = [[4, 5, 2], [6, 2], [5, 5, 6, 2]]


def _exact_log_px(model, params, row):
  """log p(x) = log int p(x|z) N(z; 0, 1) dz by the trapezoid rule on [-10, 10]."""
  grid = np.linspace(-10, 10, 4001)
  batch = pipeline.collate([np.asarray(row, np.int32)] * len(grid), np.ones(len(grid)))
  nll = model.apply({"params": params}, batch["tokens_BxT"], batch["inputs_BxT"],
                    jnp.asarray(grid[:, None], jnp.float32), method="decode_nll")
  log_pxz = -np.asarray(nll, np.float64).sum(-1)
  # Not a trivial case: the likelihood really depends on z over the prior's bulk.
  bulk = np.abs(grid) <= 2
  assert np.ptp(log_pxz[bulk]) > 0.3, np.ptp(log_pxz[bulk])
  log_integrand = log_pxz - 0.5 * grid ** 2 - 0.5 * math.log(2 * math.pi)
  m = log_integrand.max()
  return m + math.log(np.trapezoid(np.exp(log_integrand - m), grid))


def test_iw_estimate_matches_quadrature_and_bounds_elbo():
  model = _tiny_vae()
  params = _params(model, ROWS)
  stats = _per_sentence(model, params, ROWS, num_samples=20000, chunk=2000)
  for i, row in enumerate(ROWS):
    exact = _exact_log_px(model, params, row)
    # Rows come back length-sorted: find this row by its token count.
    j = int(np.where(stats["num_tokens_B"] == len(row))[0][0])
    assert abs(stats["log_px_B"][j] - exact) < 0.01, (row, stats["log_px_B"][j], exact)
    elbo = -(stats["recon_B"][j] + stats["kl_B"][j])
    assert elbo < exact - 1e-3, (elbo, exact)


def test_iw_k1_is_elbo_in_expectation_and_grows_with_k():
  model = _tiny_vae(latent_dim=2)
  params = _params(model, ROWS)
  repeats = 400  # each row 400 times in one batch: 400 independent estimates
  rows = ROWS * repeats

  def by_row(values, stats):
    return np.array([values[stats["num_tokens_B"] == len(r)].mean() for r in ROWS])

  means = {}
  for k in (1, 5, 50):
    stats = _per_sentence(model, params, rows, num_samples=k, seed=k)
    means[k] = by_row(stats["log_px_B"], stats)
  stats = _per_sentence(model, params, ROWS, num_samples=20000, seed=0, chunk=2000)
  elbo = -(stats["recon_B"] + stats["kl_B"])
  elbo = np.array([elbo[stats["num_tokens_B"] == len(r)][0] for r in ROWS])
  # K=1: log w = log p(x|z) + log p(z) - log q(z|x), whose mean is the ELBO.
  np.testing.assert_allclose(means[1], elbo, atol=0.03)
  # The estimate rises with K (Burda et al. 2016), by more than the noise.
  assert np.all(means[5] > means[1] + 0.01) and np.all(means[50] > means[5] + 0.005), means


def test_mutual_information_known_values():
  rng = np.random.default_rng(0)
  n = 2000
  # Two well-separated clusters of posteriors: I(x; z) = log 2.
  mu = np.where(rng.random((n, 1)) < 0.5, -10.0, 10.0)
  logvar = np.zeros((n, 1))
  mi = evaluation.mutual_information(mu, logvar, jax.random.key(0))
  assert abs(mi - math.log(2)) < 0.02, mi
  # Identical posteriors: z carries nothing about x.
  mi0 = evaluation.mutual_information(np.zeros((n, 3)), np.zeros((n, 3)), jax.random.key(0))
  assert abs(mi0) < 0.01, mi0
  # Gaussian channel: mu ~ N(0, 1), q(z|x) = N(mu, s^2): I = 0.5 log(1 + 1/s^2) per dim.
  mu_g = rng.normal(size=(n, 1))
  s2 = 0.25
  mi_g = evaluation.mutual_information(mu_g, np.full((n, 1), math.log(s2)), jax.random.key(1))
  assert abs(mi_g - 0.5 * math.log(1 + 1 / s2)) < 0.05, mi_g


def test_active_units_counts_dimensions_above_threshold():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(5000, 4)) * np.sqrt([1.0, 0.001, 0.5, 0.005])
  au, var = evaluation.active_units(mu)
  assert au == 2
  np.testing.assert_allclose(var, [1.0, 0.001, 0.5, 0.005], rtol=0.1)


def _np_lm_nll(dec, row):
  """-log p(row) of an RNNLM (PyTorch's GRU equations, zero initial state)."""
  gru = dec["gru"]
  W, b = np.asarray(gru["input"]["kernel"]), np.asarray(gru["input"]["bias"])
  U, c = np.asarray(gru["recurrent_kernel"]), np.asarray(gru["recurrent_bias"])
  emb = np.asarray(dec["embed"]["embedding"], np.float64)
  h = np.zeros(U.shape[0])
  nll = 0.0
  for x_id, target in zip([1] + list(row[:-1]), row):  # <bos> = 1, then shifted right
    xr, xz, xn = np.split(emb[x_id] @ W + b, 3)
    hr, hz, hn = np.split(h @ U + c, 3)
    r, u = 1 / (1 + np.exp(-(xr + hr))), 1 / (1 + np.exp(-(xz + hz)))
    h = (1 - u) * np.tanh(xn + r * hn) + u * h
    logits = h @ np.asarray(dec["output_kernel"]).T + np.asarray(dec["output_bias"])
    nll += np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[target]
  return nll


def test_ppl_counts_eos_and_lm_is_exact():
  model = models.RNNLM(vocab_size=7, embed_dim=4, hidden_dim=5)
  params = _params(model, ROWS)
  per = _per_sentence(model, params, ROWS, num_samples=500)
  out = evaluation.split_figures(per, num_samples=500, mi_key=jax.random.key(0))
  assert out["num_tokens"] == 9  # 3 + 2 + 4, one </s> per sentence included
  assert out["kl"] == 0 and out["mi"] == 0 and out["au"] == 0
  assert out["num_importance_samples"] == 0
  # Exact NLL, by hand: a NumPy GRU from a zero state over <bos> and the
  # sentence, softmax over the vocabulary, summed over the targets.
  total = sum(_np_lm_nll(jax.device_get(params["decoder"]), row) for row in ROWS)
  assert out["iw_nll"] == pytest.approx(total / 3, rel=1e-5)
  assert out["ppl"] == pytest.approx(math.exp(total / 9), rel=1e-5)
  assert out["ppl_elbo"] == pytest.approx(out["ppl"], rel=1e-6)


def test_same_seed_same_numbers_any_device_count():
  model = _tiny_vae(latent_dim=3)
  rows = [[4, 5, 2], [6, 2], [5, 5, 6, 2], [4, 2], [6, 6, 2], [5, 2], [4, 4, 4, 2], [6, 5, 2]]
  params = _params(model, rows)
  split = _split(rows)
  run = lambda devices: evaluation.evaluate_split(
      model, steps.replicate(params, devices), split, num_samples=20, batch_size=4,
      key=jax.random.key(7), chunk_size=10, devices=devices)
  if jax.local_device_count() < 4:
    pytest.skip("needs 4 host devices (conftest)")
  a, b = run(jax.local_devices()), run(jax.local_devices())
  one = run(DEV1)
  for k in ("iw_nll", "elbo", "recon", "kl", "mi", "au"):
    assert one[k] == pytest.approx(a[k], rel=1e-5, abs=1e-6), k
  for k in ("iw_nll", "elbo", "recon", "kl", "mi", "au", "ppl", "ppl_elbo"):
    assert a[k] == b[k], k
  assert a["num_sentences"] == 8


def test_evaluate_workdir_vae_and_lm(tmp_path):
  from tests.helpers import TINY_HELD_OUT, tiny_config  # pylint: disable=g-import-not-at-top
  from textvae import evaluate  # pylint: disable=g-import-not-at-top
  from textvae import train  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top

  results = {}
  for kind in ("vae", "lm"):
    config = tiny_config(tmp_path, num_steps=10)
    config.model.kind = kind
    if kind == "lm":
      config.model.latent_dim = 0
    workdir = str(tmp_path / kind)
    train.train_and_evaluate(config, workdir)
    a = evaluate.evaluate_workdir(workdir, split="valid", num_samples=10, batch_size=256)
    b = evaluate.evaluate_workdir(workdir, split="valid", num_samples=10, batch_size=256,
                                  interim=True)
    assert set(evaluate.KEYS) <= set(a)
    for k in evaluate.KEYS[:-1]:
      assert a[k] == b[k], k  # same checkpoint, same seed: same numbers
    saved = json.load(open(os.path.join(workdir, "eval_valid.json")))
    assert saved["iw_nll"] == a["iw_nll"] and saved["step"] == 10 and "interim" not in saved
    # An interim evaluation leaves the final one's file alone.
    interim = json.load(open(os.path.join(workdir, "eval_valid_interim.json")))
    assert interim["interim"] is True and interim["iw_nll"] == a["iw_nll"]
    assert a["num_sentences"] == TINY_HELD_OUT
    results[kind] = a
  vae, lm = results["vae"], results["lm"]
  assert 0 <= vae["token_accuracy"] <= 1 and 0 <= vae["bleu"] <= 100  # reconstructions scored
  assert "bleu" not in lm
  assert vae["iw_nll"] <= -vae["elbo"] + 1e-4  # the IW bound is tighter than the ELBO
  assert vae["num_importance_samples"] == 10 and lm["num_importance_samples"] == 0
  assert lm["kl"] == lm["mi"] == lm["au"] == 0
  assert lm["iw_nll"] == pytest.approx(-lm["elbo"]) and lm["ppl"] == pytest.approx(lm["ppl_elbo"])
