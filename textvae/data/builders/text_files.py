"""`text_files`: any corpus given as train/valid/test text files, one sentence per line.

The prepared dataset is named after a hash of the files' contents, so a changed
corpus is never confused with an earlier one in the same TFDS data dir.

With `config.data.label_column` 0 every line is `label<TAB>sentence` (1:
`sentence<TAB>label`), and the label is kept as the `label` feature (a
ClassLabel of the training split's labels; textvae/data/builders/line_corpus.py).

Bad input, and what happens to it (every message names the file and line):
  - a missing split file, or a split without a sentence (empty, or blank lines
    only): `CorpusError` naming the file;
  - empty or whitespace-only lines: skipped; the count and the first line
    numbers are logged per file when the dataset is prepared;
  - a UTF-8 byte-order mark at the start of a file: stripped (not part of the
    first word), and logged with the file;
  - bytes that are not UTF-8: `CorpusError` naming file, line, column and byte
    (`config.data.encoding_errors='strict'`, the default), or, with
    `--config.data.encoding_errors=replace`, each bad byte becomes U+FFFD and the
    lines concerned are logged (`'ignore'` drops the bad bytes instead);
  - with a label column, a non-blank line without a tab, an empty label, or a
    label in valid/test that the training split does not have: `CorpusError`;
  - lines longer than `config.data.max_length` tokens (</s> included): truncated
    by the pipeline, with a warning giving their number, file and first lines.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow_datasets as tfds

from textvae.data.builders import line_corpus
from textvae.data.builders import lines

SPLIT_FILES = {"train": "train.txt", "valid": "valid.txt", "test": "test.txt"}
ENCODING_ERRORS = line_corpus.ENCODING_ERRORS


class TextFiles(line_corpus.LineCorpus):
  """One sentence per line in train.txt / valid.txt / test.txt."""

  name = "textvae_text_files"
  VERSION = tfds.core.Version("1.1.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "1.1.0": "A leading UTF-8 byte-order mark is stripped; optional label column; "
               "a split of blank lines only is refused.",
  }
  FILES = SPLIT_FILES
  LABEL_COLUMN = None  # config.data.label_column
  DESCRIPTION = "A corpus of one sentence per line, whitespace tokenised."


def split_paths(source_dir: str, split_files: dict[str, str]) -> dict[str, str]:
  """{split: path}; checks that every split file exists (the error names the
  missing ones)."""
  paths = line_corpus.find_files(source_dir, list(split_files.values()))
  return {s: paths[f] for s, f in split_files.items()}


def check_nonempty(paths: dict[str, str], encoding_errors: str) -> None:
  """Reads each split file once: `CorpusError` naming the file when a split
  holds no sentence (or a line is not UTF-8); logs what was skipped."""
  line_corpus.check_and_label({s: (line_corpus.Part(p),) for s, p in paths.items()},
                              {p: p for p in paths.values()}, errors=encoding_errors)


def sentence_examples(path: str, encoding_errors: str, what: str | None = None):
  """TFDS examples ({'text': sentence}) keyed in line order (`what`: see
  `line_corpus.examples`)."""
  return line_corpus.examples([(path, line_corpus.Part(path))], errors=encoding_errors,
                              what=what)


def long_line_report(source_dir: str, split: str, max_length: int,
                     encoding_errors: str = "strict", label_column: int = lines.NO_LABEL) -> str:
  """'<path>: 3 lines longer than max_length=10 tokens (</s> included): lines 2, 5, 9'."""
  path = os.path.join(os.path.abspath(source_dir), SPLIT_FILES[split])
  count, first = lines.long_lines(path, max_length, errors=encoding_errors,
                                  label_column=label_column)
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
                                  data_config.get("encoding_errors", "strict"),
                                  data_config.get("label_column", lines.NO_LABEL))
