"""Batched, jitted decoding and the latent-space operations built on it.

Strategies (`generate(..., strategy=)`), all for a batch of latent codes z [B, Z]
(the RNNLM takes z of shape [B, 0] and decodes unconditionally):
  greedy   argmax at every step
  sample   ancestral sampling from softmax(logits / temperature)
  top_k    sampling among the `top_k` most likely tokens (Fan et al. 2018)
  top_p    nucleus sampling: the smallest set of most likely tokens whose
           probability reaches `top_p` (Holtzman et al. 2020)
  beam     beam search with `beam_size` beams and length normalisation
           score / length ** length_penalty

Every strategy runs in one `lax.while_loop` of at most `max_length` steps that
ends as soon as every row has produced <eos> (`</s>`). The output is always
[B, max_length] token ids: the words, <eos>, then <pad>; a row that reaches
`max_length` without <eos> is cut there. <pad> and <bos> are never generated.

A conditional VAE (`num_labels(model)` > 0) decodes from z and a label per
row (`labels`): every function that takes z takes the labels too, and decodes
from the decoder code [z; label embedding]; its prior samples come from
p(z|y) and its posteriors are q(z|x, y).

Guidance (`guidance=w` with a `contrast` code per row) steers every strategy
away from another code, as classifier-free guidance does: each step's token
log-probabilities are (1 + w) log p(.|code) - w log p(.|contrast), renormalised
(the contrast decoder reads the same prefix and keeps its own state). With
w = 0 the decoding is the unguided one. Attribute transfer uses it with the
source's code as the contrast (control.transfer), which pushes the words that
carry the target label and keeps the rest of the sentence.

Random draws use one key per row, `fold_in(fold_in(key, row_id), t)`, so a
sentence's sample does not depend on the other rows of its batch (`row_ids`
defaults to 0..B-1; pass the same ids to reproduce rows one by one).

Beam search keeps one pool of `beam_size` hypotheses per row. At each step the
alive ones are extended by every token, the finished ones are carried forward
unchanged, and the pool keeps the `beam_size` best by normalised score (alive:
log p / t ** alpha, finished: log p / length ** alpha; the length counts </s>).
It stops when every hypothesis in every pool has finished. A beam of 1 is
therefore exactly greedy decoding, whatever the length penalty; with alpha = 0
it is the classic beam search whose pool holds the `beam_size` most likely
prefixes.
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from textvae import errors
from textvae import models
from textvae import periodic_actions
from textvae.data import pipeline
from textvae.data.vocab import BOS_ID, EOS_ID, PAD_ID

STRATEGIES = ("greedy", "sample", "top_k", "top_p", "beam")
_NEG_INF = -1e30


def _mask_specials(logits):
  """<pad> and <bos> are never generated."""
  return logits.at[..., PAD_ID].set(_NEG_INF).at[..., BOS_ID].set(_NEG_INF)


def filter_logits(logits_BxV, strategy: str, top_k, top_p):
  """Logits with the tokens a strategy may not draw set to -1e30.

  top_k: keeps the k largest (ties at the k-th value all kept).
  top_p: keeps the most likely tokens until their probability reaches p (the
  most likely one always).
  """
  if strategy == "top_k":
    sorted_desc = -jnp.sort(-logits_BxV, axis=-1)
    k = jnp.clip(jnp.asarray(top_k, jnp.int32), 1, logits_BxV.shape[-1])
    kth = jnp.take(sorted_desc, k - 1, axis=-1)[:, None]
    return jnp.where(logits_BxV >= kth, logits_BxV, _NEG_INF)
  if strategy == "top_p":
    sorted_desc = -jnp.sort(-logits_BxV, axis=-1)
    probs = jax.nn.softmax(sorted_desc, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the strictly more likely tokens
    keep_sorted = before < top_p
    keep_sorted = keep_sorted.at[:, 0].set(True)
    # The smallest kept logit is the threshold.
    threshold = jnp.min(jnp.where(keep_sorted, sorted_desc, jnp.inf), axis=-1, keepdims=True)
    return jnp.where(logits_BxV >= threshold, logits_BxV, _NEG_INF)
  return logits_BxV


def _guided(logits_BxV, contrast_logits_BxV, guidance):
  """log p(.|code) pushed away from log p(.|contrast) by `guidance` (module doc)."""
  logp = jax.nn.log_softmax(logits_BxV.astype(jnp.float32), axis=-1)
  contrast = jax.nn.log_softmax(contrast_logits_BxV.astype(jnp.float32), axis=-1)
  return jax.nn.log_softmax((1.0 + guidance) * logp - guidance * contrast, axis=-1)


def _step(model, variables, states, token, code, contrast, guidance):
  """One decoding step of the decoder and, when guided, of its contrast:
  ((state, contrast state), float32 logits, guided when there is a contrast)."""
  h, h_c = states
  h, logits = model.apply(variables, h, token, code, method="decode_step")
  logits = logits.astype(jnp.float32)
  if contrast is None:
    return (h, h_c), logits
  h_c, contrast_logits = model.apply(variables, h_c, token, contrast, method="decode_step")
  return (h, h_c), _guided(logits, contrast_logits, guidance)


def _row_keys(key, row_ids_B):
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, row_ids_B)


_SAMPLING = ("greedy", "sample", "top_k", "top_p")  # one compiled loop serves all four


@functools.partial(jax.jit, static_argnames=("model", "max_length"))
def _sample_loop(model, params, z_BxZ, key, row_ids_B, strategy_id, temperature, top_k,
                 top_p, contrast_BxZ, guidance, *, max_length: int):
  variables = models.as_variables(params)
  B = z_BxZ.shape[0]
  h0 = model.apply(variables, z_BxZ, method="decode_init")
  hc0 = None if contrast_BxZ is None else model.apply(variables, contrast_BxZ,
                                                      method="decode_init")
  row_keys = _row_keys(key, row_ids_B)

  def draw(logits, t, strategy):
    logits = filter_logits(logits / temperature, strategy, top_k, top_p)
    step_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(row_keys, t)
    return jax.vmap(jax.random.categorical)(step_keys, logits).astype(jnp.int32)

  def choose(logits, t):
    logits = _mask_specials(logits)
    # lax.switch runs only the chosen branch (no sort for greedy or plain sampling).
    branches = [lambda l, t: jnp.argmax(l, axis=-1).astype(jnp.int32)]
    branches += [functools.partial(draw, strategy=s) for s in _SAMPLING[1:]]
    return jax.lax.switch(strategy_id, branches, logits, t)

  def cond(carry):
    t, _, _, done, _ = carry
    return (t < max_length) & ~jnp.all(done)

  def body(carry):
    t, h, token, done, out = carry
    h, logits = _step(model, variables, h, token, z_BxZ, contrast_BxZ, guidance)
    nxt = choose(logits, t).astype(jnp.int32)
    nxt = jnp.where(done, PAD_ID, nxt)
    out = jax.lax.dynamic_update_slice(out, nxt[:, None], (0, t))
    return t + 1, h, nxt, done | (nxt == EOS_ID), out

  start = (jnp.int32(0), (h0, hc0), jnp.full((B,), BOS_ID, jnp.int32), jnp.zeros((B,), bool),
           jnp.full((B, max_length), PAD_ID, jnp.int32))
  return jax.lax.while_loop(cond, body, start)[-1]


@functools.partial(jax.jit, static_argnames=("model", "max_length", "beam_size"))
def _beam_search(model, params, z_BxZ, length_penalty, contrast_BxZ=None, guidance=0.0, *,
                 max_length: int, beam_size: int):
  """Returns (tokens [B, K, L], normalised scores [B, K], log probs [B, K]),
  hypotheses sorted best first; log probs are the guided ones under guidance."""
  variables = models.as_variables(params)
  B, K, L = z_BxZ.shape[0], beam_size, max_length
  z_NxZ = jnp.repeat(z_BxZ, K, axis=0)  # N = B * K, row b*K + k
  h0 = model.apply(variables, z_NxZ, method="decode_init")  # the cell's state pytree
  contrast_NxZ = hc0 = None
  if contrast_BxZ is not None:
    contrast_NxZ = jnp.repeat(contrast_BxZ, K, axis=0)
    hc0 = model.apply(variables, contrast_NxZ, method="decode_init")
  alpha = jnp.asarray(length_penalty, jnp.float32)

  def norm(logp, length):
    return logp / jnp.maximum(length, 1).astype(jnp.float32) ** alpha

  def cond(carry):
    t, _, _, _, _, finished, _ = carry
    return (t < L) & ~jnp.all(finished)

  def body(carry):
    t, h, token, seqs, logp, finished, lengths = carry
    h_new, logits = _step(model, variables, h, token.reshape(B * K), z_NxZ, contrast_NxZ,
                          guidance)
    logits = _mask_specials(logits)
    V = logits.shape[-1]
    step_logp = jax.nn.log_softmax(logits, axis=-1).reshape(B, K, V)
    # A finished hypothesis continues only with <pad>, at no cost.
    carry_on = jnp.full((V,), _NEG_INF).at[PAD_ID].set(0.0)
    step_logp = jnp.where(finished[:, :, None], carry_on, step_logp)
    cand_logp = logp[:, :, None] + step_logp  # [B, K, V]
    cand_len = jnp.where(finished, lengths, t + 1)[:, :, None]
    cand_score = jnp.where(cand_logp <= _NEG_INF / 2, _NEG_INF,
                           norm(cand_logp, cand_len))
    _, flat = jax.lax.top_k(cand_score.reshape(B, K * V), K)
    src, tok = flat // V, (flat % V).astype(jnp.int32)
    take = lambda x: jnp.take_along_axis(x, src.reshape(B, K, *([1] * (x.ndim - 2))), axis=1)
    new_logp = jnp.take_along_axis(cand_logp.reshape(B, K * V), flat, axis=1)
    was_finished = take(finished)
    new_seqs = take(seqs)
    new_seqs = jax.lax.dynamic_update_slice(new_seqs, tok[:, :, None], (0, 0, t))
    new_lengths = jnp.where(was_finished, take(lengths), t + 1)
    new_finished = was_finished | (tok == EOS_ID)
    new_h = jax.tree_util.tree_map(
        lambda x: take(x.reshape((B, K) + x.shape[1:])).reshape(x.shape), h_new)
    return t + 1, new_h, tok, new_seqs, new_logp, new_finished, new_lengths

  logp0 = jnp.full((B, K), _NEG_INF).at[:, 0].set(0.0)  # one live hypothesis to start
  start = (jnp.int32(0), (h0, hc0), jnp.full((B, K), BOS_ID, jnp.int32),
           jnp.full((B, K, L), PAD_ID, jnp.int32), logp0, jnp.zeros((B, K), bool),
           jnp.zeros((B, K), jnp.int32))
  t, _, _, seqs, logp, finished, lengths = jax.lax.while_loop(cond, body, start)
  # Hypotheses cut at max_length count all their tokens.
  lengths = jnp.where(finished, lengths, t)
  score = jnp.where(logp <= _NEG_INF / 2, _NEG_INF, norm(logp, lengths))
  order = jnp.argsort(-score, axis=1)
  seqs = jnp.take_along_axis(seqs, order[:, :, None], axis=1)
  return seqs, jnp.take_along_axis(score, order, 1), jnp.take_along_axis(logp, order, 1)


def num_labels(model) -> int:
  """The labels a conditional VAE is conditioned on (0: unconditional)."""
  return int(getattr(model, "num_labels", 0) or 0)


def _labels(model, labels, rows: int, what: str):
  """`labels` as int32 [rows] for a conditional model (a single label is
  broadcast), None for an unconditional one; a conditional model without
  labels is a ValueError."""
  k = num_labels(model)
  if not k:
    if labels is not None:
      raise ValueError(f"{what}: labels given to an unconditional model")
    return None
  if labels is None:
    raise ValueError(f"{what}: a conditional VAE ({k} labels) needs the labels")
  labels = np.broadcast_to(np.asarray(labels, np.int32), (rows,))
  if labels.size and (labels.min() < 0 or labels.max() >= k):
    raise ValueError(f"{what}: label index {int(labels.max())} outside 0..{k - 1}")
  return jnp.asarray(labels)


@functools.partial(jax.jit, static_argnames=("model",))
def _decoder_code(model, params, z_BxZ, labels_B):
  return model.apply(models.as_variables(params), z_BxZ, labels_B, method="decoder_code")


def decoder_code(model, params, z_BxZ, labels=None):
  """What the decoder reads: z (unconditional), or [z; label embedding]."""
  labels = _labels(model, labels, z_BxZ.shape[0], "decoding")
  if labels is None:
    return z_BxZ
  return _decoder_code(model, params, z_BxZ, labels)


def generate(model, params, z_BxZ, key=None, *, max_length: int, strategy: str = "greedy",
             temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             beam_size: int = 4, length_penalty: float = 1.0, row_ids=None, labels=None,
             guidance: float = 0.0, contrast_z=None, contrast_labels=None):
  """Token ids [B, max_length] decoded from z with `strategy` (see the module doc).

  `key` is needed by the sampling strategies only. `temperature` applies to
  sample, top_k and top_p; it must be > 0 (use greedy for the limit 0).
  `labels` (a conditional VAE's: [B] label indices, or one for every row).
  `guidance` > 0 steers away from the code of `contrast_z` [B, Z] (default z)
  with `contrast_labels` (module doc).
  """
  if strategy not in STRATEGIES:
    raise errors.ConfigError(f"strategy={strategy!r}: expected one of {STRATEGIES}")
  if max_length < 1:
    raise errors.ConfigError(f"max_length={max_length}: must be at least 1")
  z_BxZ = jnp.asarray(z_BxZ, jnp.float32)
  contrast = _contrast_code(model, params, z_BxZ, guidance, contrast_z, contrast_labels)
  z_BxZ = decoder_code(model, params, z_BxZ, labels)
  if strategy == "beam":
    if beam_size < 1:
      raise errors.ConfigError(f"beam_size={beam_size}: must be at least 1")
    seqs, _, _ = _beam_search(model, params, z_BxZ, length_penalty, contrast,
                              jnp.float32(guidance), max_length=max_length,
                              beam_size=beam_size)
    return seqs[:, 0]
  if strategy != "greedy":
    if key is None:
      raise ValueError(f"strategy={strategy!r} draws at random: pass a key")
    if not temperature > 0:
      raise errors.ConfigError(f"temperature={temperature}: must be > 0 (greedy is the "
                               "limit 0)")
    if strategy == "top_k" and top_k < 1:
      raise errors.ConfigError(f"top_k={top_k}: must be at least 1")
    if strategy == "top_p" and not 0 < top_p <= 1:
      raise errors.ConfigError(f"top_p={top_p}: must be in (0, 1]")
  if key is None:
    key = jax.random.key(0)
  B = z_BxZ.shape[0]
  row_ids = jnp.arange(B, dtype=jnp.int32) if row_ids is None else jnp.asarray(row_ids, jnp.int32)
  return _sample_loop(model, params, z_BxZ, key, row_ids, jnp.int32(_SAMPLING.index(strategy)),
                      jnp.float32(temperature if strategy != "greedy" else 1.0),
                      jnp.int32(max(top_k, 1)), jnp.float32(top_p), contrast,
                      jnp.float32(guidance), max_length=max_length)


def _contrast_code(model, params, z_BxZ, guidance, contrast_z, contrast_labels):
  """The decoder code guidance steers away from; None when `guidance` is 0."""
  if not guidance >= 0:
    raise errors.ConfigError(f"guidance={guidance}: must be >= 0")
  if guidance == 0:
    return None
  if contrast_z is None and contrast_labels is None:
    raise ValueError("guidance needs a contrast: contrast_z and/or contrast_labels")
  contrast_z = z_BxZ if contrast_z is None else jnp.asarray(contrast_z, jnp.float32)
  if contrast_z.shape != z_BxZ.shape:
    raise ValueError(f"contrast_z has shape {contrast_z.shape}, z {z_BxZ.shape}")
  return decoder_code(model, params, contrast_z, contrast_labels)


def beam_search(model, params, z_BxZ, *, max_length: int, beam_size: int,
                length_penalty: float = 1.0, labels=None, guidance: float = 0.0,
                contrast_z=None, contrast_labels=None):
  """All hypotheses: (tokens [B, K, L], normalised scores [B, K], log p [B, K]),
  best first."""
  z_BxZ = jnp.asarray(z_BxZ, jnp.float32)
  contrast = _contrast_code(model, params, z_BxZ, guidance, contrast_z, contrast_labels)
  code = decoder_code(model, params, z_BxZ, labels)
  return _beam_search(model, params, code, length_penalty, contrast, jnp.float32(guidance),
                      max_length=max_length, beam_size=beam_size)


def decode(model, params, z_BxZ, key, *, max_length: int, temperature: float = 0.0,
           labels=None):
  """Token ids [B, max_length] decoded from z; temperature 0 means greedy,
  otherwise ancestral sampling at that temperature."""
  if temperature > 0:
    return generate(model, params, z_BxZ, key, max_length=max_length, strategy="sample",
                    temperature=temperature, labels=labels)
  return generate(model, params, z_BxZ, key, max_length=max_length, strategy="greedy",
                  labels=labels)


@functools.partial(jax.jit, static_argnames=("model",))
def _posterior(model, params, tokens_BxT, labels_B):
  if labels_B is None:
    return model.apply(models.as_variables(params), tokens_BxT, method="encode")
  return model.apply(models.as_variables(params), tokens_BxT, labels_B=labels_B, method="encode")


def posterior(model, params, tokens_BxT, labels=None):
  """(mu, logvar) of q(z|x) (a conditional VAE's: q(z|x, y) with `labels`),
  each [B, Z] (Z = 0 for the RNNLM)."""
  labels = _labels(model, labels, tokens_BxT.shape[0], "posterior")
  return _posterior(model, params, tokens_BxT, labels)


def posterior_mean(model, params, tokens_BxT, labels=None):
  return posterior(model, params, tokens_BxT, labels)[0]


@functools.partial(jax.jit, static_argnames=("model",))
def _prior(model, params, labels_B):
  return model.apply(models.as_variables(params), labels_B, method="prior")


def prior_params(model, params, labels, num: int):
  """(mean, log variance) of the prior for `num` rows: p(z|y) of a conditional
  VAE, N(0, I) otherwise; each [num, Z]."""
  labels = _labels(model, labels, num, "prior")
  if labels is None:
    zeros = jnp.zeros((num, latent_dim(model)), jnp.float32)
    return zeros, zeros
  return _prior(model, params, labels)


def latent_dim(model) -> int:
  return int(getattr(model, "latent_dim", 0) or 0)


def pad_batch(rows: Sequence[np.ndarray], buckets=None) -> np.ndarray:
  """Token rows (words then <eos>) padded into one [B, T] array (T the next of
  `buckets`, `pipeline.batch_buckets`, when given)."""
  return pipeline.collate(list(rows), np.ones(len(rows)), buckets=buckets)["tokens_BxT"]


def length_sorted_batches(split, batch_size: int, labels=None):
  """Yields (indices, rows, batch labels) over an `EncodedSplit` in length
  order, `batch_size` sentences at a time; the last batch is filled with
  1-token rows (label 0) so that shapes repeat. `labels`: [N] or None."""
  order = np.argsort(split.lengths, kind="stable")
  for start in range(0, len(split), batch_size):
    idx = order[start:start + batch_size]
    rows = [split.tokens[i] for i in idx]
    rows += [np.asarray([EOS_ID], np.int32)] * (batch_size - len(rows))
    batch_labels = None
    if labels is not None:
      batch_labels = np.zeros(batch_size, np.int32)
      batch_labels[:len(idx)] = np.asarray(labels)[idx]
    yield idx, rows, batch_labels


def encode_split(model, params, split, *, batch_size: int = 256, labels=None,
                 buckets=None):
  """(mu, logvar) as numpy [N, Z] for every sentence of an `EncodedSplit` (in
  its order); a conditional VAE's from q(z|x, y) with `labels` [N]. Batches
  are taken in length order and padded to their longest row (then to the next
  of `buckets`); the last one is filled with 1-token rows so that shapes repeat."""
  n = len(split)
  Z = latent_dim(model)
  mu = np.zeros((n, Z), np.float32)
  logvar = np.zeros((n, Z), np.float32)
  progress = periodic_actions.Progress(f"encoding {split.name}", n)
  for idx, rows, batch_labels in length_sorted_batches(split, batch_size, labels):
    m, lv = posterior(model, params, pad_batch(rows, buckets), batch_labels)
    mu[idx] = np.asarray(m)[:len(idx)]
    logvar[idx] = np.asarray(lv)[:len(idx)]
    progress.update(len(idx))
  progress.finish()
  return mu, logvar


def prior_sample(model, params, key, num: int, *, max_length: int, labels=None,
                 **generate_kwargs):
  """(z [num, Z] ~ N(0, I), tokens [num, max_length]); for the RNNLM z is [num, 0].
  A conditional VAE's z ~ p(z|y) for `labels` ([num], or one label for all)."""
  z_key, decode_key = jax.random.split(key)
  z = jax.random.normal(z_key, (num, latent_dim(model)))
  if num_labels(model):
    prior_mu, prior_logvar = prior_params(model, params, labels, num)
    z = prior_mu + jnp.exp(0.5 * prior_logvar) * z
  return z, generate(model, params, z, decode_key, max_length=max_length, labels=labels,
                     **generate_kwargs)


def reconstruct(model, params, tokens_BxT, key, *, max_length: int, use_mean: bool = True,
                labels=None, target_labels=None, **generate_kwargs):
  """(z, tokens) decoded from q(z|x): its mean, or one sample when not use_mean.
  A conditional VAE encodes with the inputs' `labels` and decodes with
  `target_labels` (default: the same; other labels: attribute transfer)."""
  _require_latent(model, "reconstruct")
  z_key, decode_key = jax.random.split(key)
  mu, logvar = posterior(model, params, jnp.asarray(tokens_BxT), labels)
  z = mu
  if not use_mean:
    z = mu + jnp.exp(0.5 * logvar) * jax.random.normal(z_key, mu.shape)
  target = labels if target_labels is None else target_labels
  return z, generate(model, params, z, decode_key, max_length=max_length, labels=target,
                     **generate_kwargs)


def interpolate_latents(z_a, z_b, num_steps: int):
  """`num_steps` points on the line from z_a to z_b, both included: [N, Z]."""
  if num_steps < 2:
    raise ValueError(f"num_steps={num_steps}: an interpolation needs at least 2 points")
  w = jnp.linspace(0.0, 1.0, num_steps)[:, None]
  return (1.0 - w) * jnp.asarray(z_a)[None] + w * jnp.asarray(z_b)[None]


def interpolate(model, params, tokens_2xT, key, *, num_steps: int, max_length: int,
                labels=None, target_label=None, **generate_kwargs):
  """Homotopy (Bowman et al. 2016): (z [N, Z], tokens [N, max_length]) decoded
  from `num_steps` points between the posterior means of two sentences. A
  conditional VAE encodes each with its label (`labels`, 2) and decodes every
  point with `target_label` (default: the first sentence's)."""
  _require_latent(model, "interpolate")
  if tokens_2xT.shape[0] != 2:
    raise ValueError(f"interpolate takes 2 sentences, got {tokens_2xT.shape[0]}")
  mu = posterior_mean(model, params, jnp.asarray(tokens_2xT), labels)
  z = interpolate_latents(mu[0], mu[1], num_steps)
  target = None
  if num_labels(model):
    target = np.asarray(labels).reshape(-1)[0] if target_label is None else target_label
  return z, generate(model, params, z, key, max_length=max_length, labels=target,
                     **generate_kwargs)


def _require_latent(model, what: str):
  if not latent_dim(model):
    raise ValueError(f"{what} needs a model with a latent code (a VAE); this one has "
                     "latent_dim 0 (the RNNLM)")
