"""`yelp_sentiment`: the Yelp sentiment corpus of Shen et al. 2017 ("Style
transfer from non-parallel text by cross-alignment",
shentianxiao/language-style-transfer), the standard corpus of sentiment
transfer: restaurant-review sentences, lower-cased and tokenised, at most 15
words each.

Layout (`config.data.source_dir`, the authors' `data/yelp/` folder; README:
"name the corpora of two styles by x.0 and x.1 ... one sentence per line with
tokens separated by a space"): the file suffix is the label, `.0` negative,
`.1` positive (the `label` feature: 0 negative, 1 positive)

  sentiment.train.0  sentiment.train.1   (about 177k / 267k lines)
  sentiment.dev.0    sentiment.dev.1     (25,278 / 38,205)
  sentiment.test.0   sentiment.test.1    (50,278 / 76,392)

Splits (`config.data.yelp_sentiment_split`):
  standard  train / valid / test = the authors' train / dev / test files.
  dev_test  a stand-in for a copy without the training files (only dev and
            test): with n = `config.data.yelp_sentiment_held_out` (per label,
            default 1000), valid = the first n sentences of each
            sentiment.dev.{0,1}, test = the next n of each, and train = both
            sentiment.test.{0,1} files and the rest of the dev files
            (186,153 sentences at n = 1000). Only the dev and test files are
            read. Numbers from it are not comparable with the literature's,
            which are on the authors' test files.

Download (no source_dir): the files of the repository's `data/yelp/` folder at
commit f078a9d342705ea62b04dd3ac5926d3467c2ac63, from raw.githubusercontent.com.
The dev and test files' SHA-256 below are those of byte-identical copies of that
commit's files (their MD5s, 3a1e01b6..., fbf152e2..., 241fb635..., 82e3b777...,
match). The training files' checksums are not pinned: those files could not be
fetched from the machine this builder was written on; their SHA-256 is logged
when they are downloaded.
"""

from __future__ import annotations

from textvae import errors
from textvae.data.builders import line_corpus

COMMIT = "f078a9d342705ea62b04dd3ac5926d3467c2ac63"
URL = f"https://raw.githubusercontent.com/shentianxiao/language-style-transfer/{COMMIT}/data/yelp/"
AUTHORS_SPLITS = {"train": "train", "valid": "dev", "test": "test"}
LABEL_NAMES = {"0": "negative", "1": "positive"}  # file suffix -> class name
SHA256 = {
    "sentiment.dev.0": "405ef6d4bfbc8bb92c3c55b496f315069cb5edb49ed34a07b1206341b83c344b",
    "sentiment.dev.1": "3509f6573411bbda2d5c071ed72ad276c12356c15c06205b8fdf74b217970c61",
    "sentiment.test.0": "b7466e8859e9948892a859af7938a82c801c99b69f884014082fd072a155bbf2",
    "sentiment.test.1": "a66e0ec3f0e1230ad4d2c822750a381cf6d99a99fa9b5ae79546f21ff79ed5c3",
}
SPLIT_CHOICES = ("standard", "dev_test")
DEFAULT_HELD_OUT = 1000


def _file(authors_split: str, label: str) -> str:
  return f"sentiment.{authors_split}.{label}"


class YelpSentiment(line_corpus.LineCorpus):
  """Shen et al.'s Yelp sentences, labelled negative / positive by file."""

  name = "textvae_yelp_sentiment"
  LABEL_NAMES = LABEL_NAMES
  DOWNLOAD = line_corpus.Download(
      urls={_file(s, l): URL + _file(s, l) for s in AUTHORS_SPLITS.values() for l in LABEL_NAMES},
      sha256=SHA256,
      note="the training files could not be fetched where this builder was written")
  DESCRIPTION = "Yelp review sentences labelled by sentiment (Shen et al. 2017)."
  HOMEPAGE = "https://github.com/shentianxiao/language-style-transfer"

  @classmethod
  def _split_options(cls, data_config) -> tuple[str, int]:
    split = data_config.get("yelp_sentiment_split", "standard")
    held_out = data_config.get("yelp_sentiment_held_out", DEFAULT_HELD_OUT)
    if split not in SPLIT_CHOICES:
      raise errors.ConfigError(f"config.data.yelp_sentiment_split={split!r}: expected one "
                              f"of {', '.join(map(repr, SPLIT_CHOICES))}")
    if not isinstance(held_out, int) or isinstance(held_out, bool) or held_out < 1:
      raise errors.ConfigError(f"config.data.yelp_sentiment_held_out={held_out!r}: must be "
                              "an integer >= 1 (sentences per label)")
    return split, held_out

  @classmethod
  def layout(cls, data_config):
    split, n = cls._split_options(data_config)
    if split == "standard":
      return {ours: tuple(line_corpus.Part(_file(theirs, l), l) for l in LABEL_NAMES)
              for ours, theirs in AUTHORS_SPLITS.items()}
    dev = lambda l, start, stop=None: line_corpus.Part(_file("dev", l), l, start, stop)
    return {
        "train": tuple(line_corpus.Part(_file("test", l), l) for l in LABEL_NAMES)
                 + tuple(dev(l, 2 * n) for l in LABEL_NAMES),
        "valid": tuple(dev(l, 0, n) for l in LABEL_NAMES),
        "test": tuple(dev(l, n, 2 * n) for l in LABEL_NAMES),
    }

  @classmethod
  def layout_name(cls, data_config) -> str:
    split, n = cls._split_options(data_config)
    return "" if split == "standard" else f"devtest{n}"
