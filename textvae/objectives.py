"""The ELBO and its pieces, KL-weight schedules: pure functions.

Conventions (docs/design.md): reconstruction NLL is summed over real tokens with
<eos> counted and padding masked; KL is the analytic Gaussian KL against N(0, I),
per dimension and per sentence; per-token figures divide sums over sentences by
the number of real tokens. A conditional VAE with a learned prior p(z|y) takes
the KL against that prior instead (`gaussian_kl_to_prior`), so that the ELBO
bounds log p(x|y).
"""

from __future__ import annotations

from jax import lax
import jax.numpy as jnp
import numpy as np

from textvae.data.vocab import PAD_ID


def gaussian_kl_per_dim(mu_BxZ, logvar_BxZ):
  """KL(N(mu, diag(exp(logvar))) || N(0, I)) per dimension: [B, Z]."""
  return 0.5 * (jnp.square(mu_BxZ) + jnp.exp(logvar_BxZ) - 1.0 - logvar_BxZ)


def gaussian_kl_to_prior(mu_BxZ, logvar_BxZ, prior_mu_BxZ, prior_logvar_BxZ):
  """KL(N(mu, diag(exp(logvar))) || N(prior_mu, diag(exp(prior_logvar)))) per
  dimension: [B, Z]."""
  return 0.5 * (prior_logvar_BxZ - logvar_BxZ
                + (jnp.exp(logvar_BxZ) + jnp.square(mu_BxZ - prior_mu_BxZ))
                * jnp.exp(-prior_logvar_BxZ) - 1.0)


def kl_per_dim(outputs):
  """The KL per dimension of the model outputs: against N(0, I), or against the
  prior the outputs hold ('prior_mu_BxZ', 'prior_logvar_BxZ': a conditional
  VAE's learned p(z|y))."""
  if "prior_mu_BxZ" in outputs:
    return gaussian_kl_to_prior(outputs["mu_BxZ"], outputs["logvar_BxZ"],
                                outputs["prior_mu_BxZ"], outputs["prior_logvar_BxZ"])
  return gaussian_kl_per_dim(outputs["mu_BxZ"], outputs["logvar_BxZ"])


def token_mask(tokens_BxT):
  return (tokens_BxT != PAD_ID).astype(jnp.float32)


def reconstruction_nll(nll_BxT, tokens_BxT):
  """-log p(x|z) per sentence: the per-token NLL summed over real tokens."""
  return jnp.sum(nll_BxT * token_mask(tokens_BxT), axis=-1)


KL_SCHEDULES = ("constant", "linear", "logistic", "cyclical")


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
                   f"{', '.join(map(repr, KL_SCHEDULES))}")


def elbo_terms(outputs, tokens_BxT):
  """Per-sentence reconstruction NLL, KL and its per-dimension split."""
  recon_B = reconstruction_nll(outputs["nll_BxT"], tokens_BxT)
  kl_BxZ = kl_per_dim(outputs)
  terms = {"recon_B": recon_B, "kl_B": jnp.sum(kl_BxZ, axis=-1), "kl_BxZ": kl_BxZ,
           "num_tokens_B": jnp.sum(token_mask(tokens_BxT), axis=-1)}
  if "recon_loss" in outputs:
    terms["recon_loss"] = outputs["recon_loss"]
  return terms


def recon_token_weights(tokens_BxT, weights_B):
  """d(mean weighted reconstruction)/d(token NLL): weights_B[b] * mask[b, t] /
  max(sum(weights_B), 1). Training passes these to the model, whose fused
  output layer then returns `mean_reconstruction` directly as 'recon_loss'."""
  denom = jnp.maximum(jnp.sum(weights_B), 1.0)
  return weights_B[:, None] * token_mask(tokens_BxT) / denom


def mean_reconstruction(terms, weights_B):
  """sum_b weights_B[b] * recon_B[b] / max(sum(weights_B), 1); taken from the
  fused output layer ('recon_loss') when the model computed it."""
  if "recon_loss" in terms:
    return terms["recon_loss"]
  return jnp.sum(weights_B * terms["recon_B"]) / jnp.maximum(jnp.sum(weights_B), 1.0)


def training_loss(terms, weights_B, beta):
  """Mean over (weighted) sentences of recon + beta * KL: the negative
  beta-ELBO per sentence, the quantity minimised."""
  kl = jnp.sum(weights_B * terms["kl_B"]) / jnp.maximum(jnp.sum(weights_B), 1.0)
  return mean_reconstruction(terms, weights_B) + beta * kl


FREE_BITS_KINDS = ("none", "per_dim", "per_sentence_dim", "batch")


