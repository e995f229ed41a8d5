"""The GRU recurrence's written-out backward pass (textvae/gru.py) equals
autodiff of the plain `lax.scan`, masks included."""

import jax
import jax.numpy as jnp
import numpy as np

from textvae import gru


def _scan(xp, h0, mask, K, b):
  def step(h, inputs):
    h_new = gru._step(K, b, h, *inputs)[0]
    return h_new, h_new
  return jax.lax.scan(step, h0, (xp, mask))[1]


def test_forward_and_gradients_equal_autodiff_of_scan():
  T, B, H = 7, 5, 4
  ks = jax.random.split(jax.random.key(1), 5)
  xp = jax.random.normal(ks[0], (T, B, 3 * H))
  h0 = jax.random.normal(ks[1], (B, H))
  K = jax.random.normal(ks[2], (H, 3 * H)) * 0.5
  b = jax.random.normal(ks[3], (3 * H,))
  lengths = jnp.asarray([7, 3, 1, 0, 5])   # a row with no real step keeps h0
  mask = jnp.arange(T)[:, None] < lengths[None]
  c = jax.random.normal(ks[4], (T, B, H))

  def loss(f):
    def fn(xp, h0, K, b):
      hs = f(xp, h0, mask, K, b)
      return jnp.sum(c * hs) + jnp.sum(hs[-1] ** 2)
    return fn

  hs = gru.recurrence(xp, h0, mask, K, b)
  np.testing.assert_allclose(hs, _scan(xp, h0, mask, K, b), rtol=1e-6)
  np.testing.assert_allclose(hs[-1, 3], h0[3])  # length 0: the state is untouched
  want = jax.grad(loss(_scan), (0, 1, 2, 3))(xp, h0, K, b)
  got = jax.grad(loss(gru.recurrence), (0, 1, 2, 3))(xp, h0, K, b)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-6)
  # Masked steps get no input gradient.
  assert float(jnp.abs(got[0][3:, 1]).max()) == 0.0


def test_gradients_match_finite_differences():
  T, B, H = 4, 2, 3
  ks = jax.random.split(jax.random.key(2), 4)
  args = (jax.random.normal(ks[0], (T, B, 3 * H), jnp.float32),
          jax.random.normal(ks[1], (B, H)), jax.random.normal(ks[2], (H, 3 * H)) * 0.5,
          jax.random.normal(ks[3], (3 * H,)))
  mask = jnp.ones((T, B), bool).at[3, 1].set(False)
  f = lambda xp, h0, K, b: jnp.sum(jnp.sin(gru.recurrence(xp, h0, mask, K, b)))
  grads = jax.grad(f, (0, 1, 2, 3))(*args)
  eps = 1e-2
  rng = np.random.default_rng(0)
  for i, g in enumerate(grads):
    d = jnp.asarray(rng.normal(size=args[i].shape), jnp.float32)
    plus = list(args); plus[i] = args[i] + eps * d
    minus = list(args); minus[i] = args[i] - eps * d
    fd = (f(*plus) - f(*minus)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(g * d), fd, rtol=2e-2, atol=2e-3)
