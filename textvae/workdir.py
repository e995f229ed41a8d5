"""What a workdir holds besides checkpoints: config.json, vocab.json, corpus.json.

A workdir belongs to one model on one corpus. Restarting it is refused, with
the differences named and before anything in it is written, when
  - the config's `model` or `data` sections differ (other than paths) from
    config.json, or its `model` section from the latest checkpoint's metadata;
  - vocab.json does not match the vocabulary the latest checkpoint was trained
    with (size, and tokens when the checkpoint records their digest), or is
    missing while checkpoints exist;
  - the corpus differs from the one recorded in corpus.json (number of
    sentences and content digest per split), e.g. edited files under the same
    `source_dir`: a resumed run would otherwise continue on other batches.
"""

from __future__ import annotations

import hashlib
import json
import os

from absl import logging
import ml_collections

from textvae import checkpoints
from textvae import errors
from textvae import fileio

# Fields that may change between runs of the same workdir.
MUTABLE_DATA_FIELDS = ("source_dir", "tfds_data_dir")


def config_path(workdir: str) -> str:
  return os.path.join(workdir, "config.json")


def vocab_path(workdir: str) -> str:
  return os.path.join(workdir, "vocab.json")


def corpus_path(workdir: str) -> str:
  return os.path.join(workdir, "corpus.json")


def metrics_path(workdir: str) -> str:
  return os.path.join(workdir, "metrics.jsonl")


def flatten(tree, prefix: str = "", *, sections: bool = False) -> dict:
  """{'a.b.c': leaf} of a nested mapping (a dict, a ConfigDict, a config's
  JSON); with `sections` the nested mappings' own keys too ('a', 'a.b', each
  before its fields), their values the mappings."""
  out = {}
  for k, v in tree.items():
    if hasattr(v, "items"):
      if sections:
        out[f"{prefix}{k}"] = v
      out.update(flatten(v, f"{prefix}{k}.", sections=sections))
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
    saved = flatten(json.load(f))
  now = flatten(json.loads(config.to_json()))
  diffs = []
  for key in sorted(set(saved) | set(now)):
    section, _, field = key.partition(".")
    if section not in ("model", "data") or field in MUTABLE_DATA_FIELDS:
      continue
    if key not in saved:
      # A field added after this workdir was started: its default is the
      # behaviour the workdir was trained with (every new field's contract).
      continue
    if saved.get(key) != now.get(key):
      diffs.append(f"config.{key}: workdir has {saved.get(key)!r}, this run {now.get(key)!r}")
  if diffs:
    raise errors.WorkdirError(
        f"{workdir} was trained with a different model or data config; nothing was "
        "changed in it. Use a new --workdir, or the workdir's values:\n  "
        + "\n  ".join(diffs))


def save_config(config: ml_collections.ConfigDict, workdir: str) -> None:
  fileio.write_atomic(config_path(workdir), config.to_json(indent=2))


def vocab_digest(tokens) -> str:
  """A short digest of a vocabulary's token list (order included)."""
  return hashlib.sha256(json.dumps(list(tokens), ensure_ascii=False).encode()).hexdigest()[:16]


def corpus_fingerprint(splits: dict) -> dict:
  """{split: {'sentences': n, 'sha256': digest}} of {split: list of sentences}."""
  out = {}
  for name in sorted(splits):
    h = hashlib.sha256()
    for sentence in splits[name]:
      h.update(sentence.encode("utf-8"))
      h.update(b"\n")
    out[name] = {"sentences": len(splits[name]), "sha256": h.hexdigest()[:16]}
  return out


