"""Reading one-sentence-per-line corpus files with errors that name file and line."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from typing import Iterator


class CorpusError(ValueError):
  """A corpus file is missing or malformed; the message names file and line."""


@dataclasses.dataclass
class LineStats:
  """What reading a file skipped, so it can be logged and counted."""
  path: str
  num_sentences: int = 0
  num_empty_lines: int = 0


def read_sentences(path: str, *, errors: str = "strict",
                   stats: LineStats | None = None) -> Iterator[str]:
  """Yields the whitespace-normalised non-empty lines of a UTF-8 text file.

  Args:
    path: the file.
    errors: "strict" raises `CorpusError` on a non-UTF-8 line, naming file,
      line and byte offset; "replace" substitutes U+FFFD (Python's codec
      option of the same name).
    stats: filled with the number of sentences and of skipped empty lines.
  """
  if not os.path.isfile(path):
    raise CorpusError(f"{path}: file not found")
  stats = stats if stats is not None else LineStats(path)
  with open(path, "rb") as f:
    for lineno, raw in enumerate(f, start=1):
      try:
        line = raw.decode("utf-8", errors=errors)
      except UnicodeDecodeError as e:
        raise CorpusError(
            f"{path}:{lineno}: invalid UTF-8 byte {raw[e.start]:#04x} at column "
            f"{e.start + 1} (set config.data.encoding_errors='replace' to "
            f"substitute U+FFFD)") from None
      words = line.split()
      if not words:
        stats.num_empty_lines += 1
        continue
      stats.num_sentences += 1
      yield " ".join(words)


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
