"""The fused output layer (textvae/output_layer.py): its loss, NLL and
gradients equal autodiff of the plain softmax NLL."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from textvae import models
from textvae import output_layer


def _inputs(N=50, H=8, V=37, seed=0):
  ks = jax.random.split(jax.random.key(seed), 5)
  h = jax.random.normal(ks[0], (N, H))
  W = jax.random.normal(ks[1], (V, H)) * 0.7
  b = jax.random.normal(ks[2], (V,))
  t = jax.random.randint(ks[3], (N,), 0, V)
  w = jax.random.uniform(ks[4], (N,)) * (jnp.arange(N) % 5 != 0)  # some rows weight 0
  return h, W, b, t, w


@pytest.mark.parametrize("block_rows", [1, 7, 16, 50, 128])
def test_loss_nll_and_gradients_equal_autodiff(block_rows):
  h, W, b, t, w = _inputs()
  total, nll = output_layer.weighted_nll(h, W, b, t, w, block_rows)
  # The NLL by hand: logsumexp of the logits minus the target's logit.
  logits = np.asarray(h, np.float64) @ np.asarray(W, np.float64).T + np.asarray(b, np.float64)
  lse = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
  want = lse - logits[np.arange(len(t)), np.asarray(t)]
  np.testing.assert_allclose(nll, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(total, np.sum(np.asarray(w) * want), rtol=1e-5)

  def ref(h, W, b):
    return jnp.sum(w * models.output_nll(h, W, b, t))

  def fused(h, W, b):
    return output_layer.weighted_nll(h, W, b, t, w, block_rows)[0]

  for g_ref, g_new in zip(jax.grad(ref, (0, 1, 2))(h, W, b),
                          jax.grad(fused, (0, 1, 2))(h, W, b)):
    np.testing.assert_allclose(g_new, g_ref, rtol=1e-5, atol=1e-6)


def test_gradient_scales_with_the_cotangent_and_nll_is_constant():
  h, W, b, t, w = _inputs(N=20)

  def f(h):
    total, nll = output_layer.weighted_nll(h, W, b, t, w, 8)
    return 3.0 * total + jnp.sum(nll)  # the NLL output carries no gradient

  def ref(h):
    return 3.0 * jnp.sum(w * models.output_nll(h, W, b, t))

  np.testing.assert_allclose(jax.grad(f)(h), jax.grad(ref)(h), rtol=1e-5, atol=1e-6)


def test_model_training_loss_equals_the_unfused_loss():
  """TextVAE with token weights (the training path) gives the same loss and
  gradients as the per-token NLL summed by the objective."""
  from textvae import objectives
  model = models.TextVAE(vocab_size=23, embed_dim=6, hidden_dim=5, latent_dim=3)
  tokens = jnp.asarray([[5, 6, 7, 2, 0], [8, 2, 0, 0, 0], [9, 9, 10, 11, 2]], jnp.int32)
  inputs = jnp.where(tokens == 0, 0, jnp.concatenate([jnp.ones((3, 1), jnp.int32),
                                                      tokens[:, :-1]], 1))
  weights = jnp.asarray([1.0, 1.0, 0.0])
  rngs = {"latent": jax.random.key(1), "dropout": jax.random.key(2)}
  params = model.init({"params": jax.random.key(0), **rngs}, tokens, inputs)["params"]

  def loss(params, fused):
    kw = {"token_weights_BxT": objectives.recon_token_weights(tokens, weights)} if fused else {}
    out = model.apply({"params": params}, tokens, inputs, rngs=rngs, **kw)
    terms = objectives.elbo_terms(out, tokens)
    assert ("recon_loss" in terms) == fused
    return objectives.training_loss(terms, weights, 0.7)

  l0, g0 = jax.value_and_grad(loss)(params, False)
  l1, g1 = jax.value_and_grad(loss)(params, True)
  np.testing.assert_allclose(l1, l0, rtol=1e-6)
  for a, c in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(c, a, rtol=1e-5, atol=1e-7)
