"""Evaluation by the definitions of docs/design.md: IW-NLL, ELBO, KL, MI, AU, PPL.

The kernels (`posterior_stats`, `importance_chunk`) are pure and per device;
together they give, for each sentence of a batch, the importance-weighted
log-likelihood estimate

    log p(x) ~= logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K,

the Monte-Carlo reconstruction term E_q[-log p(x|z)] over the same K samples,
the analytic KL and the posterior (mu, logvar). Samples are drawn in chunks of
`chunk_size`, so memory is bounded by chunk_size x batch x T x V whatever K is;
each chunk decodes chunk_size x B sentences in one batched call, with the
embeddings' input projection computed once per sentence. Chunks are dispatched
asynchronously and reduced (logsumexp in float64) on the host.
Noise is folded from the sentence's global row index (as in training), so the
numbers do not depend on the device count.

The split-level loop (`evaluate_split`) gathers the per-sentence values on the
host and reduces them there: sums for NLL/ELBO/PPL, the aggregate posterior over
the WHOLE split for MI (Li et al. 2019), Cov_x(E_q[z]) for active units.

For the RNNLM (latent_dim 0) log p(x|z) does not depend on z: the kernel computes
the exact NLL once, and `iw_nll` is that exact NLL.

A conditional VAE's batches hold each sentence's label y ('labels_B'): q, the
decoder and the prior are those of y, the KL is against p(z|y) and the
importance weights are p(x|z, y) p(z|y) / q(z|x, y), so every figure is that
of log p(x|y).
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from textvae import models
from textvae import objectives
from textvae import parallel
from textvae import periodic_actions
from textvae import steps
from textvae.data import pipeline

LOG_2PI = math.log(2.0 * math.pi)


def _gaussian_logpdf(x, mu, logvar):
  return -0.5 * jnp.sum(LOG_2PI + logvar + jnp.square(x - mu) * jnp.exp(-logvar), axis=-1)


def posterior_stats(params, batch, *, model):
  """Per sentence: posterior, analytic KL, token count; for a language model
  (latent_dim 0) also the exact log-likelihood (no sampling needed)."""
  tokens, inputs = batch["tokens_BxT"], batch["inputs_BxT"]
  variables = models.as_variables(params)
  mask = objectives.token_mask(tokens)
  if "labels_B" in batch:
    mu, logvar = model.apply(variables, tokens, labels_B=batch["labels_B"], method="encode")
    prior_mu, prior_logvar = model.apply(variables, batch["labels_B"], method="prior")
    kl_BxZ = objectives.gaussian_kl_to_prior(mu, logvar, prior_mu, prior_logvar)
  else:
    mu, logvar = model.apply(variables, tokens, method="encode")
    kl_BxZ = objectives.gaussian_kl_per_dim(mu, logvar)
  out = {"kl_BxZ": kl_BxZ, "kl_B": jnp.sum(kl_BxZ, -1), "mu_BxZ": mu, "logvar_BxZ": logvar,
         "num_tokens_B": jnp.sum(mask, -1), "weights_B": batch["weights_B"]}
  if mu.shape[-1] == 0:
    nll = model.apply(variables, tokens, inputs, jnp.zeros((tokens.shape[0], 0)),
                      method="decode_nll")
    out["log_pxz_B"] = -jnp.sum(nll * mask, -1)
  return out


def importance_chunk(params, batch, mu_BxZ, logvar_BxZ, key, batch_index, chunk_index, *,
                     model, chunk_size: int):
  """log w = log p(x|z) + log p(z) - log q(z|x) and log p(x|z) for `chunk_size`
  samples z ~ q(z|x) per sentence: two [C, B] arrays. Sample c of chunk j of a
  sentence uses fold_in(fold_in(fold_in(key, batch_index), global row), j)."""
  tokens, inputs = batch["tokens_BxT"], batch["inputs_BxT"]
  B = tokens.shape[0]
  Z = mu_BxZ.shape[-1]
  C = chunk_size
  row_keys = models.row_keys(jax.random.fold_in(key, batch_index), steps.global_row_ids(B))
  eps = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, chunk_index), (C, Z)))(row_keys)
  z_CxBxZ = mu_BxZ[None] + jnp.exp(0.5 * logvar_BxZ)[None] * jnp.swapaxes(eps, 0, 1)
  variables = models.as_variables(params)
  labels = steps.label_kwargs(batch)
  nll_CxBxT = model.apply(variables, tokens, inputs, z_CxBxZ, method="decode_nll_samples",
                          **labels)
  log_pxz = -jnp.sum(nll_CxBxT * objectives.token_mask(tokens)[None], -1)
  if labels:  # p(z|y)
    prior_mu, prior_logvar = model.apply(variables, batch["labels_B"], method="prior")
    log_pz = _gaussian_logpdf(z_CxBxZ, prior_mu[None], prior_logvar[None])
  else:
    log_pz = _gaussian_logpdf(z_CxBxZ, 0.0, jnp.zeros_like(z_CxBxZ))
  log_qz = _gaussian_logpdf(z_CxBxZ, mu_BxZ[None], logvar_BxZ[None])
  return log_pxz + log_pz - log_qz, log_pxz


@functools.lru_cache(maxsize=16)
def pmapped_kernels(model, chunk_size: int, devices=None):
  """Both kernels jitted and mapped over `devices` (default: all local devices).
  K is not part of the compiled function: a batch runs K / chunk_size chunks,
  so one compilation per batch shape serves every K."""
  devices = list(devices) if devices else None
  post = jax.pmap(functools.partial(posterior_stats, model=model), axis_name=steps.AXIS,
                  devices=devices)
  chunk = jax.pmap(functools.partial(importance_chunk, model=model, chunk_size=chunk_size),
                   axis_name=steps.AXIS, in_axes=(0, 0, 0, 0, None, None, None),
                   devices=devices)
  return post, chunk


def choose_chunk(num_samples: int, chunk_size: int) -> int:
  chunk = max(1, min(chunk_size, num_samples))
  while num_samples % chunk:
    chunk -= 1
  return chunk


def collect(model, params_repl, split: pipeline.EncodedSplit, *, num_samples: int,
            batch_size: int, key, chunk_size: int = 50, pad_multiple: int = 1,
            devices=None, condition: str = "", buckets=None):
  """Per-sentence arrays over the whole split (filler rows dropped), in
  length-sorted order. `params_repl` is replicated over `devices` (default: all
  local devices). `condition`: a conditional VAE's label feature. `buckets`:
  the training batches' padded lengths (`pipeline.batch_buckets`), so that the
  kernels compile once per bucket, not once per sentence length."""
  if devices is None:
    parallel.check_global_batch(batch_size, "eval batch_size")
    num_local = jax.local_device_count()
  else:
    num_local = len(devices)
    if batch_size % num_local:
      raise ValueError(f"eval batch_size={batch_size} does not split over {num_local} devices")
  chunk = choose_chunk(num_samples, chunk_size)
  post_fn, chunk_fn = pmapped_kernels(model, chunk, tuple(devices) if devices else None)
  latent = int(getattr(model, "latent_dim", 0) or 0)
  progress = _BatchProgress(
      f"IW evaluation of {split.name}" + (f", K={num_samples}" if latent else ""),
      len(split), batch_size)
  pieces = []
  for i, batch in enumerate(pipeline.eval_batches(
      split, global_batch_size=batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), pad_multiple=pad_multiple, condition=condition,
      buckets=buckets)):
    sharded = jax.tree_util.tree_map(
        lambda x: np.reshape(x, (num_local, -1) + x.shape[1:]), batch)
    post = post_fn(params_repl, sharded)
    if "log_pxz_B" not in post:
      # Dispatched asynchronously; fetched once at the end.
      chunks = [chunk_fn(params_repl, sharded, post["mu_BxZ"], post["logvar_BxZ"], key, i, j)
                for j in range(num_samples // chunk)]
      post["log_w_KxB"] = [c[0] for c in chunks]
      post["log_pxz_KxB"] = [c[1] for c in chunks]
    pieces.append(post)
    progress.poll(pieces)
  progress.wait(pieces)
  pieces = [_reduce_samples(p) for p in jax.device_get(pieces)]
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


class _BatchProgress:
  """Progress of the asynchronously dispatched batches of `collect`, counted in
  sentences of the global batch (every process counts the same). During the
  loop a batch counts when all its outputs are ready, checked without blocking
  (`is_ready`), so the loop gains no host-device sync; after it, `wait` blocks
  on the batches in order, which the final `device_get` would have done anyway."""

  def __init__(self, what: str, num_sentences: int, batch_size: int):
    self._progress = periodic_actions.Progress(what, num_sentences)
    self._n, self._batch_size = num_sentences, batch_size
    self._ready = 0  # batches counted so far

  def _count(self):
    start = self._ready * self._batch_size
    self._progress.update(max(min(self._batch_size, self._n - start), 0))
    self._ready += 1

  def poll(self, pieces):
    while self._ready < len(pieces) and all(
        getattr(x, "is_ready", lambda: True)()
        for x in jax.tree_util.tree_leaves(pieces[self._ready])):
      self._count()

  def wait(self, pieces):
    while self._ready < len(pieces):
      jax.block_until_ready(pieces[self._ready])
      self._count()
    self._progress.finish()


def _reduce_samples(piece):
  """Host side, float64: [D, C, b] chunks -> per-sentence log p(x) and
  E_q[-log p(x|z)] as [D, b]; for an LM, the exact values."""
  if "log_pxz_B" in piece:
    exact = np.asarray(piece.pop("log_pxz_B"), np.float64)
    piece["log_px_B"], piece["recon_B"] = exact, -exact
    return piece
  log_w = np.concatenate([np.asarray(c, np.float64) for c in piece.pop("log_w_KxB")], axis=1)
  log_pxz = np.concatenate([np.asarray(c, np.float64) for c in piece.pop("log_pxz_KxB")], axis=1)
  m = log_w.max(axis=1, keepdims=True)
  piece["log_px_B"] = (m[:, 0] + np.log(np.exp(log_w - m).sum(axis=1))) - math.log(log_w.shape[1])
  piece["recon_B"] = -log_pxz.mean(axis=1)
  return piece


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


def split_figures(per_sentence, *, num_samples: int, mi_key) -> dict:
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
                   devices=None, condition: str = "", buckets=None) -> dict:
  """All figures over a split; `seconds` is the wall time of the whole call.
  `condition`: a conditional VAE's label feature (the figures of log p(x|y));
  `buckets`: see `collect`."""
  start = time.time()
  sample_key, mi_key = jax.random.split(key)
  per_sentence = collect(model, params_repl, split, num_samples=num_samples,
                         batch_size=batch_size, key=sample_key, chunk_size=chunk_size,
                         pad_multiple=pad_multiple, devices=devices, condition=condition,
                         buckets=buckets)
  out = split_figures(per_sentence, num_samples=num_samples, mi_key=mi_key)
  out["seconds"] = time.time() - start
  return out
