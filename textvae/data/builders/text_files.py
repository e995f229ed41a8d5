"""`text_files`: any corpus given as train/valid/test text files, one sentence per line.

The prepared dataset is named after a hash of the files' contents, so a changed
corpus is never confused with an earlier one in the same TFDS data dir.

Bad input, and what happens to it (every message names the file and line):
  - a missing split file, or a training split without a sentence: `CorpusError`;
  - empty or whitespace-only lines: skipped; the count and the first line
    numbers are logged per file when the dataset is prepared;
  - bytes that are not UTF-8: `CorpusError` naming file, line, column and byte
    (`config.data.encoding_errors='strict'`, the default), or, with
    `--config.data.encoding_errors=replace`, each bad byte becomes U+FFFD and the
    lines concerned are logged (`'ignore'` drops the bad bytes instead);
  - lines longer than `config.data.max_length` tokens (</s> included): truncated
    by the pipeline, with a warning giving their number, file and first lines.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

from absl import logging
import tensorflow_datasets as tfds

from textvae import errors
from textvae.data.builders import lines

SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}


@dataclasses.dataclass(eq=False)
class TextFilesConfig(tfds.core.BuilderConfig):
  source_dir: str = ""
  split_files: tuple[tuple[str, str], ...] = tuple(SPLIT_FILES.items())
  encoding_errors: str = "strict"


def split_paths(source_dir: str, split_files: dict[str, str]) -> dict[str, str]:
  """Checks that every split file exists; the error names the missing ones."""
  if not source_dir or not os.path.isdir(source_dir):
    raise lines.CorpusError(f"data source_dir {source_dir!r} is not a directory")
  paths = {s: os.path.join(source_dir, f) for s, f in split_files.items()}
  missing = [p for p in paths.values() if not os.path.isfile(p)]
  if missing:
    raise lines.CorpusError(
        f"missing split file(s): {', '.join(missing)} (expected "
        f"{', '.join(split_files.values())} in {source_dir})")
  return paths


def check_nonempty_train(path: str, encoding_errors: str) -> None:
  for _ in lines.read_sentences(path, errors=encoding_errors):
    return
  raise lines.CorpusError(f"{path}: the training split holds no sentence")


ENCODING_ERRORS = ("strict", "replace", "ignore")


def make_config(source_dir: str, encoding_errors: str = "strict") -> TextFilesConfig:
  if encoding_errors not in ENCODING_ERRORS:
    raise errors.ConfigError(f"config.data.encoding_errors={encoding_errors!r}: expected "
                             f"one of {', '.join(map(repr, ENCODING_ERRORS))}")
  source_dir = os.path.abspath(source_dir)
  paths = split_paths(source_dir, SPLIT_FILES)
  digest = lines.files_digest([paths[s] for s in SPLIT_FILES])
  return TextFilesConfig(name=f"sha_{digest}_{encoding_errors}",
                         description=f"text files from {source_dir}",
                         source_dir=source_dir, encoding_errors=encoding_errors)


def sentence_examples(path: str, encoding_errors: str):
  """TFDS examples ({'text': sentence}) keyed by line number order; logs what
  was skipped or replaced once the file is read."""
  stats = lines.LineStats(path)
  for i, sentence in enumerate(
      lines.read_sentences(path, errors=encoding_errors, stats=stats)):
    yield i, {"text": sentence}
  if stats.num_empty_lines or stats.num_replaced_lines:
    logging.warning("%s", stats.summary())
  else:
    logging.info("%s", stats.summary())


def long_line_report(source_dir: str, split: str, max_length: int,
                     encoding_errors: str = "strict") -> str:
  """'<path>: 3 lines longer than max_length=10 tokens (</s> included): lines 2, 5, 9'."""
  path = os.path.join(os.path.abspath(source_dir), SPLIT_FILES[split])
  count, first = lines.long_lines(path, max_length, errors=encoding_errors)
  if not count:
    return f"{path}: no line longer than max_length={max_length} tokens"
  return (f"{path}: {count} line{'s' if count > 1 else ''} longer than "
          f"max_length={max_length} tokens (</s> included): {lines.list_lines(first, count)}")


def truncation_locator(data_config, split: str) -> Callable[[], str] | None:
  """For `pipeline.encode`: names the file and lines of truncated sentences when
  the corpus is `text_files` (other corpora: None)."""
  if data_config.get("name") != "text_files" or split not in SPLIT_FILES:
    return None
  return lambda: long_line_report(data_config.source_dir, split, data_config.max_length,
                                  data_config.get("encoding_errors", "strict"))


class TextFiles(tfds.core.GeneratorBasedBuilder):
  """One sentence per line in train.txt / valid.txt / test.txt."""

  name = "textvae_text_files"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="A corpus of one sentence per line, whitespace tokenised.",
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    paths = split_paths(cfg.source_dir, dict(cfg.split_files))
    check_nonempty_train(paths["train"], cfg.encoding_errors)
    return {s: sentence_examples(p, cfg.encoding_errors) for s, p in paths.items()}

  def _generate_examples(self, **kwargs):  # pragma: no cover - generators above
    raise NotImplementedError
