"""Labels for the conditional VAE and for controlled generation.

`config.model.condition` names a label feature of the corpus ('' = an
unconditional model). Any integer feature a builder keeps works: the
generating factors of `synthetic` (topic, sentiment, tense, length) and the
`label` feature of the labelled corpora alike. The labels' names come from the
dataset's feature info (a TFDS `ClassLabel`); a feature without names is named
by its values ('0', '1', ...).

A conditional workdir records its labels in `labels.json` ({'feature',
'names'}), written with vocab.json when training starts, so that evaluation
and generation build the model (one embedding row per label) and read label
names without the corpus.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from textvae import errors
from textvae import fileio

PRIORS = ("standard", "learned")


def labels_path(workdir: str) -> str:
  return os.path.join(workdir, "labels.json")


@dataclasses.dataclass(frozen=True)
class Labels:
  """The labels of one feature: index i is `names[i]`."""
  feature: str
  names: tuple[str, ...]

  def __len__(self) -> int:
    return len(self.names)

  def index(self, label) -> int:
    """The index of a label given by name (or by its index as text); a label
    the vocabulary of labels does not know is a ValueError naming it and the
    known ones."""
    if isinstance(label, (int, np.integer)) and 0 <= int(label) < len(self.names):
      return int(label)
    text = str(label)
    if text in self.names:
      return self.names.index(text)
    if text.isdigit() and int(text) < len(self.names):
      return int(text)
    raise errors.ConfigError(f"unknown label {text!r} for {self.feature!r}; known labels: "
                     f"{', '.join(self.names)}")

  def indices(self, labels: Sequence) -> np.ndarray:
    return np.asarray([self.index(l) for l in labels], np.int32)

  def to_json(self) -> dict:
    return {"feature": self.feature, "names": list(self.names)}

  def save(self, workdir: str) -> None:
    path = labels_path(workdir)
    fileio.write_json(path, self.to_json(), indent=2, ensure_ascii=False)

  @classmethod
  def load(cls, workdir: str) -> "Labels":
    with open(labels_path(workdir), encoding="utf-8") as f:
      d = json.load(f)
    return cls(d["feature"], tuple(d["names"]))


def feature_names(data_config, feature: str, values=None) -> Labels:
  """The labels of `feature` from the dataset's feature info (its builder's
  `ClassLabel` names); without names, '0'..'max(values)'. A feature the
  corpus does not have is a ValueError naming the ones it has."""
  from textvae.data import sources  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = sources.make_builder(data_config).info.features
  available = [k for k in features.keys() if k != "text"]
  if feature not in available:
    raise errors.ConfigError(f"config.data.name={data_config.name!r} has no label feature "
                     f"{feature!r}; its label features: {', '.join(available) or 'none'}")
  info = features[feature]
  if isinstance(info, tfds.features.ClassLabel) and info.names:
    return Labels(feature, tuple(info.names))
  if values is None or not len(values):
    raise ValueError(f"feature {feature!r} has no label names and no values were given")
  return Labels(feature, tuple(str(i) for i in range(int(np.max(values)) + 1)))


def factor_values(factors: dict, feature: str, labels: Labels | None = None,
                  where: str = "the split") -> np.ndarray:
  """The label of every sentence of a split ([N] int32) from its factors;
  with `labels`, checked to lie within them. A missing feature or a label
  outside the labels is a ConfigError naming it."""
  if feature not in factors:
    raise errors.ConfigError(f"{where} has no label feature {feature!r}; it has: "
                             f"{', '.join(sorted(factors)) or 'none'}")
  values = np.asarray(factors[feature], np.int32)
  if labels is not None:
    check_values(labels, values, where)
  return values


def check_values(labels: Labels, values, where: str = "the split") -> None:
  """Every label index of a split lies within the labels (ConfigError naming
  the first that does not)."""
  values = np.asarray(values)
  bad = values[(values < 0) | (values >= len(labels))]
  if bad.size:
    raise errors.ConfigError(f"{where}: label {int(bad[0])} of {labels.feature!r} is outside "
                             f"its {len(labels)} labels ({', '.join(labels.names)})")


def check_workdir_labels(labels: Labels, workdir: str) -> None:
  """Writes labels.json, or refuses (ValueError, nothing written) labels that
  differ from the ones the workdir was trained with."""
  path = labels_path(workdir)
  if not os.path.exists(path):
    labels.save(workdir)
    return
  saved = Labels.load(workdir)
  if saved != labels:
    raise errors.WorkdirError(f"{workdir} was trained with the labels {saved.to_json()} ({path}); "
                     f"this run has {labels.to_json()}. Use a new --workdir.")
