"""optim.adam_apply + clip_factor equal optax's clip_by_global_norm + adam."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from textvae import optim


@pytest.mark.parametrize("max_norm", [0.0, 1e-3, 1e3])   # off, always clipping, never
def test_equals_optax_chain_over_steps(max_norm):
  k = jax.random.split(jax.random.key(0), 3)
  params = {"a": jax.random.normal(k[0], (5, 3)), "b": {"c": jax.random.normal(k[1], (4,))}}
  lr, b1, b2 = 1e-2, 0.8, 0.95
  chain = [optax.clip_by_global_norm(max_norm)] if max_norm > 0 else []
  tx = optax.chain(*chain, optax.adam(lr, b1=b1, b2=b2))
  ref_p, ref_s = params, tx.init(params)
  p, s = params, optax.adam(lr, b1=b1, b2=b2).init(params)
  for step in range(4):
    g = jax.tree.map(lambda x: jnp.sin(x * (step + 1)) * 3.0, p)
    g_ref = jax.tree.map(lambda x: jnp.sin(x * (step + 1)) * 3.0, ref_p)
    u, ref_s = tx.update(g_ref, ref_s, ref_p)
    ref_p = optax.apply_updates(ref_p, u)
    p, s = optim.adam_apply(p, g, s, learning_rate=lr, b1=b1, b2=b2,
                            scale=optim.clip_factor(g, max_norm))
  for a, c in zip(jax.tree.leaves(ref_p), jax.tree.leaves(p)):
    np.testing.assert_allclose(c, a, rtol=1e-6, atol=1e-7)
  assert int(s[0].count) == 4
  # The state has optax.adam's structure (checkpoints stay compatible).
  assert jax.tree.structure(s) == jax.tree.structure(optax.adam(lr).init(params))


def test_clip_factor():
  g = {"x": jnp.asarray([3.0, 4.0])}   # norm 5
  assert float(optim.clip_factor(g, 10.0)) == 1.0
  np.testing.assert_allclose(optim.clip_factor(g, 2.0), 0.4)
  assert float(optim.clip_factor(g, 0.0)) == 1.0
