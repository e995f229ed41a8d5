"""Flax Linen models: the recurrent encoder and decoder, the sentence VAE and
the RNNLM.

Used through `init`/`apply` only. Shapes are in names: B batch, T time, E
embedding, H hidden, Z latent, V vocabulary, G the cell's number of gates.

The recurrent cell is `config.model.cell` (`textvae/cells`: GRU or LSTM, one
interface). Its input projections of all time steps are one matmul before
`lax.scan`; only the recurrent matmul runs inside it. The output layer is stored
as a V x H matrix so that the loss can take each target's logit from its gathered
row instead of indexing a B x T x V logits tensor.

Dropout (training only, from the 'dropout' stream, one key per sentence row):
word dropout to <unk> and dropout of the decoder's input embeddings (fold_in 0
and 1 of the decoder's key), of the decoder's output states before the softmax
(fold_in 2), and of the encoder's embeddings (the encoder's own key).
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from textvae import cells
from textvae.cells import base as cell_init
from textvae import output_layer
from textvae.data.vocab import PAD_ID, UNK_ID

Array = Any


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


def row_dropout(x_TxBxD: Array, key, row_ids_B: Array, rate: float) -> Array:
  """Inverted dropout of time-major activations with one mask per sentence row
  (`row_bernoulli` of T*D draws), so that a sentence's mask does not depend on
  the device it is on."""
  T, B, D = x_TxBxD.shape
  keep = ~row_bernoulli(key, row_ids_B, rate, T * D)
  keep = jnp.swapaxes(keep.reshape(B, T, D), 0, 1)
  return x_TxBxD * keep / (1.0 - rate)


def _embed(vocab_size, embed_dim, init, embed_init_scale, name=None):
  if init == "uniform":
    return nn.Embed(vocab_size, embed_dim, embedding_init=cell_init.uniform(embed_init_scale),
                    name=name)
  return nn.Embed(vocab_size, embed_dim, name=name)


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
  0.1, eps 1e-5, as the authors' nn.BatchNorm1d); evaluation (deterministic)
  uses the running statistics. The running variance averages the biased batch
  variance, where PyTorch's averages the unbiased one (x n/(n-1)): with batches
  of 32, evaluation's mu is sqrt(32/31), 1.6%, larger than under PyTorch's."""
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


class Encoder(nn.Module):
  """Reads the sentence (words and <eos>); its last hidden state gives
  q(z|x) = N(mu, diag(exp(logvar))). Conditional (`num_labels` > 0): the
  label's embedding is concatenated to the last hidden state, q(z|x, y)."""
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  latent_dim: int
  bn_gamma: float = 0.0            # > 0: BN-VAE on the posterior mean
  bn_axis_name: str | None = None  # the pmap axis of training steps
  cell: str = "gru"
  param_init: str = "default"
  init_scale: float = 0.01
  embed_init_scale: float = 0.1
  embed_dropout: float = 0.0
  num_labels: int = 0              # > 0: q(z|x, y) for labels 0..num_labels-1
  label_dim: int = 0

  @nn.compact
  def __call__(self, tokens_BxT: Array, deterministic: bool = True,
               row_ids_B: Array | None = None, labels_B: Array | None = None):
    tokens_TxB = tokens_BxT.T
    B = tokens_BxT.shape[0]
    emb = _embed(self.vocab_size, self.embed_dim, self.param_init, self.embed_init_scale,
                 name="embed")(tokens_TxB)
    if self.embed_dropout > 0 and not deterministic:
      row_ids_B = jnp.arange(B) if row_ids_B is None else row_ids_B
      emb = row_dropout(emb, self.make_rng("dropout"), row_ids_B, self.embed_dropout)
    rnn = cells.create(self.cell, self.hidden_dim, self.param_init, self.init_scale)
    _, last = rnn(rnn.project(emb), rnn.zero_state(B), tokens_TxB != PAD_ID)
    h_last = rnn.output(last)
    if self.num_labels:
      label_emb = _embed(self.num_labels, self.label_dim, self.param_init,
                         self.embed_init_scale, name="label_embed")(labels_B)
      h_last = jnp.concatenate([h_last, label_emb.astype(h_last.dtype)], axis=-1)
    kernel_init, bias_init = cell_init.initializers(self.param_init, self.init_scale)
    # BN-VAE: no bias (it would be normalised away, and Adam would amplify its
    # zero gradient's rounding noise); the authors' linear layer has none either.
    stats = nn.Dense(2 * self.latent_dim, use_bias=self.bn_gamma <= 0,
                     kernel_init=kernel_init, bias_init=bias_init, name="posterior")(h_last)
    mu_BxZ, logvar_BxZ = jnp.split(stats, 2, axis=-1)
    if self.bn_gamma > 0:
      mu_BxZ = self._batch_norm_mean(mu_BxZ, deterministic)
    return mu_BxZ, logvar_BxZ

  def _batch_norm_mean(self, mu_BxZ, deterministic):
    return FixedScaleBatchNorm(self.bn_gamma, self.bn_axis_name, name="mu_bn")(
        mu_BxZ, deterministic)


