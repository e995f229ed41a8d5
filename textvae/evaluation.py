"""Evaluation by the definitions of ARCHITECTURE.md: IW-NLL, ELBO, KL, MI, AU, PPL.

The kernel (`sentence_stats`) is pure and per device: for each sentence of a
batch it returns the importance-weighted log-likelihood estimate

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,

the Monte-Carlo reconstruction term E_q[-log p(x|z)] over the same K samples,
the analytic KL and the posterior (mu, logvar). Samples are drawn in chunks of
`chunk_size` (a `lax.scan`), so memory is bounded by chunk_size x batch x T x V
whatever K is; each chunk decodes chunk_size x B sentences in one batched call.
Noise is folded from the sentence's global row index (as in training), so the
numbers do not depend on the device count.

The split-level loop (`evaluate_split`) gathers the per-sentence values on the
host and reduces them there: sums for NLL/ELBO/PPL, the aggregate posterior over
the WHOLE split for MI (Li et al. 2019), Cov_x(E_q[z]) for active units.

For the RNNLM (latent_dim 0) log p(x|z) does not depend on z: the kernel computes
the exact NLL once, and `iw_nll` is that exact NLL.
"""

from __future__ import annotations

import functools
import math
import time

import jax
from jax import lax
import jax.numpy as jnp
import numpy as np

from textvae import models
from textvae import objectives
from textvae import parallel
from textvae import steps
from textvae.data import pipeline

LOG_2PI = math.log(2.0 * math.pi)


def _gaussian_logpdf(x, mu, logvar):
  return -0.5 * jnp.sum(LOG_2PI + logvar + jnp.square(x - mu) * jnp.exp(-logvar), axis=-1)


