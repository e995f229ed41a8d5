"""Controlled generation and its metrics: prior samples of one label, attribute
transfer, and the standard triple of the style-transfer literature (label
accuracy by a classifier, BLEU to the source, fluency PPL under a language model).

Two ways to control a label y:
  conditional       a conditional VAE (`config.model.condition`): prior samples
                    z ~ p(z|y) decoded with y; transfer of x (label y_x) to y
                    decodes the posterior mean of q(z|x, y_x) with y.
  latent_direction  an unconditional VAE: the classic attribute vector. With m_y
                    the mean over the training split of the posterior means of
                    the sentences labelled y and m their mean over all
                    sentences, transfer decodes mu(x) + scale (m_y - m_{y_x})
                    and prior samples decode z + scale (m_y - m), z ~ N(0, I).

Transfer can be guided (`guidance` w > 0, decoding.generate): each step's
log-probabilities are pushed away from those of the source's own code, the
posterior mean decoded with the source label (conditional) or without the
shift (latent direction): (1 + w) log p(.|target) - w log p(.|source). The
words that carry the label move, the words both codes agree on stay. Prior
samples of a label are guided the same way, away from the same z decoded
with another label (drawn per row among the others; with two labels, the
other one) or without the shift.

The judge is `BowClassifier`, a multinomial logistic regression over the
presence of the training split's words (L2-regularised, full-batch Adam in
JAX), trained on the training split; its accuracy on the held-out split is
reported with every measurement. Both methods are judged by the same
classifier, which depends on the corpus only.

`control_metrics` reports per target label: `sample_accuracy` (the fraction of
prior samples of the label that the classifier assigns to it), and over the
held-out sentences of the other labels transferred to it `transfer_accuracy`,
`transfer_bleu` (sacrebleu corpus BLEU of the transfers against their sources:
content kept) and, with a language-model workdir, `sample_ppl` and
`transfer_ppl` (the per-token perplexity of the generated sentences, </s>
counted, under that LM: fluency).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from textvae import conditioning
from textvae import decoding
from textvae import errors
from textvae import periodic_actions
from textvae import reconstruction
from textvae.data import pipeline
from textvae.data.vocab import EOS_ID

METHODS = ("conditional", "latent_direction")
CLASSIFIER_NAME = "bag-of-words logistic regression (word presence, L2, full-batch Adam)"


# --------------------------------------------------------------------- classifier

@functools.partial(jax.jit, static_argnames=("num_labels", "num_words", "num_steps"))
def _fit_bow(ids_NxT, y_N, *, num_labels: int, num_words: int, num_steps: int,
             learning_rate: float, l2: float):
  """Weights [num_words, K] and bias [K]; column 0 (unknown words, padding) is
  held at zero."""
  params = {"w": jnp.zeros((num_words, num_labels)), "b": jnp.zeros((num_labels,))}
  opt = optax.adam(learning_rate)
  keep = jnp.ones((num_words, 1)).at[0].set(0.0)

  def loss_fn(p):
    logits = _bow_logits(p["w"] * keep, p["b"], ids_NxT)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y_N).mean()
    return ce + l2 * jnp.sum(jnp.square(p["w"]))

  def step(carry, _):
    p, s = carry
    loss, g = jax.value_and_grad(loss_fn)(p)
    updates, s = opt.update(g, s, p)
    return (optax.apply_updates(p, updates), s), loss

  (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), None, length=num_steps)
  return {"w": params["w"] * keep, "b": params["b"]}, losses[-1]


def _bow_logits(w_VxK, b_K, ids_NxT):
  return jnp.sum(jnp.take(w_VxK, ids_NxT, axis=0), axis=1) + b_K


@dataclasses.dataclass
class BowClassifier:
  """`CLASSIFIER_NAME`: word -> column (1..V; 0 is every other word), weights."""
  words: dict
  w: np.ndarray  # [V + 1, K]
  b: np.ndarray  # [K]
  name: str = CLASSIFIER_NAME

  @staticmethod
  def _ids(words: dict, sentences: Sequence[str]) -> np.ndarray:
    """Each sentence's distinct known words as columns, padded with 0: [N, T]."""
    rows = [sorted({words.get(w, 0) for w in s.split()} - {0}) for s in sentences]
    width = max([len(r) for r in rows] + [1])
    out = np.zeros((len(rows), width), np.int32)
    for i, r in enumerate(rows):
      out[i, :len(r)] = r
    return out

  @classmethod
  def fit(cls, sentences: Sequence[str], labels, num_labels: int, *, num_steps: int = 300,
          learning_rate: float = 0.05, l2: float = 1e-5) -> "BowClassifier":
    vocab = sorted({w for s in sentences for w in s.split()})
    words = {w: i + 1 for i, w in enumerate(vocab)}
    params, _ = _fit_bow(jnp.asarray(cls._ids(words, sentences)),
                         jnp.asarray(labels, jnp.int32), num_labels=num_labels,
                         num_words=len(words) + 1, num_steps=num_steps,
                         learning_rate=learning_rate, l2=l2)
    return cls(words, np.asarray(params["w"]), np.asarray(params["b"]))

  def logits(self, sentences: Sequence[str]) -> np.ndarray:
    ids = self._ids(self.words, sentences)
    return self.w[ids].sum(axis=1) + self.b

  def predict(self, sentences: Sequence[str]) -> np.ndarray:
    if not len(sentences):
      return np.zeros(0, np.int32)
    return np.argmax(self.logits(sentences), axis=-1).astype(np.int32)

  def accuracy(self, sentences: Sequence[str], labels) -> float:
    if not len(sentences):
      return float("nan")
    return float(np.mean(self.predict(sentences) == np.asarray(labels)))


