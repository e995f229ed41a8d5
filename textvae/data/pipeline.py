"""grain pipeline: tokenise, truncate, bucket by length, batch, shard per process.

Training batches come from a `grain.MapDataset` over a deterministic batch plan:
each epoch the training sentences are shuffled with (seed, epoch), cut into pools
of `pool_batches` batches, sorted by length inside each pool (so a batch holds
sentences of similar length) and cut into batches whose order is shuffled again.
Because the plan is a pure function of (seed, epoch), the iterator's state is
one integer (`next_index`), saved with every checkpoint.

A batch is padded to its longest sentence (rounded up to `pad_multiple`), then up
to the next of at most `config.data.max_buckets` bucket lengths
(`bucket_lengths`), not to a global maximum: every padded length is a new shape
that each jitted function compiles again, and a corpus of documents with
hundreds of distinct lengths exhausts the process's memory mappings. The bucket
lengths are chosen from the training lengths to pad as little as possible; a
corpus with at most `max_buckets` distinct lengths keeps each length as its
own bucket, i.e. every batch padded exactly to its longest sentence. Training,
evaluation and reconstruction batches use the same buckets.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools

from absl import logging
import grain
import numpy as np

from textvae import conditioning
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


def _round_up(n, multiple: int):
  return -(-n // multiple) * multiple


def bucket_lengths(lengths, max_buckets: int | None, *, max_length: int,
                   pad_multiple: int = 1) -> tuple[int, ...]:
  """At most `max_buckets` padded lengths, the longest `max_length` (rounded up
  to `pad_multiple`, so that any sentence fits, e.g. an evaluation sentence
  longer than every training one), the others chosen to minimise the padding
  of the training sentences `lengths` (each padded to the next bucket; a batch
  sorted by length is padded about as much as its longest sentence).

  With at most `max_buckets` distinct (rounded) lengths, max_length included,
  every one is a bucket; None: no limit (workdirs from before buckets)."""
  top = _round_up(int(max_length), pad_multiple)
  values, counts = np.unique(_round_up(np.asarray(lengths, np.int64), pad_multiple),
                             return_counts=True)
  if not len(values) or values[-1] < top:
    values, counts = np.append(values, top), np.append(counts, 0)
  if max_buckets is None or len(values) <= max_buckets:
    return tuple(int(v) for v in values)
  return tuple(int(v) for v in values[_least_padding(values, counts, max_buckets)])


def _least_padding(values, counts, k: int) -> list[int]:
  """Indices of the `k` values, the last one included, that minimise
  sum_t counts[t] * (next chosen value >= values[t] - values[t]): dynamic
  programming over (buckets used, last bucket), O(k n^2) for n values."""
  n = len(values)
  v = values.astype(np.float64)
  c = np.concatenate([[0.0], np.cumsum(counts, dtype=np.float64)])
  s = np.concatenate([[0.0], np.cumsum(counts * v)])
  i, j = np.arange(n)[:, None], np.arange(n)[None, :]
  # pad[i, j]: values i+1..j all padded to values[j] (inf unless i < j).
  pad = np.where(i < j, v[None, :] * (c[None, 1:] - c[1:, None]) - (s[None, 1:] - s[1:, None]),
                 np.inf)
  best = v * c[1:] - s[1:]  # one bucket, at j, for values 0..j
  choices = []
  for _ in range(k - 1):
    total = best[:, None] + pad
    choices.append(np.argmin(total, axis=0))
    best = total[choices[-1], np.arange(n)]
  chosen = [n - 1]
  for previous in reversed(choices):
    chosen.append(int(previous[chosen[-1]]))
  return sorted(chosen)


def bucket_for(length: int, buckets) -> int:
  """The smallest bucket >= `length`; `length` itself when longer than all."""
  i = bisect.bisect_left(buckets, length)
  return buckets[i] if i < len(buckets) else length


def batch_buckets(data_config, train_lengths) -> tuple[int, ...]:
  """The bucket lengths of `config.data` and the training split's lengths."""
  return bucket_lengths(train_lengths, data_config.get("max_buckets", None),
                        max_length=data_config.max_length,
                        pad_multiple=data_config.get("pad_multiple", 1))


