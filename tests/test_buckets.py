"""Bucket lengths: a bounded number of padded lengths (each one compiled
program) whatever the corpus, the least padding for that number, and batches
exactly as before buckets for corpora with few lengths (PTB: its runs resume
bitwise)."""

import itertools
import os

import jax
import numpy as np
import pytest

from configs import default
from tests.helpers import REPO
from textvae import evaluation
from textvae import steps
from textvae import train
from textvae.data import pipeline
from textvae.data import vocab as vocab_lib

PTB_TRAIN = os.path.join(REPO, "..", "shared", "data", "ptb", "ptb.train.txt")


def _split(lengths, name="train"):
  tokens = [np.full(n, 5, np.int32) for n in lengths]
  for t in tokens:
    t[-1] = vocab_lib.EOS_ID
  return pipeline.EncodedSplit(name, tokens, np.asarray(lengths, np.int32), {})


def _padding(lengths, buckets):
  return sum(pipeline.bucket_for(int(n), buckets) - int(n) for n in lengths)


def test_few_lengths_keep_one_bucket_each_and_max_length():
  lengths = [3, 3, 5, 9, 9, 9, 12]
  assert pipeline.bucket_lengths(lengths, 8, max_length=20) == (3, 5, 9, 12, 20)
  assert pipeline.bucket_lengths(lengths, 8, max_length=12) == (3, 5, 9, 12)
  assert pipeline.bucket_lengths(lengths, 8, max_length=20, pad_multiple=4) == (4, 8, 12, 20)
  assert pipeline.bucket_lengths(lengths, None, max_length=20) == (3, 5, 9, 12, 20)


def test_many_lengths_give_at_most_max_buckets_with_least_padding():
  rng = np.random.default_rng(0)
  for _ in range(20):  # against every choice of the buckets
    lengths = rng.integers(2, 25, size=int(rng.integers(10, 60)))
    k = int(rng.integers(1, 5))
    buckets = pipeline.bucket_lengths(lengths, k, max_length=25)
    values = sorted(set(lengths.tolist()))
    if len(values) + 1 <= k:
      continue
    best = min(_padding(lengths, tuple(sorted(c)) + (25,))
               for c in itertools.combinations(values, k - 1))
    assert len(buckets) == k and buckets[-1] == 25, buckets
    assert _padding(lengths, buckets) == best
  # 200 distinct lengths into 96 buckets: little padding.
  lengths = rng.integers(2, 202, size=9000)
  buckets = pipeline.bucket_lengths(lengths, 96, max_length=201)
  assert len(buckets) == 96 and buckets[-1] == 201
  assert _padding(lengths, buckets) / lengths.sum() < 0.01


