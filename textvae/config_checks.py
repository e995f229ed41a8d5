"""Every setting checked before a run writes anything: `check_config(config)`.

A value outside its allowed range would otherwise fail deep inside (a division
by zero in the batch plan, a JAX initializer, after minutes of compilation) or
be accepted and do something meaningless. Each error is one `ConfigError` line
naming the field and what it allows, e.g.
  config.train.batch_size=0: must be an integer >= 1
Fields a config does not have (a workdir's config.json from before the field
existed) are skipped: their defaults are valid.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from textvae import cells
from textvae import conditioning
from textvae import early_stopping
from textvae import errors
from textvae import objectives
from textvae import optim
from textvae.data import sources
from textvae.data import vocab as vocab_lib
from textvae.data.builders import text_files

MODEL_KINDS = ("vae", "lm")


@dataclasses.dataclass(frozen=True)
class Rule:
  allowed: str                  # "an integer >= 1", "one of 'adam', 'sgd'"
  ok: Callable[[Any], bool]


def _is_int(v) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
  return (isinstance(v, (int, float)) and not isinstance(v, bool)
          and math.isfinite(v))


def integer(low: int) -> Rule:
  return Rule(f"an integer >= {low}", lambda v: _is_int(v) and v >= low)


def number(low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = True) -> Rule:
  """A finite number in the interval given; None: no bound on that side."""
  if low is None and high is None:
    text = "a finite number"
  elif high is None:
    text = f"a number {'>' if low_open else '>='} {low:g}"
  elif low is None:
    text = f"a number {'<' if high_open else '<='} {high:g}"
  else:
    text = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
            f"{')' if high_open else ']'}")

  def ok(v):
    if not _is_number(v):
      return False
    if low is not None and (v <= low if low_open else v < low):
      return False
    return high is None or (v < high if high_open else v <= high)

  return Rule(text, ok)


def choice(options) -> Rule:
  options = tuple(options)
  return Rule("one of " + ", ".join(repr(o) for o in options), lambda v: v in options)


BOOLEAN = Rule("True or False", lambda v: isinstance(v, bool))
PROBABILITY = number(0.0, 1.0)  # dropout rates, Adam's betas: [0, 1)

# field: rule, for every config in configs/ (default.py lists the fields).
RULES = {
    "seed": integer(0),
    "data.name": choice(sources.NAMES),
    "data.encoding_errors": choice(text_files.ENCODING_ERRORS),
    "data.max_length": integer(2),
    "data.min_count": integer(1),
    "data.pad_multiple": integer(1),
    "data.pool_batches": integer(1),
    "data.max_buckets": integer(1),
    "data.synthetic_seed": integer(0),
    "data.synthetic_num_train": integer(1),
    "data.synthetic_num_valid": integer(1),
    "data.synthetic_num_test": integer(1),
    "model.kind": choice(MODEL_KINDS),
    "model.embed_dim": integer(1),
    "model.hidden_dim": integer(1),
    "model.cell": choice(sorted(cells.CELLS)),
    "model.param_init": choice(cells.INITS),
    "model.init_scale": number(0.0, low_open=True),
    "model.embed_init_scale": number(0.0, low_open=True),
    "model.word_dropout": PROBABILITY,
    "model.embed_dropout": PROBABILITY,
    "model.output_dropout": PROBABILITY,
    "model.encoder_embed_dropout": PROBABILITY,
    "model.bn_gamma": number(0.0),
    "model.condition_prior": choice(conditioning.PRIORS),
    "model.label_dim": integer(1),
    "train.batch_size": integer(1),
    "train.eval_batch_size": integer(1),
    "train.eval_importance_samples": integer(1),
    "train.num_steps": integer(1),
    "train.optimizer": choice(optim.OPTIMIZERS),
    "train.learning_rate": number(0.0),  # 0 freezes the model (tests use it)
    "train.grad_clip": number(),  # <= 0: no clipping
    "train.adam_b1": PROBABILITY,
    "train.adam_b2": PROBABILITY,
    "train.log_every_steps": integer(1),
    "train.eval_every_steps": integer(1),
    "train.checkpoint_every_steps": integer(1),
    "train.keep_checkpoints": integer(1),
    "train.num_samples": integer(1),
    "train.pretrain_steps": integer(0),
    "train.init_from.modules": Rule(
        "a non-empty tuple of parameter-group names, e.g. ('encoder',)",
        lambda v: isinstance(v, (tuple, list)) and bool(v) and all(
            isinstance(m, str) and m for m in v)),
    "train.init_from.checkpoint": choice(("best", "latest")),
    "train.lr_schedule.name": choice(optim.SCHEDULES),
    "train.lr_schedule.factor": number(0.0, 1.0, low_open=True),
    "train.lr_schedule.patience": integer(1),  # optax: 0 would reduce at every validation
    "train.lr_schedule.rtol": number(0.0),
    "train.lr_schedule.max_decays": integer(0),
    "train.lr_schedule.start_step": integer(0),
    "train.lr_schedule.restore_best": BOOLEAN,
    "train.early_stopping.metric": choice(sorted(early_stopping.LOWER_IS_BETTER)),
    "train.early_stopping.patience": integer(0),
    "train.early_stopping.min_step": integer(0),
    "train.kl_schedule.name": choice(objectives.KL_SCHEDULES),
    "train.kl_schedule.max_weight": number(0.0),
    "train.kl_schedule.warmup_steps": integer(0),
    "train.kl_schedule.logistic_k": number(0.0, low_open=True),
    "train.kl_schedule.logistic_x0": number(),
    "train.kl_schedule.num_cycles": integer(1),
    "train.kl_schedule.cycle_steps": integer(1),
    "train.kl_schedule.ratio": number(0.0, 1.0, low_open=True, high_open=False),
    "train.free_bits.kind": choice(objectives.FREE_BITS_KINDS),
    "train.free_bits.target": number(0.0),
    "train.aggressive.enabled": BOOLEAN,
    "train.aggressive.window": integer(1),
    "train.aggressive.max_inner_steps": integer(1),
}

_MISSING = object()


def _get(config, path: str):
  node = config
  for name in path.split("."):
    if not hasattr(node, "get"):
      return _MISSING
    node = node.get(name, _MISSING)
    if node is _MISSING:
      return _MISSING
  return node


def fail(name: str, value, allowed: str):
  raise errors.ConfigError(f"{name}={value!r}: must be {allowed}")


def check(name: str, value, rule: Rule) -> None:
  """ConfigError 'NAME=VALUE: must be ALLOWED' unless `rule` accepts `value`."""
  if not rule.ok(value):
    fail(name, value, rule.allowed)


def check_config(config) -> None:
  """Raises ConfigError on the first field outside its allowed values."""
  for path, rule in RULES.items():
    value = _get(config, path)
    if value is not _MISSING:
      check(f"config.{path}", value, rule)
  kind, latent = _get(config, "model.kind"), _get(config, "model.latent_dim")
  if latent is not _MISSING:  # the LM has no latent code (configs/ptb.py:lm sets 0)
    low = 1 if kind == "vae" else 0
    check("config.model.latent_dim", latent,
          Rule(f"an integer >= {low} for model.kind={kind!r}", integer(low).ok))
  condition = _get(config, "model.condition")
  if condition not in (_MISSING, "") and kind != "vae":
    fail("config.model.condition", condition, "'' for model.kind={kind!r} (a conditional "
         "model is a VAE)".format(kind=kind))
  vocab_size = _get(config, "data.vocab_size")
  smallest = len(vocab_lib.SPECIALS) + 1
  if vocab_size is not _MISSING and not (
      _is_int(vocab_size) and (vocab_size == 0 or vocab_size >= smallest)):
    fail("config.data.vocab_size", vocab_size,
         f"0 (every training word) or an integer >= {smallest} (the specials and a word)")
  if _get(config, "data.name") == "text_files" and not _get(config, "data.source_dir"):
    raise errors.ConfigError("config.data.source_dir='': must name a folder holding "
                             "train.txt, valid.txt and test.txt for data.name='text_files'")
