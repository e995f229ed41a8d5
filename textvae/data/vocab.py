"""Vocabulary: ids <-> tokens with the specials <pad> <bos> <eos> <unk>, saved as JSON."""

from __future__ import annotations

import collections
import json
from typing import Iterable, Sequence

import numpy as np

from textvae import errors
from textvae import fileio
PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)
EOS_ALIASES = ("</s>",)  # written by some corpora; always the <eos> special


class Vocabulary:
  """A fixed token list; ids 0..3 are the specials, then words by frequency."""

  def __init__(self, tokens: Sequence[str]):
    if tuple(tokens[:len(SPECIALS)]) != SPECIALS:
      raise ValueError(f"a vocabulary starts with {SPECIALS}, got {tuple(tokens[:4])}")
    if len(set(tokens)) != len(tokens):
      raise ValueError("a vocabulary holds each token once")
    self.tokens = list(tokens)
    self._ids = {t: i for i, t in enumerate(self.tokens)}
    for alias in EOS_ALIASES:
      self._ids.setdefault(alias, EOS_ID)

  @classmethod
  def build(cls, sentences: Iterable[str], *, max_size: int = 0,
            min_count: int = 1) -> "Vocabulary":
    """From training sentences: words with count >= min_count, most frequent first
    (ties alphabetical), at most max_size entries in all (0: no limit)."""
    counts = collections.Counter(w for s in sentences for w in s.split())
    for special in SPECIALS + EOS_ALIASES:
      counts.pop(special, None)
    words = sorted((w for w, c in counts.items() if c >= min_count),
                   key=lambda w: (-counts[w], w))
    if max_size:
      words = words[:max(0, max_size - len(SPECIALS))]
    return cls(list(SPECIALS) + words)

  def __len__(self) -> int:
    return len(self.tokens)

  def __eq__(self, other) -> bool:
    return isinstance(other, Vocabulary) and self.tokens == other.tokens

  def id(self, token: str) -> int:
    return self._ids.get(token, UNK_ID)

  def encode(self, sentence: str, *, add_eos: bool = True) -> np.ndarray:
    ids = [self._ids.get(w, UNK_ID) for w in sentence.split()]
    if add_eos:
      ids.append(EOS_ID)
    return np.asarray(ids, np.int32)

  def unknown_words(self, sentence: str) -> list[str]:
    return [w for w in sentence.split() if w not in self._ids]

  def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
    words = []
    for i in ids:
      i = int(i)
      if i == EOS_ID and stop_at_eos:
        break
      if i in (PAD_ID, BOS_ID):
        continue
      words.append(self.tokens[i])
    return " ".join(words)

  def save(self, path: str) -> None:
    fileio.write_json(path, {"tokens": self.tokens}, ensure_ascii=False)

  @classmethod
  def load(cls, path: str) -> "Vocabulary":
    with open(path, encoding="utf-8") as f:
      try:
        data = json.load(f)
      except json.JSONDecodeError as e:
        raise errors.WorkdirError(
            f"{path}:{e.lineno}: not a vocabulary JSON file ({e.msg})") from None
    if not isinstance(data, dict) or "tokens" not in data:
      raise errors.WorkdirError(f"{path}: expected a JSON object with a 'tokens' list")
    return cls(data["tokens"])
