"""The recurrent cells (textvae/cells): the GRU and LSTM recurrences' written-out
backward passes equal autodiff of a plain `lax.scan` of an independently written
step (PyTorch's gate equations), masks included; the cells' interface."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from textvae import cells
from textvae.cells import gru
from textvae.cells import lstm


def _ref_gru_step(K, b, h, xp, m):
  """torch.nn.GRU's equations, written out again (not gru.cell)."""
  H = h.shape[-1]
  hp = h @ K + b
  r = 1.0 / (1.0 + jnp.exp(-(xp[:, :H] + hp[:, :H])))
  u = 1.0 / (1.0 + jnp.exp(-(xp[:, H:2 * H] + hp[:, H:2 * H])))
  n = jnp.tanh(xp[:, 2 * H:] + r * hp[:, 2 * H:])
  h_new = (1.0 - u) * n + u * h
  return jnp.where(m[:, None], h_new, h)


def _ref_lstm_step(K, b, h, c, xp, m):
  """torch.nn.LSTM's equations (gates i, f, g, o), written out again."""
  H = h.shape[-1]
  a = xp + h @ K + b
  sig = lambda x: 1.0 / (1.0 + jnp.exp(-x))
  i, f, g, o = sig(a[:, :H]), sig(a[:, H:2 * H]), jnp.tanh(a[:, 2 * H:3 * H]), sig(a[:, 3 * H:])
  c_new = f * c + i * g
  h_new = o * jnp.tanh(c_new)
  keep = m[:, None]
  return jnp.where(keep, h_new, h), jnp.where(keep, c_new, c)


def _ref_gru(xp, h0, mask, K, b):
  def step(h, inputs):
    h = _ref_gru_step(K, b, h, *inputs)
    return h, h
  return jax.lax.scan(step, h0, (xp, mask))[1]


def _ref_lstm(xp, h0, c0, mask, K, b):
  def step(carry, inputs):
    h, c = _ref_lstm_step(K, b, *carry, *inputs)
    return (h, c), h
  (_, c_last), hs = jax.lax.scan(step, (h0, c0), (xp, mask))
  return hs, c_last


def _inputs(G, key, T=7, B=5, H=4):
  ks = jax.random.split(key, 6)
  xp = jax.random.normal(ks[0], (T, B, G * H))
  h0 = jax.random.normal(ks[1], (B, H))
  c0 = jax.random.normal(ks[5], (B, H))
  K = jax.random.normal(ks[2], (H, G * H)) * 0.5
  b = jax.random.normal(ks[3], (G * H,))
  lengths = jnp.asarray([7, 3, 1, 0, 5])   # a row with no real step keeps its state
  mask = jnp.arange(T)[:, None] < lengths[None]
  w = jax.random.normal(ks[4], (T, B, H))
  return xp, h0, c0, K, b, mask, w


def test_gru_forward_and_gradients_equal_autodiff_of_scan():
  xp, h0, _, K, b, mask, w = _inputs(3, jax.random.key(1))

  def loss(f):
    def fn(xp, h0, K, b):
      hs = f(xp, h0, mask, K, b)
      return jnp.sum(w * hs) + jnp.sum(hs[-1] ** 2)
    return fn

  hs = gru.recurrence(xp, h0, mask, K, b)
  np.testing.assert_allclose(hs, _ref_gru(xp, h0, mask, K, b), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(hs[-1, 3], h0[3])  # length 0: the state is untouched
  want = jax.grad(loss(_ref_gru), (0, 1, 2, 3))(xp, h0, K, b)
  got = jax.grad(loss(gru.recurrence), (0, 1, 2, 3))(xp, h0, K, b)
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-6)
  assert float(jnp.abs(got[0][3:, 1]).max()) == 0.0  # masked steps: no input gradient


