"""`yahoo`: Yahoo Answers documents in the split of Yang et al. 2017 ("Improved
variational autoencoders for text modeling using dilated convolutions"), as
distributed with He et al. 2019 ("Lagging inference networks and posterior
collapse in variational autoencoders", jxhe/vae-lagging-encoder).

Layout (`config.data.source_dir`, the authors' `yahoo_data/` folder): one
tokenised document per line, in

  yahoo.train.txt   yahoo.valid.txt   yahoo.test.txt

He et al.'s code reads it without labels (config/config_yahoo.py has no
`label` entry; text.py reads every line whole). Li et al. 2019 (bohanli/vae-pretraining-encoder,
config/config_yahoo_label.py: `datasets/yahoo_label_data/yahoo.{train,valid,
test}.txt`, `'label': True`) distribute the same file names with the topic in
front of each line, `label<TAB>document` (their reader, data/text_data.py
`MonoTextData(label=True)`, takes the text before the first tab as the label;
scripts/sampling_training_labels.py reads labels 0, 1, ...); read that folder
with `--config.data.label_column=0` to keep the topic as the `label` feature.

Download (no source_dir): jxhe/vae-lagging-encoder prepare_data.py fetches the
Google Drive file id 1yH3Ufj20R06OX1prPMPS6E3fKSG_2MqN, saved as
`datasets.tar.gz` and unpacked into `datasets/` (README: "Downloaded data is
located in ./datasets/"; config/config_yelp.py reads
`datasets/yelp_data/yelp.train.txt`); the builder takes the files from the
folder of the archive that holds all three. The archive's checksum is not
pinned: it could not be fetched from the machine this builder was written on
(no network); the SHA-256 of the downloaded archive is logged. Google Drive
answers large files with a confirmation page, which TFDS follows with
beautifulsoup4 installed. The labelled copy is read from a local folder only:
Li et al.'s prepare_data.py downloads a "yahoo" archive (Drive id
13azGlTuGdzWLCmgDmQPmvb_jcexVWX7i) whose folder names could not be checked here.
"""

from __future__ import annotations

from textvae import errors
from textvae.data.builders import line_corpus
from textvae.data.builders import lines

FILES = {"train": "yahoo.train.txt", "valid": "yahoo.valid.txt", "test": "yahoo.test.txt"}
# He et al.'s datasets.tar.gz (yahoo_data/ and yelp_data/), one download for both corpora.
HE_ET_AL_ARCHIVE = line_corpus.Download(
    urls={"datasets.tar.gz": "https://drive.google.com/uc?export=download&id="
                             "1yH3Ufj20R06OX1prPMPS6E3fKSG_2MqN"},
    archive=True,
    note="jxhe/vae-lagging-encoder publishes no checksum and the archive could not be "
         "fetched where this builder was written")


class Yahoo(line_corpus.LineCorpus):
  """Yahoo Answers (Yang et al. 2017 split), one document per line."""

  name = "textvae_yahoo"
  FILES = FILES
  LABEL_COLUMN = None  # 0 for Li et al.'s yahoo_label_data
  DOWNLOAD = HE_ET_AL_ARCHIVE
  DESCRIPTION = "Yahoo Answers documents, the split of Yang et al. 2017 (He et al. 2019)."
  HOMEPAGE = "https://github.com/jxhe/vae-lagging-encoder"

  @classmethod
  def make_config(cls, data_config):
    if (not data_config.get("source_dir")
        and cls.label_column(data_config) != lines.NO_LABEL):
      raise errors.ConfigError(
          "config.data.label_column is set but He et al.'s download of yahoo has no "
          "labels: set config.data.source_dir to Li et al.'s yahoo_label_data folder")
    return super().make_config(data_config)
