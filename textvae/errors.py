"""Mistakes of the user's (a setting, a corpus file, a workdir) as exception types.

The CLIs end on a `UserError` with its message on stderr and exit status 1, no
traceback (`cli_main`); any other exception is a bug and keeps its traceback.
Each type is also a ValueError or FileNotFoundError, so callers that catch
those keep working.
"""

from __future__ import annotations

import functools
import sys


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
  """Wraps an `app.run` main: a `UserError` becomes 'error: MESSAGE' on stderr
  and exit status 1."""

  @functools.wraps(main)
  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      sys.stdout.flush()
      sys.stderr.write(f"error: {e}\n")
      sys.stderr.flush()
      sys.exit(EXIT_STATUS)

  return wrapped
