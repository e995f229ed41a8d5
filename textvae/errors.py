"""Mistakes of the user's (a setting, a corpus file, a workdir) as exception types.

The CLIs end on a `UserError` with its message on stderr and exit status 1, no
traceback (`cli_main`); any other exception is a bug and keeps its traceback.
Each type is also a ValueError or FileNotFoundError, so callers that catch
those keep working.
"""

from __future__ import annotations

import functools
import sys
import threading


class UserError(Exception):
  """Raised for something the user can fix; the message says what and where."""


class ConfigError(UserError, ValueError):
  """A setting (config field or flag) outside its allowed values."""


class WorkdirError(UserError, ValueError):
  """A workdir that does not fit this run (other model, corpus, vocabulary)."""


class MissingFileError(UserError, FileNotFoundError):
  """A file or checkpoint the user named, or a workdir needs, does not exist."""


EXIT_STATUS = 1


def cli_main(main):
  """Wraps an `app.run` main: a `UserError` becomes 'error: MESSAGE' on stderr,
  on a line of its own, and exit status 1."""

  @functools.wraps(main)
  def wrapped(argv):
    stderr = sys.stderr
    sys.stderr = tracked = _LineTrackingStream(stderr)
    try:
      return main(argv)
    except UserError as e:
      sys.stdout.flush()
      tracked.write_line(f"error: {e}")
      sys.exit(EXIT_STATUS)
    finally:
      sys.stderr = stderr

  return wrapped


class _LineTrackingStream:
  """sys.stderr while a CLI runs. Library threads print tracebacks to it piece
  by piece (Orbax's, after a failed save: the text, then its newline in another
  write); this stream knows when they stopped mid-line, so that the CLI's final
  error line is never joined to one of theirs."""

  def __init__(self, stream):
    self._stream = stream
    self._lock = threading.Lock()
    self._mid_line = False

  def write(self, text: str) -> int:
    with self._lock:
      n = self._stream.write(text)
      if text:
        self._mid_line = not text.endswith("\n")
    return n

  def write_line(self, line: str) -> None:
    with self._lock:
      self._stream.write(("\n" if self._mid_line else "") + line + "\n")
      self._stream.flush()
      self._mid_line = False

  def __getattr__(self, name):
    return getattr(self._stream, name)
