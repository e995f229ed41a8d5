"""Flax Linen models: GRU encoder, GRU decoder, the sentence VAE and the RNNLM.

Used through `init`/`apply` only. Shapes are in names: B batch, T time, E
embedding, H hidden, Z latent, V vocabulary.

The GRU computes the input projections of all time steps in one matmul before
`lax.scan` and keeps only the recurrent matmul inside it (PyTorch's gate layout:
n = tanh(W_in x + b_in + r * (W_hn h + b_hn))). The output layer is stored as a
V x H matrix so that the loss can take each target's logit from its gathered row
instead of indexing a B x T x V logits tensor.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from textvae import gru as gru_lib
from textvae import output_layer
from textvae.data.vocab import PAD_ID, UNK_ID

Array = Any


class GRU(nn.Module):
  """A single-layer GRU over [B, T, D] inputs, masked past each row's length."""
  hidden_dim: int

  def setup(self):
    H = self.hidden_dim
    self.input_proj = nn.Dense(3 * H, name="input")
    self.recurrent_kernel = self.param(
        "recurrent_kernel", _stacked_orthogonal(3), (H, 3 * H))
    self.recurrent_bias = self.param("recurrent_bias", nn.initializers.zeros, (3 * H,))

  def project(self, x_XxYxD: Array) -> Array:
    """Input projections of every step at once: [..., 3H]."""
    return self.input_proj(x_XxYxD)

  def cell(self, h_BxH: Array, xproj_Bx3H: Array) -> Array:
    """One step (decoding): `gru.cell`, the recurrence's own step."""
    return gru_lib.cell(self.recurrent_kernel, self.recurrent_bias, h_BxH, xproj_Bx3H)[0]

  def __call__(self, x_TxBxD: Array, h0_BxH: Array, mask_TxB: Array | None = None,
               extra_proj_Bx3H: Array | None = None):
    """Time-major: returns all hidden states [T, B, H] and the state after each
    row's last real step [B, H]. `extra_proj_Bx3H` is added to every step's
    input projection (the decoder's latent code, projected once per sentence).
    The callers embed the transposed token ids, so no [B, T, .] activation is
    ever transposed (results/perf.md)."""
    xproj = self.project(x_TxBxD)
    if extra_proj_Bx3H is not None:
      xproj = xproj + extra_proj_Bx3H[None, :, :]
    if mask_TxB is None:
      mask_TxB = jnp.ones(xproj.shape[:2], bool)
    hs_TxBxH = gru_lib.recurrence(xproj, h0_BxH, mask_TxB, self.recurrent_kernel,
                                  self.recurrent_bias)
    return hs_TxBxH, hs_TxBxH[-1]


def row_keys(key, row_ids_B):
  """One key per sentence: `fold_in(key, global row index)`.

  Noise drawn from these depends only on the step and the sentence's index in
  the global batch, so a batch gives the same noise on 1 device or on many.
  """
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, row_ids_B)


def row_normal(key, row_ids_B, dim: int):
  return jax.vmap(lambda k: jax.random.normal(k, (dim,)))(row_keys(key, row_ids_B))


def row_bernoulli(key, row_ids_B, p: float, length: int):
  return jax.vmap(lambda k: jax.random.bernoulli(k, p, (length,)))(row_keys(key, row_ids_B))


def output_nll(h_NxH: Array, kernel_VxH: Array, bias_V: Array, targets_N: Array) -> Array:
  """-log softmax(h W^T + b)[target] = logsumexp(logits) - target logit, the
  target logit from the gathered row of W (no indexing into the logits)."""
  logits = h_NxH @ kernel_VxH.T + bias_V
  target_logit = jnp.sum(h_NxH * jnp.take(kernel_VxH, targets_N, axis=0), -1) + bias_V[targets_N]
  return jax.nn.logsumexp(logits, axis=-1) - target_logit


