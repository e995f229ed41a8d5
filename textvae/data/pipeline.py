"""grain pipeline: tokenise, truncate, bucket by length, batch, shard per process.

Training batches come from a `grain.MapDataset` over a deterministic batch plan:
each epoch the training sentences are shuffled with (seed, epoch), cut into pools
of `pool_batches` batches, sorted by length inside each pool (so a batch holds
sentences of similar length) and cut into batches whose order is shuffled again.
A batch is padded to its own longest sentence (rounded up to `pad_multiple`), not
to a global maximum. Because the plan is a pure function of (seed, epoch), the
iterator's state is one integer (`next_index`), saved with every checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools

from absl import logging
import grain
import numpy as np

from textvae import errors
from textvae.data import vocab as vocab_lib

# Enough epochs that a run never exhausts the plan (a batch index is an int64).
_MAX_EPOCHS = 1_000_000


@dataclasses.dataclass
class EncodedSplit:
  """Token ids of a split: each sentence's words then <eos>."""
  name: str
  tokens: list[np.ndarray]
  lengths: np.ndarray  # tokens per sentence, <eos> included
  factors: dict[str, np.ndarray]
  num_truncated: int = 0

  @property
  def num_tokens(self) -> int:
    return int(self.lengths.sum())

  def __len__(self) -> int:
    return len(self.tokens)


def encode(name: str, sentences, vocab: vocab_lib.Vocabulary, max_length: int,
           factors=None, locate=None) -> EncodedSplit:
  """Tokenises; sentences longer than `max_length` tokens (<eos> included) are
  truncated to their first max_length-1 words plus <eos>, and counted.

  `locate`, if given, is called when a sentence was truncated and returns text
  naming where they are (file, first line numbers) for the warning.
  """
  if max_length < 2:
    raise errors.ConfigError(f"config.data.max_length={max_length}: must be at least 2")
  tokens, truncated = [], 0
  for s in sentences:
    ids = vocab.encode(s)
    if len(ids) > max_length:
      ids = np.concatenate([ids[:max_length - 1], [vocab_lib.EOS_ID]]).astype(np.int32)
      truncated += 1
    tokens.append(ids)
  if truncated:
    logging.warning("%s: %d of %d sentences longer than max_length=%d tokens were "
                    "truncated%s", name, truncated, len(tokens), max_length,
                    f" ({locate()})" if locate else "")
  lengths = np.asarray([len(t) for t in tokens], np.int32)
  return EncodedSplit(name, tokens, lengths, dict(factors or {}), truncated)


def collate(rows: list[np.ndarray], weights: np.ndarray, pad_multiple: int = 1):
  """Pads a batch to its longest row (rounded up to `pad_multiple`).

  Returns `tokens_BxT` (targets: words then <eos>, <pad>=0 after), `inputs_BxT`
  (decoder inputs: <bos> then the targets shifted right) and `weights_B`
  (1 for real sentences, 0 for rows that only fill a batch).
  """
  max_len = max(len(r) for r in rows)
  T = -(-max_len // pad_multiple) * pad_multiple
  tokens = np.zeros((len(rows), T), np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  inputs = np.concatenate(
      [np.full((len(rows), 1), vocab_lib.BOS_ID, np.int32), tokens[:, :-1]], axis=1)
  inputs = np.where(tokens == vocab_lib.PAD_ID, vocab_lib.PAD_ID, inputs)
  return {"tokens_BxT": tokens, "inputs_BxT": inputs,
          "weights_B": np.asarray(weights, np.float32)}


def process_rows(global_rows: np.ndarray, process_index: int, process_count: int):
  """This process's contiguous share of a global batch."""
  if len(global_rows) % process_count:
    raise ValueError(f"global batch of {len(global_rows)} does not split over "
                     f"{process_count} processes")
  per = len(global_rows) // process_count
  return global_rows[process_index * per:(process_index + 1) * per]


class TrainBatchPlan:
  """Random access to global training batches (arrays of sentence indices)."""

  def __init__(self, lengths: np.ndarray, batch_size: int, seed: int,
               pool_batches: int = 50):
    if len(lengths) < batch_size:
      raise errors.ConfigError(f"the training split has {len(lengths)} sentences, fewer "
                               f"than one batch of config.train.batch_size={batch_size}")
    self.lengths = np.asarray(lengths)
    self.batch_size = batch_size
    self.seed = seed
    self.pool_batches = max(1, pool_batches)
    self.batches_per_epoch = len(lengths) // batch_size

  def __len__(self) -> int:
    return self.batches_per_epoch * _MAX_EPOCHS

  def __getitem__(self, index: int) -> np.ndarray:
    epoch, j = divmod(int(index), self.batches_per_epoch)
    return self.epoch_plan(epoch)[j]

  @functools.lru_cache(maxsize=2)
  def epoch_plan(self, epoch: int) -> np.ndarray:
    """[batches_per_epoch, batch_size] sentence indices for one epoch."""
    rng = np.random.default_rng([self.seed, epoch])
    B = self.batch_size
    order = rng.permutation(len(self.lengths))[:self.batches_per_epoch * B]
    pool = B * self.pool_batches
    chunks = []
    for start in range(0, len(order), pool):
      chunk = order[start:start + pool]
      chunks.append(chunk[np.argsort(self.lengths[chunk], kind="stable")])
    batches = np.concatenate(chunks).reshape(self.batches_per_epoch, B)
    return batches[rng.permutation(self.batches_per_epoch)]


def train_dataset(split: EncodedSplit, *, global_batch_size: int, seed: int,
                  process_index: int = 0, process_count: int = 1,
                  pad_multiple: int = 1, pool_batches: int = 50,
                  prefetch: int = 4) -> grain.IterDataset:
  """An endless, checkpointable iterator source of this process's training batches."""
  plan = TrainBatchPlan(split.lengths, global_batch_size, seed, pool_batches)

  def make_batch(global_rows):
    rows = process_rows(global_rows, process_index, process_count)
    return collate([split.tokens[i] for i in rows], np.ones(len(rows)), pad_multiple)

  ds = grain.MapDataset.source(plan).map(make_batch)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch))


def eval_batches(split: EncodedSplit, *, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1, pad_multiple: int = 1):
  """Every sentence once, sorted by length; the last batch is filled with
  weight-0 rows so that every batch has the global size."""
  order = np.argsort(split.lengths, kind="stable")
  filler = np.asarray([vocab_lib.EOS_ID], np.int32)
  for start in range(0, len(order), global_batch_size):
    idx = order[start:start + global_batch_size]
    rows = [split.tokens[i] for i in idx]
    weights = np.ones(global_batch_size, np.float32)
    weights[len(rows):] = 0.0
    rows += [filler] * (global_batch_size - len(rows))
    mine = process_rows(np.arange(global_batch_size), process_index, process_count)
    yield collate([rows[i] for i in mine], weights[mine], pad_multiple)