class Decoder(nn.Module):
  """p(x|z): z sets the initial state (the cell's `state_from` of a linear map:
  GRU h0 = tanh(W z + b); LSTM c0 = W z + b, h0 = tanh(c0)) and is concatenated
  to every input embedding. With `latent_dim == 0` it is an RNN language model.

  Conditional (`num_labels` > 0): p(x|z, y) reads the decoder code [z; e_y]
  (`code`: z with the label's embedding) wherever the unconditional decoder
  reads z (initial state and every input), and the decoder holds the prior
  p(z|y) (`prior`): N(0, I), or with `prior_kind='learned'` a Gaussian per
  label (means and log variances initialised to 0). The prior lives here,
  with the rest of the generative model, so that the parts of aggressive
  training and the decoder reset after pretraining treat it as the decoder's.
  The methods that take `z_BxZ` (initial_state, step, __call__) take the code."""
  vocab_size: int
  embed_dim: int
  hidden_dim: int
  latent_dim: int
  word_dropout: float = 0.0
  embed_dropout: float = 0.0
  output_dropout: float = 0.0
  cell: str = "gru"
  param_init: str = "default"
  init_scale: float = 0.01
  embed_init_scale: float = 0.1
  num_labels: int = 0
  label_dim: int = 0
  prior_kind: str = "standard"     # p(z|y): standard | learned

  def setup(self):
    H = self.hidden_dim
    kernel_init, bias_init = cell_init.initializers(self.param_init, self.init_scale)
    self.embed = _embed(self.vocab_size, self.embed_dim, self.param_init, self.embed_init_scale)
    self.rnn = cells.create(self.cell, H, self.param_init, self.init_scale)
    if self.latent_dim:
      self.init_state = nn.Dense(H, kernel_init=kernel_init, bias_init=bias_init)
      # The z half of the input kernel, applied once per sentence, not per step.
      self.latent_proj = nn.Dense(cells.CELLS[self.cell].NUM_GATES * H, use_bias=False,
                                  kernel_init=kernel_init)
    output_init = kernel_init if self.param_init == "uniform" else nn.initializers.lecun_normal()
    self.output_kernel = self.param("output_kernel", output_init, (self.vocab_size, H))
    self.output_bias = self.param("output_bias", bias_init, (self.vocab_size,))
    # Declared after the unconditional parameters, and only with labels: an
    # unconditional decoder's parameters and their initial values are unchanged.
    if self.num_labels:
      self.label_embed = _embed(self.num_labels, self.label_dim, self.param_init,
                                self.embed_init_scale)
      if self.prior_kind == "learned":
        shape = (self.num_labels, self.latent_dim)
        self.prior_mu = self.param("prior_mu", nn.initializers.zeros, shape)
        self.prior_logvar = self.param("prior_logvar", nn.initializers.zeros, shape)

  def code(self, z_xZ: Array, labels_x: Array | None) -> Array:
    """The decoder's conditioning vector: z, or [z; e_y] for a conditional
    decoder (the label embedding broadcast over any leading sample axes of z)."""
    if not self.num_labels:
      return z_xZ
    emb = self.label_embed(labels_x).astype(z_xZ.dtype)
    emb = jnp.broadcast_to(emb, z_xZ.shape[:-1] + emb.shape[-1:])
    return jnp.concatenate([z_xZ, emb], axis=-1)

  def prior(self, labels_B: Array):
    """(mean, log variance) of p(z|y), each [B, Z]."""
    if self.num_labels and self.prior_kind == "learned":
      return jnp.take(self.prior_mu, labels_B, axis=0), jnp.take(self.prior_logvar, labels_B,
                                                                 axis=0)
    zeros = jnp.zeros(labels_B.shape + (self.latent_dim,), jnp.float32)
    return zeros, zeros

  def initial_state(self, z_BxZ: Array | None, batch_size: int):
    """The cell's initial state (a pytree with leading batch axes)."""
    if self.latent_dim:
      return self.rnn.state_from(self.init_state(z_BxZ))
    return self.rnn.zero_state(batch_size)

  def _latent_proj(self, z_BxZ):
    return self.latent_proj(z_BxZ) if self.latent_dim else None

  def hidden_states(self, inputs_BxT: Array, z_BxZ: Array | None, *,
                    deterministic: bool = True, row_ids_B: Array | None = None) -> Array:
    """The decoder's output states (after output dropout), time-major: [T, B, H]."""
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
      emb = row_dropout(emb, key, row_ids_B, self.embed_dropout)
    xproj = self.rnn.project(emb)
    extra = self._latent_proj(z_BxZ)
    if extra is not None:
      xproj = xproj + extra[None, :, :]
    hs, _ = self.rnn(xproj, self.initial_state(z_BxZ, B), mask.T)
    if self.output_dropout > 0 and not deterministic:
      key = jax.random.fold_in(self.make_rng("dropout"), 2)
      hs = row_dropout(hs, key, row_ids_B, self.output_dropout)
    return hs

  def token_nll(self, hs_BxTxH: Array, targets_BxT: Array) -> Array:
    """-log p(target) at every position (`output_nll`)."""
    B, T, H = hs_BxTxH.shape
    return output_nll(hs_BxTxH.reshape(B * T, H), self.output_kernel, self.output_bias,
                      targets_BxT.reshape(B * T)).reshape(B, T)

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
    xproj = self.rnn.project(self.embed(inputs_BxT.T))  # [T, B, GH]
    xproj = xproj[:, None] + self.latent_proj(z_CxBxZ)[None]  # [T, C, B, GH]
    state0 = jax.tree_util.tree_map(lambda x: x.reshape((C * B,) + x.shape[2:]),
                                    self.rnn.state_from(self.init_state(z_CxBxZ)))
    mask = jnp.broadcast_to((inputs_BxT != PAD_ID).T[:, None], (T, C, B)).reshape(T, C * B)
    hs, _ = self.rnn(xproj.reshape(T, C * B, xproj.shape[-1]), state0, mask)
    targets = jnp.broadcast_to(targets_BxT.T[:, None], (T, C, B)).reshape(T * C * B)
    nll = blocked_output_nll(hs.reshape(T * C * B, H), self.output_kernel, self.output_bias,
                             targets)
    return jnp.transpose(nll.reshape(T, C, B), (1, 2, 0))

  def step(self, state, token_B: Array, z_BxZ: Array | None):
    """One decoding step: the new state and the logits [B, V] of the next token."""
    xp = self.rnn.project(self.embed(token_B))
    if self.latent_dim:
      xp = xp + self.latent_proj(z_BxZ)
    state = self.rnn.step(state, xp)
    return state, self.rnn.output(state) @ self.output_kernel.T + self.output_bias