# ------------------------------------------------------------ latent direction

@dataclasses.dataclass
class LatentDirection:
  """The attribute vectors of an unconditional VAE (module doc)."""
  label_means: np.ndarray  # [K, Z]: mean posterior mean of each label
  mean: np.ndarray         # [Z]: over every sentence
  counts: np.ndarray       # [K]: sentences per label
  scale: float = 1.0

  def transfer_shift(self, source_labels, target_label) -> np.ndarray:
    """[B, Z]: scale (m_target - m_source) per row."""
    src = np.asarray(source_labels, np.int64)
    return self.scale * (self.label_means[target_label][None] - self.label_means[src])

  def sample_shift(self, target_label) -> np.ndarray:
    return self.scale * (self.label_means[target_label] - self.mean)


def latent_direction(model, params, split, labels_N, num_labels: int, *,
                     scale: float = 1.0, buckets=None) -> LatentDirection:
  """The label means of the posterior means of `split` (an EncodedSplit, the
  training split) under an unconditional VAE (`buckets`: padded lengths, see
  pipeline.batch_buckets)."""
  if decoding.num_labels(model):
    raise errors.ConfigError("the latent-direction method is for an unconditional VAE; "
                             "this one is conditional (use its labels directly)")
  if not decoding.latent_dim(model):
    raise errors.ConfigError("the latent-direction method needs a VAE (latent_dim > 0)")
  mu, _ = decoding.encode_split(model, params, split, buckets=buckets)
  labels_N = np.asarray(labels_N)
  counts = np.bincount(labels_N, minlength=num_labels)
  missing = [i for i in range(num_labels) if counts[i] == 0]
  if missing:
    raise errors.ConfigError(f"labels {missing} have no training sentence: no direction")
  means = np.stack([mu[labels_N == k].mean(0) for k in range(num_labels)])
  return LatentDirection(means.astype(np.float32), mu.mean(0).astype(np.float32), counts,
                         scale)


# ------------------------------------------------------------ generation

def method_of(model) -> str:
  return "conditional" if decoding.num_labels(model) else "latent_direction"


