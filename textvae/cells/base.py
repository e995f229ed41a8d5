"""Initialisers shared by the cells and the models, and the parameters every
cell has (`GatedCell`)."""

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


class GatedCell(nn.Module):
  """What every cell holds: the input projection to NUM_GATES x H, computed
  for all steps in one matmul before `lax.scan` (`project`), and the
  recurrent kernel (stacked orthogonal blocks by default) and bias. A cell
  subclasses it with NUM_GATES, its state and its recurrence."""
  NUM_GATES = 0
  hidden_dim: int
  param_init: str = "default"
  init_scale: float = 0.01

  def setup(self):
    H, G = self.hidden_dim, self.NUM_GATES
    kernel, bias = initializers(self.param_init, self.init_scale)
    recurrent = stacked_orthogonal(G) if self.param_init == "default" else kernel
    self.input_proj = nn.Dense(G * H, kernel_init=kernel, bias_init=bias, name="input")
    self.recurrent_kernel = self.param("recurrent_kernel", recurrent, (H, G * H))
    self.recurrent_bias = self.param("recurrent_bias", bias, (G * H,))

  def project(self, x_XxYxD: jax.Array) -> jax.Array:
    return self.input_proj(x_XxYxD)
