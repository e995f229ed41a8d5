"""`snli`: SNLI sentences as a language-modelling corpus, as distributed with
Li et al. 2019 ("A surprisingly effective fix for deep latent variable modeling
of text", bohanli/vae-pretraining-encoder).

Layout (`config.data.source_dir`, the authors' `snli_data/` folder; their
config/config_snli.py reads `datasets/snli_data/snli.{train,valid,test}.txt`
with `"label": False`): one tokenised sentence per line, no label

  snli.train.txt   snli.valid.txt   snli.test.txt

Download (no source_dir): Li et al.'s prepare_data.py (`--dataset snli`)
fetches Google Drive id 11NHEPxV7OrqmODozxQGezSU8093iUlUx, a .tar.gz unpacked
into `datasets/`. Its checksum is not pinned: it could not be fetched from the
machine this builder was written on; the SHA-256 of the download is logged.
"""

from __future__ import annotations

from textvae.data.builders import line_corpus


class Snli(line_corpus.LineCorpus):
  """SNLI sentences (Li et al. 2019's copy), one per line."""

  name = "textvae_snli"
  FILES = {"train": "snli.train.txt", "valid": "snli.valid.txt", "test": "snli.test.txt"}
  DOWNLOAD = line_corpus.Download(
      urls={"snli.tar.gz": "https://drive.google.com/uc?export=download&id="
                           "11NHEPxV7OrqmODozxQGezSU8093iUlUx"},
      archive=True,
      note="bohanli/vae-pretraining-encoder publishes no checksum and the archive could "
           "not be fetched where this builder was written")
  DESCRIPTION = "SNLI sentences, as distributed with Li et al. 2019."
  HOMEPAGE = "https://github.com/bohanli/vae-pretraining-encoder"
