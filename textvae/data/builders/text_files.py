"""`text_files`: any corpus given as train/valid/test text files, one sentence per line.

The prepared dataset is named after a hash of the files' contents, so a changed
corpus is never confused with an earlier one in the same TFDS data dir.
"""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

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


def make_config(source_dir: str, encoding_errors: str = "strict") -> TextFilesConfig:
  source_dir = os.path.abspath(source_dir)
  paths = split_paths(source_dir, SPLIT_FILES)
  digest = lines.files_digest([paths[s] for s in SPLIT_FILES])
  return TextFilesConfig(name=f"sha_{digest}_{encoding_errors}",
                         description=f"text files from {source_dir}",
                         source_dir=source_dir, encoding_errors=encoding_errors)


def sentence_examples(path: str, encoding_errors: str):
  """TFDS examples ({'text': sentence}) keyed by line number order."""
  stats = lines.LineStats(path)
  for i, sentence in enumerate(
      lines.read_sentences(path, errors=encoding_errors, stats=stats)):
    yield i, {"text": sentence}


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
