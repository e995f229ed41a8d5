"""What a workdir holds besides checkpoints: config.json and vocab.json.

A workdir belongs to one model on one corpus. Restarting it with a config whose
`model` or `data` sections differ (other than paths) is refused with the list of
differences, before anything in it is written.
"""

from __future__ import annotations

import json
import os

import ml_collections

# Fields that may change between runs of the same workdir.
MUTABLE_DATA_FIELDS = ("source_dir", "tfds_data_dir")


def config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def vocab_path(workdir: str) -> str:
  return os.path.join(workdir, "vocab.json")


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def load_config(workdir: str) -> ml_collections.ConfigDict:
  with open(config_path(workdir), encoding="utf-8") as f:
    return ml_collections.ConfigDict(json.load(f))


def check_compatible(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError naming every `model.*`/`data.*` field that differs from
  the config this workdir was started with."""
  path = config_path(workdir)
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    saved = _flatten(json.load(f))
  now = _flatten(json.loads(config.to_json()))
  diffs = []
  for key in sorted(set(saved) | set(now)):
    section, _, field = key.partition(".")
    if section not in ("model", "data") or field in MUTABLE_DATA_FIELDS:
      continue
    if saved.get(key) != now.get(key):
      diffs.append(f"config.{key}: workdir has {saved.get(key)!r}, this run {now.get(key)!r}")
  if diffs:
    raise ValueError(
        f"{workdir} was trained with a different model or data config; nothing was "
        "changed in it. Use a new --workdir, or the workdir's values:\n  "
        + "\n  ".join(diffs))


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  tmp = config_path(workdir) + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(config.to_json(indent=2))
  os.replace(tmp, config_path(workdir))