def other_labels(key, num: int, label: int, num_labels: int) -> np.ndarray:
  """[num] labels drawn uniformly among the `num_labels` - 1 that are not `label`."""
  draw = np.asarray(jax.random.randint(key, (num,), 0, num_labels - 1))
  return (draw + (draw >= label)).astype(np.int32)


def sample(model, params, key, num: int, label: int, *, max_length: int,
           direction: LatentDirection | None = None, guidance: float = 0.0,
           **generate_kwargs) -> np.ndarray:
  """Token ids [num, max_length] of prior samples of `label`: from p(z|y) (a
  conditional VAE) or along the latent direction (`direction`); guided away
  from another label by `guidance` (module doc)."""
  if decoding.num_labels(model):
    contrast = None
    if guidance:
      contrast = other_labels(jax.random.fold_in(key, 2), num, label, decoding.num_labels(model))
    _, tokens = decoding.prior_sample(model, params, key, num, max_length=max_length,
                                      labels=np.full(num, label, np.int32), guidance=guidance,
                                      contrast_labels=contrast, **generate_kwargs)
    return np.asarray(tokens)
  if direction is None:
    raise errors.ConfigError("an unconditional VAE samples a label along a latent "
                             "direction: pass `direction` (latent_direction)")
  z_key, decode_key = jax.random.split(key)
  z0 = jax.random.normal(z_key, (num, decoding.latent_dim(model)))
  z = z0 + jnp.asarray(direction.sample_shift(label))[None]
  return np.asarray(decoding.generate(model, params, z, decode_key, max_length=max_length,
                                      guidance=guidance, contrast_z=z0, **generate_kwargs))


def transfer(model, params, tokens_BxT, source_labels, target_label: int, key=None, *,
             max_length: int, direction: LatentDirection | None = None,
             guidance: float = 0.0, **generate_kwargs) -> np.ndarray:
  """Token ids [B, max_length]: each sentence (encoded with its own label)
  decoded with `target_label`, or moved along the latent direction; guided
  away from the source's own code by `guidance` (module doc)."""
  tokens_BxT = jnp.asarray(tokens_BxT)
  B = tokens_BxT.shape[0]
  source_labels = np.broadcast_to(np.asarray(source_labels, np.int32), (B,))
  if key is None:
    key = jax.random.key(0)
  if decoding.num_labels(model):
    mu = decoding.posterior_mean(model, params, tokens_BxT, source_labels)
    return np.asarray(decoding.generate(model, params, mu, key, max_length=max_length,
                                        labels=np.full(B, target_label, np.int32),
                                        guidance=guidance, contrast_z=mu,
                                        contrast_labels=source_labels, **generate_kwargs))
  if direction is None:
    raise errors.ConfigError("an unconditional VAE transfers along a latent direction: "
                             "pass `direction` (latent_direction)")
  mu = decoding.posterior_mean(model, params, tokens_BxT)
  z = mu + jnp.asarray(direction.transfer_shift(source_labels, target_label))
  return np.asarray(decoding.generate(model, params, z, key, max_length=max_length,
                                      guidance=guidance, contrast_z=mu, **generate_kwargs))


def _batches(n: int, batch_size: int):
  for start in range(0, n, batch_size):
    yield np.arange(start, min(n, start + batch_size))


def transfer_rows(model, params, rows: Sequence[np.ndarray], source_labels, target_label: int,
                  key, *, max_length: int, batch_size: int = 256,
                  direction: LatentDirection | None = None, buckets=None, guidance: float = 0.0,
                  **generate_kwargs):
  """`transfer` of token rows (words then </s>) in batches of `batch_size`
  (the last filled with 1-token rows, and padded to `buckets`, so that shapes
  repeat); outputs cut after </s>, in the rows' order."""
  out = []
  source_labels = np.asarray(source_labels, np.int32)
  progress = periodic_actions.Progress(f"transfer to label {target_label}", len(rows))
  for i, idx in enumerate(_batches(len(rows), batch_size)):
    batch = [rows[j] for j in idx] + [np.asarray([EOS_ID], np.int32)] * (batch_size - len(idx))
    labels = np.zeros(batch_size, np.int32)
    labels[:len(idx)] = source_labels[idx]
    tokens = transfer(model, params, decoding.pad_batch(batch, buckets), labels, target_label,
                      jax.random.fold_in(key, i), max_length=max_length, direction=direction,
                      guidance=guidance, **generate_kwargs)
    out += [reconstruction.strip(t) for t in tokens[:len(idx)]]
    progress.update(len(idx))
  progress.finish()
  return out


