"""Batched, jitted decoding: greedy and ancestral sampling with temperature.

Decoding runs `lax.scan` for `max_length` steps; a row that has produced <eos>
emits <pad> afterwards.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from textvae.data.vocab import BOS_ID, EOS_ID, PAD_ID


@functools.partial(jax.jit, static_argnames=("model", "max_length", "temperature"))
def decode(model, params, z_BxZ, key, *, max_length: int, temperature: float = 0.0):
  """Token ids [B, max_length] decoded from z; temperature 0 means greedy."""
  variables = {"params": params}
  B = z_BxZ.shape[0]
  h0 = model.apply(variables, z_BxZ, method="decode_init")

  def body(carry, t):
    h, token, done = carry
    h, logits = model.apply(variables, h, token, z_BxZ, method="decode_step")
    if temperature > 0:
      nxt = jax.random.categorical(jax.random.fold_in(key, t), logits / temperature)
    else:
      nxt = jnp.argmax(logits, axis=-1)
    nxt = jnp.where(done, PAD_ID, nxt).astype(jnp.int32)
    return (h, nxt, done | (nxt == EOS_ID)), nxt

  start = (h0, jnp.full((B,), BOS_ID, jnp.int32), jnp.zeros((B,), bool))
  _, tokens_LxB = jax.lax.scan(body, start, jnp.arange(max_length))
  return tokens_LxB.T


@functools.partial(jax.jit, static_argnames=("model",))
def posterior_mean(model, params, tokens_BxT):
  mu, _ = model.apply({"params": params}, tokens_BxT, method="encode")
  return mu
