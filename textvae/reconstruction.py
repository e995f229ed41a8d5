"""Reconstruction quality of a sentence VAE: greedy reconstructions of a split
from the posterior mean, scored by corpus BLEU and token accuracy.

  token accuracy  the fraction of reference tokens (</s> included) that the
                  reconstruction reproduces at the same position
  exact match     the fraction of sentences reconstructed exactly
  BLEU            sacrebleu's corpus BLEU of the reconstructions against the
                  inputs (one reference each), on the already tokenised text
                  (tokenize='none'), </s> excluded; 0-100

Pure functions plus one batched loop (`reconstruct_split`); `evaluate` calls
`reconstruction_metrics`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import sacrebleu

from textvae import decoding
from textvae import periodic_actions
from textvae.data.vocab import EOS_ID, PAD_ID


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str]) -> dict:
  """Corpus BLEU (0-100) of hypotheses against one reference each, on
  whitespace-tokenised text; with its sacrebleu signature."""
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
  metric = sacrebleu.metrics.BLEU(tokenize="none")
  result = metric.corpus_score(list(hypotheses), [list(references)])
  return {"bleu": float(result.score), "bleu_signature": str(metric.get_signature())}


def strip(tokens) -> np.ndarray:
  """Token ids up to and including the first </s>, without <pad>."""
  tokens = np.asarray(tokens)
  eos = np.flatnonzero(tokens == EOS_ID)
  if eos.size:
    tokens = tokens[:eos[0] + 1]
  return tokens[tokens != PAD_ID]


def token_accuracy(hypotheses: Sequence[np.ndarray], references: Sequence[np.ndarray]) -> dict:
  """Position-wise accuracy over the reference tokens (</s> included) and the
  exact-match rate. Each hypothesis is cut after its first </s>."""
  if len(hypotheses) != len(references):
    raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
  correct = total = exact = 0
  for hyp, ref in zip(hypotheses, references):
    hyp, ref = strip(hyp), np.asarray(ref)
    n = min(len(hyp), len(ref))
    correct += int(np.sum(hyp[:n] == ref[:n]))
    total += len(ref)
    exact += int(len(hyp) == len(ref) and np.array_equal(hyp, ref))
  return {"token_accuracy": correct / max(total, 1),
          "exact_match": exact / max(len(references), 1),
          "num_tokens": int(total)}


def reconstruct_split(model, params, split, *, batch_size: int = 256,
                      max_length: int | None = None, labels=None,
                      buckets=None) -> list[np.ndarray]:
  """Greedy reconstructions from the posterior mean of every sentence of an
  `EncodedSplit`, in its order (token ids, cut after </s>); a conditional
  VAE's encoded and decoded with each sentence's label (`labels`, [N]).

  Sentences are batched in length order and padded to `buckets` (see
  `pipeline.batch_buckets`); the last batch is filled so that every batch has
  `batch_size` rows. `max_length` defaults to the split's
  longest sentence plus 10 tokens.
  """
  n = len(split)
  if max_length is None:
    max_length = int(split.lengths.max()) + 10 if n else 1
  out: list[np.ndarray] = [np.zeros(0, np.int32)] * n
  progress = periodic_actions.Progress(f"reconstruction of {split.name}", n)
  for idx, rows, batch_labels in decoding.length_sorted_batches(split, batch_size, labels):
    mu = decoding.posterior_mean(model, params, decoding.pad_batch(rows, buckets),
                                 batch_labels)
    tokens = np.asarray(decoding.generate(model, params, mu, max_length=max_length,
                                          strategy="greedy", labels=batch_labels))
    for j, i in enumerate(idx):
      out[i] = strip(tokens[j])
    progress.update(len(idx))
  progress.finish()
  return out


def reconstruction_metrics(model, params, split, vocab, *, batch_size: int = 256,
                           max_length: int | None = None, labels=None,
                           buckets=None) -> dict:
  """BLEU, token accuracy and exact match of the greedy posterior-mean
  reconstructions of `split` (an `EncodedSplit`; `labels`: a conditional VAE's;
  `buckets`: see `reconstruct_split`)."""
  hyps = reconstruct_split(model, params, split, batch_size=batch_size,
                           max_length=max_length, labels=labels, buckets=buckets)
  out = token_accuracy(hyps, split.tokens)
  out.update(corpus_bleu([vocab.decode(h) for h in hyps],
                         [vocab.decode(r) for r in split.tokens]))
  out["num_sentences"] = len(split)
  return out
