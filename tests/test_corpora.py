"""The literature's corpora read from local folders in their authors' layouts
(yahoo, yelp, short_yelp, snli, yelp_sentiment), labels kept as features, the
text_files label column, and the corpus errors: a byte-order mark, a split of
blank lines only, ill-formed label lines."""

import io
import os
import tarfile

import pytest
import tensorflow_datasets as tfds

from configs import default
from textvae import errors
from textvae.data import sources
from textvae.data.builders import lines
from textvae.data.builders import yelp_sentiment


def write_files(folder, files: dict[str, bytes]) -> str:
  os.makedirs(folder, exist_ok=True)
  for name, content in files.items():
    with open(os.path.join(folder, name), "wb") as f:
      f.write(content)
  return str(folder)


def data_config(tmp_path, name, source_dir="", **fields):
  config = default.get_config().data
  config.name = name
  config.source_dir = source_dir
  config.tfds_data_dir = str(tmp_path / "tfds")
  for k, v in fields.items():
    config[k] = v
  return config


def messages(caplog):
  return [r.getMessage() for r in caplog.records]


def pairs(corpus):
  """Sorted (sentence, label id) of a split (TFDS stores examples shuffled)."""
  return sorted(zip(corpus.sentences, corpus.factors["label"].tolist()))


# --- A byte-order mark, a split of blank lines only ---------------------------

def test_byte_order_mark_is_stripped_and_reported_once(tmp_path, caplog):
  folder = write_files(tmp_path / "c", {"train.txt": b"\xef\xbb\xbfaer banknote\nthe cat\n",
                                        "valid.txt": b"a b\n", "test.txt": b"b a\n"})
  with caplog.at_level("INFO"):
    corpus = sources.load_splits(data_config(tmp_path, "text_files", folder))
  assert sorted(corpus["train"].sentences) == ["aer banknote", "the cat"]
  bom = [m for m in messages(caplog) if "byte-order mark" in m]
  assert bom == [f"{folder}/train.txt: 2 sentences; stripped the UTF-8 byte-order mark "
                 "at its start"]
  # Columns of a bad byte still count from the start of the file's line.
  path = tmp_path / "bad.txt"
  path.write_bytes(b"\xef\xbb\xbfab \xff\n")
  with pytest.raises(lines.CorpusError, match=r"bad.txt:1: invalid UTF-8 byte 0xff at column 7"):
    list(lines.read_sentences(str(path)))


@pytest.mark.parametrize("split, name", [("test", "test"), ("valid", "validation")])
def test_split_of_blank_lines_only_is_a_corpus_error_naming_the_file(tmp_path, split, name):
  files = {"train.txt": b"a b\n", "valid.txt": b"a\n", "test.txt": b"b\n"}
  files[f"{split}.txt"] = b"\n\n"  # printf '\n\n' > test.txt
  folder = write_files(tmp_path / "c", files)
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, "text_files", folder))
  assert str(e.value) == f"{folder}/{split}.txt: the {name} split holds no sentence"


# --- text_files with a label column -------------------------------------------

def test_text_files_label_column_keeps_labels_in_numeric_order(tmp_path):
  folder = write_files(tmp_path / "c", {
      "train.txt": b"10\tthe food was great\n2\tawful  service\n\n2\t \n1\tok i guess\n",
      "valid.txt": b"2\tbad\n", "test.txt": b"10\tgood\n1\tfine\n"})
  corpus = sources.load_splits(data_config(tmp_path, "text_files", folder, label_column=0))
  train = corpus["train"]
  assert train.class_names == {"label": ["1", "2", "10"]}  # as numbers, not text
  assert pairs(train) == [("awful service", 1), ("ok i guess", 0), ("the food was great", 2)]
  assert pairs(corpus["test"]) == [("fine", 0), ("good", 2)]
  # The label is not a token, and sentence<TAB>label lines read the same.
  reversed_ = write_files(tmp_path / "r", {
      "train.txt": b"the food was great\t10\nawful service\t2\nok i guess\t1\n",
      "valid.txt": b"bad\t2\n", "test.txt": b"good\t10\nfine\t1\n"})
  again = sources.load_splits(data_config(tmp_path, "text_files", reversed_, label_column=1))
  assert pairs(again["train"]) == pairs(train)
  # Without the label column, the label is part of the sentence (the old reading).
  plain = sources.load_splits(data_config(tmp_path, "text_files", folder))
  assert "10 the food was great" in plain["train"].sentences and not plain["train"].factors


