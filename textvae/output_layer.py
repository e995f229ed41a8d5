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


def _blocks(x, num_blocks, rows):
  pad = [(0, num_blocks * rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, pad).reshape((num_blocks, rows) + x.shape[1:])


def _block(h_RxH, kernel_VxH, bias_V, t_R, w_R):
  """One block of rows: NLL, dloss/dh and the block's share of dloss/dW, db."""
  V = kernel_VxH.shape[0]
  logits = h_RxH @ kernel_VxH.T + bias_V                    # [R, V]
  m = jnp.max(logits, axis=-1, keepdims=True)
  e = jnp.exp(logits - m)
  s = jnp.sum(e, axis=-1, keepdims=True)
  target_logit = jnp.take_along_axis(logits, t_R[:, None], axis=-1)
  nll = (m + jnp.log(s) - target_logit)[:, 0]
  onehot = jnp.arange(V)[None, :] == t_R[:, None]
  d = w_R[:, None] * (e / s - onehot)                       # dloss/dlogits
  return nll, d @ kernel_VxH, d.T @ h_RxH, jnp.sum(d, axis=0)


def _forward_and_grads(h_NxH, kernel_VxH, bias_V, targets_N, weights_N, block_rows):
  """The loss, per-row NLL and the loss's gradients, block by block.

  N rows are cut into ceil(N / block_rows) blocks of equal size (a multiple of
  8), so that padding stays below 8 rows per block. The first block's dW and
  db start the sums (no N-independent zero fill of the V x H accumulator)."""
  N, H = h_NxH.shape
  num_blocks = -(-N // block_rows)
  rows = -(-N // num_blocks)
  rows = -(-rows // 8) * 8
  hb, tb, wb = (_blocks(x, num_blocks, rows) for x in (h_NxH, targets_N, weights_N))
  nll0, dh0, dW, db = _block(hb[0], kernel_VxH, bias_V, tb[0], wb[0])
  if num_blocks > 1:
    def body(carry, xs):
      dW, db = carry
      nll, dh, dW_b, db_b = _block(xs[0], kernel_VxH, bias_V, xs[1], xs[2])
      return (dW + dW_b, db + db_b), (nll, dh)
    (dW, db), (nll, dh) = jax.lax.scan(body, (dW, db), (hb[1:], tb[1:], wb[1:]))
    nll0 = jnp.concatenate([nll0, nll.reshape(-1)])
    dh0 = jnp.concatenate([dh0, dh.reshape(-1, H)])
  nll, dh = nll0[:N], dh0[:N]
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
