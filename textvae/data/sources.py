"""Prepares a corpus with its TFDS builder (array_record) and reads its splits back."""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from textvae import errors
from textvae import lock
from textvae.data.builders import ptb
from textvae.data.builders import short_yelp
from textvae.data.builders import snli
from textvae.data.builders import synthetic
from textvae.data.builders import text_files
from textvae.data.builders import yahoo
from textvae.data.builders import yelp
from textvae.data.builders import yelp_sentiment

SPLITS = ("train", "valid", "test")
PREPARE_LOCK = ".textvae-prepare.lock"  # in the TFDS data dir
# The literature's corpora: line files in their authors' layout (line_corpus.py).
LINE_CORPORA = {"yahoo": yahoo.Yahoo, "yelp": yelp.Yelp, "short_yelp": short_yelp.ShortYelp,
                "snli": snli.Snli, "yelp_sentiment": yelp_sentiment.YelpSentiment}
NAMES = ("synthetic", "ptb", "text_files") + tuple(LINE_CORPORA)  # config.data.name


@dataclasses.dataclass
class Corpus:
  """The sentences of one split, with generating factors or labels (class ids)
  where the corpus has them, and the names of each one's classes."""
  sentences: list[str]
  factors: dict[str, np.ndarray]
  class_names: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def tfds_data_dir(data_config) -> str:
  return os.path.expanduser(data_config.get("tfds_data_dir") or "~/tensorflow_datasets")


def make_builder(data_config) -> tfds.core.DatasetBuilder:
  """The TFDS builder named by `config.data.name`, with its dataset config."""
  data_dir = tfds_data_dir(data_config)
  name = data_config.name
  if name == "ptb":
    return ptb.Ptb(data_dir=data_dir, config=ptb.make_config(data_config.source_dir),
                   file_format="array_record")
  if name == "text_files":
    if not data_config.source_dir:
      raise errors.ConfigError("config.data.source_dir must name a folder holding "
                               "train.txt, valid.txt and test.txt for data.name='text_files'")
    return text_files.TextFiles(data_dir=data_dir,
                                config=text_files.TextFiles.make_config(data_config),
                                file_format="array_record")
  if name in LINE_CORPORA:
    cls = LINE_CORPORA[name]
    return cls(data_dir=data_dir, config=cls.make_config(data_config), file_format="array_record")
  if name == "synthetic":
    cfg = synthetic.make_config(data_config.get("synthetic_seed", 0),
                                data_config.get("synthetic_num_train", 10000),
                                data_config.get("synthetic_num_valid", 1000),
                                data_config.get("synthetic_num_test", 1000))
    return synthetic.Synthetic(data_dir=data_dir, config=cfg, file_format="array_record")
  raise errors.ConfigError(f"config.data.name={name!r}: expected one of "
                           f"{', '.join(map(repr, NAMES))}")


def load_splits(data_config, splits=SPLITS) -> dict[str, Corpus]:
  """Prepares (once) and reads the splits through `tfds` array_record data sources."""
  tfds.disable_progress_bar()
  root = tfds_data_dir(data_config)
  os.makedirs(root, exist_ok=True)  # for the lock file
  # Two runs preparing the same dataset at once would both write it and the
  # second fail renaming its copy into place: the second waits, then finds it
  # prepared. The builder is made inside, so that it reads the prepared info.
  with lock.exclusive(os.path.join(root, PREPARE_LOCK),
                      f"Waiting for another process preparing a dataset in {root}"):
    builder = make_builder(data_config)
    builder.download_and_prepare(file_format="array_record")
  sources = builder.as_data_source()
  logging.info("Dataset %s/%s at %s", builder.name, builder.builder_config.name,
               builder.data_dir)
  out = {}
  for split in splits:
    source = sources[split]
    records = source.__getitems__(list(range(len(source))))
    sentences = [r["text"].decode("utf-8") if isinstance(r["text"], bytes) else r["text"]
                 for r in records]
    factor_names = [k for k in (records[0].keys() if records else ()) if k != "text"]
    factors = {k: np.asarray([r[k] for r in records], np.int32) for k in factor_names}
    features = builder.info.features
    class_names = {k: list(features[k].names) for k in factor_names
                   if isinstance(features[k], tfds.features.ClassLabel)}
    out[split] = Corpus(sentences, factors, class_names)
  return out
