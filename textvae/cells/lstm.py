"""The LSTM recurrence over precomputed input projections, with a written-out
backward pass, and the LSTM cell.

Gate layout as PyTorch's nn.LSTM: for the input projection x = W_i x + b_i and
the recurrent projection p = h W_h + b_h, each split [i, f, g, o],

  i = sigmoid(x_i + p_i),  f = sigmoid(x_f + p_f),  g = tanh(x_g + p_g),
  o = sigmoid(x_o + p_o),  c' = f * c + i * g,  h' = o * tanh(c'),

and a row whose mask is False keeps its state (h, c). As for the GRU
(`cells/gru.py`), the forward pass saves the gates and the backward pass runs
one [B, 4H] x [4H, H] matmul per step; the recurrent kernel's gradient is one
[H, T*B] x [T*B, 4H] matmul after the loop instead of a rank-B update of the
H x 4H gradient at every step (autodiff of `lax.scan`). Measured by
`benchmarks/recurrence_backward.py` (README, speed section).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from textvae.cells import base

Array = jax.Array


def cell(kernel_Hx4H, bias_4H, h_BxH, c_BxH, xp_Bx4H):
  """One LSTM step: (h', c') and the values the backward pass needs
  (i, f, g, o, tanh c')."""
  H = h_BxH.shape[-1]
  a = xp_Bx4H + h_BxH @ kernel_Hx4H + bias_4H
  i = jax.nn.sigmoid(a[:, :H])
  f = jax.nn.sigmoid(a[:, H:2 * H])
  g = jnp.tanh(a[:, 2 * H:3 * H])
  o = jax.nn.sigmoid(a[:, 3 * H:])
  c = f * c_BxH + i * g
  tc = jnp.tanh(c)
  return (o * tc, c), (i, f, g, o, tc)


def _step(kernel_Hx4H, bias_4H, h_BxH, c_BxH, xp_Bx4H, m_B):
  """`cell`, with rows whose mask is False keeping their state."""
  (h, c), saved = cell(kernel_Hx4H, bias_4H, h_BxH, c_BxH, xp_Bx4H)
  keep = m_B[:, None]
  return (jnp.where(keep, h, h_BxH), jnp.where(keep, c, c_BxH)), saved


def _forward(xproj_TxBx4H, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H, bias_4H):
  def step(carry, inputs):
    xp, m = inputs
    (h, c), saved = _step(kernel_Hx4H, bias_4H, carry[0], carry[1], xp, m)
    return (h, c), (h, c, saved)
  (_, c_last), (hs, cs, saved) = jax.lax.scan(step, (h0_BxH, c0_BxH),
                                              (xproj_TxBx4H, mask_TxB))
  return hs, c_last, cs, saved


@jax.custom_vjp
def recurrence(xproj_TxBx4H, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H, bias_4H):
  """(all hidden states h [T, B, H], the last cell state c [B, H]); both are
  each row's after its last real step (masked steps carry the state)."""
  hs, c_last, _, _ = _forward(xproj_TxBx4H, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H, bias_4H)
  return hs, c_last


def _fwd(xproj_TxBx4H, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H, bias_4H):
  hs, c_last, cs, saved = _forward(xproj_TxBx4H, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H,
                                   bias_4H)
  return (hs, c_last), (hs, cs, saved, h0_BxH, c0_BxH, mask_TxB, kernel_Hx4H)


def _bwd(res, cotangents):
  dhs_TxBxH, dc_last = cotangents
  hs, cs, (i, f, g, o, tc), h0, c0, mask, kernel = res
  h_prev = jnp.concatenate([h0[None], hs[:-1]], axis=0)   # [T, B, H]
  c_prev = jnp.concatenate([c0[None], cs[:-1]], axis=0)
  kernel_T = kernel.T                                        # [4H, H]

  def step(carry, inputs):
    dh_next, dc_next = carry
    dh_out, i, f, g, o, tc, cp, m = inputs
    dh = dh_next + dh_out
    keep = m[:, None]
    dh_act = jnp.where(keep, dh, 0.0)
    dc_act = jnp.where(keep, dc_next, 0.0)
    dc = dc_act + dh_act * o * (1.0 - tc * tc)
    da = jnp.concatenate([dc * g * i * (1.0 - i), dc * cp * f * (1.0 - f),
                          dc * i * (1.0 - g * g), dh_act * tc * o * (1.0 - o)], axis=-1)
    dh_prev = jnp.where(keep, 0.0, dh) + da @ kernel_T
    dc_prev = jnp.where(keep, dc * f, dc_next)
    return (dh_prev, dc_prev), da

  (dh0, dc0), da = jax.lax.scan(step, (jnp.zeros_like(h0), dc_last),
                                (dhs_TxBxH, i, f, g, o, tc, c_prev, mask), reverse=True)
  H = h0.shape[-1]
  dkernel = h_prev.reshape(-1, H).T @ da.reshape(-1, 4 * H)
  dbias = jnp.sum(da, axis=(0, 1))
  return da, dh0, dc0, None, dkernel, dbias


recurrence.defvjp(_fwd, _bwd)


class LSTM(base.GatedCell):
  """A single-layer LSTM cell (`textvae.cells` interface); the state is (h, c).

  The decoder's latent map v gives c0 = v and h0 = tanh(v), as in the authors'
  code of Li et al. 2019 / He et al. 2019 (`c_init = trans_linear(z); h_init =
  tanh(c_init)`)."""
  NUM_GATES = 4

  def zero_state(self, batch_size: int):
    zeros = jnp.zeros((batch_size, self.hidden_dim), jnp.float32)
    return zeros, zeros

  def state_from(self, v_BxH: Array):
    return jnp.tanh(v_BxH), v_BxH

  def output(self, state) -> Array:
    return state[0]

  def step(self, state, xproj_Bx4H: Array):
    return cell(self.recurrent_kernel, self.recurrent_bias, state[0], state[1], xproj_Bx4H)[0]

  def __call__(self, xproj_TxBx4H: Array, state0, mask_TxB: Array):
    hs_TxBxH, c_last = recurrence(xproj_TxBx4H, state0[0], state0[1], mask_TxB,
                                  self.recurrent_kernel, self.recurrent_bias)
    return hs_TxBxH, (hs_TxBxH[-1], c_last)
