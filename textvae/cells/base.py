"""Initialisers shared by the cells and the models."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

INITS = ("default", "uniform")


def initializers(init: str, scale: float):
  """(kernel, bias) initialisers for the dense layers of a model: Flax's
  defaults (LeCun normal, zeros), or U(-scale, scale) for both ('uniform': the
  authors' `uniform_initializer(0.01)` of Li et al. 2019 / He et al. 2019,
  applied to every parameter but the embeddings)."""
  if init == "default":
    return nn.initializers.lecun_normal(), nn.initializers.zeros
  if init == "uniform":
    return uniform(scale), uniform(scale)
  raise ValueError(f"config.model.param_init={init!r}: expected one of {INITS}")


def uniform(scale: float):
  """U(-scale, scale) (`nn.initializers.uniform` draws from [0, scale))."""
  def init(key, shape, dtype=jnp.float32):
    return nn.initializers.uniform(2 * scale)(key, shape, dtype) - scale
  return init


def stacked_orthogonal(n: int):
  """Orthogonal initialisation of each of the n gates' H x H blocks."""
  ortho = nn.initializers.orthogonal()

  def init(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, n)
    return jnp.concatenate([ortho(k, (rows, cols // n), dtype) for k in keys], axis=1)
  return init