def transfer_split(model, params, vocab, split, labels_N, target_label: int, key, *,
                   max_length: int, batch_size: int = 256,
                   direction: LatentDirection | None = None, buckets=None,
                   guidance: float = 0.0, **generate_kwargs):
  """The sentences of `split` (an EncodedSplit, labels [N]) not of
  `target_label` transferred to it: (their indices, the transfers, the
  sources), the last two as text."""
  others = np.flatnonzero(np.asarray(labels_N) != target_label)
  outs = transfer_rows(model, params, [split.tokens[i] for i in others],
                       np.asarray(labels_N)[others], target_label, key, max_length=max_length,
                       batch_size=batch_size, direction=direction, buckets=buckets,
                       guidance=guidance, **generate_kwargs)
  return (others, [vocab.decode(t) for t in outs],
          [vocab.decode(split.tokens[i]) for i in others])


# ------------------------------------------------------------ metrics

def fluency_ppl(lm, sentences: Sequence[str], *, batch_size: int = 64) -> float:
  """Per-token perplexity (</s> counted) of `sentences` under a trained
  language-model workdir `lm` (restore.Trained): the exact NLL of the RNNLM
  (or the IW-NLL with K=1, the ELBO, of a VAE)."""
  from textvae import evaluation  # pylint: disable=g-import-not-at-top
  from textvae import steps  # pylint: disable=g-import-not-at-top
  if not len(sentences):
    return float("nan")
  encoded = pipeline.encode("generated", list(sentences), lm.vocab, lm.config.data.max_length)
  n = jax.device_count()
  batch_size = max(batch_size // n, 1) * n
  result = evaluation.evaluate_split(lm.model, steps.replicate(lm.variables), encoded,
                                     num_samples=1, batch_size=batch_size,
                                     key=jax.random.key(0),
                                     buckets=pipeline.batch_buckets(lm.config.data,
                                                                    encoded.lengths))
  return float(result["ppl"])


def control_labels(trained, feature: str | None, train_factors) -> conditioning.Labels:
  """The labels controlled: a conditional VAE's own; for an unconditional VAE
  those of `feature` (a label feature of its corpus)."""
  if trained.labels is not None:
    if feature and feature != trained.labels.feature:
      raise errors.ConfigError(f"{trained.workdir} is conditional on "
                               f"{trained.labels.feature!r}, not {feature!r}")
    return trained.labels
  if not feature:
    raise errors.ConfigError(f"{trained.workdir} is an unconditional VAE: name the label "
                             "feature to control (--label_feature)")
  labels = conditioning.feature_names(trained.config.data, feature, train_factors.get(feature))
  return labels


@dataclasses.dataclass
class ControlData:
  """What every control measurement of a trained VAE on one split reads."""
  corpus: dict              # split name -> sources.Corpus (train and the split)
  labels: conditioning.Labels
  train_y: np.ndarray       # [N_train] label indices
  classifier: BowClassifier
  classifier_seconds: float
  held_out_accuracy: float  # the classifier's, on the whole split
  train: pipeline.EncodedSplit
  buckets: object           # padded lengths of batches (pipeline.batch_buckets)
  sources: pipeline.EncodedSplit  # the split's first `num_sources` sentences
  source_labels: np.ndarray


def control_data(trained, feature: str | None, split: str, num_sources: int) -> ControlData:
  """The corpus, labels, judge (trained here), encoded training split and
  sources of a control measurement (trained.config.data as given)."""
  from textvae.data import sources  # pylint: disable=g-import-not-at-top
  config = trained.config
  corpus = sources.load_splits(config.data, splits=tuple(dict.fromkeys(("train", split))))
  labels = control_labels(trained, feature, corpus["train"].factors)
  train_y = conditioning.factor_values(corpus["train"].factors, labels.feature, labels,
                                       "the train split")
  eval_y = conditioning.factor_values(corpus[split].factors, labels.feature, labels,
                                      f"the {split} split")
  t0 = time.time()
  clf = BowClassifier.fit(corpus["train"].sentences, train_y, len(labels))
  clf_seconds = time.time() - t0
  train = pipeline.encode("train", corpus["train"].sentences, trained.vocab,
                          config.data.max_length)
  n_src = min(num_sources, len(corpus[split].sentences))
  src = pipeline.encode(split, corpus[split].sentences[:n_src], trained.vocab,
                        config.data.max_length)
  return ControlData(corpus, labels, train_y, clf, clf_seconds,
                     clf.accuracy(corpus[split].sentences, eval_y), train,
                     pipeline.batch_buckets(config.data, train.lengths), src, eval_y[:n_src])


def control_metrics(trained, *, feature: str | None = None, split: str = "test",
                    num_samples: int = 200, num_sources: int = 1000, seed: int = 0,
                    fluency_lm=None, direction_scale: float = 1.0, batch_size: int = 256,
                    max_length: int | None = None, source_dir=None, keep_outputs: bool = False,
                    guidance: float = 0.0, **generate_kwargs) -> dict:
  """The control figures of a trained VAE (restore.Trained) on `split`, per
  target label (module doc); `fluency_lm`: a restore.Trained language model.
  `keep_outputs`: also every generated sentence ('outputs': per target label,
  the samples and the transfers with their sources)."""
  start = time.time()
  config = trained.config
  if source_dir is not None:
    config.data.source_dir = source_dir
  model, variables, vocab = trained.model, trained.variables, trained.vocab
  if not decoding.latent_dim(model):
    raise errors.ConfigError("control metrics need a VAE; this workdir holds a language model")
  max_length = max_length or config.data.max_length
  data = control_data(trained, feature, split, num_sources)
  corpus, labels, train_y, clf, train, buckets = (data.corpus, data.labels, data.train_y,
                                                  data.classifier, data.train, data.buckets)
  src, src_y, n_src = data.sources, data.source_labels, len(data.source_labels)
  feature = labels.feature
  K = len(labels)
  clf_seconds = data.classifier_seconds
  held_out = data.held_out_accuracy

  method = method_of(model)
  direction = None
  if method == "latent_direction":
    direction = latent_direction(model, variables, train, train_y, K, scale=direction_scale,
                                 buckets=buckets)

  key = jax.random.key(seed)
  per_label, examples, outputs = {}, [], {}
  all_acc, all_hyp, all_ref = [], [], []
  for k, name in enumerate(labels.names):
    k_key = jax.random.fold_in(key, k)
    samples = sample(model, variables, jax.random.fold_in(k_key, 0), num_samples, k,
                     max_length=max_length, direction=direction, guidance=guidance,
                     **generate_kwargs)
    sample_text = [vocab.decode(t) for t in samples]
    others, hyp, ref = transfer_split(model, variables, vocab, src, src_y, k,
                                      jax.random.fold_in(k_key, 1), max_length=max_length,
                                      batch_size=batch_size, direction=direction,
                                      buckets=buckets, guidance=guidance, **generate_kwargs)
    pred = clf.predict(hyp)
    row = {"sample_accuracy": float(np.mean(clf.predict(sample_text) == k)),
           "num_samples": num_samples,
           "transfer_accuracy": float(np.mean(pred == k)) if len(hyp) else float("nan"),
           "transfer_bleu": reconstruction.corpus_bleu(hyp, ref)["bleu"] if hyp else float("nan"),
           "num_transfers": int(len(hyp))}
    if fluency_lm is not None:
      row["sample_ppl"] = fluency_ppl(fluency_lm, sample_text)
      row["transfer_ppl"] = fluency_ppl(fluency_lm, hyp)
    per_label[name] = row
    if keep_outputs:
      outputs[name] = {"samples": sample_text, "sources": ref, "transfers": hyp,
                       "source_labels": [labels.names[int(v)] for v in src_y[others]]}
    all_acc += list(pred == k)
    all_hyp += hyp
    all_ref += ref
    examples += [{"source": ref[j], "source_label": labels.names[int(src_y[others[j]])],
                  "target_label": name, "transfer": hyp[j]} for j in range(min(5, len(hyp)))]
    examples += [{"sample_label": name, "sample": s} for s in sample_text[:3]]
  overall = {
      "sample_accuracy": float(np.mean([r["sample_accuracy"] for r in per_label.values()])),
      "transfer_accuracy": float(np.mean(all_acc)) if all_acc else float("nan"),
      "transfer_bleu": reconstruction.corpus_bleu(all_hyp, all_ref)["bleu"] if all_hyp
                       else float("nan")}
  if fluency_lm is not None:
    overall["sample_ppl"] = float(np.mean([r["sample_ppl"] for r in per_label.values()]))
    overall["transfer_ppl"] = fluency_ppl(fluency_lm, all_hyp)
  decoding_cfg = {"strategy": generate_kwargs.get("strategy", "greedy"),
                  **{k: v for k, v in generate_kwargs.items() if k != "strategy"},
                  "guidance": guidance}
  out = {"method": method, "feature": feature, "labels": list(labels.names), "split": split,
         "classifier": {"name": clf.name, "trained_on": "train",
                        "num_train": len(corpus["train"].sentences),
                        "num_words": len(clf.words), "held_out_split": split,
                        "held_out_accuracy": held_out, "seconds": clf_seconds},
         "per_label": per_label, "overall": overall, "decoding": decoding_cfg,
         "num_sources": int(n_src), "seed": seed,
         "bleu_signature": reconstruction.corpus_bleu(["a"], ["a"])["bleu_signature"],
         "examples": examples}
  if direction is not None:
    out["direction_scale"] = direction_scale
  if keep_outputs:
    out["outputs"] = outputs
  if fluency_lm is not None:
    out["fluency_lm"] = {"workdir": fluency_lm.workdir, "kind": fluency_lm.config.model.kind,
                         "step": fluency_lm.step}
  out["seconds"] = time.time() - start
  return out


def describe_decoding(decoding_cfg: dict) -> str:
  """The 'decoding' entry of a control result in words."""
  if decoding_cfg.get("strategy") == "beam":
    return (f"beam search, {decoding_cfg.get('beam_size', 4)} beams, length penalty "
            f"{decoding_cfg.get('length_penalty', 1.0):g}")
  return decoding_cfg.get("strategy", "greedy")


def labelled_split(trained, labels: conditioning.Labels, split: str = "valid"):
  """(sentences, label indices) of one split of the trained model's corpus."""
  from textvae.data import sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_splits(trained.config.data, splits=(split,))[split]
  values = conditioning.factor_values(corpus.factors, labels.feature, labels,
                                      f"the {split} split")
  return corpus.sentences, values


def direction_for(trained, feature: str | None, *, scale: float = 1.0):
  """(labels, LatentDirection) of an unconditional VAE for the label feature
  `feature`, from its training split."""
  from textvae.data import sources  # pylint: disable=g-import-not-at-top
  corpus = sources.load_splits(trained.config.data, splits=("train",))["train"]
  labels = control_labels(trained, feature, corpus.factors)
  values = conditioning.factor_values(corpus.factors, labels.feature, labels, "the train split")
  train = pipeline.encode("train", corpus.sentences, trained.vocab,
                          trained.config.data.max_length)
  return labels, latent_direction(trained.model, trained.variables, train, values, len(labels),
                                  scale=scale,
                                  buckets=pipeline.batch_buckets(trained.config.data,
                                                                 train.lengths))
