"""Dropout as in the papers: decoder input embeddings, decoder output states
before the softmax, encoder embeddings. Per sentence row from the 'dropout'
stream: inverted scaling, the masks' rate, none in evaluation, and the same
masks on 1 device as on 4 (an SGD step, whose update is linear in the
gradient, so a sum-instead-of-mean of the device gradients would show)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from textvae import models
from textvae import steps
from textvae.data import pipeline


def test_row_dropout_scales_kept_units_and_drops_at_the_rate():
  T, B, D, rate = 30, 8, 64, 0.5
  x = jnp.ones((T, B, D))
  y = np.asarray(models.row_dropout(x, jax.random.key(0), jnp.arange(B), rate))
  assert set(np.unique(y)) == {0.0, 2.0}            # kept units scaled by 1 / (1 - rate)
  n = y.size
  dropped = float(np.mean(y == 0.0))
  assert abs(dropped - rate) < 4 * np.sqrt(rate * (1 - rate) / n)   # binomial, 4 sigma
  # Rate 0.2: the same test at another rate (a mask drawn with 1 - rate would fail).
  y = np.asarray(models.row_dropout(x, jax.random.key(1), jnp.arange(B), 0.2))
  assert abs(float(np.mean(y == 0.0)) - 0.2) < 4 * np.sqrt(0.2 * 0.8 / n)
  np.testing.assert_allclose(np.unique(y), [0.0, 1.25])


def test_row_dropout_mask_depends_on_the_row_id_not_the_position():
  x = jnp.ones((5, 4, 3))
  key = jax.random.key(3)
  a = np.asarray(models.row_dropout(x, key, jnp.asarray([0, 1, 2, 3]), 0.5))
  b = np.asarray(models.row_dropout(x[:, 2:], key, jnp.asarray([2, 3]), 0.5))
  np.testing.assert_array_equal(a[:, 2:], b)


def _vae(rate_in=0.5, rate_out=0.5, rate_enc=0.5, cell="lstm"):
  return models.TextVAE(vocab_size=30, embed_dim=8, hidden_dim=16, latent_dim=4, cell=cell,
                        embed_dropout=rate_in, output_dropout=rate_out,
                        encoder_embed_dropout=rate_enc)


def _batch(rng, n=8):
  rows = [np.append(rng.integers(4, 30, size=rng.integers(2, 9)), 2).astype(np.int32)
          for _ in range(n)]
  return pipeline.collate(rows, np.ones(n))


def test_output_dropout_zeroes_or_scales_the_decoder_states():
  model = _vae(rate_in=0.0, rate_out=0.5, rate_enc=0.0)
  batch = _batch(np.random.default_rng(0))
  tok, inp = batch["tokens_BxT"], batch["inputs_BxT"]
  variables = model.init({"params": jax.random.key(0), "latent": jax.random.key(1),
                          "dropout": jax.random.key(2)}, tok, inp)
  z = jnp.ones((tok.shape[0], 4))

  def states(m, deterministic):
    return m.decoder.hidden_states(inp, z, deterministic=deterministic)

  plain = np.asarray(model.apply(variables, True, method=states))
  dropped = np.asarray(model.apply(variables, False, method=states,
                                   rngs={"dropout": jax.random.key(7)}))
  kept = dropped != 0
  np.testing.assert_allclose(dropped[kept], 2.0 * plain[kept], rtol=1e-6)
  assert 0.4 < 1 - kept.mean() < 0.6


def test_evaluation_is_deterministic_and_ignores_the_dropout_rates():
  batch = _batch(np.random.default_rng(1))
  tok, inp = batch["tokens_BxT"], batch["inputs_BxT"]
  with_dropout, without = _vae(), _vae(0.0, 0.0, 0.0)
  variables = with_dropout.init({"params": jax.random.key(0), "latent": jax.random.key(1),
                                 "dropout": jax.random.key(2)}, tok, inp)
  z = jnp.ones((tok.shape[0], 4))
  a = with_dropout.apply(variables, tok, inp, z, method="decode_nll")
  b = without.apply(variables, tok, inp, z, method="decode_nll")
  np.testing.assert_array_equal(a, b)
  mu_a, _ = with_dropout.apply(variables, tok, method="encode")
  mu_b, _ = without.apply(variables, tok, method="encode")
  np.testing.assert_array_equal(mu_a, mu_b)
  # In training mode every one of the three dropouts changes the result.
  for rates in ((0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)):
    m = _vae(*rates)
    out = m.apply(variables, tok, inp, deterministic=False,
                  rngs={"latent": jax.random.key(4), "dropout": jax.random.key(5)})
    ref = without.apply(variables, tok, inp, deterministic=False,
                        rngs={"latent": jax.random.key(4), "dropout": jax.random.key(5)})
    assert not np.allclose(out["nll_BxT"], ref["nll_BxT"]), rates


def _sgd_config():
  return ml_collections.ConfigDict(dict(
      optimizer="sgd", learning_rate=0.5, grad_clip=0.0, adam_b1=0.9, adam_b2=0.999,
      kl_schedule=dict(name="constant", max_weight=1.0, warmup_steps=1, logistic_k=0.0,
                       logistic_x0=0, num_cycles=1, cycle_steps=1, ratio=1.0)))


def _sgd_steps(num_devices, batches):
  devices = jax.devices()[:num_devices]
  tc = _sgd_config()
  state = steps.create_train_state(_vae(), jax.random.key(0), tc)
  init = state.params
  p_step = steps.pmap_train_step(tc, devices=devices)
  state = steps.place_state(state, devices)
  for batch in batches:
    sharded = jax.tree_util.tree_map(
        lambda x: x.reshape((num_devices, -1) + x.shape[1:]), batch)
    state, _ = p_step(state, sharded, jax.random.key(42))
  return init, steps.local_state(state).params


def test_sgd_steps_with_every_dropout_equal_on_one_and_four_devices():
  assert jax.device_count() >= 4, "conftest sets 4 host devices"
  rng = np.random.default_rng(2)
  batches = [_batch(rng) for _ in range(2)]
  init, p1 = _sgd_steps(1, batches)
  _, p4 = _sgd_steps(4, batches)
  # Without clipping SGD's update is lr * gradient: a device sum instead of the
  # mean would make the 4-device update 4 times larger.
  d1 = jax.tree.map(lambda a, b: b - a, init, p1)
  d4 = jax.tree.map(lambda a, b: b - a, init, p4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(b, a, rtol=2e-4, atol=1e-6), d1, d4)
  assert max(float(jnp.abs(x).max()) for x in jax.tree.leaves(d1)) > 1e-3


def test_word_dropout_replaces_decoder_inputs_by_unk_never_bos_pads_or_targets():
  """Bowman et al. 2016: at rate 1 every decoder input word but <bos> is <unk>
  (pads stay pads) while the targets are the sentence; rate 0 and evaluation
  leave the inputs alone. Checked against the deterministic decoder fed the
  inputs replaced by hand."""
  from textvae.data import vocab as vocab_lib  # pylint: disable=import-outside-toplevel
  batch = _batch(np.random.default_rng(4))
  tok, inp = batch["tokens_BxT"], batch["inputs_BxT"]
  assert (inp == vocab_lib.PAD_ID).any()  # the batch has padding to leave alone
  def nll(m, inputs, deterministic):
    return m.decoder(inputs, tok, None, deterministic=deterministic)

  lm = lambda rate: models.RNNLM(vocab_size=30, embed_dim=8, hidden_dim=16, word_dropout=rate)
  variables = lm(0.0).init({"params": jax.random.key(0)}, tok, inp)
  rngs = {"dropout": jax.random.key(9)}
  by_hand = np.where((inp != vocab_lib.PAD_ID) & (np.arange(inp.shape[1]) > 0),
                     vocab_lib.UNK_ID, inp)
  assert by_hand[0, 0] == inp[0, 0] == vocab_lib.BOS_ID
  expected_all = np.asarray(lm(0.0).apply(variables, by_hand, True, method=nll))
  expected_none = np.asarray(lm(0.0).apply(variables, inp, True, method=nll))
  assert np.abs(expected_all - expected_none).max() > 1e-3  # the replacement shows
  np.testing.assert_allclose(lm(1.0).apply(variables, inp, False, method=nll, rngs=rngs),
                             expected_all, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(lm(0.0).apply(variables, inp, False, method=nll, rngs=rngs),
                             expected_none, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(lm(1.0).apply(variables, inp, True, method=nll),
                             expected_none, rtol=1e-6, atol=1e-7)
