"""`yelp`: Yelp reviews in the split of Yang et al. 2017 ("Improved variational
autoencoders for text modeling using dilated convolutions"), as distributed
with He et al. 2019 (jxhe/vae-lagging-encoder), with the rating of each review.

Layout (`config.data.source_dir`, the authors' `yelp_data/` folder; their
config/config_yelp.py reads `datasets/yelp_data/yelp.{train,valid,test}.txt`
with `'label': True`): one tokenised review per line, `label<TAB>review`

  yelp.train.txt   yelp.valid.txt   yelp.test.txt

Their reader (data/text_data.py, `MonoTextData(label=True)`) takes the text
before the first tab as the label; here it is the `label` feature, one class
per label value of the training split, in numeric order.

Download (no source_dir): the archive of He et al.'s prepare_data.py (Google
Drive id 1yH3Ufj20R06OX1prPMPS6E3fKSG_2MqN, `datasets.tar.gz`; see
textvae/data/builders/yahoo.py, the same archive). Its checksum is not pinned:
it could not be fetched from the machine this builder was written on; the
SHA-256 of the downloaded archive is logged.
"""

from __future__ import annotations

from textvae.data.builders import line_corpus
from textvae.data.builders import yahoo


class Yelp(line_corpus.LineCorpus):
  """Yelp reviews (Yang et al. 2017 split) with their ratings, one per line."""

  name = "textvae_yelp"
  FILES = {"train": "yelp.train.txt", "valid": "yelp.valid.txt", "test": "yelp.test.txt"}
  LABEL_COLUMN = 0
  DOWNLOAD = yahoo.HE_ET_AL_ARCHIVE
  DESCRIPTION = "Yelp reviews with ratings, the split of Yang et al. 2017 (He et al. 2019)."
  HOMEPAGE = "https://github.com/jxhe/vae-lagging-encoder"
