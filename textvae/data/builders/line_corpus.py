"""Corpora given as text files of one sentence (or document) per line, labelled
or not: the one reading behind `text_files` and the literature's corpora
(`yahoo`, `yelp`, `short_yelp`, `snli`, `yelp_sentiment`).

A corpus is a *layout*: for each split, the parts it is made of, each the
sentences [start, stop) of one file (non-empty lines, counted from 0). A part
is labelled by its file (Shen et al.'s `sentiment.train.0` / `.1`), by a
column of each of its lines (`label<TAB>sentence`, He et al.'s and Li et al.'s
format; `config.data.label_column`), or not at all.

Labels are kept as a `label` feature, a TFDS `ClassLabel` like the `synthetic`
corpus's factors, so they reach `Corpus.factors["label"]` as class ids. A corpus
with fixed label names (`LABEL_NAMES`: Shen's 0 negative, 1 positive) uses those;
otherwise the classes are the labels of the training split, ordered as numbers
when every label is an integer (so '1'...'10' keep their order) and as text
otherwise, each named by its label as written. A label in the validation or
test split that the training split does not have is a `CorpusError` naming the
file and line.

Every file is read once and checked before TFDS writes anything, so that each
mistake is one `CorpusError` naming the file (and line): a missing file, a
split without any sentence (blank lines only), a non-UTF-8 byte, a labelled
line without its tab or with an empty label, an unknown label. What reading
skipped or changed (empty lines, replaced bytes, a byte-order mark) is logged
once per file.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import shutil
import tarfile
from typing import Iterator

from absl import logging
import tensorflow_datasets as tfds

from textvae import errors
from textvae import periodic_actions
from textvae.data.builders import lines

ENCODING_ERRORS = ("strict", "replace", "ignore")
SPLIT_NAMES = {"train": "training", "valid": "validation", "test": "test"}  # for messages


@dataclasses.dataclass(frozen=True)
class Part:
  """Sentences [start, stop) of `file` (stop None: to its end), all labelled
  `label` when given (a label of the file, not of its lines)."""
  file: str
  label: str | None = None
  start: int = 0
  stop: int | None = None

  def describe(self, path: str) -> str:
    if self.start == 0 and self.stop is None:
      return path
    return f"{path} (sentences {self.start + 1} to {self.stop or 'its end'})"


def simple_layout(files: dict[str, str]) -> dict[str, tuple[Part, ...]]:
  """{split: file} -> one whole, unlabelled file per split."""
  return {split: (Part(name),) for split, name in files.items()}


def layout_files(layout: dict[str, tuple[Part, ...]]) -> list[str]:
  """The files a layout reads, each once, in the order of the layout."""
  return list(dict.fromkeys(p.file for parts in layout.values() for p in parts))


def find_files(source_dir: str, files: list[str]) -> dict[str, str]:
  """{file: path} in `source_dir`; the error names every missing file."""
  if not source_dir or not os.path.isdir(source_dir):
    raise lines.CorpusError(f"data source_dir {source_dir!r} is not a directory")
  paths = {f: os.path.join(source_dir, f) for f in files}
  missing = [p for p in paths.values() if not os.path.isfile(p)]
  if missing:
    raise lines.CorpusError(
        f"missing split file(s): {', '.join(missing)} (expected "
        f"{', '.join(files)} in {source_dir})")
  return paths


@dataclasses.dataclass
class FileScan:
  """One reading of a file: what it holds and, when labelled, each sentence's
  label and line."""
  path: str
  stats: lines.LineStats
  labels: list[str]
  linenos: list[int]

  def sentences_in(self, part: Part) -> range:
    n = self.stats.num_sentences
    return range(min(part.start, n), n if part.stop is None else min(part.stop, n))


def scan_file(path: str, *, errors: str, label_column: int) -> FileScan:
  stats = lines.LineStats(path)
  labels, linenos = [], []
  for lineno, _, label in lines.numbered_lines(path, errors=errors, stats=stats,
                                               label_column=label_column):
    if label is not None:
      labels.append(label)
      linenos.append(lineno)
  (logging.warning if stats.noteworthy else logging.info)("%s", stats.summary())
  return FileScan(path, stats, labels, linenos)


def label_order(values) -> list[str]:
  """Distinct labels as numbers when all are integers ('2' < '10'), else as text."""
  values = set(values)
  try:
    return sorted(values, key=int)
  except ValueError:
    return sorted(values)


def check_and_label(layout: dict[str, tuple[Part, ...]], paths: dict[str, str], *,
                    errors: str = "strict", label_column: int = lines.NO_LABEL,
                    label_names: dict[str, str] | None = None) -> list[str] | None:
  """Reads every file of `layout` once and checks it (see the module doc).

  Returns the label values in class-id order (None for an unlabelled corpus):
  the keys of `label_names` when the corpus fixes them, else the training
  split's labels (`label_order`).
  """
  scans = {f: scan_file(paths[f], errors=errors, label_column=label_column)
           for f in layout_files(layout)}
  for split, parts in layout.items():
    if not any(len(scans[p.file].sentences_in(p)) for p in parts):
      where = ", ".join(p.describe(paths[p.file]) for p in parts)
      raise lines.CorpusError(
          f"{where}: the {SPLIT_NAMES.get(split, split)} split holds no sentence")
  labelled = [p for parts in layout.values() for p in parts
              if p.label is not None or label_column != lines.NO_LABEL]
  if not labelled:
    return None

  def labels_of(part):  # (label, path, line or None) of each sentence of a part
    scan = scans[part.file]
    for i in scan.sentences_in(part):
      if part.label is not None:
        yield part.label, scan.path, None
      else:
        yield scan.labels[i], scan.path, scan.linenos[i]

  if label_names is not None:
    values = list(label_names)
  else:
    values = label_order(v for p in layout["train"] for v, _, _ in labels_of(p))
  known = set(values)
  for split, parts in layout.items():
    for part in parts:
      for value, path, lineno in labels_of(part):
        if value not in known:
          where = f"{path}:{lineno}" if lineno else path
          raise lines.CorpusError(
              f"{where}: label {value!r} is not a label of this corpus "
              f"({'its labels' if label_names else 'the training split has'}: "
              f"{', '.join(values)})")
  return values


def examples(parts: list[tuple[str, Part]], *, errors: str = "strict",
             label_column: int = lines.NO_LABEL,
             label_ids: dict[str, int] | None = None,
             what: str | None = None) -> Iterator[tuple[int, dict]]:
  """TFDS examples {'text': sentence[, 'label': class id]} of (path, part)
  pairs, keyed 0, 1, ... in reading order; their count logged as they are
  written (`what`, default the files' names)."""
  what = what or "preparing " + ", ".join(dict.fromkeys(os.path.basename(p) for p, _ in parts))
  progress = periodic_actions.Progress(what, None, unit="examples")
  key = 0
  for path, part in parts:
    for i, (_, sentence, label) in enumerate(
        lines.numbered_lines(path, errors=errors, label_column=label_column)):
      if i < part.start:
        continue
      if part.stop is not None and i >= part.stop:
        break
      example = {"text": sentence}
      if label_ids is not None:
        example["label"] = label_ids[part.label if part.label is not None else label]
      yield key, example
      key += 1
      progress.update(1)
  progress.finish()


@dataclasses.dataclass(frozen=True)
class Download:
  """Where a corpus's files are published. `urls` maps each file (or, with
  `archive`, the one .tar.gz holding them, in any folder) to its URL; `sha256`
  holds the digests that are known (the others are logged when downloaded)."""
  urls: dict[str, str]
  sha256: dict[str, str] = dataclasses.field(default_factory=dict)
  archive: bool = False
  note: str = ""  # why some digests are not pinned


@dataclasses.dataclass(eq=False)
class LineCorpusConfig(tfds.core.BuilderConfig):
  source_dir: str = ""  # '' = download
  layout: tuple = ()  # ((split, (Part, ...)), ...)
  label_column: int = lines.NO_LABEL
  encoding_errors: str = "strict"


class LineCorpus(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """A corpus of line files; subclasses give the authors' file names and, where
  the corpus is published, its download. Build its config with `make_config`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  FILES: dict[str, str] = {}  # split -> the authors' file name
  # None: `config.data.label_column` says whether (and where) lines hold a
  # label; an int: the corpus's own format, which the setting may only repeat.
  LABEL_COLUMN: int | None = lines.NO_LABEL
  LABEL_NAMES: dict[str, str] | None = None  # fixed labels: value -> class name
  DOWNLOAD: Download | None = None
  DESCRIPTION = ""
  HOMEPAGE = ""

  @classmethod
  def layout(cls, data_config) -> dict[str, tuple[Part, ...]]:
    del data_config
    return simple_layout(cls.FILES)

  @classmethod
  def layout_name(cls, data_config) -> str:
    """A suffix naming a non-default layout in the config name ('' default)."""
    del data_config
    return ""

  @classmethod
  def label_column(cls, data_config) -> int:
    asked = data_config.get("label_column", lines.NO_LABEL)
    if asked not in lines.LABEL_COLUMNS:
      raise errors.ConfigError(
          f"config.data.label_column={asked!r}: expected -1 (no label), 0 "
          "(label<TAB>sentence) or 1 (sentence<TAB>label)")
    if cls.LABEL_COLUMN is None:
      return asked
    if asked not in (lines.NO_LABEL, cls.LABEL_COLUMN):
      own = ("its lines hold no label" if cls.LABEL_COLUMN == lines.NO_LABEL
             else f"its lines are {lines.LABEL_FORMATS[cls.LABEL_COLUMN]}")
      raise errors.ConfigError(
          f"config.data.label_column={asked}: data.name={data_config.name!r} has its "
          f"own format ({own}); leave label_column at -1")
    return cls.LABEL_COLUMN

  @classmethod
  def make_config(cls, data_config) -> LineCorpusConfig:
    """The config of `config.data`: named after the content of the local files
    (so changed files are never confused with earlier ones in a shared TFDS
    data dir) or 'download', and after the options that change the examples."""
    encoding_errors = data_config.get("encoding_errors", "strict")
    if encoding_errors not in ENCODING_ERRORS:
      raise errors.ConfigError(
          f"config.data.encoding_errors={encoding_errors!r}: expected one of "
          f"{', '.join(map(repr, ENCODING_ERRORS))}")
    label_column = cls.label_column(data_config)
    layout = cls.layout(data_config)
    files = layout_files(layout)
    source_dir = data_config.get("source_dir") or ""
    if source_dir:
      source_dir = os.path.abspath(source_dir)
      paths = find_files(source_dir, files)
      name = "sha_" + lines.files_digest([paths[f] for f in files])
      description = f"files in {source_dir}"
    elif cls.DOWNLOAD is not None:
      name, description = "download", "downloaded"
    else:
      raise errors.ConfigError(
          f"config.data.source_dir is empty: data.name={data_config.name!r} needs a "
          f"folder holding {', '.join(files)}")
    name += f"_{encoding_errors}"
    if cls.LABEL_COLUMN is None and label_column != lines.NO_LABEL:
      name += f"_label{label_column}"
    if cls.layout_name(data_config):
      name += "_" + cls.layout_name(data_config)
    return LineCorpusConfig(name=name, description=description, source_dir=source_dir,
                            layout=tuple(layout.items()), label_column=label_column,
                            encoding_errors=encoding_errors)

  def _labelled(self) -> bool:
    cfg = self.builder_config
    return cfg.label_column != lines.NO_LABEL or any(
        p.label is not None for _, parts in cfg.layout for p in parts)

  def _info(self):
    features = {"text": tfds.features.Text()}
    if self._labelled():
      # Without fixed names the classes are set from the training split when
      # the dataset is prepared, and read back from its metadata afterwards.
      names = list(self.LABEL_NAMES.values()) if self.LABEL_NAMES else None
      features["label"] = tfds.features.ClassLabel(names=names)
    return tfds.core.DatasetInfo(
        builder=self, description=self.DESCRIPTION or self.__doc__,
        features=tfds.features.FeaturesDict(features), homepage=self.HOMEPAGE or None)

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    layout = dict(cfg.layout)
    files = layout_files(layout)
    if cfg.source_dir:
      paths = find_files(cfg.source_dir, files)
    else:
      paths = self._download(dl_manager, files)
    values = check_and_label(layout, paths, errors=cfg.encoding_errors,
                             label_column=cfg.label_column, label_names=self.LABEL_NAMES)
    label_ids = None
    if values is not None:
      if not self.LABEL_NAMES:
        self.info.features["label"].names = values
      label_ids = {v: i for i, v in enumerate(values)}
    return {split: examples([(paths[p.file], p) for p in parts], errors=cfg.encoding_errors,
                            label_column=cfg.label_column, label_ids=label_ids,
                            what=f"preparing {self.name} {split}")
            for split, parts in layout.items()}

  def _download(self, dl_manager, files: list[str]) -> dict[str, str]:
    d = self.DOWNLOAD
    try:
      if d.archive:
        (archive_name, url), = d.urls.items()
        archive = os.fspath(dl_manager.download({archive_name: url})[archive_name])
      else:
        downloaded = dl_manager.download({f: d.urls[f] for f in files})
        paths = {f: os.fspath(p) for f, p in downloaded.items()}
    except Exception as e:  # pylint: disable=broad-except
      raise lines.CorpusError(
          f"could not download {self.name} ({type(e).__name__}: {e}); offline, set "
          f"config.data.source_dir to a folder holding {', '.join(files)}") from e
    if d.archive:
      self._check_digest(archive_name, archive)
      return extract_files(archive, files, archive + ".files", url)
    for f, path in paths.items():
      self._check_digest(f, path)
    return paths

  def _check_digest(self, name: str, path: str) -> None:
    digest, expected = lines.sha256_of(path), self.DOWNLOAD.sha256.get(name)
    if expected is None:
      logging.warning("%s (%s): SHA-256 %s, not checked: %s", name, self.DOWNLOAD.urls.get(name),
                      digest, self.DOWNLOAD.note or "no published digest")
    elif digest != expected:
      raise lines.CorpusError(f"downloaded {self.DOWNLOAD.urls.get(name)}: SHA-256 {digest}, "
                              f"expected {expected}")

  def _generate_examples(self, **kwargs):  # pragma: no cover - generators above
    raise NotImplementedError


def extract_files(archive: str, files: list[str], dest: str, url: str) -> dict[str, str]:
  """{file: path}: `files` from the first folder of a .tar.gz holding all of
  them, copied into `dest` (only those members are read, by name, so nothing
  else of the archive is written)."""
  paths = {f: os.path.join(dest, f) for f in files}
  if all(os.path.isfile(p) for p in paths.values()):
    return paths
  with tarfile.open(archive, "r:*") as tar:
    folders: dict[str, dict[str, tarfile.TarInfo]] = {}
    for member in tar.getmembers():
      if member.isfile() and posixpath.basename(member.name) in files:
        folders.setdefault(posixpath.dirname(member.name), {})[
            posixpath.basename(member.name)] = member
    folder = next((d for d in sorted(folders) if set(files) <= set(folders[d])), None)
    if folder is None:
      raise lines.CorpusError(f"{url}: the archive holds no folder with {', '.join(files)}")
    os.makedirs(dest, exist_ok=True)
    for f in files:
      with tar.extractfile(folders[folder][f]) as src, open(paths[f] + ".tmp", "wb") as out:
        shutil.copyfileobj(src, out)
      os.replace(paths[f] + ".tmp", paths[f])
  logging.info("%s: %s from folder %r of the archive", url, ", ".join(files), folder)
  return paths