def padding_summary(lengths, buckets, *, batch_size: int, seed: int, pool_batches: int = 50,
                    pad_multiple: int = 1, epoch: int = 0) -> dict:
  """Tokens of one epoch's global training batches: real ones, and padded to
  the buckets and to each batch's longest sentence; `waste` is padded / real
  tokens - 1 with the buckets, `exact_waste` without."""
  plan = TrainBatchPlan(lengths, batch_size, seed, pool_batches)
  lengths = plan.lengths[plan.epoch_plan(epoch)]
  longest = _round_up(lengths.max(axis=1), pad_multiple)
  padded = np.asarray([bucket_for(int(n), buckets) for n in longest])
  real = int(lengths.sum())
  out = {"real_tokens": real, "padded_tokens": int(padded.sum()) * plan.batch_size,
         "exact_padded_tokens": int(longest.sum()) * plan.batch_size,
         "batch_lengths": len(set(padded.tolist())), "buckets": len(buckets)}
  out["waste"] = out["padded_tokens"] / real - 1.0
  out["exact_waste"] = out["exact_padded_tokens"] / real - 1.0
  return out


def collate(rows: list[np.ndarray], weights: np.ndarray, pad_multiple: int = 1,
            labels=None, buckets=None):
  """Pads a batch to its longest row (rounded up to `pad_multiple`), then to the
  next of `buckets` (sorted padded lengths) when given.

  Returns `tokens_BxT` (targets: words then <eos>, <pad>=0 after), `inputs_BxT`
  (decoder inputs: <bos> then the targets shifted right) and `weights_B`
  (1 for real sentences, 0 for rows that only fill a batch); with `labels`
  (a conditional VAE's), also `labels_B`.
  """
  T = _round_up(max(len(r) for r in rows), pad_multiple)
  if buckets:
    T = bucket_for(T, buckets)
  tokens = np.zeros((len(rows), T), np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  inputs = np.concatenate(
      [np.full((len(rows), 1), vocab_lib.BOS_ID, np.int32), tokens[:, :-1]], axis=1)
  inputs = np.where(tokens == vocab_lib.PAD_ID, vocab_lib.PAD_ID, inputs)
  batch = {"tokens_BxT": tokens, "inputs_BxT": inputs,
           "weights_B": np.asarray(weights, np.float32)}
  if labels is not None:
    batch["labels_B"] = np.asarray(labels, np.int32)
  return batch


def split_labels(split: EncodedSplit, condition: str):
  """The labels of feature `condition` of every sentence ([N] int32), or None
  when `condition` is '' (an unconditional model)."""
  if not condition:
    return None
  return conditioning.factor_values(split.factors, condition,
                                    where=f"the {split.name} split")


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
                  prefetch: int = 4, condition: str = "",
                  buckets=None) -> grain.IterDataset:
  """An endless, checkpointable iterator source of this process's training
  batches, padded to `buckets`; with `condition` (a label feature) they hold
  its labels."""
  plan = TrainBatchPlan(split.lengths, global_batch_size, seed, pool_batches)
  labels = split_labels(split, condition)

  def make_batch(global_rows):
    rows = process_rows(global_rows, process_index, process_count)
    return collate([split.tokens[i] for i in rows], np.ones(len(rows)), pad_multiple,
                   None if labels is None else labels[rows], buckets)

  ds = grain.MapDataset.source(plan).map(make_batch)
  return ds.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch))


def eval_batches(split: EncodedSplit, *, global_batch_size: int, process_index: int = 0,
                 process_count: int = 1, pad_multiple: int = 1, condition: str = "",
                 buckets=None):
  """Every sentence once, sorted by length, padded to `buckets`; the last batch
  is filled with weight-0 rows (label 0) so that every batch has the global
  size."""
  order = np.argsort(split.lengths, kind="stable")
  filler = np.asarray([vocab_lib.EOS_ID], np.int32)
  all_labels = split_labels(split, condition)
  for start in range(0, len(order), global_batch_size):
    idx = order[start:start + global_batch_size]
    rows = [split.tokens[i] for i in idx]
    weights = np.ones(global_batch_size, np.float32)
    weights[len(rows):] = 0.0
    rows += [filler] * (global_batch_size - len(rows))
    mine = process_rows(np.arange(global_batch_size), process_index, process_count)
    labels = None
    if all_labels is not None:
      labels = np.zeros(global_batch_size, np.int32)
      labels[:len(idx)] = all_labels[idx]
      labels = labels[mine]
    yield collate([rows[i] for i in mine], weights[mine], pad_multiple, labels, buckets)
