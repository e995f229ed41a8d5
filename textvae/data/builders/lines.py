"""Reading one-sentence-per-line corpus files with errors that name file and line."""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
from typing import Iterator

from textvae import errors


class CorpusError(errors.UserError, ValueError):
  """A corpus file is missing or malformed; the message names file and line."""


# How many line numbers a message lists before "...".
MAX_LISTED_LINES = 5

# config.data.label_column: -1 no label; 0 `label<TAB>sentence`; 1 `sentence<TAB>label`.
NO_LABEL = -1
LABEL_COLUMNS = (NO_LABEL, 0, 1)
LABEL_FORMATS = {0: "label<TAB>sentence", 1: "sentence<TAB>label"}


@dataclasses.dataclass
class LineStats:
  """What reading a file skipped, so it can be logged and counted."""
  path: str
  num_sentences: int = 0
  num_empty_lines: int = 0
  first_empty_lines: list[int] = dataclasses.field(default_factory=list)
  num_replaced_lines: int = 0  # lines with invalid UTF-8 (errors='replace')
  first_replaced_lines: list[int] = dataclasses.field(default_factory=list)
  bom: bool = False  # the file started with a UTF-8 byte-order mark (stripped)

  @property
  def noteworthy(self) -> bool:
    """Whether reading changed or dropped anything (worth a warning)."""
    return bool(self.num_empty_lines or self.num_replaced_lines or self.bom)

  def summary(self) -> str:
    """E.g. '/data/train.txt: 4 sentences; skipped 2 empty lines (lines 2, 3)'."""
    text = f"{self.path}: {self.num_sentences} sentence{'s' if self.num_sentences != 1 else ''}"
    if self.bom:
      text += "; stripped the UTF-8 byte-order mark at its start"
    if self.num_empty_lines:
      text += (f"; skipped {self.num_empty_lines} empty line"
               f"{'s' if self.num_empty_lines > 1 else ''} "
               f"({list_lines(self.first_empty_lines, self.num_empty_lines)})")
    if self.num_replaced_lines:
      text += (f"; replaced invalid UTF-8 by U+FFFD in {self.num_replaced_lines} line"
               f"{'s' if self.num_replaced_lines > 1 else ''} "
               f"({list_lines(self.first_replaced_lines, self.num_replaced_lines)})")
    return text


def list_lines(first: list[int], total: int) -> str:
  """'line 7', 'lines 2, 3', 'lines 2, 3, 5, 8, 13, ...' (the first few of `total`)."""
  listed = ", ".join(str(n) for n in first)
  return f"line{'s' if total > 1 else ''} {listed}{', ...' if total > len(first) else ''}"


def read_sentences(path: str, *, errors: str = "strict",
                   stats: LineStats | None = None) -> Iterator[str]:
  """Yields the whitespace-normalised non-empty lines of a UTF-8 text file."""
  for _, sentence in numbered_sentences(path, errors=errors, stats=stats):
    yield sentence


def numbered_sentences(path: str, *, errors: str = "strict", stats: LineStats | None = None,
                       label_column: int = NO_LABEL) -> Iterator[tuple[int, str]]:
  """Yields (line number, sentence) of `numbered_lines`, without the labels."""
  for lineno, sentence, _ in numbered_lines(path, errors=errors, stats=stats,
                                            label_column=label_column):
    yield lineno, sentence


