"""Builders (ptb from a local folder, text_files, synthetic), vocabulary, batching."""

import os

import ml_collections
import numpy as np
import pytest

from textvae.data import pipeline
from textvae.data import sources
from textvae.data import vocab as vocab_lib
from textvae.data.builders import lines
from textvae.data.builders import synthetic

PTB_LINES = {
    "train": [" the cat sat on the mat \n", " a <unk> dog ran N miles \n",
              " the dog sat \n", " cats and dogs \n"],
    "valid": [" the cat ran \n", " a new word \n"],
    "test": [" the mat sat \n"],
}


def _data_config(tmp_path, **kw):
  cfg = dict(name="ptb", source_dir="", tfds_data_dir=str(tmp_path / "tfds"),
             encoding_errors="strict", synthetic_seed=0, synthetic_num_train=200)
  cfg.update(kw)
  return ml_collections.ConfigDict(cfg)


def _write_split_files(folder, names, content=PTB_LINES):
  os.makedirs(folder, exist_ok=True)
  for split, name in names.items():
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
      f.writelines(content[split])


def test_ptb_builder_reads_local_folder(tmp_path):
  folder = tmp_path / "ptb"
  _write_split_files(folder, {"train": "ptb.train.txt", "valid": "ptb.valid.txt",
                              "test": "ptb.test.txt"})
  splits = sources.load_splits(_data_config(tmp_path, source_dir=str(folder)))
  assert sorted(splits["train"].sentences) == sorted(l.strip() for l in PTB_LINES["train"])
  assert len(splits["valid"].sentences) == 2 and len(splits["test"].sentences) == 1
  # Written as array_record under a config named after the (non-standard) content.
  prepared = list((tmp_path / "tfds" / "textvae_ptb").glob("local_*/1.0.0/*.array_record*"))
  assert len(prepared) == 3
  vocab = vocab_lib.Vocabulary.build(splits["train"].sentences)
  assert vocab.tokens[:4] == list(vocab_lib.SPECIALS)
  assert vocab.id("<unk>") == vocab_lib.UNK_ID  # PTB's own <unk> is the special
  assert len(vocab) == 4 + 13  # 13 distinct training words besides <unk>
  ids = vocab.encode("a new word")
  assert list(ids) == [vocab.id("a"), vocab_lib.UNK_ID, vocab_lib.UNK_ID, vocab_lib.EOS_ID]


def test_text_files_builder_and_errors(tmp_path):
  folder = tmp_path / "corpus"
  content = {"train": ["hello world\n", "\n", "   \n", "good bye\n"],
             "valid": ["hello\n"], "test": ["bye\n"]}
  _write_split_files(folder, {s: f"{s}.txt" for s in content}, content)
  splits = sources.load_splits(_data_config(tmp_path, name="text_files",
                                            source_dir=str(folder)))
  assert sorted(splits["train"].sentences) == ["good bye", "hello world"]

  os.remove(folder / "test.txt")
  with pytest.raises(lines.CorpusError, match="missing split file.*test.txt"):
    sources.load_splits(_data_config(tmp_path, name="text_files", source_dir=str(folder)))