def free_bits_kl(kl_BxZ, weights_B, free_bits_config, axis_name=None):
  """The KL term of the training loss, per sentence, with free bits.

  `free_bits_config`: `kind` in FREE_BITS_KINDS and `target`, the total number
  of free nats.

  - 'none': the (weighted) batch mean of the per-sentence KL.
  - 'per_dim' (Kingma et al. 2016): lambda = target / Z nats per dimension,
    the term sum_j max(lambda, KL_j) with KL_j the batch mean of dimension j's
    KL over the GLOBAL batch.
  - 'per_sentence_dim' (the code of Li et al. 2019, bohanli/vae-pretraining-encoder
    text_anneal_fb.py `--fb 2`): the threshold lambda = target / Z applies to each
    sentence's KL in each dimension, the term the batch mean of
    sum_j max(lambda, KL_bj). The authors' code drops the masked entries
    instead of holding them at lambda: the same gradient, a value lower by a
    constant per masked entry. Nothing crosses devices: each sentence's
    threshold is its own.
  - 'batch': max(target, batch-mean total KL) over the global batch.

  Inside `pmap` pass `axis_name`: the thresholds compare the `lax.pmean` of
  every device's batch means (the global batch mean when the devices hold
  equally many sentences, as in training), so N devices take the same step as
  one. The value is taken from the global means; the gradient flows through
  this device's own batch mean only (the mean of those over devices, as
  `pmean` of the gradients makes it, is the gradient of the global mean). A
  dimension (or the total) at or below its threshold gets exactly zero
  gradient from the KL term.
  """
  kind = free_bits_config.kind
  denom = jnp.maximum(jnp.sum(weights_B), 1.0)
  local_Z = jnp.sum(weights_B[:, None] * kl_BxZ, axis=0) / denom
  if kind == "none":
    return jnp.sum(local_Z)
  pmean = (lambda x: lax.pmean(x, axis_name)) if axis_name else (lambda x: x)
  if kind == "per_dim":
    lam = free_bits_config.target / kl_BxZ.shape[-1]
    global_Z = pmean(local_Z)
    return jnp.sum(jnp.where(global_Z > lam, local_Z, lam))
  if kind == "per_sentence_dim":
    lam = free_bits_config.target / kl_BxZ.shape[-1]
    held_B = jnp.sum(jnp.where(kl_BxZ > lam, kl_BxZ, lam), axis=-1)
    return jnp.sum(weights_B * held_B) / denom
  if kind == "batch":
    local = jnp.sum(local_Z)
    return jnp.where(pmean(local) > free_bits_config.target, local,
                     free_bits_config.target)
  raise ValueError(f"config.train.free_bits.kind={kind!r}: expected one of {FREE_BITS_KINDS}")


def free_bits_loss(terms, weights_B, beta, free_bits_config, axis_name=None):
  """Mean reconstruction NLL + beta * the free-bits KL term (`free_bits_kl`);
  equals `training_loss` for kind 'none'."""
  recon = mean_reconstruction(terms, weights_B)
  return recon + beta * free_bits_kl(terms["kl_BxZ"], weights_B, free_bits_config, axis_name)


def train_objective(terms, weights_B, beta, train_config, axis_name=None):
  """The loss a train step minimises: the negative beta-ELBO per sentence, its
  KL term with free bits when `train_config.free_bits.kind` is not 'none'.
  A remedy that changes only the objective changes it here."""
  fb = train_config.get("free_bits", None)
  if fb is None or fb.kind == "none":
    return training_loss(terms, weights_B, beta)
  return free_bits_loss(terms, weights_B, beta, fb, axis_name=axis_name)


def bn_kl_lower_bound(gamma: float, batch_var_Z, eps: float = 1e-5):
  """BN-VAE (Zhu et al. 2020): the batch-mean KL of a batch whose posterior
  means were batch-normalised with fixed scale gamma (training mode, biased
  batch variance `batch_var_Z` of the pre-normalisation means, epsilon `eps`):

    mean_b KL_b = 0.5 sum_j [mean_b mu_bj^2 + mean_b (s_bj - 1 - log s_bj)]
               >= 0.5 sum_j mean_b mu_bj^2
                = 0.5 sum_j [beta_j^2 + gamma^2 v_j / (v_j + eps)]
               >= 0.5 gamma^2 sum_j v_j / (v_j + eps)

  (s = sigma^2; s - 1 - log s >= 0; the batch mean of mu_j is the shift
  beta_j and its variance gamma^2 v_j / (v_j + eps)). Returns the last line,
  which tends to 0.5 * Z * gamma^2 for v_j >> eps."""
  v = jnp.asarray(batch_var_Z, jnp.float32)
  return 0.5 * gamma ** 2 * jnp.sum(v / (v + eps))


def schedule_step(step, pretrain_steps: int = 0):
  """The step the KL schedule sees: with autoencoder pretraining (Li et al.
  2019) the schedule restarts from 0 when the VAE phase starts."""
  return jnp.maximum(jnp.asarray(step) - pretrain_steps, 0)


def train_kl_weight(step, train_config):
  """beta for the optimiser step taken from state.step = `step`: 0 for the
  `pretrain_steps` autoencoder steps (state.step < pretrain_steps), then the
  schedule restarted at 0."""
  pretrain = int(train_config.get("pretrain_steps", 0) or 0)
  beta = kl_weight(schedule_step(step, pretrain), train_config.kl_schedule)
  if pretrain:
    beta = jnp.where(jnp.asarray(step) < pretrain, 0.0, beta)
  return beta


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