def numbered_lines(path: str, *, errors: str = "strict", stats: LineStats | None = None,
                   label_column: int = NO_LABEL) -> Iterator[tuple[int, str, str | None]]:
  """Yields (line number, sentence, label): the whitespace-normalised non-empty
  lines of a UTF-8 text file, lines numbered from 1.

  Args:
    path: the file.
    errors: "strict" raises `CorpusError` on a non-UTF-8 line, naming file,
      line and byte offset; "replace" substitutes U+FFFD (Python's codec
      option of the same name).
    stats: filled with the number of sentences, of skipped empty lines and of
      lines with replaced bytes, and the first few line numbers of each.
    label_column: `NO_LABEL` (label None), or the tab-separated field that
      holds each line's label: 0 for `label<TAB>sentence` (split at the first
      tab), 1 for `sentence<TAB>label` (at the last). A non-blank line without
      a tab or with an empty label is a `CorpusError`; a label with no sentence
      counts as an empty line.

  A UTF-8 byte-order mark at the start of the file is stripped (and recorded
  in `stats.bom`): it is not part of the first word.
  """
  if not os.path.isfile(path):
    raise CorpusError(f"{path}: file not found")
  if label_column not in LABEL_COLUMNS:
    raise ValueError(f"label_column={label_column!r}: expected one of {LABEL_COLUMNS}")
  stats = stats if stats is not None else LineStats(path)
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, start=1):
      offset = 0  # bytes removed before `raw`, so columns count from the file's line
      if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
        raw, offset, stats.bom = raw[len(codecs.BOM_UTF8):], len(codecs.BOM_UTF8), True
      try:
        line = raw.decode("utf-8")
      except UnicodeDecodeError as e:
        if errors == "strict":
          raise CorpusError(
              f"{path}:{lineno}: invalid UTF-8 byte {raw[e.start]:#04x} at column "
              f"{offset + e.start + 1} (set config.data.encoding_errors='replace' to "
              f"substitute U+FFFD)") from None
        line = raw.decode("utf-8", errors=errors)
        stats.num_replaced_lines += 1
        if len(stats.first_replaced_lines) < MAX_LISTED_LINES:
          stats.first_replaced_lines.append(lineno)
      label = None
      if label_column != NO_LABEL and line.strip():
        line, label = _split_label(line, label_column, path, lineno)
      words = line.split()
      if not words:
        stats.num_empty_lines += 1
        if len(stats.first_empty_lines) < MAX_LISTED_LINES:
          stats.first_empty_lines.append(lineno)
        continue
      stats.num_sentences += 1
      yield lineno, " ".join(words), label


def _split_label(line: str, label_column: int, path: str, lineno: int) -> tuple[str, str]:
  """(sentence, label) of a non-blank `label<TAB>sentence` (or reversed) line."""
  line = line.rstrip("\r\n")
  form = LABEL_FORMATS[label_column]
  if "\t" not in line:
    raise CorpusError(f"{path}:{lineno}: expected {form} (config.data.label_column="
                      f"{label_column}), found no tab in {_clip(line)!r}")
  if label_column == 0:
    label, sentence = line.split("\t", 1)
  else:
    sentence, label = line.rsplit("\t", 1)
  label = " ".join(label.split())
  if not label:
    raise CorpusError(f"{path}:{lineno}: empty label in {_clip(line)!r} (expected {form})")
  return sentence, label


def _clip(text: str, limit: int = 60) -> str:
  return text if len(text) <= limit else text[:limit] + "..."


def long_lines(path: str, max_length: int, *, errors: str = "strict",
               label_column: int = NO_LABEL) -> tuple[int, list[int]]:
  """Lines with more than `max_length` tokens once </s> is added (the ones the
  pipeline truncates): their number and the first few line numbers."""
  count, first = 0, []
  for lineno, sentence in numbered_sentences(path, errors=errors, label_column=label_column):
    if len(sentence.split()) + 1 > max_length:
      count += 1
      if len(first) < MAX_LISTED_LINES:
        first.append(lineno)
  return count, first


def files_digest(paths: list[str]) -> str:
  """A short content hash of files, to name a prepared dataset after its data."""
  h = hashlib.sha256()
  for p in paths:
    with open(p, "rb") as f:
      for chunk in iter(lambda: f.read(1 << 20), b""):
        h.update(chunk)
    h.update(b"\0")
  return h.hexdigest()[:16]


def sha256_of(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      h.update(chunk)
  return h.hexdigest()