def test_non_utf8_line_is_named(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_bytes(b"fine line\nsecond \xff line\n")
  with pytest.raises(lines.CorpusError, match=r"bad.txt:2: invalid UTF-8 byte 0xff at column 8"):
    list(lines.read_sentences(str(path)))
  assert list(lines.read_sentences(str(path), errors="replace"))[1] == "second \ufffd line"


def test_empty_training_split_is_an_error(tmp_path):
  folder = tmp_path / "empty"
  _write_split_files(folder, {s: f"{s}.txt" for s in ("train", "valid", "test")},
                     {"train": ["\n"], "valid": ["a\n"], "test": ["b\n"]})
  with pytest.raises(lines.CorpusError, match="training split holds no sentence"):
    sources.load_splits(_data_config(tmp_path, name="text_files", source_dir=str(folder)))


def test_synthetic_is_deterministic_and_keeps_factors(tmp_path):
  a = synthetic.generate(7, 50)
  assert a == synthetic.generate(7, 50)
  assert a != synthetic.generate(8, 50)
  splits = sources.load_splits(_data_config(tmp_path, name="synthetic"))
  train = splits["train"]
  assert len(train.sentences) == 200 and len(splits["valid"].sentences) == 1000
  assert set(train.factors) == set(synthetic.FACTORS)
  for name, values in synthetic.FACTORS.items():
    assert set(np.unique(train.factors[name])) == set(range(len(values)))
  # Long sentences have two clauses.
  long_ = [s for s, l in zip(train.sentences, train.factors["length"]) if l == 1]
  assert all(any(c in s.split() for c in synthetic.CONNECTIVES) for s in long_)


def test_synthetic_held_out_sizes_draw_from_the_same_streams_and_leave_train_alone(tmp_path):
  full = sources.load_splits(_data_config(tmp_path, name="synthetic"))
  small = sources.load_splits(_data_config(tmp_path, name="synthetic", synthetic_num_valid=30,
                                           synthetic_num_test=20))
  assert [len(small[s].sentences) for s in ("train", "valid", "test")] == [200, 30, 20]
  assert small["train"].sentences == full["train"].sentences
  for split in ("valid", "test"):  # the first of the same stream (TFDS stores them shuffled)
    assert set(small[split].sentences) < set(full[split].sentences)


def test_vocab_json_round_trip(tmp_path):
  vocab = vocab_lib.Vocabulary.build(["b a a", "c a b"], max_size=6)
  assert vocab.tokens == list(vocab_lib.SPECIALS) + ["a", "b"]
  path = str(tmp_path / "vocab.json")
  vocab.save(path)
  assert vocab_lib.Vocabulary.load(path) == vocab
  assert vocab.decode(vocab.encode("a b zzz")) == "a b <unk>"


def _split(lengths):
  tokens = [np.full(n, 5, np.int32) for n in lengths]
  for t in tokens:
    t[-1] = vocab_lib.EOS_ID
  return pipeline.EncodedSplit("train", tokens, np.asarray(lengths, np.int32), {})


def test_bucketed_batches_cover_epoch_and_pad_to_batch_max():
  rng = np.random.default_rng(0)
  lengths = rng.integers(2, 40, size=103)
  plan = pipeline.TrainBatchPlan(lengths, batch_size=8, seed=3, pool_batches=4)
  assert plan.batches_per_epoch == 12
  epoch0 = np.concatenate([plan[i] for i in range(12)])
  assert len(set(epoch0)) == 96  # each sentence at most once, remainder dropped
  assert not np.array_equal(plan.epoch_plan(0), plan.epoch_plan(1))
  # Sorting within pools: batches are far tighter than random ones.
  spread = np.mean([np.ptp(lengths[plan[i]]) for i in range(12)])
  assert spread < 0.5 * np.ptp(lengths)
  split = _split(lengths)
  it = iter(pipeline.train_dataset(split, global_batch_size=8, seed=3, pool_batches=4))
  first = next(it)
  assert first["tokens_BxT"].shape == (8, lengths[plan[0]].max())
  assert (first["tokens_BxT"] != 0).sum() == lengths[plan[0]].sum()
  assert first["inputs_BxT"][0, 0] == vocab_lib.BOS_ID


def test_iterator_state_resumes_the_same_batches():
  split = _split(np.random.default_rng(1).integers(2, 30, size=50))
  make = lambda: iter(pipeline.train_dataset(split, global_batch_size=4, seed=0))
  it = make()
  for _ in range(17):  # past the end of the first epoch (12 batches)
    next(it)
  state = it.get_state()
  expected = [next(it)["tokens_BxT"] for _ in range(3)]
  resumed = make()
  resumed.set_state(state)
  for e in expected:
    np.testing.assert_array_equal(next(resumed)["tokens_BxT"], e)


def test_eval_batches_hold_every_sentence_once_and_shard_per_process():
  lengths = np.arange(2, 13)
  split = _split(lengths)
  batches = list(pipeline.eval_batches(split, global_batch_size=4))
  assert sum(b["weights_B"].sum() for b in batches) == 11
  assert sum((b["tokens_BxT"] != 0)[b["weights_B"] > 0].sum() for b in batches) == lengths.sum()
  halves = [list(pipeline.eval_batches(split, global_batch_size=4, process_index=p,
                                       process_count=2)) for p in (0, 1)]
  for whole, a, b in zip(batches, *halves):
    np.testing.assert_array_equal(whole["weights_B"], np.concatenate([a["weights_B"],
                                                                      b["weights_B"]]))


def test_truncation_is_counted():
  vocab = vocab_lib.Vocabulary.build(["a b c d e f"])
  split = pipeline.encode("train", ["a b c d e f", "a b"], vocab, max_length=4)
  assert split.num_truncated == 1
  assert list(split.lengths) == [4, 3]
  assert split.tokens[0][-1] == vocab_lib.EOS_ID