def blocked_output_nll(h_NxH, kernel_VxH, bias_V, targets_N, block_rows: int = 1024):
  """`output_nll` over blocks of `block_rows` rows (`lax.map`), so that each
  block's N x V logits stay small enough for the caches. Measured on the
  2-core CPU for 35,200 rows x V=10,002: 3.2 s in one piece, 1.15 s in blocks
  of 1,024 (the matmul alone, unblocked, took 1.6 s)."""
  N, H = h_NxH.shape
  if N <= block_rows:
    return output_nll(h_NxH, kernel_VxH, bias_V, targets_N)
  nb = -(-N // block_rows)
  pad = nb * block_rows - N
  h = jnp.pad(h_NxH, ((0, pad), (0, 0))).reshape(nb, block_rows, H)
  t = jnp.pad(targets_N, (0, pad)).reshape(nb, block_rows)
  out = jax.lax.map(lambda ht: output_nll(ht[0], kernel_VxH, bias_V, ht[1]), (h, t))
  return out.reshape(-1)[:N]


def _stacked_orthogonal(n: int):
  """Orthogonal initialisation of each of the n gates' H x H blocks."""
  ortho = nn.initializers.orthogonal()

  def init(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, n)
    return jnp.concatenate([ortho(k, (rows, cols // n), dtype) for k in keys], axis=1)
  return init


def _moments(x_BxZ, axis_name):
  """Mean and biased variance over the rows of the global batch (equal rows per
  device, as in training)."""
  mean, sq = jnp.mean(x_BxZ, 0), jnp.mean(jnp.square(x_BxZ), 0)
  if axis_name is not None:
    mean, sq = jax.lax.pmean((mean, sq), axis_name)
  return mean, sq - jnp.square(mean)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def batch_normalize(x_BxZ, axis_name, eps):
  """(x - mean) / sqrt(var + eps) with the statistics of the global batch.

  The backward pass is written out, (dy - mean(dy) - y mean(dy y)) / sqrt(var +
  eps) with both means over the global batch (`pmean`), so that the per-device
  gradients, once averaged by the step's `pmean`, are the gradient of the global
  batch's loss whatever the differentiation rules of collectives are (a 4-device
  step equals the 1-device step; tests/test_collapse.py)."""
  mean, var = _moments(x_BxZ, axis_name)
  return (x_BxZ - mean) * jax.lax.rsqrt(var + eps)


def _batch_normalize_fwd(x_BxZ, axis_name, eps):
  mean, var = _moments(x_BxZ, axis_name)
  inv = jax.lax.rsqrt(var + eps)
  y = (x_BxZ - mean) * inv
  return y, (y, inv)


def _batch_normalize_bwd(axis_name, eps, res, dy):
  del eps
  y, inv = res
  m_dy, m_dyy = jnp.mean(dy, 0), jnp.mean(dy * y, 0)
  if axis_name is not None:
    m_dy, m_dyy = jax.lax.pmean((m_dy, m_dyy), axis_name)
  return ((dy - m_dy - y * m_dyy) * inv,)


batch_normalize.defvjp(_batch_normalize_fwd, _batch_normalize_bwd)


class FixedScaleBatchNorm(nn.Module):
  """BN-VAE (Zhu et al. 2020): gamma * BN(x) + shift with gamma FIXED and the
  shift learned ('shift' param). Training normalises with the global batch's
  statistics (`axis_name` = the pmap axis, None outside pmap) and updates the
  running statistics in the 'batch_stats' collection (momentum 0.9 = PyTorch's
  0.1, eps 1e-5: the authors' nn.BatchNorm1d; the running variance is the
  biased one); evaluation (deterministic) uses the running statistics."""
  gamma: float
  axis_name: str | None = None
  momentum: float = 0.9
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x_BxZ, deterministic: bool = True):
    Z = x_BxZ.shape[-1]
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros((Z,), jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones((Z,), jnp.float32))
    shift = self.param("shift", nn.initializers.zeros, (Z,))
    if deterministic:
      y = (x_BxZ - ra_mean.value) * jax.lax.rsqrt(ra_var.value + self.epsilon)
    else:
      y = batch_normalize(x_BxZ, self.axis_name, self.epsilon)
      if not self.is_initializing():
        mean, var = jax.lax.stop_gradient(_moments(x_BxZ, self.axis_name))
        ra_mean.value = self.momentum * ra_mean.value + (1 - self.momentum) * mean
        ra_var.value = self.momentum * ra_var.value + (1 - self.momentum) * var
    return self.gamma * y + shift


class GRUEncoder(nn.Module):
  """Reads the sentence (words and <eos>); its last state gives q(z|x) = N(mu, diag(exp(logvar)))."""
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  latent_dim: int
  bn_gamma: float = 0.0            # > 0: BN-VAE on the posterior mean
  bn_axis_name: str | None = None  # the pmap axis of training steps

  @nn.compact
  def __call__(self, tokens_BxT: Array, deterministic: bool = True):
    tokens_TxB = tokens_BxT.T
    emb = nn.Embed(self.vocab_size, self.embed_dim, name="embed")(tokens_TxB)
    h0 = jnp.zeros((tokens_BxT.shape[0], self.hidden_dim), emb.dtype)
    _, h_last = GRU(self.hidden_dim, name="gru")(emb, h0, tokens_TxB != PAD_ID)
    # BN-VAE: no bias (it would be normalised away, and Adam would amplify its
    # zero gradient's rounding noise); the authors' linear layer has none either.
    stats = nn.Dense(2 * self.latent_dim, use_bias=self.bn_gamma <= 0,
                     name="posterior")(h_last)
    mu_BxZ, logvar_BxZ = jnp.split(stats, 2, axis=-1)
    if self.bn_gamma > 0:
      mu_BxZ = self._batch_norm_mean(mu_BxZ, deterministic)
    return mu_BxZ, logvar_BxZ

  def _batch_norm_mean(self, mu_BxZ, deterministic):
    return FixedScaleBatchNorm(self.bn_gamma, self.bn_axis_name, name="mu_bn")(
        mu_BxZ, deterministic)


class GRUDecoder(nn.Module):
  """p(x|z): z sets the initial state (tanh of a linear map) and is concatenated
  to every input embedding. With `latent_dim == 0` it is an RNN language model."""
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  latent_dim: int
  word_dropout: float = 0.0
  embed_dropout: float = 0.0

  def setup(self):
    self.embed = nn.Embed(self.vocab_size, self.embed_dim)
    self.gru = GRU(self.hidden_dim)
    if self.latent_dim:
      self.init_state = nn.Dense(self.hidden_dim)
      # The z half of the input kernel, applied once per sentence, not per step.
      self.latent_proj = nn.Dense(3 * self.hidden_dim, use_bias=False)
    self.output_kernel = self.param(
        "output_kernel", nn.initializers.lecun_normal(), (self.vocab_size, self.hidden_dim))
    self.output_bias = self.param("output_bias", nn.initializers.zeros, (self.vocab_size,))

  def initial_state(self, z_BxZ: Array | None, batch_size: int) -> Array:
    if self.latent_dim:
      return jnp.tanh(self.init_state(z_BxZ))
    return jnp.zeros((batch_size, self.hidden_dim), jnp.float32)

  def _latent_proj(self, z_BxZ):
    return self.latent_proj(z_BxZ) if self.latent_dim else None

  def hidden_states(self, inputs_BxT: Array, z_BxZ: Array | None, *,
                    deterministic: bool = True, row_ids_B: Array | None = None) -> Array:
    """The decoder's hidden states, time-major: [T, B, H]."""
    mask = inputs_BxT != PAD_ID
    B, T = inputs_BxT.shape
    if row_ids_B is None:
      row_ids_B = jnp.arange(B)
    if self.word_dropout > 0 and not deterministic:
      # Bowman et al. 2016: replace decoder input words by <unk> (never <bos>/<pad>).
      key = jax.random.fold_in(self.make_rng("dropout"), 0)
      drop = row_bernoulli(key, row_ids_B, self.word_dropout, T) & mask
      drop = drop.at[:, 0].set(False)
      inputs_BxT = jnp.where(drop, UNK_ID, inputs_BxT)
    emb = self.embed(inputs_BxT.T)                              # [T, B, E]
    if self.embed_dropout > 0 and not deterministic:
      key = jax.random.fold_in(self.make_rng("dropout"), 1)
      keep = ~row_bernoulli(key, row_ids_B, self.embed_dropout, T * self.embed_dim)
      keep = jnp.swapaxes(keep.reshape(B, T, self.embed_dim), 0, 1)
      emb = emb * keep / (1.0 - self.embed_dropout)
    h0 = self.initial_state(z_BxZ, B)
    hs, _ = self.gru(emb, h0, mask.T, self._latent_proj(z_BxZ))
    return hs

  def token_nll(self, hs_BxTxH: Array, targets_BxT: Array) -> Array:
    """-log p(target) at every position: logsumexp(logits) - target logit, the
    target logit from the gathered output row (no B x T x V indexing)."""
    logits = hs_BxTxH @ self.output_kernel.T + self.output_bias
    w_target = jnp.take(self.output_kernel, targets_BxT, axis=0)
    target_logit = jnp.sum(hs_BxTxH * w_target, axis=-1) + self.output_bias[targets_BxT]
    return jax.nn.logsumexp(logits, axis=-1) - target_logit

  def weighted_token_nll(self, hs_TxBxH: Array, targets_BxT: Array,
                         token_weights_BxT: Array):
    """Training's fused output layer (`output_layer.weighted_nll`) over the
    time-major states: the differentiable sum of token_weights * NLL and the
    per-token NLL [B, T] (not differentiable)."""
    T, B, H = hs_TxBxH.shape
    total, nll = output_layer.weighted_nll(
        hs_TxBxH.reshape(T * B, H), self.output_kernel, self.output_bias,
        targets_BxT.T.reshape(T * B), token_weights_BxT.T.reshape(T * B))
    return total, nll.reshape(T, B).T

  def __call__(self, inputs_BxT, targets_BxT, z_BxZ=None, *, deterministic=True,
               row_ids_B=None, token_weights_BxT=None):
    """Per-token NLL [B, T]; with `token_weights_BxT`, (sum of weights * NLL,
    per-token NLL) through the fused output layer (training)."""
    hs = self.hidden_states(inputs_BxT, z_BxZ, deterministic=deterministic,
                            row_ids_B=row_ids_B)
    if token_weights_BxT is not None:
      return self.weighted_token_nll(hs, targets_BxT, token_weights_BxT)
    return self.token_nll(jnp.swapaxes(hs, 0, 1), targets_BxT)

  def nll_for_samples(self, inputs_BxT: Array, targets_BxT: Array, z_CxBxZ: Array) -> Array:
    """Per-token NLL [C, B, T] of every sentence under each of C latent samples.

    The embeddings' input projection is computed once per sentence, not once
    per sample; only z's share (initial state and latent projection) and the
    recurrence run C times (importance sampling).
    """
    C, B, _ = z_CxBxZ.shape
    T = inputs_BxT.shape[1]
    H = self.hidden_dim
    xproj = self.gru.project(self.embed(inputs_BxT.T))  # [T, B, 3H]
    xproj = xproj[:, None] + self.latent_proj(z_CxBxZ)[None]  # [T, C, B, 3H]
    h0 = jnp.tanh(self.init_state(z_CxBxZ)).reshape(C * B, H)
    mask = jnp.broadcast_to((inputs_BxT != PAD_ID).T[:, None], (T, C, B)).reshape(T, C * B)
    hs = gru_lib.recurrence(xproj.reshape(T, C * B, 3 * H), h0, mask,
                            self.gru.recurrent_kernel, self.gru.recurrent_bias)
    targets = jnp.broadcast_to(targets_BxT.T[:, None], (T, C, B)).reshape(T * C * B)
    nll = blocked_output_nll(hs.reshape(T * C * B, H), self.output_kernel, self.output_bias,
                             targets)
    return jnp.transpose(nll.reshape(T, C, B), (1, 2, 0))

  def step(self, h_BxH: Array, token_B: Array, z_BxZ: Array | None):
    """One decoding step: the new state and the logits [B, V] of the next token."""
    xp = self.gru.project(self.embed(token_B))
    if self.latent_dim:
      xp = xp + self.latent_proj(z_BxZ)
    h = self.gru.cell(h_BxH, xp)
    return h, h @ self.output_kernel.T + self.output_bias


def _nll_outputs(out) -> dict:
  """The decoder's output as model outputs: 'nll_BxT', plus 'recon_loss' (the
  differentiable sum of token_weights * NLL) when training passed weights."""
  if isinstance(out, tuple):
    return {"recon_loss": out[0], "nll_BxT": out[1]}
  return {"nll_BxT": out}


class TextVAE(nn.Module):
  """The sentence VAE of Bowman et al. (2016) with a GRU encoder and decoder."""
  vocab_size: int
  embed_dim: int = 256
  hidden_dim: int = 256
  latent_dim: int = 32
  word_dropout: float = 0.0
  embed_dropout: float = 0.0
  bn_gamma: float = 0.0            # BN-VAE scale (0 = off); see GRUEncoder
  bn_axis_name: str | None = None

  def setup(self):
    self.encoder = GRUEncoder(self.vocab_size, self.embed_dim, self.hidden_dim,
                              self.latent_dim, self.bn_gamma, self.bn_axis_name)
    self.decoder = GRUDecoder(self.vocab_size, self.embed_dim, self.hidden_dim,
                              self.latent_dim, self.word_dropout, self.embed_dropout)

  def encode(self, tokens_BxT, deterministic: bool = True):
    return self.encoder(tokens_BxT, deterministic)

  def __call__(self, tokens_BxT, inputs_BxT, *, deterministic: bool = True,
               row_ids_B=None, token_weights_BxT=None):
    """Per-token NLL of the targets under one reparameterised z ~ q(z|x).

    The noise comes from the 'latent' RNG stream; word and embedding dropout
    from 'dropout' (only when not deterministic). Each sentence's noise is
    drawn from `fold_in(stream key, row_ids_B[b])` (default: its row).
    """
    if row_ids_B is None:
      row_ids_B = jnp.arange(tokens_BxT.shape[0])
    mu, logvar = self.encoder(tokens_BxT, deterministic)
    eps = row_normal(self.make_rng("latent"), row_ids_B, self.latent_dim)
    z = mu + jnp.exp(0.5 * logvar) * eps.astype(mu.dtype)
    out = self.decoder(inputs_BxT, tokens_BxT, z, deterministic=deterministic,
                       row_ids_B=row_ids_B, token_weights_BxT=token_weights_BxT)
    return {**_nll_outputs(out), "mu_BxZ": mu, "logvar_BxZ": logvar, "z_BxZ": z}

  def decode_nll(self, tokens_BxT, inputs_BxT, z_BxZ):
    """-log p(x_t | x_<t, z) per token for a given z (evaluation)."""
    return self.decoder(inputs_BxT, tokens_BxT, z_BxZ, deterministic=True)

  def decode_nll_samples(self, tokens_BxT, inputs_BxT, z_CxBxZ):
    """-log p(x_t | x_<t, z_c) per token for C samples per sentence: [C, B, T]."""
    return self.decoder.nll_for_samples(inputs_BxT, tokens_BxT, z_CxBxZ)

  def decode_init(self, z_BxZ):
    return self.decoder.initial_state(z_BxZ, z_BxZ.shape[0])

  def decode_step(self, h_BxH, token_B, z_BxZ):
    return self.decoder.step(h_BxH, token_B, z_BxZ)


class RNNLM(nn.Module):
  """The decoder without z: the language-model baseline. Its posterior has zero
  dimensions, so the same objective gives KL = 0 and the ELBO is the exact NLL."""
  vocab_size: int
  embed_dim: int = 256
  hidden_dim: int = 256
  latent_dim: int = 0  # fixed: no latent variable
  word_dropout: float = 0.0
  embed_dropout: float = 0.0

  def setup(self):
    self.decoder = GRUDecoder(self.vocab_size, self.embed_dim, self.hidden_dim, 0,
                              self.word_dropout, self.embed_dropout)

  def encode(self, tokens_BxT, deterministic: bool = True):
    empty = jnp.zeros((tokens_BxT.shape[0], 0), jnp.float32)
    return empty, empty

  def __call__(self, tokens_BxT, inputs_BxT, *, deterministic: bool = True,
               row_ids_B=None, token_weights_BxT=None):
    out = self.decoder(inputs_BxT, tokens_BxT, None, deterministic=deterministic,
                       row_ids_B=row_ids_B, token_weights_BxT=token_weights_BxT)
    empty = jnp.zeros((tokens_BxT.shape[0], 0), jnp.float32)
    return {**_nll_outputs(out), "mu_BxZ": empty, "logvar_BxZ": empty, "z_BxZ": empty}

  def decode_nll(self, tokens_BxT, inputs_BxT, z_BxZ=None):
    return self.decoder(inputs_BxT, tokens_BxT, None, deterministic=True)

  def decode_init(self, z_BxZ):
    return self.decoder.initial_state(None, z_BxZ.shape[0])

  def decode_step(self, h_BxH, token_B, z_BxZ=None):
    return self.decoder.step(h_BxH, token_B, None)


def create_model(model_config, vocab_size: int) -> nn.Module:
  """The model named by `config.model.kind` ('vae' or 'lm')."""
  kwargs = dict(vocab_size=vocab_size, embed_dim=model_config.embed_dim,
                hidden_dim=model_config.hidden_dim,
                word_dropout=model_config.word_dropout,
                embed_dropout=model_config.embed_dropout)
  if model_config.kind == "vae":
    return TextVAE(latent_dim=model_config.latent_dim,
                   bn_gamma=float(model_config.get("bn_gamma", 0.0)),
                   bn_axis_name="batch", **kwargs)
  if model_config.kind == "lm":
    return RNNLM(**kwargs)
  raise ValueError(f"config.model.kind={model_config.kind!r}: expected 'vae' or 'lm'")


def as_variables(params_or_variables) -> dict:
  """The variables for `model.apply`: a parameter tree becomes {'params': it};
  a dict that already holds a 'params' collection (a BN-VAE's params together
  with its 'batch_stats') is passed through."""
  if isinstance(params_or_variables, dict) and "params" in params_or_variables:
    return params_or_variables
  if hasattr(params_or_variables, "keys") and "params" in params_or_variables.keys():
    return params_or_variables
  return {"params": params_or_variables}