def _nll_outputs(out) -> dict:
  """The decoder's output as model outputs: 'nll_BxT', plus 'recon_loss' (the
  differentiable sum of token_weights * NLL) when training passed weights."""
  if isinstance(out, tuple):
    return {"recon_loss": out[0], "nll_BxT": out[1]}
  return {"nll_BxT": out}


class TextVAE(nn.Module):
  """The sentence VAE of Bowman et al. (2016) with a recurrent encoder and decoder.

  With `num_labels` > 0 it is a conditional VAE of a label y (one of
  0..num_labels-1, `labels_B`): q(z|x, y), p(x|z, y) and the prior p(z|y)
  (`condition_prior`: 'standard' N(0, I) or 'learned', a Gaussian per label),
  so that the ELBO bounds log p(x|y). The decoding methods (`decode_init`,
  `decode_step`) then take the decoder code `decoder_code(z, labels)`."""
  vocab_size: int
  embed_dim: int = 256
  hidden_dim: int = 256
  latent_dim: int = 32
  word_dropout: float = 0.0
  embed_dropout: float = 0.0
  bn_gamma: float = 0.0            # BN-VAE scale (0 = off); see Encoder
  bn_axis_name: str | None = None
  output_dropout: float = 0.0
  encoder_embed_dropout: float = 0.0
  cell: str = "gru"
  param_init: str = "default"
  init_scale: float = 0.01
  embed_init_scale: float = 0.1
  num_labels: int = 0              # > 0: conditional on a label (see the class doc)
  label_dim: int = 16
  condition_prior: str = "standard"

  def setup(self):
    inits = dict(cell=self.cell, param_init=self.param_init, init_scale=self.init_scale,
                 embed_init_scale=self.embed_init_scale)
    labels = dict(num_labels=self.num_labels, label_dim=self.label_dim)
    self.encoder = Encoder(self.vocab_size, self.embed_dim, self.hidden_dim,
                           self.latent_dim, self.bn_gamma, self.bn_axis_name,
                           embed_dropout=self.encoder_embed_dropout, **inits, **labels)
    self.decoder = Decoder(self.vocab_size, self.embed_dim, self.hidden_dim,
                           self.latent_dim, self.word_dropout, self.embed_dropout,
                           self.output_dropout, **inits, **labels,
                           prior_kind=self.condition_prior)

  def _labels(self, labels_B):
    if self.num_labels and labels_B is None:
      raise ValueError(f"a conditional VAE ({self.num_labels} labels) needs labels_B")
    return labels_B

  def encode(self, tokens_BxT, deterministic: bool = True, labels_B=None):
    if self.num_labels:
      return self.encoder(tokens_BxT, deterministic, labels_B=self._labels(labels_B))
    return self.encoder(tokens_BxT, deterministic)

  def prior(self, labels_B):
    """(mean, log variance) of p(z|y) per sentence, each [B, Z]."""
    return self.decoder.prior(labels_B)

  def decoder_code(self, z_xZ, labels_x=None):
    """What the decoder reads: z, or [z; label embedding] when conditional."""
    return self.decoder.code(z_xZ, self._labels(labels_x))

  def __call__(self, tokens_BxT, inputs_BxT, *, deterministic: bool = True,
               row_ids_B=None, token_weights_BxT=None, labels_B=None):
    """Per-token NLL of the targets under one reparameterised z ~ q(z|x).

    The noise comes from the 'latent' RNG stream; dropout from 'dropout' (only
    when not deterministic). Each sentence's noise is drawn from
    `fold_in(stream key, row_ids_B[b])` (default: its row). A conditional
    model's outputs also hold the prior p(z|y) ('prior_mu_BxZ',
    'prior_logvar_BxZ') when it is learned; the KL is then taken against it.
    """
    if row_ids_B is None:
      row_ids_B = jnp.arange(tokens_BxT.shape[0])
    if self.num_labels:
      mu, logvar = self.encoder(tokens_BxT, deterministic, row_ids_B,
                                labels_B=self._labels(labels_B))
    else:
      mu, logvar = self.encoder(tokens_BxT, deterministic, row_ids_B)
    eps = row_normal(self.make_rng("latent"), row_ids_B, self.latent_dim)
    z = mu + jnp.exp(0.5 * logvar) * eps.astype(mu.dtype)
    code = self.decoder.code(z, labels_B) if self.num_labels else z
    out = self.decoder(inputs_BxT, tokens_BxT, code, deterministic=deterministic,
                       row_ids_B=row_ids_B, token_weights_BxT=token_weights_BxT)
    outputs = {**_nll_outputs(out), "mu_BxZ": mu, "logvar_BxZ": logvar, "z_BxZ": z}
    if self.num_labels and self.condition_prior == "learned":
      outputs["prior_mu_BxZ"], outputs["prior_logvar_BxZ"] = self.decoder.prior(labels_B)
    return outputs

  def decode_nll(self, tokens_BxT, inputs_BxT, z_BxZ, labels_B=None):
    """-log p(x_t | x_<t, z) per token for a given z (evaluation)."""
    code = self.decoder.code(z_BxZ, self._labels(labels_B)) if self.num_labels else z_BxZ
    return self.decoder(inputs_BxT, tokens_BxT, code, deterministic=True)

  def decode_nll_samples(self, tokens_BxT, inputs_BxT, z_CxBxZ, labels_B=None):
    """-log p(x_t | x_<t, z_c) per token for C samples per sentence: [C, B, T]."""
    code = self.decoder.code(z_CxBxZ, self._labels(labels_B)) if self.num_labels else z_CxBxZ
    return self.decoder.nll_for_samples(inputs_BxT, tokens_BxT, code)

  def decode_init(self, z_BxZ):
    return self.decoder.initial_state(z_BxZ, z_BxZ.shape[0])

  def decode_step(self, state, token_B, z_BxZ):
    return self.decoder.step(state, token_B, z_BxZ)