def check_corpus(fingerprint: dict, workdir: str) -> None:
  """Raises ValueError naming each split that differs from corpus.json; records
  the corpus when the workdir has no corpus.json yet."""
  path = corpus_path(workdir)
  if not os.path.exists(path):
    fileio.write_json(path, fingerprint, indent=2)
    return
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  diffs = []
  for split in sorted(set(saved) | set(fingerprint)):
    a, b = saved.get(split), fingerprint.get(split)
    if a != b:
      describe = lambda x: "nothing" if x is None else (
          f"{x['sentences']} sentences (sha256 {x['sha256']})")
      diffs.append(f"{split} split: workdir has {describe(a)}, this run {describe(b)}")
  if diffs:
    raise errors.WorkdirError(
        f"{workdir} was trained on a different corpus ({path}); nothing was changed in "
        "it. Use a new --workdir, or the original corpus files:\n  " + "\n  ".join(diffs))


def vocab_mismatch(meta: dict, tokens) -> str | None:
  """How vocab.json's `tokens` differ from the vocabulary a checkpoint's
  metadata records (size, and the tokens' digest where recorded), or None."""
  if "vocab_size" in meta and meta["vocab_size"] != len(tokens):
    return f"vocabulary: vocab.json has {len(tokens)} tokens, the checkpoint {meta['vocab_size']}"
  if "vocab_sha256" in meta and meta["vocab_sha256"] != vocab_digest(tokens):
    return (f"vocabulary: vocab.json's {len(tokens)} tokens are not the ones the checkpoint "
            f"was trained with (digest {vocab_digest(tokens)}, checkpoint {meta['vocab_sha256']})")
  return None


def check_checkpoint(config: ml_collections.ConfigDict, workdir: str) -> None:
  """Raises ValueError when the latest complete checkpoint does not match
  vocab.json or `config.model`; reads only (call before writing anything)."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return
  ckpt = checkpoints.Checkpointer(workdir)
  try:
    found = checkpoints.restore_newest(ckpt, ckpt.restore_meta, move_aside=False)
  finally:
    ckpt.close()
  if found is None:
    return
  step, meta = found
  where = f"checkpoint {step} in {directory}"
  vpath = vocab_path(workdir)
  if not os.path.exists(vpath):
    raise errors.WorkdirError(f"{vpath} is missing but {where} exists; nothing was "
                              "changed. Restore vocab.json, or use a new --workdir.")
  with open(vpath, encoding="utf-8") as f:
    tokens = json.load(f).get("tokens", [])
  diffs = [d for d in [vocab_mismatch(meta, tokens)] if d]
  saved_model = flatten(meta.get("config", {}).get("model", {}), "model.")
  now_model = flatten(json.loads(config.model.to_json()), "model.")
  if saved_model:
    for key in sorted(set(saved_model) | set(now_model)):
      if key not in saved_model:
        continue  # a field added after this checkpoint: its default is the old behaviour
      if saved_model.get(key) != now_model.get(key):
        diffs.append(f"config.{key}: the checkpoint has {saved_model.get(key)!r}, "
                     f"this run {now_model.get(key)!r}")
  if diffs:
    raise errors.WorkdirError(f"{where} does not match this run; nothing was changed in "
                              f"{workdir}. Use a new --workdir, or restore the workdir's "
                              "files:\n  " + "\n  ".join(diffs))


def trim_metrics(workdir: str, step: int) -> int:
  """Drops from metrics.jsonl what a run resuming at `step` logs again: the
  rows of later steps (a killed run's, past its last checkpoint) and a last
  line without its newline (one it was killed while writing), so that each
  step appears once and every line is whole JSON. Returns the lines dropped."""
  path = metrics_path(workdir)
  if not os.path.exists(path):
    return 0
  with open(path, "rb") as f:
    *lines, partial = f.read().split(b"\n")

  def step_of(line):
    try:
      return json.loads(line).get("step")
    except (ValueError, AttributeError):
      return None  # not a metrics row: kept as it is

  keep = [l for l in lines if not isinstance(step_of(l), int) or step_of(l) <= step]
  dropped = len(lines) - len(keep) + bool(partial)
  if dropped:
    fileio.write_atomic(path, b"".join(l + b"\n" for l in keep))
    logging.info("Dropped %d lines from %s: steps after %d (this run logs them again) "
                 "or a line cut short", dropped, path, step)
  return dropped
