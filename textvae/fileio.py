"""Small files written whole or not at all, and JSON-lines files read back.

Every JSON file of a workdir (config.json, vocab.json, corpus.json,
labels.json, eval_<split>.json, ...) is written through `write_json`: to a
temporary file beside it, then renamed over it, so that a run killed while
writing leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os


def write_atomic(path: str, data: str | bytes) -> None:
  """Writes `data` to `path` through `path.tmp` and a rename; the temporary
  file is removed when writing fails (a full or read-only disk)."""
  tmp = path + ".tmp"
  try:
    if isinstance(data, bytes):
      with open(tmp, "wb") as f:
        f.write(data)
    else:
      with open(tmp, "w", encoding="utf-8") as f:
        f.write(data)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.remove(tmp)
    raise


def write_json(path: str, obj, **dump_kwargs) -> None:
  """`json.dump(obj, **dump_kwargs)` written atomically (`write_atomic`)."""
  write_atomic(path, json.dumps(obj, **dump_kwargs))


def read_jsonl(path: str) -> list[dict]:
  """The rows of a JSON-lines file such as metrics.jsonl, in file order; blank
  lines and lines that are not whole JSON objects (one a killed run was
  writing) are skipped. A missing file has no rows."""
  if not os.path.exists(path):
    return []
  rows = []
  with open(path, encoding="utf-8") as f:
    for line in f:
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(row, dict):
        rows.append(row)
  return rows
