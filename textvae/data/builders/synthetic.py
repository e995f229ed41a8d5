"""`synthetic`: sentences from a small grammar driven by discrete latent factors.

Every sentence is generated from four factors drawn uniformly at random,
deterministically from a seed:
  topic     (4): sports, food, tech, weather  -> subjects, verbs, objects
  sentiment (2): negative, positive           -> adjectives and adverbs
  tense     (3): past, present, future        -> verb forms and time words
  length    (2): short, long                  -> one clause or two
The factors are kept as features, so a model's latent code can be probed for
them. Word choice within a factor is random, so the factors do not determine the
sentence: a decoder has to learn from z which topic/sentiment/tense it writes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from textvae import periodic_actions

FACTORS = {
    "topic": ("sports", "food", "tech", "weather"),
    "sentiment": ("negative", "positive"),
    "tense": ("past", "present", "future"),
    "length": ("short", "long"),
}

SUBJECTS = {
    "sports": ("the team", "the coach", "our striker", "the runner", "the referee"),
    "food": ("the chef", "my aunt", "the baker", "the waiter", "our cook"),
    "tech": ("the engineer", "the startup", "my laptop", "the developer", "the robot"),
    "weather": ("the storm", "the wind", "the sun", "the forecast", "the rain"),
}
# (base, past, third person present)
VERBS = {
    "sports": (("win", "won", "wins"), ("play", "played", "plays"), ("lose", "lost", "loses")),
    "food": (("cook", "cooked", "cooks"), ("bake", "baked", "bakes"), ("serve", "served", "serves")),
    "tech": (("build", "built", "builds"), ("ship", "shipped", "ships"), ("test", "tested", "tests")),
    "weather": (("hit", "hit", "hits"), ("cover", "covered", "covers"), ("reach", "reached", "reaches")),
}
OBJECTS = {
    "sports": ("match", "game", "final", "season", "race"),
    "food": ("soup", "bread", "dinner", "cake", "salad"),
    "tech": ("app", "server", "chip", "update", "network"),
    "weather": ("coast", "city", "valley", "harbor", "farms"),
}
ADJECTIVES = {
    "negative": ("terrible", "awful", "boring", "sad", "poor"),
    "positive": ("great", "wonderful", "brilliant", "happy", "fine"),
}
ADVERBS = {
    "negative": ("badly", "slowly", "sadly"),
    "positive": ("happily", "quickly", "gladly"),
}
TIME_WORDS = {
    "past": ("yesterday", "last week", "before"),
    "present": ("today", "now", "every day"),
    "future": ("tomorrow", "next week", "soon"),
}
CONNECTIVES = ("and", "while", "because")


def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


def _clause(rng, topic, sentiment, tense) -> str:
  subject = _pick(rng, SUBJECTS[topic])
  base, past, present = _pick(rng, VERBS[topic])
  verb = {"past": past, "present": present, "future": "will " + base}[tense]
  adjective = _pick(rng, ADJECTIVES[sentiment])
  obj = _pick(rng, OBJECTS[topic])
  words = [subject, verb, "a", adjective, obj]
  if rng.random() < 0.5:
    words.append(_pick(rng, ADVERBS[sentiment]))
  return " ".join(words)


def generate(seed: int, num_sentences: int) -> list[tuple[str, dict[str, int]]]:
  """`num_sentences` (sentence, factors) pairs, the same for the same seed."""
  rng = np.random.default_rng(seed)
  out = []
  for _ in range(num_sentences):
    f = {name: int(rng.integers(len(values))) for name, values in FACTORS.items()}
    topic, sentiment, tense, length = (FACTORS[n][f[n]] for n in FACTORS)
    parts = [_clause(rng, topic, sentiment, tense)]
    if length == "long":
      parts += [_pick(rng, CONNECTIVES), _clause(rng, topic, sentiment, tense)]
    parts.append(_pick(rng, TIME_WORDS[tense]))
    out.append((" ".join(parts) + " .", f))
  return out


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
  seed: int = 0
  num_train: int = 10000
  num_valid: int = 1000
  num_test: int = 1000


def make_config(seed: int = 0, num_train: int = 10000, num_valid: int = 1000,
                num_test: int = 1000) -> SyntheticConfig:
  return SyntheticConfig(
      name=f"seed{seed}_{num_train}_{num_valid}_{num_test}", seed=seed,
      num_train=num_train, num_valid=num_valid, num_test=num_test)


class Synthetic(tfds.core.GeneratorBasedBuilder):
  """Grammar-generated sentences with their generating factors."""

  name = "textvae_synthetic"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def _info(self):
    features = {"text": tfds.features.Text()}
    features.update({name: tfds.features.ClassLabel(names=list(values))
                     for name, values in FACTORS.items()})
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__,
        features=tfds.features.FeaturesDict(features))

  def _split_generators(self, dl_manager):
    del dl_manager
    cfg = self.builder_config
    sizes = {"train": cfg.num_train, "valid": cfg.num_valid, "test": cfg.num_test}
    # One stream per split, so changing one split's size leaves the others alone.
    return {split: self._generate_examples(seed=[cfg.seed, i], num=n, split=split)
            for i, (split, n) in enumerate(sizes.items())}

  def _generate_examples(self, seed, num, split=""):
    progress = periodic_actions.Progress(f"preparing synthetic {split}".rstrip(), num,
                                         unit="examples")
    for i, (text, factors) in enumerate(generate(np.random.SeedSequence(seed).generate_state(1)[0], num)):
      yield i, {"text": text, **factors}
      progress.update(1)
    progress.finish()