@pytest.mark.parametrize("train, message", [
    (b"1\tgood\nno tab on this line\n",
     "train.txt:2: expected label<TAB>sentence (config.data.label_column=0), found no tab "
     "in 'no tab on this line'"),
    (b"1\tgood\n\tmissing label\n",
     "train.txt:2: empty label in '\\tmissing label' (expected label<TAB>sentence)"),
])
def test_ill_formed_label_lines_name_file_and_line(tmp_path, train, message):
  folder = write_files(tmp_path / "c", {"train.txt": train, "valid.txt": b"1\ta\n",
                                        "test.txt": b"1\tb\n"})
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, "text_files", folder, label_column=0))
  assert str(e.value) == f"{folder}/{message}"


def test_label_unknown_to_the_training_split_names_file_and_line(tmp_path):
  folder = write_files(tmp_path / "c", {"train.txt": b"pos\tgood\nneg\tbad\n",
                                        "valid.txt": b"pos\ta\n",
                                        "test.txt": b"neg\tb\n\nneutral\tc\n"})
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, "text_files", folder, label_column=0))
  assert str(e.value) == (f"{folder}/test.txt:3: label 'neutral' is not a label of this "
                          "corpus (the training split has: neg, pos)")


def test_label_column_setting_is_checked(tmp_path):
  folder = write_files(tmp_path / "s", {f"snli.{s}.txt": b"a man sleeps\n"
                                        for s in ("train", "valid", "test")})
  with pytest.raises(errors.ConfigError, match=r"label_column=2: expected -1"):
    sources.make_builder(data_config(tmp_path, "text_files", folder, label_column=2))
  with pytest.raises(errors.ConfigError) as e:
    sources.make_builder(data_config(tmp_path, "snli", folder, label_column=0))
  assert str(e.value) == ("config.data.label_column=0: data.name='snli' has its own format "
                          "(its lines hold no label); leave label_column at -1")
  with pytest.raises(errors.ConfigError, match="download of yahoo has no labels"):
    sources.make_builder(data_config(tmp_path, "yahoo", label_column=0))


# --- The literature's corpora in their authors' layouts -----------------------

YAHOO = {"train": b"what is the best way to learn ?\nhow do i fix my car\n",
         "valid": b"why is the sky blue\n", "test": b"where can i buy shoes\n"}


def test_yahoo_reads_he_et_al_layout_and_li_et_al_labelled_copy(tmp_path):
  folder = write_files(tmp_path / "yahoo_data",
                       {f"yahoo.{s}.txt": c for s, c in YAHOO.items()})
  corpus = sources.load_splits(data_config(tmp_path, "yahoo", folder))
  assert sorted(corpus["train"].sentences) == ["how do i fix my car",
                                               "what is the best way to learn ?"]
  assert corpus["test"].sentences == ["where can i buy shoes"] and not corpus["train"].factors
  labelled = write_files(tmp_path / "yahoo_label_data", {
      f"yahoo.{s}.txt": b"".join(b"%d\t%s\n" % (i % 10, l) for i, l in enumerate(c.splitlines()))
      for s, c in YAHOO.items()})
  corpus = sources.load_splits(data_config(tmp_path, "yahoo", labelled, label_column=0))
  assert corpus["train"].class_names == {"label": ["0", "1"]}
  assert pairs(corpus["train"]) == [("how do i fix my car", 1),
                                    ("what is the best way to learn ?", 0)]
  prepared = list((tmp_path / "tfds" / "textvae_yahoo").glob("sha_*/1.0.0/*.array_record*"))
  assert len(prepared) == 6  # two datasets (unlabelled, labelled), three splits each


