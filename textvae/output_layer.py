"""The softmax output layer and its loss for training, fused with its gradient.

`weighted_nll(h, kernel, bias, targets, weights)` returns the training loss's
reconstruction term, sum_n weights[n] * -log softmax(h[n] W^T + b)[targets[n]],
together with the per-row NLL (for metrics; not differentiable). Its forward
pass already computes the gradient (a custom VJP): for each block of rows it
takes the logits, their softmax, d = weights * (softmax - onehot) and then
dh = d W and dW += d^T h, db += sum d, while the block's logits are still in
cache. Plain autodiff instead writes the N x V logits, adds the bias in another
pass, keeps them for the backward pass, and writes the N x V gradient twice
(once transposed for dW); on the 2-core CPU that memory traffic cost as much as
the three matmuls (results/perf.md).

The gradient is exact (the same three matmuls as autodiff), so training with it
equals training with `models.output_nll` up to float rounding
(tests/test_output_layer.py).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def weighted_nll(h_NxH, kernel_VxH, bias_V, targets_N, weights_N, block_rows: int = 128):
  """(sum_n weights_N[n] * nll[n], nll_N). Only the sum is differentiable, with
  respect to h, kernel and bias; `weights_N` (e.g. mask / number of sentences)
  and `targets_N` are constants."""
  total, nll = _weighted_nll(h_NxH, kernel_VxH, bias_V, targets_N,
                             jax.lax.stop_gradient(weights_N), block_rows)
  return total, jax.lax.stop_gradient(nll)


def _blocks(x, block_rows):
  n = x.shape[0]
  nb = -(-n // block_rows)
  pad = [(0, nb * block_rows - n)] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, pad).reshape((nb, block_rows) + x.shape[1:])


def _forward_and_grads(h_NxH, kernel_VxH, bias_V, targets_N, weights_N, block_rows):
  """The loss, per-row NLL and the loss's gradients, block by block."""
  N, H = h_NxH.shape
  V = kernel_VxH.shape[0]
  block_rows = min(block_rows, N)
  hb, tb, wb = (_blocks(x, block_rows) for x in (h_NxH, targets_N, weights_N))

  def block(carry, xs):
    dW, db = carry
    h, t, w = xs
    logits = h @ kernel_VxH.T + bias_V                        # [R, V]
    m = jnp.max(logits, axis=-1, keepdims=True)
    e = jnp.exp(logits - m)
    s = jnp.sum(e, axis=-1, keepdims=True)
    target_logit = jnp.take_along_axis(logits, t[:, None], axis=-1)
    nll = (m + jnp.log(s) - target_logit)[:, 0]
    onehot = jnp.arange(V)[None, :] == t[:, None]
    d = w[:, None] * (e / s - onehot)                         # dloss/dlogits
    dh = d @ kernel_VxH
    dW = dW + d.T @ h
    db = db + jnp.sum(d, axis=0)
    return (dW, db), (nll, dh)

  init = (jnp.zeros_like(kernel_VxH), jnp.zeros_like(bias_V))
  (dW, db), (nll, dh) = jax.lax.scan(block, init, (hb, tb, wb))
  nll, dh = nll.reshape(-1)[:N], dh.reshape(-1, H)[:N]
  return jnp.sum(weights_N * nll), nll, (dh, dW, db)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _weighted_nll(h_NxH, kernel_VxH, bias_V, targets_N, weights_N, block_rows):
  total, nll, _ = _forward_and_grads(h_NxH, kernel_VxH, bias_V, targets_N, weights_N,
                                     block_rows)
  return total, nll


def _fwd(h_NxH, kernel_VxH, bias_V, targets_N, weights_N, block_rows):
  total, nll, grads = _forward_and_grads(h_NxH, kernel_VxH, bias_V, targets_N, weights_N,
                                         block_rows)
  return (total, nll), grads


def _bwd(block_rows, grads, cotangents):
  del block_rows
  g_total, _ = cotangents  # the NLL output is wrapped in stop_gradient
  dh, dW, db = grads
  return g_total * dh, g_total * dW, g_total * db, None, None


_weighted_nll.defvjp(_fwd, _bwd)