def _old_collate_length(rows, pad_multiple):
  """The padded length of a batch before buckets: its longest row, rounded up."""
  return -(-max(len(r) for r in rows) // pad_multiple) * pad_multiple


def _assert_batches_as_before(train_split, eval_split, max_buckets, pad_multiple=1):
  buckets = pipeline.bucket_lengths(train_split.lengths, max_buckets, max_length=100,
                                    pad_multiple=pad_multiple)
  plan = pipeline.TrainBatchPlan(train_split.lengths, 32, seed=0)
  for epoch in (0, 1):
    for rows in plan.epoch_plan(epoch):
      tokens = [train_split.tokens[i] for i in rows]
      new = pipeline.collate(tokens, np.ones(len(rows)), pad_multiple, buckets=buckets)
      old = pipeline.collate(tokens, np.ones(len(rows)), pad_multiple)
      assert new["tokens_BxT"].shape[1] == _old_collate_length(tokens, pad_multiple)
      for key in old:
        np.testing.assert_array_equal(new[key], old[key])
  for new, old in zip(pipeline.eval_batches(eval_split, global_batch_size=128,
                                            pad_multiple=pad_multiple, buckets=buckets),
                      pipeline.eval_batches(eval_split, global_batch_size=128,
                                            pad_multiple=pad_multiple)):
    for key in old:
      np.testing.assert_array_equal(new[key], old[key])


def test_corpus_with_few_lengths_gets_exactly_the_old_batches():
  rng = np.random.default_rng(1)
  lengths = np.concatenate([np.arange(2, 84), rng.integers(2, 84, size=3000)])
  lengths = lengths[lengths != 80]  # a gap, as in PTB's training split
  eval_lengths = rng.integers(2, 80, size=500)
  _assert_batches_as_before(_split(lengths), _split(eval_lengths, "valid"),
                            default.get_config().data.max_buckets)
  _assert_batches_as_before(_split(lengths), _split(eval_lengths, "valid"), 30, pad_multiple=8)


@pytest.mark.skipif(not os.path.exists(PTB_TRAIN), reason="no local PTB copy")
def test_ptb_batches_are_exactly_the_old_ones():
  folder = os.path.dirname(PTB_TRAIN)
  vocab = vocab_lib.Vocabulary.build(open(PTB_TRAIN, encoding="utf-8"))
  splits = {s: pipeline.encode(s, open(os.path.join(folder, f"ptb.{s}.txt"), encoding="utf-8"),
                               vocab, 100) for s in ("train", "valid", "test")}
  max_buckets = default.get_config().data.max_buckets
  assert len(pipeline.bucket_lengths(splits["train"].lengths, None, max_length=100)) <= max_buckets
  for s in ("valid", "test"):
    _assert_batches_as_before(splits["train"], splits[s], max_buckets)


def _text_files_corpus(folder, rng):
  """Sentences of 1 to 80 words: 80 distinct lengths."""
  words = [f"w{i}" for i in range(30)]
  os.makedirs(folder, exist_ok=True)
  for split, n in (("train", 480), ("valid", 64), ("test", 64)):
    with open(os.path.join(folder, f"{split}.txt"), "w", encoding="utf-8") as f:
      for i in range(n):
        length = 1 + i % 80 if split == "train" else int(rng.integers(1, 81))
        f.write(" ".join(rng.choice(words, size=length)) + "\n")


def test_training_on_many_lengths_compiles_at_most_max_buckets_shapes(tmp_path, monkeypatch,
                                                                      caplog):
  max_buckets = 3
  _text_files_corpus(tmp_path / "corpus", np.random.default_rng(0))
  config = default.get_config()
  config.data.name = "text_files"
  config.data.source_dir = str(tmp_path / "corpus")
  config.data.tfds_data_dir = str(tmp_path / "tfds")
  config.data.max_length = 90
  config.data.max_buckets = max_buckets
  config.model.embed_dim, config.model.hidden_dim, config.model.latent_dim = 8, 16, 2
  config.train.batch_size = 16
  config.train.eval_batch_size = 32
  config.train.eval_importance_samples = 2
  config.train.num_steps = 40
  config.train.log_every_steps = 20
  config.train.eval_every_steps = 40
  config.train.checkpoint_every_steps = 40
  config.train.num_samples = 2

  shapes = {"train": set(), "eval": set()}

  def recording(kind, fn):
    def wrapped(params_or_state, batch, *args):
      shapes[kind].add(batch["tokens_BxT"].shape)
      return fn(params_or_state, batch, *args)
    return wrapped

  pmap_train_step, pmapped_kernels = steps.pmap_train_step, evaluation.pmapped_kernels
  monkeypatch.setattr(steps, "pmap_train_step",
                      lambda *a, **k: recording("train", pmap_train_step(*a, **k)))
  monkeypatch.setattr(evaluation, "pmapped_kernels", lambda *a, **k: tuple(
      recording("eval", f) for f in pmapped_kernels(*a, **k)))
  compiled = []

  def on_duration(event, _, **kwargs):
    if event.endswith("backend_compile_duration"):
      compiled.append(kwargs.get("fun_name"))

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  caplog.set_level("INFO")
  try:
    results = train.train_and_evaluate(config, str(tmp_path / "run"))
  finally:
    jax.monitoring.unregister_event_duration_listener(on_duration)

  assert np.isfinite(results["test"]["iw_nll"])
  assert 1 < len(shapes["train"]) <= max_buckets, shapes
  assert 1 < len(shapes["eval"]) <= max_buckets, shapes
  # Every pmapped program (train step, the two evaluation kernels) once per bucket at most.
  assert compiled.count("jit(_fun)") <= 3 * max_buckets, compiled
  assert any("Padding: 3 bucket lengths for 80 distinct training lengths" in r.getMessage()
             for r in caplog.records), [r.getMessage() for r in caplog.records]
