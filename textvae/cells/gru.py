"""The GRU recurrence over precomputed input projections, with a written-out
backward pass.

Gate layout as PyTorch's: for input projection x = [x_r, x_u, x_n] (already
W_i x + b_i) and recurrent projection p = h W_h + b_h = [p_r, p_u, p_n],

  r = sigmoid(x_r + p_r),  u = sigmoid(x_u + p_u),  n = tanh(x_n + r * p_n),
  h' = (1 - u) * n + u * h,

and a row whose mask is False keeps its state. The forward pass saves the
gates; the backward pass runs one matmul per step (dp W_h^T) and computes the
recurrent kernel's gradient once after the loop as a single [H, T*B] x [T*B, 3H]
matmul, where autodiff of `lax.scan` accumulates a rank-B update into the H x 3H
gradient at every step (results/perf.md).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from textvae.cells import base

Array = jax.Array


def cell(kernel_Hx3H, bias_3H, h_BxH, xp_Bx3H):
  """One GRU step: the new state and the gates (r, u, n, p_n) that the
  backward pass needs. Also the decoding step (`GRU.step`)."""
  H = h_BxH.shape[-1]
  p = h_BxH @ kernel_Hx3H + bias_3H
  r = jax.nn.sigmoid(xp_Bx3H[:, :H] + p[:, :H])
  u = jax.nn.sigmoid(xp_Bx3H[:, H:2 * H] + p[:, H:2 * H])
  pn = p[:, 2 * H:]
  n = jnp.tanh(xp_Bx3H[:, 2 * H:] + r * pn)
  return (1.0 - u) * n + u * h_BxH, (r, u, n, pn)


def _step(kernel_Hx3H, bias_3H, h_BxH, xp_Bx3H, m_B):
  """`cell`, with rows whose mask is False keeping their state."""
  h_new, gates = cell(kernel_Hx3H, bias_3H, h_BxH, xp_Bx3H)
  return jnp.where(m_B[:, None], h_new, h_BxH), gates


def _forward(xproj_TxBx3H, h0_BxH, mask_TxB, kernel_Hx3H, bias_3H):
  def step(h, inputs):
    xp, m = inputs
    h_new, gates = _step(kernel_Hx3H, bias_3H, h, xp, m)
    return h_new, (h_new, gates)
  _, (hs, gates) = jax.lax.scan(step, h0_BxH, (xproj_TxBx3H, mask_TxB))
  return hs, gates


@jax.custom_vjp
def recurrence(xproj_TxBx3H, h0_BxH, mask_TxB, kernel_Hx3H, bias_3H):
  """All hidden states [T, B, H]; the last one is each row's state after its
  last real step (masked steps carry the state)."""
  return _forward(xproj_TxBx3H, h0_BxH, mask_TxB, kernel_Hx3H, bias_3H)[0]


def _fwd(xproj_TxBx3H, h0_BxH, mask_TxB, kernel_Hx3H, bias_3H):
  hs, gates = _forward(xproj_TxBx3H, h0_BxH, mask_TxB, kernel_Hx3H, bias_3H)
  return hs, (hs, gates, h0_BxH, mask_TxB, kernel_Hx3H)


def _bwd(res, dhs_TxBxH):
  hs, (r, u, n, pn), h0, mask, kernel = res
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)   # [T, B, H]
  kernel_T = kernel.T                                        # [3H, H]

  def step(dh_next, inputs):
    dh_out, r, u, n, pn, hp, m = inputs
    dh = dh_next + dh_out
    keep = m[:, None]
    dh_act = jnp.where(keep, dh, 0.0)
    du = dh_act * (hp - n) * u * (1.0 - u)
    dn = dh_act * (1.0 - u) * (1.0 - n * n)
    dr = dn * pn * r * (1.0 - r)
    dp = jnp.concatenate([dr, du, dn * r], axis=-1)          # d(recurrent projection)
    dx = jnp.concatenate([dr, du, dn], axis=-1)              # d(input projection)
    dh_prev = jnp.where(keep, dh * u, dh) + dp @ kernel_T
    return dh_prev, (dx, dp)

  dh0, (dx, dp) = jax.lax.scan(step, jnp.zeros_like(h0),
                               (dhs_TxBxH, r, u, n, pn, h_prev, mask), reverse=True)
  H = h0.shape[-1]
  dkernel = h_prev.reshape(-1, H).T @ dp.reshape(-1, 3 * H)
  dbias = jnp.sum(dp, axis=(0, 1))
  return dx, dh0, None, dkernel, dbias


recurrence.defvjp(_fwd, _bwd)


class GRU(base.GatedCell):
  """A single-layer GRU cell (`textvae.cells` interface); the state is h [B, H].

  The input projection of every step is one matmul before `lax.scan`
  (`project`), and only the recurrent matmul runs inside it."""
  NUM_GATES = 3

  def zero_state(self, batch_size: int) -> Array:
    return jnp.zeros((batch_size, self.hidden_dim), jnp.float32)

  def state_from(self, v_BxH: Array) -> Array:
    return jnp.tanh(v_BxH)

  def output(self, h_BxH: Array) -> Array:
    return h_BxH

  def step(self, h_BxH: Array, xproj_Bx3H: Array) -> Array:
    return cell(self.recurrent_kernel, self.recurrent_bias, h_BxH, xproj_Bx3H)[0]

  def __call__(self, xproj_TxBx3H: Array, h0_BxH: Array, mask_TxB: Array):
    hs_TxBxH = recurrence(xproj_TxBx3H, h0_BxH, mask_TxB, self.recurrent_kernel,
                          self.recurrent_bias)
    return hs_TxBxH, hs_TxBxH[-1]
