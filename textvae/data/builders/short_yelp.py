"""`short_yelp`: the short Yelp reviews of Li et al. 2019 ("A surprisingly
effective fix for deep latent variable modeling of text",
bohanli/vae-pretraining-encoder), with the label of each sentence.

Layout (`config.data.source_dir`, the authors' `short_yelp_data/` folder; their
config/config_short_yelp.py reads `datasets/short_yelp_data/short_yelp.{train,
valid,test}.txt` with `"label": True`): one tokenised sentence per line,
`label<TAB>sentence`

  short_yelp.train.txt   short_yelp.valid.txt   short_yelp.test.txt

(the folder's other files, `vocab.txt` and the labelled subsets
`short_yelp.train.{100,...,10000}.txt`, are not read). Their reader
(`MonoTextData(label=True)`) takes the text before the first tab as the label,
and scripts/sampling_training_labels.py reads labels as integers 0, 1, ...;
here it is the `label` feature, one class per label of the training split.

Download (no source_dir): Li et al.'s prepare_data.py (`--dataset short_yelp`)
fetches Google Drive id 18h8UYr801qr-USCYRzZySi_DSbUkHW71, a .tar.gz unpacked
into `datasets/`. Its checksum is not pinned: it could not be fetched from the
machine this builder was written on; the SHA-256 of the download is logged.
"""

from __future__ import annotations

from textvae.data.builders import line_corpus


class ShortYelp(line_corpus.LineCorpus):
  """Short Yelp sentences (Li et al. 2019) with their labels."""

  name = "textvae_short_yelp"
  FILES = {"train": "short_yelp.train.txt", "valid": "short_yelp.valid.txt",
           "test": "short_yelp.test.txt"}
  LABEL_COLUMN = 0
  DOWNLOAD = line_corpus.Download(
      urls={"short_yelp.tar.gz": "https://drive.google.com/uc?export=download&id="
                                 "18h8UYr801qr-USCYRzZySi_DSbUkHW71"},
      archive=True,
      note="bohanli/vae-pretraining-encoder publishes no checksum and the archive could "
           "not be fetched where this builder was written")
  DESCRIPTION = "Short Yelp reviews with labels, as distributed with Li et al. 2019."
  HOMEPAGE = "https://github.com/bohanli/vae-pretraining-encoder"