def test_lstm_forward_and_gradients_equal_autodiff_of_scan():
  xp, h0, c0, K, b, mask, w = _inputs(4, jax.random.key(2))
  wc = jnp.cos(jnp.arange(h0.size, dtype=jnp.float32)).reshape(h0.shape)

  def loss(f):
    def fn(xp, h0, c0, K, b):
      hs, c_last = f(xp, h0, c0, mask, K, b)
      return jnp.sum(w * hs) + jnp.sum(hs[-1] ** 2) + jnp.sum(wc * c_last)
    return fn

  hs, c_last = lstm.recurrence(xp, h0, c0, mask, K, b)
  ref_hs, ref_c = _ref_lstm(xp, h0, c0, mask, K, b)
  np.testing.assert_allclose(hs, ref_hs, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c_last, ref_c, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(c_last[3], c0[3])  # length 0: the cell state is untouched
  want = jax.grad(loss(_ref_lstm), (0, 1, 2, 3, 4))(xp, h0, c0, K, b)
  got = jax.grad(loss(lstm.recurrence), (0, 1, 2, 3, 4))(xp, h0, c0, K, b)
  for g, r in zip(got, want):
    np.testing.assert_allclose(g, r, rtol=2e-5, atol=2e-6)
  assert float(jnp.abs(got[0][3:, 1]).max()) == 0.0


def test_lstm_matches_a_hand_computed_step():
  """One step with H = 1 and numbers small enough to do by hand."""
  K = jnp.zeros((1, 4)); b = jnp.zeros(4)
  xp = jnp.asarray([[[0.0, 0.0, 1.0, 0.0]]])          # i = f = o = 0.5, g = tanh(1)
  hs, c = lstm.recurrence(xp, jnp.zeros((1, 1)), jnp.full((1, 1), 2.0),
                          jnp.ones((1, 1), bool), K, b)
  c_want = 0.5 * 2.0 + 0.5 * np.tanh(1.0)
  np.testing.assert_allclose(c, [[c_want]], rtol=1e-6)
  np.testing.assert_allclose(hs[0], [[0.5 * np.tanh(c_want)]], rtol=1e-6)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_gradients_match_finite_differences(name):
  G = cells.CELLS[name].NUM_GATES
  xp, h0, c0, K, b, _, _ = _inputs(G, jax.random.key(3), T=4, B=2, H=3)
  mask = jnp.ones((4, 2), bool).at[3, 1].set(False)
  if name == "gru":
    f = lambda xp, h0, K, b: jnp.sum(jnp.sin(gru.recurrence(xp, h0, mask, K, b)))
  else:
    f = lambda xp, h0, K, b: jnp.sum(jnp.sin(lstm.recurrence(xp, h0, c0, mask, K, b)[0]))
  args = (xp, h0, K, b)
  grads = jax.grad(f, (0, 1, 2, 3))(*args)
  eps = 1e-2
  rng = np.random.default_rng(0)
  for i, g in enumerate(grads):
    d = jnp.asarray(rng.normal(size=args[i].shape), jnp.float32)
    plus = list(args); plus[i] = args[i] + eps * d
    minus = list(args); minus[i] = args[i] - eps * d
    fd = (f(*plus) - f(*minus)) / (2 * eps)
    np.testing.assert_allclose(jnp.sum(g * d), fd, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_step_equals_one_step_of_the_recurrence(name):
  """Decoding's `step` and the training recurrence are one computation."""
  cell = cells.create(name, 6)
  x = jax.random.normal(jax.random.key(4), (3, 2, 5))
  mask = jnp.ones((3, 2), bool)

  def run(mod):
    state0 = mod.state_from(jnp.full((2, 6), 0.3))
    hs, _ = mod(mod.project(x), state0, mask)
    state, outs = state0, []
    for t in range(3):
      state = mod.step(state, mod.project(x[t]))
      outs.append(mod.output(state))
    return hs, jnp.stack(outs)

  variables = cell.init(jax.random.key(5), method=lambda m: run(m))
  hs, stepped = cell.apply(variables, method=lambda m: run(m))
  np.testing.assert_allclose(stepped, hs, rtol=1e-5, atol=1e-6)


def test_uniform_init_range_and_lstm_initial_state():
  cell = cells.create("lstm", 8, param_init="uniform", init_scale=0.01)
  v = cell.init(jax.random.key(0), jnp.zeros((1, 1, 3)), cell.zero_state(1),
                jnp.ones((1, 1), bool), method=lambda m, x, s, k: m(m.project(x), s, k))
  leaves = jax.tree.leaves(v)
  assert all(float(jnp.max(jnp.abs(x))) <= 0.01 for x in leaves)
  assert any(float(jnp.min(x)) < -0.005 for x in leaves)  # symmetric, not [0, 0.01)
  h0, c0 = cell.state_from(jnp.asarray([[2.0, -1.0]]))
  np.testing.assert_allclose(c0, [[2.0, -1.0]])
  np.testing.assert_allclose(h0, np.tanh([[2.0, -1.0]]), rtol=1e-6)
  with pytest.raises(ValueError, match="config.model.cell='rnn'"):
    cells.create("rnn", 4)