class RNNLM(nn.Module):
  """The decoder without z: the language-model baseline. Its posterior has zero
  dimensions, so the same objective gives KL = 0 and the ELBO is the exact NLL."""
  vocab_size: int
  embed_dim: int = 256
  hidden_dim: int = 256
  latent_dim: int = 0  # fixed: no latent variable
  word_dropout: float = 0.0
  embed_dropout: float = 0.0
  output_dropout: float = 0.0
  cell: str = "gru"
  param_init: str = "default"
  init_scale: float = 0.01
  embed_init_scale: float = 0.1

  def setup(self):
    self.decoder = Decoder(self.vocab_size, self.embed_dim, self.hidden_dim, 0,
                           self.word_dropout, self.embed_dropout, self.output_dropout,
                           cell=self.cell, param_init=self.param_init, init_scale=self.init_scale,
                           embed_init_scale=self.embed_init_scale)

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

  def decode_step(self, state, token_B, z_BxZ=None):
    return self.decoder.step(state, token_B, None)


def create_model(model_config, vocab_size: int, num_labels: int = 0) -> nn.Module:
  """The model named by `config.model.kind` ('vae' or 'lm'). Fields added after
  a workdir was written take their defaults (its config.json lacks them).
  With `config.model.condition` (a label feature's name) the VAE is
  conditional on that feature's `num_labels` labels."""
  get = model_config.get
  kwargs = dict(vocab_size=vocab_size, embed_dim=model_config.embed_dim,
                hidden_dim=model_config.hidden_dim,
                word_dropout=model_config.word_dropout,
                embed_dropout=model_config.embed_dropout,
                output_dropout=float(get("output_dropout", 0.0)),
                cell=get("cell", "gru"), param_init=get("param_init", "default"),
                init_scale=float(get("init_scale", 0.01)),
                embed_init_scale=float(get("embed_init_scale", 0.1)))
  condition = get("condition", "") or ""
  if condition:
    prior = get("condition_prior", "standard")
    if model_config.kind != "vae":
      raise ValueError(f"config.model.condition={condition!r} needs config.model.kind='vae', "
                       f"got {model_config.kind!r}")
    if prior not in ("standard", "learned"):
      raise ValueError(f"config.model.condition_prior={prior!r}: expected 'standard' or "
                       "'learned'")
    if num_labels < 1:
      raise ValueError(f"config.model.condition={condition!r}: the model needs the number "
                       "of labels (from the corpus, or the workdir's labels.json)")
    kwargs.update(num_labels=int(num_labels), label_dim=int(get("label_dim", 16)),
                  condition_prior=prior)
  if model_config.kind == "vae":
    return TextVAE(latent_dim=model_config.latent_dim,
                   bn_gamma=float(get("bn_gamma", 0.0)),
                   encoder_embed_dropout=float(get("encoder_embed_dropout", 0.0)),
                   bn_axis_name="batch", **kwargs)
  if model_config.kind == "lm":
    return RNNLM(**kwargs)
  raise ValueError(f"config.model.kind={model_config.kind!r}: expected 'vae' or 'lm'")


def variables(params, batch_stats=None) -> dict:
  """The variables for `model.apply`: {'params': params}, with the
  'batch_stats' collection (a BN-VAE's) when there is one."""
  if batch_stats:
    return {"params": params, "batch_stats": batch_stats}
  return {"params": params}


def as_variables(params_or_variables) -> dict:
  """The variables for `model.apply` from either a parameter tree or variables
  that already hold a 'params' collection (passed through)."""
  if hasattr(params_or_variables, "keys") and "params" in params_or_variables.keys():
    return params_or_variables
  return variables(params_or_variables)