@pytest.mark.parametrize("name, stem", [("yelp", "yelp"), ("short_yelp", "short_yelp")])
def test_labelled_yelp_corpora_keep_their_labels(tmp_path, name, stem):
  folder = write_files(tmp_path / f"{stem}_data", {
      f"{stem}.train.txt": b"4\tgreat food , great staff\n0\tnever again\n2\tit was ok\n",
      f"{stem}.valid.txt": b"4\tnice place\n", f"{stem}.test.txt": b"0\tcold soup\n"})
  corpus = sources.load_splits(data_config(tmp_path, name, folder))
  assert corpus["train"].class_names == {"label": ["0", "2", "4"]}
  assert pairs(corpus["train"]) == [("great food , great staff", 2), ("it was ok", 1),
                                    ("never again", 0)]
  assert pairs(corpus["test"]) == [("cold soup", 0)]
  bad = write_files(tmp_path / "bad", {
      f"{stem}.train.txt": b"4\tgreat\n", f"{stem}.valid.txt": b"4\tfine\n",
      f"{stem}.test.txt": b"4\tok\njust words\n"})
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, name, bad))
  assert str(e.value).startswith(f"{bad}/{stem}.test.txt:2: expected label<TAB>sentence")


def test_snli_reads_li_et_al_layout(tmp_path):
  folder = write_files(tmp_path / "snli_data", {
      "snli.train.txt": b"a man is sleeping .\ntwo dogs run\n",
      "snli.valid.txt": b"a woman sings .\n", "snli.test.txt": b"kids play outside\n"})
  corpus = sources.load_splits(data_config(tmp_path, "snli", folder))
  assert sorted(corpus["train"].sentences) == ["a man is sleeping .", "two dogs run"]
  assert not corpus["train"].factors
  os.remove(os.path.join(folder, "snli.valid.txt"))
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, "snli", folder))
  assert str(e.value) == (f"missing split file(s): {folder}/snli.valid.txt (expected "
                          f"snli.train.txt, snli.valid.txt, snli.test.txt in {folder})")


def shen_files(sizes: dict[str, int]) -> dict[str, bytes]:
  """sentiment.{train,dev,test}.{0,1} with `sizes[split]` sentences per label,
  each naming its file and index (e.g. 'dev 0 s3')."""
  return {f"sentiment.{s}.{l}": b"".join(b"%s %s s%d\n" % (s.encode(), l.encode(), i)
                                          for i in range(n))
          for s, n in sizes.items() for l in "01"}


def test_yelp_sentiment_labels_come_from_the_file_suffix(tmp_path):
  folder = write_files(tmp_path / "yelp", shen_files({"train": 3, "dev": 2, "test": 1}))
  corpus = sources.load_splits(data_config(tmp_path, "yelp_sentiment", folder))
  train = corpus["train"]
  assert train.class_names == {"label": ["negative", "positive"]}
  assert pairs(train) == [("train 0 s0", 0), ("train 0 s1", 0), ("train 0 s2", 0),
                          ("train 1 s0", 1), ("train 1 s1", 1), ("train 1 s2", 1)]
  assert pairs(corpus["valid"]) == [("dev 0 s0", 0), ("dev 0 s1", 0), ("dev 1 s0", 1),
                                    ("dev 1 s1", 1)]
  assert pairs(corpus["test"]) == [("test 0 s0", 0), ("test 1 s0", 1)]


