"""optim.make_optimizer: the state's optax transformation equals optax's
clip_by_global_norm + adam / sgd, updates only the parts asked for, and its
learning rate follows optax's reduce_on_plateau fed with validation losses."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from textvae import optim


def _config(optimizer="adam", lr=1e-2, clip=5.0, schedule="constant", patience=2,
            max_decays=3):
  return ml_collections.ConfigDict(dict(
      optimizer=optimizer, learning_rate=lr, grad_clip=clip, adam_b1=0.8, adam_b2=0.95,
      lr_schedule=dict(name=schedule, factor=0.5, patience=patience, rtol=1e-4,
                       max_decays=max_decays, start_step=0, restore_best=True)))


def _params():
  k = jax.random.split(jax.random.key(0), 3)
  return {"encoder": {"a": jax.random.normal(k[0], (5, 3))},
          "decoder": {"c": jax.random.normal(k[1], (4,))}}


def _grads(p, step):
  return jax.tree.map(lambda x: jnp.sin(x * (step + 1)) * 3.0, p)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("clip", [0.0, 1e-3, 1e3])   # off, always clipping, never
def test_equals_optax_chain_over_steps(optimizer, clip):
  c = _config(optimizer, clip=clip)
  base = (optax.adam(c.learning_rate, b1=c.adam_b1, b2=c.adam_b2) if optimizer == "adam"
          else optax.sgd(c.learning_rate))
  ref_tx = optax.chain(*([optax.clip_by_global_norm(clip)] if clip > 0 else []), base)
  tx = optim.make_optimizer(c)
  ref_p, ref_s = _params(), ref_tx.init(_params())
  p, s = _params(), tx.init(_params())
  for step in range(4):
    u, ref_s = ref_tx.update(_grads(ref_p, step), ref_s, ref_p)
    ref_p = optax.apply_updates(ref_p, u)
    p, s = optim.apply(tx, p, _grads(p, step), s)
  for a, b in zip(jax.tree.leaves(ref_p), jax.tree.leaves(p)):
    np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
  if optimizer == "adam":  # optax.adam's state per part (and its step count)
    assert int(s.parts["decoder"][0].count) == 4
    assert (jax.tree.structure(s.parts["decoder"])
            == jax.tree.structure(optax.adam(0.1).init(_params()["decoder"])))


def test_parts_updates_only_those_parts_and_clips_over_all():
  c = _config("sgd", lr=1.0, clip=1.0)
  tx = optim.make_optimizer(c)
  p = _params()
  g = _grads(p, 0)
  new, s = optim.apply(tx, p, g, tx.init(p), parts=("encoder",))
  assert new["decoder"] is p["decoder"]
  norm = float(optax.global_norm(g))   # over both parts, not the encoder's alone
  assert norm > 1.0
  np.testing.assert_allclose(new["encoder"]["a"], p["encoder"]["a"] - g["encoder"]["a"] / norm,
                             rtol=1e-6)


def test_plateau_halves_after_patience_and_finishes_after_max_decays():
  c = _config("sgd", lr=1.0, clip=0.0, schedule="plateau", patience=2, max_decays=2)
  tx = optim.make_optimizer(c)
  p = _params()
  s = tx.init(p)
  seen = []
  # 10 best; 10.5, 11 two without improvement -> halve; 9 improves; 9, 9.5 -> halve (2nd).
  for v in (10.0, 10.5, 11.0, 9.0, 9.0, 9.5):
    s, decayed = optim.observe_validation(c, s, v)
    seen.append((decayed, optim.learning_rate(c, s), optim.schedule_finished(c, s)))
  assert seen == [(False, 1.0, False), (False, 1.0, False), (True, 0.5, False),
                  (False, 0.5, False), (False, 0.5, False), (True, 0.25, True)]
  assert optim.num_decays(c, s) == 2
  # The steps use the reduced rate: SGD's update is -0.25 * g.
  new, _ = optim.apply(tx, p, _grads(p, 0), s)
  np.testing.assert_allclose(new["decoder"]["c"] - p["decoder"]["c"],
                             -0.25 * _grads(p, 0)["decoder"]["c"], rtol=1e-6)


def test_constant_schedule_ignores_validations():
  c = _config("adam")
  s = optim.make_optimizer(c).init(_params())
  for v in (1.0, 2.0, 3.0, 4.0):
    s, decayed = optim.observe_validation(c, s, v)
    assert not decayed
  assert optim.learning_rate(c, s) == pytest.approx(1e-2)


def test_unknown_optimizer_is_refused():
  with pytest.raises(ValueError, match="config.train.optimizer='rmsprop'"):
    optim.make_optimizer(_config("rmsprop"))


def test_clip_factor():
  g = {"x": jnp.asarray([3.0, 4.0])}   # norm 5
  assert float(optim.clip_factor(g, 10.0)) == 1.0
  np.testing.assert_allclose(optim.clip_factor(g, 2.0), 0.4)
  assert float(optim.clip_factor(g, 0.0)) == 1.0


def test_the_train_step_runs_the_states_transformation():
  """steps.train_step applies `state.tx` (no update path of its own): a state
  whose tx is SGD with rate 0 keeps its parameters; with rate 1 it moves."""
  from textvae import models, steps
  from textvae.data import pipeline
  model = models.RNNLM(vocab_size=12, embed_dim=4, hidden_dim=8)
  rows = [np.asarray([5, 6, 7, 2], np.int32), np.asarray([8, 2], np.int32)]
  batch = jax.tree.map(lambda x: x[None], pipeline.collate(rows, np.ones(2)))
  tc = _config("sgd", lr=1.0)
  tc.kl_schedule = dict(name="constant", max_weight=1.0)
  moved = {}
  for lr in (0.0, 1.0):
    state = steps.create_train_state(model, jax.random.key(0), tc)
    state = state.replace(tx=optim.make_optimizer(_config("sgd", lr=lr)))
    new, _ = steps.pmap_train_step(tc, devices=jax.devices()[:1])(
        steps.place_state(state, jax.devices()[:1]), batch, jax.random.key(1))
    new = steps.local_state(new)
    moved[lr] = max(float(jnp.abs(a - b).max()) for a, b in
                    zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)))
  assert moved[0.0] == 0.0 and moved[1.0] > 1e-4
