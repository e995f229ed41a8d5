"""A corpus made ready for training, evaluation and benchmarks, in one place:
corpus -> vocabulary -> encoded splits -> labels -> bucket lengths -> batches.

With a workdir, the vocabulary is the workdir's `vocab.json` (built from the
training split and saved on the first run), the corpus is checked against the
one the workdir was trained on, and a conditional VAE's label names are
recorded in (or checked against) `labels.json`. Without one (benchmarks), the
vocabulary is built and nothing is written.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import jax
import numpy as np

from textvae import conditioning
from textvae import workdir as workdir_lib
from textvae.data import pipeline
from textvae.data import sources
from textvae.data import vocab as vocab_lib
from textvae.data.builders import text_files


@dataclasses.dataclass(frozen=True)
class Prepared:
  data_config: object
  vocab: vocab_lib.Vocabulary
  splits: dict                 # name -> pipeline.EncodedSplit
  labels: object               # conditioning labels of a conditional VAE, else None
  buckets: tuple               # the padded lengths of every batch (pipeline.batch_buckets)

  @property
  def condition(self) -> str:
    return self.labels.feature if self.labels is not None else ""

  def train_dataset(self, *, batch_size: int, seed: int):
    """This process's share of the shuffled, bucketed training batches."""
    return pipeline.train_dataset(
        self.splits["train"], global_batch_size=batch_size, seed=seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        pad_multiple=self.data_config.pad_multiple,
        pool_batches=self.data_config.pool_batches, condition=self.condition,
        buckets=self.buckets)


def encode_splits(config, workdir: str | None, splits=sources.SPLITS):
  """The vocabulary and the corpus splits encoded with it (see the module
  docstring for what a workdir adds)."""
  corpus = sources.load_splits(config.data, splits=splits)
  if workdir is not None and jax.process_index() == 0:
    # refuses a changed corpus before vocab.json is written
    workdir_lib.check_corpus(workdir_lib.corpus_fingerprint(
        {name: c.sentences for name, c in corpus.items()}), workdir)
  vpath = workdir_lib.vocab_path(workdir) if workdir is not None else None
  if vpath is not None and os.path.exists(vpath):
    vocab = vocab_lib.Vocabulary.load(vpath)
    logging.info("Loaded vocabulary of %d tokens from %s", len(vocab), vpath)
  else:
    vocab = vocab_lib.Vocabulary.build(corpus["train"].sentences,
                                       max_size=config.data.vocab_size,
                                       min_count=config.data.min_count)
    if vpath is not None and jax.process_index() == 0:
      vocab.save(vpath)
    logging.info("Built vocabulary of %d tokens from the training split", len(vocab))
  encoded = {name: pipeline.encode(name, c.sentences, vocab, config.data.max_length, c.factors,
                                   text_files.truncation_locator(config.data, name))
             for name, c in corpus.items()}
  return vocab, encoded


def labels_for(config, splits, workdir: str | None):
  """A conditional VAE's labels (`config.model.condition`, a label feature of
  the corpus) from the dataset's feature info, checked against every split
  (and workdir/labels.json); None when unconditional."""
  condition = config.model.get("condition", "") or ""
  if not condition:
    return None
  values = pipeline.split_labels(splits["train"], condition)
  labels = conditioning.feature_names(config.data, condition, values)
  for name, split in splits.items():
    conditioning.check_values(labels, pipeline.split_labels(split, condition),
                              f"the {name} split")
  if workdir is not None and jax.process_index() == 0:
    conditioning.check_workdir_labels(labels, workdir)
  return labels


def prepare(config, workdir: str | None = None, splits=sources.SPLITS) -> Prepared:
  """The corpus of `config` ready for batching; logs the padding waste of an
  epoch of training batches."""
  vocab, encoded = encode_splits(config, workdir, splits)
  labels = labels_for(config, encoded, workdir)
  lengths = encoded["train"].lengths
  # One compiled program per padded length: at most max_buckets of them.
  buckets = pipeline.batch_buckets(config.data, lengths)
  padding = pipeline.padding_summary(
      lengths, buckets, batch_size=config.train.batch_size, seed=config.seed,
      pool_batches=config.data.pool_batches, pad_multiple=config.data.pad_multiple)
  logging.info("Padding: %d bucket lengths for %d distinct training lengths (%s); an epoch "
               "of batches holds %.4f padded tokens per real one (padding waste %.2f%%; "
               "%.2f%% if padded to each batch's longest sentence)", len(buckets),
               len(np.unique(lengths)), " ".join(map(str, buckets)),
               1 + padding["waste"], 100 * padding["waste"], 100 * padding["exact_waste"])
  return Prepared(config.data, vocab, encoded, labels, buckets)