def test_yelp_sentiment_stand_in_split_from_dev_and_test_only(tmp_path):
  files = shen_files({"dev": 5, "test": 2})  # no training files
  folder = write_files(tmp_path / "yelp", files)
  with pytest.raises(lines.CorpusError, match="missing split file.*sentiment.train.0"):
    sources.load_splits(data_config(tmp_path, "yelp_sentiment", folder))
  corpus = sources.load_splits(data_config(tmp_path, "yelp_sentiment", folder,
                                           yelp_sentiment_split="dev_test",
                                           yelp_sentiment_held_out=2))
  assert pairs(corpus["valid"]) == [("dev 0 s0", 0), ("dev 0 s1", 0), ("dev 1 s0", 1),
                                    ("dev 1 s1", 1)]
  assert pairs(corpus["test"]) == [("dev 0 s2", 0), ("dev 0 s3", 0), ("dev 1 s2", 1),
                                   ("dev 1 s3", 1)]
  assert pairs(corpus["train"]) == [("dev 0 s4", 0), ("dev 1 s4", 1), ("test 0 s0", 0),
                                    ("test 0 s1", 0), ("test 1 s0", 1), ("test 1 s1", 1)]
  every = [s for c in corpus.values() for s in c.sentences]
  assert len(every) == len(set(every)) == 14  # each sentence in one split only
  # Held-out sets larger than the dev files leave the test split empty: named.
  with pytest.raises(lines.CorpusError, match=r"sentiment.dev.0 \(sentences 6 to 10\), .*"
                                              r"the test split holds no sentence"):
    sources.load_splits(data_config(tmp_path, "yelp_sentiment", folder,
                                    yelp_sentiment_split="dev_test",
                                    yelp_sentiment_held_out=5))
  with pytest.raises(errors.ConfigError, match="yelp_sentiment_split='train_only': expected"):
    sources.make_builder(data_config(tmp_path, "yelp_sentiment", folder,
                                     yelp_sentiment_split="train_only"))


# --- The download path, with the network replaced by local files --------------

def fake_downloads(monkeypatch, files: dict[str, str]):
  """DownloadManager.download returns the local file given for each URL."""
  def download(self, url_or_urls):
    del self
    return {k: files[url] for k, url in url_or_urls.items()}
  monkeypatch.setattr(tfds.download.DownloadManager, "download", download)


def test_download_unpacks_the_authors_archive_and_finds_the_folder(tmp_path, monkeypatch, caplog):
  archive = tmp_path / "datasets.tar.gz"
  with tarfile.open(archive, "w:gz") as tar:
    for s, text in (("train", b"5\tgood food\n1\tbad food\n"), ("valid", b"5\tnice\n"),
                    ("test", b"1\tmeh\n")):
      info = tarfile.TarInfo(f"datasets/yelp_data/yelp.{s}.txt")
      info.size = len(text)
      tar.addfile(info, io.BytesIO(text))
  url = sources.LINE_CORPORA["yelp"].DOWNLOAD.urls["datasets.tar.gz"]
  fake_downloads(monkeypatch, {url: str(archive)})
  with caplog.at_level("WARNING"):
    corpus = sources.load_splits(data_config(tmp_path, "yelp"))
  assert corpus["train"].class_names == {"label": ["1", "5"]}
  assert pairs(corpus["train"]) == [("bad food", 0), ("good food", 1)]
  digest = lines.sha256_of(str(archive))
  assert any(f"SHA-256 {digest}, not checked" in m for m in messages(caplog))


def test_download_checks_the_pinned_checksums(tmp_path, monkeypatch):
  folder = write_files(tmp_path / "dl", shen_files({"train": 1, "dev": 1, "test": 1}))
  urls = yelp_sentiment.YelpSentiment.DOWNLOAD.urls
  fake_downloads(monkeypatch, {url: os.path.join(folder, f) for f, url in urls.items()})
  with pytest.raises(lines.CorpusError) as e:
    sources.load_splits(data_config(tmp_path, "yelp_sentiment"))
  # The dev files' digests are pinned; these stand-ins do not match them.
  assert str(e.value).startswith(f"downloaded {urls['sentiment.dev.0']}: SHA-256 ")
  assert str(e.value).endswith(f"expected {yelp_sentiment.SHA256['sentiment.dev.0']}")


def test_prepared_labels_are_read_back_without_the_files(tmp_path):
  folder = write_files(tmp_path / "c", {"train.txt": b"b\tx y\na\tz\n",
                                        "valid.txt": b"a\tq\n", "test.txt": b"b\tr\n"})
  config = data_config(tmp_path, "text_files", folder, label_column=0)
  builder = sources.make_builder(config)
  builder.download_and_prepare(file_format="array_record")
  again = type(builder)(data_dir=builder.data_dir_root, config=builder.builder_config,
                        file_format="array_record")
  assert list(again.info.features["label"].names) == ["a", "b"]
  records = again.as_data_source()["train"]
  assert sorted((r["text"], int(r["label"])) for r in records) == [(b"x y", 1), (b"z", 0)]
