"""The ELBO and its pieces, KL-weight schedules: pure functions.

Conventions (ARCHITECTURE.md): reconstruction NLL is summed over real tokens with
<eos> counted and padding masked; KL is the analytic Gaussian KL against N(0, I),
per dimension and per sentence; per-token figures divide sums over sentences by
the number of real tokens.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from textvae.data.vocab import PAD_ID


def gaussian_kl_per_dim(mu_BxZ, logvar_BxZ):
  """KL(N(mu, diag(exp(logvar))) || N(0, I)) per dimension: [B, Z]."""
  return 0.5 * (jnp.square(mu_BxZ) + jnp.exp(logvar_BxZ) - 1.0 - logvar_BxZ)


def token_mask(tokens_BxT):
  return (tokens_BxT != PAD_ID).astype(jnp.float32)


def reconstruction_nll(nll_BxT, tokens_BxT):
  """-log p(x|z) per sentence: the per-token NLL summed over real tokens."""
  return jnp.sum(nll_BxT * token_mask(tokens_BxT), axis=-1)


def kl_weight(step, schedule_config):
  """The KL weight (beta) at `step` for `config.train.kl_schedule`.

  Fields: `name` in {'constant', 'linear', 'logistic', 'cyclical'}, `max_weight`,
  `warmup_steps` (linear: 0 -> max over that many steps), `logistic_k`,
  `logistic_x0` (Bowman et al. 2016: max / (1 + exp(-k (step - x0)))),
  `num_cycles`, `cycle_steps`, `ratio` (Fu et al. 2019: within each cycle of
  cycle_steps, linear 0 -> max over the first `ratio` of it, then max).
  Works on Python numbers and on traced arrays alike.
  """
  s = schedule_config
  step = jnp.asarray(step, jnp.float32)
  top = s.max_weight
  if s.name == "constant":
    return jnp.asarray(top, jnp.float32)
  if s.name == "linear":
    if s.warmup_steps <= 0:
      return jnp.asarray(top, jnp.float32)
    return top * jnp.minimum(1.0, step / s.warmup_steps)
  if s.name == "logistic":
    return top / (1.0 + jnp.exp(-s.logistic_k * (step - s.logistic_x0)))
  if s.name == "cyclical":
    period = s.cycle_steps
    pos = jnp.mod(step, period) / period
    within = jnp.minimum(1.0, pos / s.ratio)
    return jnp.where(step >= s.num_cycles * period, top, top * within)
  raise ValueError(f"config.train.kl_schedule.name={s.name!r}: expected one of "
                   "'constant', 'linear', 'logistic', 'cyclical'")


def elbo_terms(outputs, tokens_BxT):
  """Per-sentence reconstruction NLL, KL and its per-dimension split."""
  recon_B = reconstruction_nll(outputs["nll_BxT"], tokens_BxT)
  kl_BxZ = gaussian_kl_per_dim(outputs["mu_BxZ"], outputs["logvar_BxZ"])
  return {"recon_B": recon_B, "kl_B": jnp.sum(kl_BxZ, axis=-1), "kl_BxZ": kl_BxZ,
          "num_tokens_B": jnp.sum(token_mask(tokens_BxT), axis=-1)}


def training_loss(terms, weights_B, beta):
  """Mean over (weighted) sentences of recon + beta * KL: the negative
  beta-ELBO per sentence, the quantity minimised."""
  per_sentence = terms["recon_B"] + beta * terms["kl_B"]
  return jnp.sum(weights_B * per_sentence) / jnp.maximum(jnp.sum(weights_B), 1.0)


def summarise(sums: dict) -> dict:
  """Host-side: sums over sentences -> the reported figures.

  `sums` holds num_sentences, num_tokens, recon, kl (sums). Returns recon and kl
  per sentence, elbo per sentence (= -(recon + kl)), nll_bound per token and
  ppl_bound = exp((recon + kl) / tokens), the perplexity the bound implies.
  """
  n = max(float(sums["num_sentences"]), 1.0)
  tokens = max(float(sums["num_tokens"]), 1.0)
  recon, kl = float(sums["recon"]), float(sums["kl"])
  return {"recon": recon / n, "kl": kl / n, "elbo": -(recon + kl) / n,
          "nll_per_token_bound": (recon + kl) / tokens,
          "ppl_bound": float(np.exp((recon + kl) / tokens)),
          "num_sentences": int(round(float(sums["num_sentences"]))),
          "num_tokens": int(round(float(sums["num_tokens"])))}