def sentence_stats(params, batch, key, batch_index, *, model, num_samples: int,
                   chunk_size: int):
  """Per-sentence evaluation of one batch on one device (call inside pmap)."""
  tokens, inputs = batch["tokens_BxT"], batch["inputs_BxT"]
  variables = {"params": params}
  B, T = tokens.shape
  mask = objectives.token_mask(tokens)
  mu, logvar = model.apply(variables, tokens, method="encode")
  Z = mu.shape[-1]
  kl_BxZ = objectives.gaussian_kl_per_dim(mu, logvar)
  out = {"kl_BxZ": kl_BxZ, "kl_B": jnp.sum(kl_BxZ, -1), "mu_BxZ": mu, "logvar_BxZ": logvar,
         "num_tokens_B": jnp.sum(mask, -1), "weights_B": batch["weights_B"]}
  if Z == 0:  # language model: exact likelihood, no sampling
    nll = model.apply(variables, tokens, inputs, jnp.zeros((B, 0)), method="decode_nll")
    recon = jnp.sum(nll * mask, -1)
    out.update(log_px_B=-recon, recon_B=recon)
    return out

  row_keys = models.row_keys(jax.random.fold_in(key, batch_index),
                             steps.global_row_ids(B))
  C = chunk_size
  tokens_CB = jnp.broadcast_to(tokens, (C, B, T)).reshape(C * B, T)
  inputs_CB = jnp.broadcast_to(inputs, (C, B, T)).reshape(C * B, T)
  mask_CB = jnp.broadcast_to(mask, (C, B, T)).reshape(C * B, T)
  std = jnp.exp(0.5 * logvar)

  def chunk(_, c):
    eps_BxCxZ = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, c), (C, Z)))(row_keys)
    z_CxBxZ = mu[None] + std[None] * jnp.swapaxes(eps_BxCxZ, 0, 1)
    nll = model.apply(variables, tokens_CB, inputs_CB, z_CxBxZ.reshape(C * B, Z),
                      method="decode_nll")
    log_pxz = -jnp.sum(nll * mask_CB, -1).reshape(C, B)
    log_pz = _gaussian_logpdf(z_CxBxZ, 0.0, jnp.zeros_like(z_CxBxZ))
    log_qz = _gaussian_logpdf(z_CxBxZ, mu[None], logvar[None])
    return None, (log_pxz + log_pz - log_qz, log_pxz)

  _, (log_w, log_pxz) = lax.scan(chunk, None, jnp.arange(num_samples // C))
  log_w = log_w.reshape(-1, B)
  out.update(log_px_B=jax.nn.logsumexp(log_w, axis=0) - math.log(log_w.shape[0]),
             recon_B=-jnp.mean(log_pxz.reshape(-1, B), axis=0))
  return out


@functools.lru_cache(maxsize=16)
def pmapped_stats(model, num_samples: int, chunk_size: int, devices=None):
  """The kernel jitted and mapped over `devices` (default: all local devices),
  cached per model, K and device set."""
  return jax.pmap(
      functools.partial(sentence_stats, model=model, num_samples=num_samples,
                        chunk_size=chunk_size),
      axis_name=steps.AXIS, in_axes=(0, 0, None, None),
      devices=list(devices) if devices else None)


def choose_chunk(num_samples: int, chunk_size: int) -> int:
  chunk = max(1, min(chunk_size, num_samples))
  while num_samples % chunk:
    chunk -= 1
  return chunk


def collect(model, params_repl, split: pipeline.EncodedSplit, *, num_samples: int,
            batch_size: int, key, chunk_size: int = 50, pad_multiple: int = 1,
            devices=None):
  """Per-sentence arrays over the whole split (filler rows dropped), in
  length-sorted order. `params_repl` is replicated over `devices` (default: all
  local devices)."""
  if devices is None:
    parallel.check_global_batch(batch_size, "eval batch_size")
    num_local = jax.local_device_count()
  else:
    num_local = len(devices)
    if batch_size % num_local:
      raise ValueError(f"eval batch_size={batch_size} does not split over {num_local} devices")
  chunk = choose_chunk(num_samples, chunk_size)
  fn = pmapped_stats(model, num_samples, chunk, tuple(devices) if devices else None)
  pieces = []
  for i, batch in enumerate(pipeline.eval_batches(
      split, global_batch_size=batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), pad_multiple=pad_multiple)):
    sharded = jax.tree_util.tree_map(
        lambda x: np.reshape(x, (num_local, -1) + x.shape[1:]), batch)
    pieces.append(fn(params_repl, sharded, key, i))
  pieces = jax.device_get(pieces)
  merged = {k: np.concatenate([p[k].reshape((p[k].shape[0] * p[k].shape[1],) + p[k].shape[2:])
                              for p in pieces])
            for k in pieces[0]}
  keep = merged.pop("weights_B") > 0
  merged = {k: v[keep] for k, v in merged.items()}
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    gathered = multihost_utils.process_allgather(merged, tiled=False)
    merged = {k: np.concatenate(list(v)) for k, v in gathered.items()}
  return merged


def mutual_information(mu_NxZ, logvar_NxZ, key, *, samples_per_sentence: int = 5,
                       block: int = 1024) -> float:
  """I_q(x; z) = E_x E_q(z|x)[log q(z|x) - log q(z)], with the aggregate
  posterior q(z) = 1/N sum_n q(z|x_n) over all N sentences given (Hoffman &
  Johnson 2016; Li et al. 2019), estimated with `samples_per_sentence` samples
  z ~ q(z|x_n) each. Both log densities are taken at the same samples, so their
  Monte-Carlo noise largely cancels (identical posteriors give exactly 0)."""
  mu = jnp.asarray(mu_NxZ, jnp.float32)
  logvar = jnp.asarray(logvar_NxZ, jnp.float32)
  N, Z = mu.shape
  if Z == 0 or N == 0:
    return 0.0
  S = samples_per_sentence
  eps = jax.random.normal(key, (S, N, Z))
  z = (mu[None] + jnp.exp(0.5 * logvar)[None] * eps).reshape(S * N, Z)
  log_q_own = _gaussian_logpdf(z, jnp.tile(mu, (S, 1)), jnp.tile(logvar, (S, 1)))
  log_qz = jnp.concatenate([_aggregate_log_density(z[i:i + block], mu, logvar)
                            for i in range(0, S * N, block)]) - math.log(N)
  return float(jnp.mean(log_q_own - log_qz))


@jax.jit
def _aggregate_log_density(z_MxZ, mu_NxZ, logvar_NxZ):
  """log sum_n q(z_m | x_n) for every m: [M]."""
  log_q_MxN = jax.vmap(lambda z: _gaussian_logpdf(z[None], mu_NxZ, logvar_NxZ))(z_MxZ)
  return jax.nn.logsumexp(log_q_MxN, axis=-1)


def active_units(mu_NxZ, threshold: float = 0.01) -> tuple[int, np.ndarray]:
  """Dimensions u with Cov_x(E_q[z_u]) > threshold (Burda et al. 2016)."""
  mu = np.asarray(mu_NxZ, np.float64)
  if mu.shape[1] == 0:
    return 0, np.zeros(0)
  var = mu.var(axis=0)
  return int((var > threshold).sum()), var


def summarise(per_sentence, *, num_samples: int, mi_key) -> dict:
  """Split-level figures from per-sentence arrays (see module docstring)."""
  n = len(per_sentence["log_px_B"])
  tokens = float(np.sum(per_sentence["num_tokens_B"], dtype=np.float64))
  nll = -np.sum(per_sentence["log_px_B"], dtype=np.float64)
  recon = np.sum(per_sentence["recon_B"], dtype=np.float64)
  kl = np.sum(per_sentence["kl_B"], dtype=np.float64)
  au, au_var = active_units(per_sentence["mu_BxZ"])
  latent = per_sentence["mu_BxZ"].shape[1] > 0
  return {
      "iw_nll": nll / n,
      "elbo": -(recon + kl) / n,
      "recon": recon / n,
      "kl": kl / n,
      "mi": mutual_information(per_sentence["mu_BxZ"], per_sentence["logvar_BxZ"], mi_key),
      "au": au,
      "ppl": float(np.exp(nll / tokens)),
      "ppl_elbo": float(np.exp((recon + kl) / tokens)),
      "num_sentences": n,
      "num_tokens": int(tokens),
      "num_importance_samples": num_samples if latent else 0,
      "kl_per_dim": (np.sum(per_sentence["kl_BxZ"], 0, dtype=np.float64) / n).tolist(),
      "mu_variance_per_dim": au_var.tolist(),
  }


def evaluate_split(model, params_repl, split: pipeline.EncodedSplit, *, num_samples: int,
                   batch_size: int, key, chunk_size: int = 50, pad_multiple: int = 1,
                   devices=None) -> dict:
  """All figures over a split; `seconds` is the wall time of the whole call."""
  start = time.time()
  sample_key, mi_key = jax.random.split(key)
  per_sentence = collect(model, params_repl, split, num_samples=num_samples,
                         batch_size=batch_size, key=sample_key, chunk_size=chunk_size,
                         pad_multiple=pad_multiple, devices=devices)
  out = summarise(per_sentence, num_samples=num_samples, mi_key=mi_key)
  out["seconds"] = time.time() - start
  return out
